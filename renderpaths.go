package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// checkRenderOutputs refuses, before anything is rendered, an -o or -poster that cannot take the
// file: "-" (render writes files, not standard output), a directory, a path in a directory that does
// not exist, or the same file as an input or as the other output, which the render would destroy or
// overwrite. Each is a one-line usage error that says what to do.
func checkRenderOutputs(c renderConfig) error {
	inputs := []struct{ flag, path string }{{"-image", c.image}, {"-audio", c.audio}, {"-captions", c.captions}}
	outputs := []struct{ flag, path string }{{"-o", c.out}, {"-poster", c.poster}}
	for i, o := range outputs {
		if o.path == "" {
			continue
		}
		if o.path == "-" {
			return fmt.Errorf("render: %s -: render writes a file, not standard output; name the file", o.flag)
		}
		if fi, err := os.Stat(filepath.Dir(o.path)); err != nil || !fi.IsDir() {
			return fmt.Errorf("render: %s %s: the directory %s does not exist; create it or write elsewhere", o.flag, o.path, filepath.Dir(o.path))
		}
		fi, err := os.Stat(o.path)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("render: %s %s: %w", o.flag, o.path, err)
		}
		if fi.IsDir() {
			return fmt.Errorf("render: %s %s is a directory; name the file to write in it, like %s", o.flag, o.path, filepath.Join(o.path, "out."+map[string]string{"-o": "mp4", "-poster": "jpg"}[o.flag]))
		}
		others := append(inputs[:len(inputs):len(inputs)], outputs[i+1:]...)
		for _, in := range others {
			if in.path == "" {
				continue
			}
			if ofi, err := os.Stat(in.path); err == nil && os.SameFile(fi, ofi) {
				return fmt.Errorf("render: %s %s is the %s file; write to another file", o.flag, o.path, in.flag)
			}
		}
	}
	if c.poster != "" && filepath.Clean(c.poster) == filepath.Clean(c.out) {
		return fmt.Errorf("render: -poster %s is the -o file; write to another file", c.poster)
	}
	return nil
}
