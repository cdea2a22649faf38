package policy

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"regexp"
	"slices"
	"strings"
	"text/template"
)

// templateFS holds the role templates, identical copies of the files in the
// repository's policies/templates/ directory (a test keeps them in step).
//
//go:embed templates/*.cedar.tmpl
var templateFS embed.FS

// TemplateParams are the parameters of a role template.
type TemplateParams struct {
	// Role is the role the policies are written for (Role::"<Role>"); the
	// policy ids are "<Role>-<purpose>".
	Role string
	// Devices are device ids ("<provider>/<name>"). Required by
	// submit-only; optional for simulator-only, hardware-with-approval and
	// admin, where they restrict the devices; unused by monitor.
	Devices []string
	// NoResults makes submit-only unable to read job results (an explicit
	// forbid on ReadResult). Ignored by the other templates.
	NoResults bool
}

// ErrTemplate is matched (errors.Is) by every error Template returns.
var ErrTemplate = errors.New("policy template error")

var (
	roleNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)
	deviceIDRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._:@+-]*$`)
)

// TemplateNames returns the names of the shipped role templates, sorted:
// "admin", "hardware-with-approval", "monitor", "simulator-only",
// "submit-only".
func TemplateNames() []string {
	entries, err := fs.ReadDir(templateFS, "templates")
	if err != nil {
		panic("policy: embedded templates: " + err.Error()) // cannot happen: compiled in
	}
	names := make([]string, 0, len(entries))
	for _, ent := range entries {
		names = append(names, strings.TrimSuffix(ent.Name(), ".cedar.tmpl"))
	}
	slices.Sort(names)
	return names
}

// Template renders the named role template for p and returns Cedar policy
// text that loads (it is validated before it is returned). Role names may
// hold letters, digits, '.', '_' and '-'; device ids are
// "<provider>/<name>" with no quotes or spaces.
func Template(name string, p TemplateParams) ([]byte, error) {
	src, err := templateFS.ReadFile("templates/" + name + ".cedar.tmpl")
	if err != nil || strings.ContainsAny(name, "/.") {
		return nil, fmt.Errorf("%w: unknown template %q (have %s)", ErrTemplate, name, strings.Join(TemplateNames(), ", "))
	}
	if !roleNameRE.MatchString(p.Role) {
		return nil, fmt.Errorf("%w: role name %q is not [A-Za-z0-9._-]", ErrTemplate, p.Role)
	}
	for _, d := range p.Devices {
		if !deviceIDRE.MatchString(d) {
			return nil, fmt.Errorf("%w: device id %q is not <provider>/<name>", ErrTemplate, d)
		}
	}
	if name == "submit-only" && len(p.Devices) == 0 {
		return nil, fmt.Errorf("%w: submit-only needs at least one device", ErrTemplate)
	}
	t, err := template.New(name).Option("missingkey=error").Funcs(template.FuncMap{
		"q": func(s string) string { return `"` + s + `"` }, // inputs are checked above: no quotes or backslashes
		"devices": func(ids []string) string {
			q := make([]string, len(ids))
			for i, id := range ids {
				q[i] = `Device::"` + id + `"`
			}
			return "[" + strings.Join(q, ", ") + "]"
		},
	}).Parse(string(src))
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrTemplate, name, err)
	}
	var b bytes.Buffer
	if err := t.Execute(&b, p); err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrTemplate, name, err)
	}
	if _, err := New([]File{{Name: p.Role + ".cedar", Data: b.Bytes()}}); err != nil {
		return nil, fmt.Errorf("%w: %s renders invalid Cedar: %w", ErrTemplate, name, err)
	}
	return b.Bytes(), nil
}
