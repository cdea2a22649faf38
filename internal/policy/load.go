package policy

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// LoadFiles reads the named Cedar files and builds an Engine from them, as
// New does. Each File.Name is the base name of its path, so default policy
// ids read "demo.cedar#0". Every unreadable file and every policy problem is
// reported in the one joined error. This is the package's only I/O; call it
// at startup or reload, never per decision.
func LoadFiles(paths []string) (*Engine, error) {
	files := make([]File, 0, len(paths))
	var errs []error
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			errs = append(errs, fmt.Errorf("policy: read %s: %w", p, err))
			continue
		}
		files = append(files, File{Name: filepath.Base(p), Data: data})
	}
	e, err := New(files)
	if err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return e, nil
}
