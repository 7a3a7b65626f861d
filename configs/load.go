package configs

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/scanq/scanq/internal/hss"
	"go.yaml.in/yaml/v3"
)

// Environment variables outside the SCANQ_<SECTION>_<KEY> scheme.
const (
	// EnvConfig names the configuration file when no --config is given.
	EnvConfig = "SCANQ_CONFIG"
	// EnvTestPrefix is left to the test suite (SCANQ_TEST_REDIS_URL, ...).
	EnvTestPrefix = "SCANQ_TEST_"
	envPrefix     = "SCANQ_"

	// The credentials scanq signs its HSS calls with, named as in Huawei's
	// SDK samples.
	EnvCloudAK            = "CLOUD_SDK_AK"
	EnvCloudSK            = "CLOUD_SDK_SK"
	EnvCloudSecurityToken = "CLOUD_SDK_SECURITY_TOKEN"
)

// LoadOptions are the layers over the embedded defaults, lowest first.
type LoadOptions struct {
	// File is the configuration file; "" = the file named by SCANQ_CONFIG
	// in Env, or the embedded defaults only.
	File string
	// Env is the environment in os.Environ() form. nil means no
	// environment: main passes os.Environ(), tests pass what they test.
	Env []string
	// Set maps "section.key" to a value, e.g. from command-line flags; it
	// wins over the file and the environment.
	Set map[string]string
	// WithoutCredentials loads for a client that never calls HSS (the
	// CLI's enqueue, runs, coverage, schedules): a credential variable a
	// target names may be unset, and its credential is then empty.
	WithoutCredentials bool
}

// FieldError is one problem with one setting.
type FieldError struct {
	// Source says where the value came from: "FILE:LINE", "env NAME" or
	// "flag"; "" when unknown (Validate on a Config built in code).
	Source string
	// Field is the setting, "section.key" or `schedules["name"].key`.
	Field string
	// Reason never contains the value of a secret.
	Reason string
}

func (e *FieldError) Error() string {
	var b strings.Builder
	if e.Source != "" {
		b.WriteString(e.Source)
		b.WriteString(": ")
	}
	if e.Field != "" {
		b.WriteString(e.Field)
		b.WriteString(": ")
	}
	b.WriteString(e.Reason)
	return b.String()
}

// Load builds the configuration from the embedded defaults, then the file,
// then the environment (SCANQ_<SECTION>_<KEY>, CLOUD_SDK_*), then
// opts.Set, and validates it. Every problem found is reported, each as a
// *FieldError naming the setting.
func Load(opts LoadOptions) (*Config, error) {
	env := envMap(opts.Env)
	file := opts.File
	if file == "" {
		file = env[EnvConfig]
	}
	var data []byte
	if file != "" {
		var err error
		if data, err = os.ReadFile(file); err != nil {
			return nil, fmt.Errorf("reading configuration file: %w", err)
		}
	}
	return load(file, data, env, opts.Set, !opts.WithoutCredentials)
}

// ValidateFile loads path (or, when path is "", what SCANQ_CONFIG names,
// or the embedded defaults) with the environment env, as `scanq serve`
// would, and reports every problem. It backs `scanq config validate`.
func ValidateFile(path string, env []string) error {
	_, err := Load(LoadOptions{File: path, Env: env})
	return err
}

