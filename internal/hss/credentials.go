package hss

import "log/slog"

// Credentials authenticate scanq's HSS calls: AK/SK signing (with
// SecurityToken for temporary credentials), or an IAM AuthToken.
// String, GoString and LogValue never show the values, only which are set.
type Credentials struct {
	AK, SK        string
	SecurityToken string
	AuthToken     string
}

func (c Credentials) String() string {
	return "hss.Credentials{AK:" + set(c.AK) + " SK:" + set(c.SK) +
		" SecurityToken:" + set(c.SecurityToken) + " AuthToken:" + set(c.AuthToken) + "}"
}

// GoString keeps %#v from printing the secrets.
func (c Credentials) GoString() string { return c.String() }

func (c Credentials) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("ak", set(c.AK)), slog.String("sk", set(c.SK)),
		slog.String("security_token", set(c.SecurityToken)), slog.String("auth_token", set(c.AuthToken)),
	)
}

func set(s string) string {
	if s == "" {
		return "unset"
	}
	return "set"
}
