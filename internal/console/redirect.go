package console

import (
	"net/url"
	"strings"
)

// home is where a sign-in returns when no safe return path was given.
const home = "/ui/"

// safeReturn returns next when it is a same-site relative path under /ui/
// that is safe to redirect to after sign-in, and home otherwise: no scheme,
// no host, no "//" or backslash (which browsers read as another host), no
// dot segments, no control characters, and not the sign-in pages
// themselves.
func safeReturn(next string) string {
	if next == "" || len(next) > 1024 || !strings.HasPrefix(next, home) || strings.Contains(next, "//") {
		return home
	}
	for _, ch := range next {
		if ch < 0x21 || ch == 0x7f || ch == '\\' {
			return home
		}
	}
	u, err := url.Parse(next)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || u.Opaque != "" {
		return home
	}
	p := u.Path
	if !strings.HasPrefix(p, home) || strings.Contains(p, "//") || strings.ContainsAny(p, "\\") {
		return home
	}
	for _, seg := range strings.Split(p, "/") {
		if seg == "." || seg == ".." {
			return home
		}
		for _, ch := range seg {
			if ch < 0x20 || ch == 0x7f {
				return home
			}
		}
	}
	switch {
	case p == "/ui/login", p == "/ui/callback", p == "/ui/logout", strings.HasPrefix(p, "/ui/login/"):
		return home
	}
	out := u.EscapedPath()
	if u.RawQuery != "" {
		out += "?" + u.RawQuery
	}
	return out
}
