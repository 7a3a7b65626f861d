package configs

import (
	"fmt"
	"io"
	"log/slog"
	"reflect"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// redacted replaces a secret wherever the configuration is shown.
const redacted = "REDACTED"

// Redacted returns a deep copy whose secrets (tokens, AK/SK, passwords in
// URLs, webhook URL paths) are replaced by "REDACTED" where they are set;
// an unset secret stays "", so the output still says it is unset.
func (c *Config) Redacted() *Config {
	d := c.Clone()
	v := reflect.ValueOf(d).Elem()
	for i := range v.NumField() {
		if f := v.Field(i); f.Kind() == reflect.Struct {
			redactStruct(f)
		}
	}
	for i := range d.Targets {
		redactStruct(reflect.ValueOf(&d.Targets[i]).Elem())
	}
	return d
}

// redactStruct redacts the secret-tagged string fields of the struct v.
func redactStruct(v reflect.Value) {
	t := v.Type()
	for i := range t.NumField() {
		mode := t.Field(i).Tag.Get("secret")
		if mode == "" || v.Field(i).Kind() != reflect.String {
			continue
		}
		f := v.Field(i)
		f.SetString(redactValue(f.String(), mode))
	}
}

func redactValue(s, mode string) string {
	if s == "" {
		return ""
	}
	switch mode {
	case "url":
		return redactURL(s, false)
	case "url-path":
		return redactURL(s, true)
	}
	return redacted
}

// redactURL hides the password of a URL (the whole userinfo when it has no
// ':', since "redis://secret@host" is a common way to write a password),
// and with path also its path and query. Text that is not a URL but has an
// '@' in it is hidden entirely.
func redactURL(s string, path bool) string {
	scheme, userinfo, hosts, rest, ok := splitURL(s)
	if !ok {
		if path || strings.Contains(s, "@") {
			return redacted
		}
		return s
	}
	var b strings.Builder
	b.WriteString(scheme + "://")
	if userinfo != "" {
		if user, _, hasPass := strings.Cut(userinfo, ":"); hasPass {
			b.WriteString(user + ":" + redacted + "@")
		} else {
			b.WriteString(redacted + "@")
		}
	}
	b.WriteString(hosts)
	if path && rest != "" && rest != "/" {
		rest = "/" + redacted
	}
	b.WriteString(rest)
	return b.String()
}

// WriteYAML writes the configuration as YAML, secrets redacted: the output
// of `scanq config show`, and a valid configuration file itself.
func (c *Config) WriteYAML(w io.Writer) error {
	if _, err := io.WriteString(w, "# scanq configuration in effect; secrets are shown as REDACTED\n"); err != nil {
		return fmt.Errorf("writing configuration: %w", err)
	}
	enc := yaml.NewEncoder(w)
	enc.SetIndent(2)
	if err := enc.Encode(c.Redacted()); err != nil {
		return fmt.Errorf("writing configuration: %w", err)
	}
	if err := enc.Close(); err != nil {
		return fmt.Errorf("writing configuration: %w", err)
	}
	return nil
}

// ---- String and LogValue: never the secrets --------------------------------

// attrs lists the fields of a section as slog attributes, secrets redacted.
// Fields the file cannot set (the CLOUD_SDK_* credentials) are listed only
// when set, so a log line shows that they are.
func attrs(section any) []slog.Attr {
	v := reflect.New(reflect.TypeOf(section)).Elem()
	v.Set(reflect.ValueOf(section))
	redactStruct(v)
	t := v.Type()
	var out []slog.Attr
	for i := range t.NumField() {
		f := t.Field(i)
		name := yamlName(f)
		if name == "" {
			if !f.IsExported() || v.Field(i).IsZero() {
				continue
			}
			name = strings.ToLower(f.Name)
		}
		out = append(out, slog.Any(name, v.Field(i).Interface()))
	}
	return out
}

func render(prefix string, as []slog.Attr) string {
	var b strings.Builder
	for i, a := range as {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(prefix + a.Key + "=")
		s := a.Value.String()
		if s == "" || strings.ContainsAny(s, " \"=") {
			s = strconv.Quote(s)
		}
		b.WriteString(s)
	}
	return b.String()
}

func (r RedisConfig) String() string         { return render("", attrs(r)) }
func (r RedisConfig) GoString() string       { return "configs.RedisConfig{" + r.String() + "}" }
func (r RedisConfig) LogValue() slog.Value   { return slog.GroupValue(attrs(r)...) }
func (h HSSConfig) String() string           { return render("", attrs(h)) }
func (h HSSConfig) GoString() string         { return "configs.HSSConfig{" + h.String() + "}" }
func (h HSSConfig) LogValue() slog.Value     { return slog.GroupValue(attrs(h)...) }
func (a APIConfig) String() string           { return render("", attrs(a)) }
func (a APIConfig) GoString() string         { return "configs.APIConfig{" + a.String() + "}" }
func (a APIConfig) LogValue() slog.Value     { return slog.GroupValue(attrs(a)...) }
func (w WebhookConfig) String() string       { return render("", attrs(w)) }
func (w WebhookConfig) GoString() string     { return "configs.WebhookConfig{" + w.String() + "}" }
func (w WebhookConfig) LogValue() slog.Value { return slog.GroupValue(attrs(w)...) }

// sections pairs each section's key with its value.
func (c Config) sections() []struct {
	name  string
	value any
} {
	return []struct {
		name  string
		value any
	}{
		{"redis", c.Redis}, {"hss", c.HSS}, {"api", c.API}, {"worker", c.Worker},
		{"scan", c.Scan}, {"retry", c.Retry}, {"scheduler", c.Scheduler},
		{"webhook", c.Webhook}, {"log", c.Log},
	}
}

func (c Config) scheduleNames() []string {
	names := make([]string, len(c.Schedules))
	for i, s := range c.Schedules {
		names[i] = s.Name
	}
	return names
}

// String is the whole configuration on one line, secrets redacted.
func (c Config) String() string {
	var parts []string
	for _, s := range c.sections() {
		parts = append(parts, render(s.name+".", attrs(s.value)))
	}
	parts = append(parts, "schedules="+strconv.Quote(strings.Join(c.scheduleNames(), ",")))
	return strings.Join(parts, " ")
}

// GoString keeps %#v from printing secrets.
func (c Config) GoString() string { return "configs.Config{" + c.String() + "}" }

// LogValue logs the configuration as one group per section, secrets
// redacted.
func (c Config) LogValue() slog.Value {
	var as []slog.Attr
	for _, s := range c.sections() {
		as = append(as, slog.Attr{Key: s.name, Value: slog.GroupValue(attrs(s.value)...)})
	}
	as = append(as, slog.Any("schedules", c.scheduleNames()))
	return slog.GroupValue(as...)
}
