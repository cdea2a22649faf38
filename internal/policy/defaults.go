package policy

import (
	"embed"
	"io/fs"
	"path"
)

// defaultFS holds the built-in policies, identical copies of the files in
// the repository's policies/ directory (a test keeps them in step).
//
//go:embed defaults/*.cedar
var defaultFS embed.FS

// DefaultFiles returns the built-in policy files (the dev demo role), in name
// order, with names such as "demo.cedar".
func DefaultFiles() []File {
	entries, err := fs.ReadDir(defaultFS, "defaults")
	if err != nil {
		panic("policy: embedded defaults: " + err.Error()) // cannot happen: the directory is compiled in
	}
	files := make([]File, 0, len(entries))
	for _, ent := range entries {
		data, err := defaultFS.ReadFile(path.Join("defaults", ent.Name()))
		if err != nil {
			panic("policy: embedded defaults: " + err.Error())
		}
		files = append(files, File{Name: ent.Name(), Data: data})
	}
	return files
}