func load(file string, data []byte, env map[string]string, set map[string]string, credentials bool) (*Config, error) {
	c := &Config{}
	if err := decodeYAML(embeddedName, embeddedYAML, c, nil); err != nil {
		return nil, fmt.Errorf("decoding the embedded defaults: %w", err)
	}
	origins := map[string]string{}
	var errs []error
	if file != "" {
		if err := decodeYAML(file, data, c, origins); err != nil {
			errs = append(errs, err)
		}
	}
	_, fileSchedules := origins["schedules"]
	c.DefaultSchedules = !fileSchedules
	errs = append(errs, applyEnv(c, env, origins)...)
	errs = append(errs, applySet(c, set, origins)...)
	errs = append(errs, readCredentials(c, env, credentials)...)
	if len(c.Targets) > 0 && origins["hss.project_id"] == "" {
		c.HSS.ProjectID = "" // the embedded default's: no target uses it
	}
	if o, ok := origins["hss.project_id"]; ok && len(c.Targets) > 0 && c.HSS.ProjectID != "" {
		errs = append(errs, &FieldError{Source: o, Field: "hss.project_id", Reason: "not used when a targets list is given: give each target its project_id"})
	}
	// Validate even after decoding errors: a key that did not decode kept
	// its default, so what Validate finds is real, and one run of
	// `scanq config validate` lists every problem.
	c.resolve()
	if err := c.Validate(); err != nil {
		for _, fe := range fieldErrors(err) {
			if fe.Source == "" {
				fe.Source = originOf(origins, fe.Field)
			}
		}
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("invalid configuration:\n%w", errors.Join(errs...))
	}
	return c, nil
}

// originOf finds where a field, or the nearest enclosing one, was set.
func originOf(origins map[string]string, field string) string {
	for f := field; f != ""; {
		if o, ok := origins[f]; ok {
			return o
		}
		i := strings.LastIndexAny(f, ".[")
		if i < 0 {
			break
		}
		f = f[:i]
	}
	return ""
}

// fieldErrors lists the *FieldErrors in an error tree.
func fieldErrors(err error) []*FieldError {
	var out []*FieldError
	var walk func(error)
	walk = func(err error) {
		if fe, ok := err.(*FieldError); ok {
			out = append(out, fe)
			return
		}
		switch u := err.(type) {
		case interface{ Unwrap() []error }:
			for _, e := range u.Unwrap() {
				walk(e)
			}
		case interface{ Unwrap() error }:
			if e := u.Unwrap(); e != nil {
				walk(e)
			}
		}
	}
	if err != nil {
		walk(err)
	}
	return out
}

// envTargetsPrefix starts the variables that set a key of a listed
// target: SCANQ_TARGETS_<NAME>_<KEY>, NAME the target's name in upper case
// with every character other than a letter or digit as '_'.
const envTargetsPrefix = envPrefix + "TARGETS_"

// TargetEnvName is the variable that sets key of target name:
// SCANQ_TARGETS_CN_PROD_REQUEST_RATE for ("cn-prod", "request_rate").
func TargetEnvName(name, key string) string {
	return envTargetsPrefix + envWord(name) + "_" + strings.ToUpper(key)
}

func envWord(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z':
			return r - 'a' + 'A'
		case r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
			return r
		}
		return '_'
	}, s)
}

// applyTargetEnv applies SCANQ_TARGETS_<rest>: the key of a listed target.
func applyTargetEnv(c *Config, rest, val, src string, origins map[string]string) error {
	tt := reflect.TypeFor[TargetConfig]()
	var names []string
	for i := range c.Targets {
		t := &c.Targets[i]
		word, ok := strings.CutPrefix(rest, envWord(t.Name)+"_")
		if !ok {
			continue
		}
		for j := range tt.NumField() {
			key := yamlName(tt.Field(j))
			if key == "" || key == "name" || strings.ToUpper(key) != word {
				continue
			}
			p := targetPath(i, t.Name) + "." + key
			fv := reflect.ValueOf(t).Elem().Field(j)
			if err := setScalar(fv, val); err != nil {
				return &FieldError{Source: src, Field: p, Reason: badValue(fv.Type(), val, "")}
			}
			origins[p] = src
			return nil
		}
	}
	for _, t := range c.Targets {
		names = append(names, t.Name)
	}
	if len(names) == 0 {
		return &FieldError{Source: src, Reason: "no targets list is configured; SCANQ_TARGETS_<NAME>_<KEY> sets a key of a listed target (the hss section is set with SCANQ_HSS_<KEY>)"}
	}
	return &FieldError{Source: src, Reason: fmt.Sprintf("names no key of a listed target: want SCANQ_TARGETS_<NAME>_<KEY>, NAME one of %s in upper case with '_' for other characters, KEY a target key in upper case", strings.Join(names, ", "))}
}

