package app

import (
	"fmt"
	"net"
)

// apiAuthenticated reports whether the API has credentials to check.
func (a *App) apiAuthenticated() bool { return a.Cfg.API.Token != "" || a.Cfg.API.AK != "" }

// checkExposure decides, once the API's listener is bound, whether it may
// serve: an API without credentials serves loopback only, unless
// api.allow_unauthenticated says that an open API on a network is meant.
// Deciding on the bound address, not on the text of api.addr, covers ":8080",
// "0.0.0.0:8080", "[::]:8080" and host names alike. Every start of an open
// API says so with a WARN.
func (a *App) checkExposure(bound net.Addr) error {
	if a.apiAuthenticated() {
		return nil
	}
	tcp, ok := bound.(*net.TCPAddr)
	loopback := ok && tcp.IP.IsLoopback()
	switch {
	case loopback:
		a.Log.Warn("api: authentication is OFF (no api.token, no api.ak/api.sk): anyone on this machine can start scans and read runs; /monitoring/ is read-only",
			"addr", bound.String())
	case a.Cfg.API.AllowUnauthenticated:
		a.Log.Warn("api: authentication is OFF and api.allow_unauthenticated is true: anyone who can reach this address can start scans and read runs; /monitoring/ is read-only",
			"addr", bound.String())
	default:
		return fmt.Errorf("api: api.addr %q listens on %s, beyond this machine, and the API has no authentication: "+
			"set api.token (or api.ak and api.sk), listen on 127.0.0.1, or set api.allow_unauthenticated: true "+
			"(SCANQ_API_ALLOW_UNAUTHENTICATED=true) to run it open on purpose", a.Cfg.API.Addr, bound.String())
	}
	return nil
}
