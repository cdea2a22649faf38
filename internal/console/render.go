package console

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"html/template"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
)

//go:embed templates/*.html static/console.css
var assets embed.FS

// pages are the parsed templates, one set per page, each with the layout.
type pages struct {
	byName map[string]*template.Template
}

var pageNames = []string{"home", "detail", "audit", "message"}

func (c *Console) parsePages() (*pages, error) {
	funcs := template.FuncMap{
		"utc":      utc,
		"rel":      rel,
		"usd":      usd,
		"since":    since,
		"approval": func(id string) string { return c.href(approvalPath(id)) },
		"inc":      func(i int) int { return i + 1 },
	}
	ps := &pages{byName: map[string]*template.Template{}}
	for _, name := range pageNames {
		t, err := template.New(name).Funcs(funcs).ParseFS(assets, "templates/layout.html", "templates/"+name+".html")
		if err != nil {
			return nil, err
		}
		ps.byName[name] = t
	}
	return ps, nil
}

func assetHash(name string) (string, error) {
	b, err := assets.ReadFile(name)
	if err != nil {
		return "", err
	}
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:6]), nil
}

// view is what every page template gets.
type view struct {
	Title      string
	Nav        string // "approvals", "audit" or ""
	CSS        string
	Home       string
	Audit      string
	Logout     string
	SignIn     string
	User       *Person
	LogoutCSRF string
	Flash      string // shown in role="status"
	Error      string // shown in role="alert"
	Now        time.Time
	Data       any
}

// link is a call to action on a message page.
type link struct{ Href, Text string }

// messageData is the message page's data.
type messageData struct {
	Paragraphs []string
	Link       *link
}

func (c *Console) newView(r *http.Request, title, nav string) view {
	v := view{
		Title: title, Nav: nav, Now: c.now().UTC(),
		CSS:  c.href("/ui/static/console.css") + "?v=" + c.cssHash,
		Home: c.href("/ui/"), Audit: c.href("/ui/audit"), Logout: c.href("/ui/logout"), SignIn: c.href("/ui/login"),
	}
	if s, ok := c.currentSession(r); ok {
		p := s.person()
		v.User = &p
		v.LogoutCSRF = c.csrfToken(s.ID, actionLogout, "")
	}
	return v
}

// page renders a page template with status.
func (c *Console) page(w http.ResponseWriter, status int, name string, v view) {
	t, ok := c.pages.byName[name]
	if !ok {
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "layout", v); err != nil {
		c.log.Error("console: render", "page", name, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// message renders a page with a heading, paragraphs and an optional link.
func (c *Console) message(w http.ResponseWriter, r *http.Request, status int, title string, paragraphs []string, l *link) {
	v := c.newView(r, title, "")
	v.Data = messageData{Paragraphs: paragraphs, Link: l}
	c.page(w, status, "message", v)
}

// refuse is the page for a refused request: nothing changed.
func (c *Console) refuse(w http.ResponseWriter, r *http.Request, status int, title, text string) {
	c.message(w, r, status, title, []string{text}, &link{Href: c.href("/ui/"), Text: "Back to approvals"})
}

func (c *Console) internalError(w http.ResponseWriter, r *http.Request, err error) {
	c.log.Error("console: internal error", "path", r.URL.Path, "err", err)
	c.message(w, r, http.StatusInternalServerError, "Something went wrong", []string{
		"Something went wrong on our side and nothing was changed. Please try again in a moment.",
	}, nil)
}

func (c *Console) notFound(w http.ResponseWriter, r *http.Request) {
	c.message(w, r, http.StatusNotFound, "Page not found", []string{"There is no page at this address."},
		&link{Href: c.href("/ui/"), Text: "Go to approvals"})
}

// css serves the embedded stylesheet. Its URL carries the content hash, so
// it may be cached for long.
func (c *Console) css(w http.ResponseWriter, r *http.Request) {
	b, err := assets.ReadFile("static/console.css")
	if err != nil {
		c.internalError(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "text/css; charset=utf-8")
	w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
	_, _ = w.Write(b)
}

// Formatting helpers for templates.

const timeLayout = "2006-01-02 15:04 UTC"

func utc(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	return t.UTC().Format(timeLayout)
}

// rel says when t is relative to now: "in 12 min", "3 h ago".
func rel(now, t time.Time) string {
	if t.IsZero() {
		return ""
	}
	d := t.Sub(now)
	if d >= 0 {
		if d < time.Minute {
			return "in less than a minute"
		}
		return "in " + span(d)
	}
	if -d < time.Minute {
		return "just now"
	}
	return span(-d) + " ago"
}

// since is how long ago t was, without "ago": "12 min".
func since(now, t time.Time) string {
	d := now.Sub(t)
	if d < time.Minute {
		return "under 1 min"
	}
	return span(d)
}

func span(d time.Duration) string {
	switch {
	case d < time.Hour:
		return fmt.Sprintf("%d min", int(d/time.Minute))
	case d < 48*time.Hour:
		h, m := int(d/time.Hour), int(d%time.Hour/time.Minute)
		if m == 0 || h >= 10 {
			return fmt.Sprintf("%d h", h)
		}
		return fmt.Sprintf("%d h %d min", h, m)
	default:
		return fmt.Sprintf("%d days", int(d/(24*time.Hour)))
	}
}

// usd formats a dollar amount: cents, or more digits for small amounts.
func usd(v float64) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return "—"
	}
	if v == 0 || math.Abs(v) >= 1 {
		return "$" + strconv.FormatFloat(v, 'f', 2, 64)
	}
	s := strconv.FormatFloat(v, 'f', 6, 64)
	s = strings.TrimRight(s, "0")
	if i := strings.IndexByte(s, '.'); len(s)-i-1 < 2 {
		s = strconv.FormatFloat(v, 'f', 2, 64)
	}
	return "$" + s
}