// EnvKeys lists every SCANQ_* variable the loader understands, sorted.
func EnvKeys() []string {
	keys := []string{EnvConfig}
	for _, s := range settings {
		keys = append(keys, s.env)
	}
	sort.Strings(keys)
	return keys
}

// ---- the table of settings ----------------------------------------------

// setting is one scalar key of a section.
type setting struct {
	path   string // "worker.concurrency"
	env    string // "SCANQ_WORKER_CONCURRENCY"
	index  []int  // into Config
	secret string // the secret tag
}

var (
	settings       = buildSettings()
	settingsByPath = indexSettings(func(s setting) string { return s.path })
	settingsByEnv  = indexSettings(func(s setting) string { return s.env })
	durationType   = reflect.TypeFor[time.Duration]()
	requestType    = reflect.TypeFor[ScanRequest]()
)

func buildSettings() []setting {
	var out []setting
	ct := reflect.TypeFor[Config]()
	for i := range ct.NumField() {
		sf := ct.Field(i)
		if sf.Type.Kind() != reflect.Struct {
			continue // schedules: a list, file only
		}
		section := yamlName(sf)
		for j := range sf.Type.NumField() {
			f := sf.Type.Field(j)
			key := yamlName(f)
			if key == "" {
				continue
			}
			out = append(out, setting{
				path:   section + "." + key,
				env:    envPrefix + strings.ToUpper(section+"_"+key),
				index:  []int{i, j},
				secret: f.Tag.Get("secret"),
			})
		}
	}
	return out
}

func indexSettings(key func(setting) string) map[string]setting {
	m := make(map[string]setting, len(settings))
	for _, s := range settings {
		m[key(s)] = s
	}
	return m
}

// yamlName is the key of a struct field, "" for fields the file cannot set.
func yamlName(f reflect.StructField) string {
	name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
	if name == "-" || !f.IsExported() {
		return ""
	}
	return name
}

// ---- scalars --------------------------------------------------------------

// setScalar parses s into v by v's type. The file, the environment and
// flags share it, so "30s" or "10" means the same everywhere.
func setScalar(v reflect.Value, s string) error {
	if v.Kind() == reflect.Pointer {
		nv := reflect.New(v.Type().Elem())
		if err := setScalar(nv.Elem(), s); err != nil {
			return err
		}
		v.Set(nv)
		return nil
	}
	if v.Kind() != reflect.String {
		s = strings.TrimSpace(s)
	}
	switch {
	case v.Type() == durationType:
		d, err := time.ParseDuration(s)
		if err != nil {
			return err
		}
		v.SetInt(int64(d))
	case v.Kind() == reflect.String:
		v.SetString(s)
	case v.Kind() == reflect.Bool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return err
		}
		v.SetBool(b)
	case v.CanInt():
		n, err := strconv.ParseInt(s, 10, v.Type().Bits())
		if err != nil {
			return err
		}
		v.SetInt(n)
	case v.CanFloat():
		f, err := strconv.ParseFloat(s, v.Type().Bits())
		if err != nil {
			return err
		}
		v.SetFloat(f)
	default:
		return fmt.Errorf("unsupported type %s", v.Type())
	}
	return nil
}

// want describes what a value of type t looks like, for error messages.
func want(t reflect.Type) string {
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch {
	case t == durationType:
		return "a duration such as 30s, 5m or 1h30m"
	case t.Kind() == reflect.String:
		return "a string"
	case t.Kind() == reflect.Bool:
		return "true or false"
	case t.Kind() >= reflect.Int && t.Kind() <= reflect.Int64:
		return "a whole number"
	case t.Kind() == reflect.Float64 || t.Kind() == reflect.Float32:
		return "a number"
	case t.Kind() == reflect.Slice:
		return "a list"
	}
	return "a mapping"
}

// badValue is the reason a value did not parse; a secret's value is never
// repeated.
func badValue(t reflect.Type, s, secret string) string {
	if secret != "" {
		return "want " + want(t)
	}
	return fmt.Sprintf("want %s, got %q", want(t), s)
}

// ---- environment and flags ------------------------------------------------

// envMap indexes the environment; a later entry wins, as in exec.Cmd.Env.
// It is all of it: a target names the variables its credentials are in.
func envMap(env []string) map[string]string {
	m := map[string]string{}
	for _, kv := range env {
		if k, v, ok := strings.Cut(kv, "="); ok {
			m[k] = v
		}
	}
	return m
}

func applyEnv(c *Config, env map[string]string, origins map[string]string) []error {
	var errs []error
	root := reflect.ValueOf(c).Elem()
	for _, name := range slices.Sorted(maps.Keys(env)) {
		val := env[name]
		switch name {
		case EnvCloudAK:
			c.HSS.AK = val
			continue
		case EnvCloudSK:
			c.HSS.SK = val
			continue
		case EnvCloudSecurityToken:
			c.HSS.SecurityToken = val
			continue
		case EnvConfig:
			continue
		}
		if !strings.HasPrefix(name, envPrefix) || strings.HasPrefix(name, EnvTestPrefix) {
			continue
		}
		src := "env " + name
		if rest, ok := strings.CutPrefix(name, envTargetsPrefix); ok {
			if err := applyTargetEnv(c, rest, val, src, origins); err != nil {
				errs = append(errs, err)
			}
			continue
		}
		s, ok := settingsByEnv[name]
		if !ok {
			errs = append(errs, &FieldError{Source: src, Reason: "unknown variable" + suggest(name, EnvKeys())})
			continue
		}
		fv := root.FieldByIndex(s.index)
		if err := setScalar(fv, val); err != nil {
			errs = append(errs, &FieldError{Source: src, Field: s.path, Reason: badValue(fv.Type(), val, s.secret)})
			continue
		}
		origins[s.path] = src
	}
	return errs
}

func applySet(c *Config, set map[string]string, origins map[string]string) []error {
	var errs []error
	root := reflect.ValueOf(c).Elem()
	for _, k := range slices.Sorted(maps.Keys(set)) {
		val := set[k]
		s, ok := settingsByPath[k]
		if !ok {
			paths := make([]string, len(settings))
			for i, s := range settings {
				paths[i] = s.path
			}
			errs = append(errs, &FieldError{Source: "flag", Field: k, Reason: "unknown setting" + suggest(k, paths)})
			continue
		}
		fv := root.FieldByIndex(s.index)
		if err := setScalar(fv, val); err != nil {
			errs = append(errs, &FieldError{Source: "flag", Field: k, Reason: badValue(fv.Type(), val, s.secret)})
			continue
		}
		origins[s.path] = "flag"
	}
	return errs
}

// suggest names the closest candidate when it is close enough to be a typo.
func suggest(got string, candidates []string) string {
	best, bestD := "", 1<<30
	for _, c := range candidates {
		if d := editDistance(got, c); d < bestD {
			best, bestD = c, d
		}
	}
	if best == "" || bestD > 3 || bestD >= len(got)/2+1 {
		return ""
	}
	return fmt.Sprintf(" (did you mean %s?)", best)
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// ---- the file ---------------------------------------------------------------

// decodeYAML decodes a configuration document over c: keys the document
// has replace c's values, the others stay. It walks the YAML node tree
// itself rather than calling yaml.Unmarshal so that every error names the
// key (yaml.v3's type errors name only a Go type) and so that all of a
// file's problems are reported at once. origins, when not nil, records the
// line each setting came from.
func decodeYAML(file string, data []byte, c *Config, origins map[string]string) error {
	d := &decoder{file: file, origins: origins}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if err == io.EOF {
			return nil // empty file: nothing overridden
		}
		return fmt.Errorf("parsing %s: %w", file, err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err != io.EOF {
		if err != nil {
			return fmt.Errorf("parsing %s: %w", file, err)
		}
		return fmt.Errorf("parsing %s: line %d: a second YAML document; a configuration is one document", file, extra.Line)
	}
	if n := tooDeep(&doc, hss.MaxDepth+1); n != nil {
		d.fail(n, "", "nested deeper than %d levels", hss.MaxDepth)
		return errors.Join(d.errs...)
	}
	root := deref(&doc)
	if root.Kind == yaml.DocumentNode && len(root.Content) > 0 {
		root = deref(root.Content[0])
	}
	switch {
	case isNull(root):
	case root.Kind != yaml.MappingNode:
		d.fail(root, "", "the top level must be a mapping of sections (redis:, hss:, ...)")
	default:
		d.mapping(root, reflect.ValueOf(c).Elem(), "")
	}
	return errors.Join(d.errs...)
}

// tooDeep returns the first node of doc nested more than maxDepth
// mappings and sequences deep (aliases are not followed), or nil. No
// configuration nests deeper than a schedule's request (5 levels); the
// limit is the one every decoder of outside input has (hss.MaxDepth). The
// walk is iterative.
func tooDeep(doc *yaml.Node, maxDepth int) *yaml.Node {
	type item struct {
		n     *yaml.Node
		depth int
	}
	stack := []item{{doc, 0}}
	for len(stack) > 0 {
		it := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		depth := it.depth
		if it.n.Kind == yaml.MappingNode || it.n.Kind == yaml.SequenceNode {
			if depth++; depth > maxDepth {
				return it.n
			}
		}
		for _, c := range it.n.Content {
			stack = append(stack, item{c, depth})
		}
	}
	return nil
}

type decoder struct {
	file    string
	origins map[string]string
	errs    []error
}

func (d *decoder) fail(n *yaml.Node, field, format string, args ...any) {
	d.errs = append(d.errs, &FieldError{
		Source: fmt.Sprintf("%s:%d", d.file, n.Line),
		Field:  field,
		Reason: fmt.Sprintf(format, args...),
	})
}

func (d *decoder) record(n *yaml.Node, field string) {
	if d.origins != nil {
		d.origins[field] = fmt.Sprintf("%s:%d", d.file, n.Line)
	}
}

// deref follows aliases (*anchor) to the node they name.
func deref(n *yaml.Node) *yaml.Node {
	for i := 0; n.Kind == yaml.AliasNode && n.Alias != nil && i < 100; i++ {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n.Kind == 0 || (n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null")
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	}
	return fmt.Sprintf("%q", n.Value)
}

func joinPath(parent, key string) string {
	if parent == "" {
		return key
	}
	return parent + "." + key
}

// mapping decodes the keys of n into the struct v.
func (d *decoder) mapping(n *yaml.Node, v reflect.Value, path string) {
	t := v.Type()
	fields := map[string]int{}
	var names []string
	for i := range t.NumField() {
		if name := yamlName(t.Field(i)); name != "" {
			fields[name] = i
			names = append(names, name)
		}
	}
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := deref(n.Content[i]), deref(n.Content[i+1])
		if k.Kind != yaml.ScalarNode {
			d.fail(k, path, "a key must be a plain word, got %s", kindName(k))
			continue
		}
		p := joinPath(path, k.Value)
		if k.Value == "<<" {
			d.fail(k, path, "merge keys (<<) are not supported; write the keys out")
			continue
		}
		if first, dup := seen[k.Value]; dup {
			d.fail(k, p, "repeated key (first at line %d)", first)
			continue
		}
		seen[k.Value] = k.Line
		fi, ok := fields[k.Value]
		if !ok {
			d.fail(k, p, "unknown key%s", suggest(k.Value, names))
			continue
		}
		d.value(val, v.Field(fi), p, t.Field(fi).Tag.Get("secret"))
	}
}

func (d *decoder) value(n *yaml.Node, v reflect.Value, path, secret string) {
	switch {
	case v.Type() == requestType:
		if err := decodeRequest(n, v.Addr().Interface().(*ScanRequest)); err != nil {
			d.fail(n, path, "%s", err.Error())
			return
		}
		d.record(n, path)
	case v.Kind() == reflect.Struct:
		if isNull(n) {
			return // "redis:" with nothing under it keeps the defaults
		}
		if n.Kind != yaml.MappingNode {
			d.fail(n, path, "want a mapping of keys, got %s", kindName(n))
			return
		}
		d.mapping(n, v, path)
	case v.Kind() == reflect.Slice && v.Type().Elem().Kind() == reflect.String:
		d.words(n, v, path)
	case v.Kind() == reflect.Slice:
		d.list(n, v, path)
	default:
		if n.Kind != yaml.ScalarNode {
			d.fail(n, path, "want %s, got %s", want(v.Type()), kindName(n))
			return
		}
		if isNull(n) {
			v.SetZero()
		} else if err := setScalar(v, n.Value); err != nil {
			d.fail(n, path, "%s", badValue(v.Type(), n.Value, secret))
			return
		}
		d.record(n, path)
	}
}

// list decodes a list of mappings (schedules, targets); it replaces the
// list decoded so far. Each item starts from its type's defaults
// (newSchedule for a schedule).
func (d *decoder) list(n *yaml.Node, v reflect.Value, path string) {
	if isNull(n) {
		v.SetZero()
		d.record(n, path)
		return
	}
	if n.Kind != yaml.SequenceNode {
		d.fail(n, path, "want a list of %s, got %s", path, kindName(n))
		return
	}
	list := reflect.Zero(v.Type()) // nil when empty, as a null list
	named := map[string]int{}
	for i, item := range n.Content {
		item = deref(item)
		// An item whose name an earlier one has is known by its index,
		// as validation names it (entryPath): its keys' lines stay its own.
		p := entryPath(path, i, nameOf(item), named)
		if name := nameOf(item); name != "" {
			if _, dup := named[name]; !dup {
				named[name] = i
			}
		}
		d.record(item, listPath(path, i, ""))
		if item.Kind != yaml.MappingNode {
			// Left out, so that validation does not pile on about it.
			d.fail(item, p, "want a mapping (name: ...), got %s", kindName(item))
			continue
		}
		e := reflect.New(v.Type().Elem()).Elem()
		if s, ok := e.Addr().Interface().(*Schedule); ok {
			*s = newSchedule()
		}
		d.mapping(item, e, p)
		list = reflect.Append(list, e)
	}
	v.Set(list)
	d.record(n, path)
}

// words decodes a list of words, or one word alone (`targets: all`).
func (d *decoder) words(n *yaml.Node, v reflect.Value, path string) {
	var out []string
	switch {
	case isNull(n):
	case n.Kind == yaml.ScalarNode:
		out = []string{n.Value}
	case n.Kind == yaml.SequenceNode:
		for _, item := range n.Content {
			item = deref(item)
			if item.Kind != yaml.ScalarNode || isNull(item) {
				d.fail(item, path, "want a list of names, got %s", kindName(item))
				return
			}
			out = append(out, item.Value)
		}
	default:
		d.fail(n, path, "want a name or a list of names, got %s", kindName(n))
		return
	}
	v.Set(reflect.ValueOf(out))
	d.record(n, path)
}

// nameOf peeks at a schedule's name so that errors about its other keys
// can say which schedule they are about.
func nameOf(n *yaml.Node) string {
	if n.Kind != yaml.MappingNode {
		return ""
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if k := deref(n.Content[i]); k.Kind == yaml.ScalarNode && k.Value == "name" {
			if v := deref(n.Content[i+1]); v.Kind == yaml.ScalarNode && !isNull(v) {
				return v.Value
			}
		}
	}
	return ""
}

// schedulePath names schedule i.
func schedulePath(i int, name string) string { return listPath("schedules", i, name) }

// listPath names item i of a list: by its name when it has one, since that
// is what a reader looks for, else by position.
func listPath(list string, i int, name string) string {
	if name == "" {
		return fmt.Sprintf("%s[%d]", list, i)
	}
	return fmt.Sprintf("%s[%q]", list, name)
}
