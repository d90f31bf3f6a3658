package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// renderDest is a file `vidgen render` writes: a size's video or poster. The first size's go to
// -o and -poster; each further size's beside them, named by sizedPath (OUT.SIZE.mp4).
type renderDest struct {
	flag  string // -o for a video, -poster for a poster
	path  string
	size  string // the size's name
	index int    // the size's place in the job's sizes: 0 for the file at the flag's own path
}

// renderDests are the files a render of c writes for sizes (Options.sizes()), in the order it
// writes them: each size's video, then its poster when -poster was given.
func renderDests(c renderConfig, sizes []string) []renderDest {
	var dests []renderDest
	for i, size := range sizes {
		dests = append(dests, renderDest{"-o", sizedPath(c.out, sizes, i), size, i})
		if c.poster != "" {
			dests = append(dests, renderDest{"-poster", sizedPath(c.poster, sizes, i), size, i})
		}
	}
	return dests
}

// what is d in a message's subject: "-o out.mp4", or for a further size "out.x.mp4, where -sizes
// writes the x video (-o with .x before its extension),", which tells the user where the name came
// from and which flag to change.
func (d renderDest) what() string {
	if d.index == 0 {
		return d.flag + " " + d.path
	}
	return fmt.Sprintf("%s, where -sizes writes the %s %s (%s with .%s before its extension),", d.path, d.size, d.kind(), d.flag, d.size)
}

// role is d as what another path is: "the -o file", or "where -sizes writes the x video (…)".
func (d renderDest) role() string {
	if d.index == 0 {
		return "the " + d.flag + " file"
	}
	return fmt.Sprintf("where -sizes writes the %s %s (%s with .%s before its extension)", d.size, d.kind(), d.flag, d.size)
}

func (d renderDest) kind() string {
	if d.flag == "-o" {
		return "video"
	}
	return "poster"
}

// renderFlagSizes are the sizes a render of fields makes, as the flags give them before the inputs
// are checked: those of -sizes, or one. A -sizes that does not read is refused later, with the
// API's message, before anything is rendered.
func renderFlagSizes(fields map[string]string) []string {
	var o Options
	if parseSizes(fields, &o) != nil {
		return []string{""}
	}
	return o.sizes()
}

// checkRenderOutputs refuses, before anything is rendered, a file the render would write (dests:
// each size's video and poster) that cannot take it: "-" (render writes files, not standard
// output), a directory, a path in a directory that does not exist or cannot be written (its
// permissions, a read-only mount, an immutable directory), or the same file as an input or
// as another file written, which the render would destroy or overwrite. Each is a one-line usage
// error that names the path and says what to do.
func checkRenderOutputs(c renderConfig, dests []renderDest) error {
	inputs := []struct{ flag, path string }{{"-image", c.image}, {"-audio", c.audio}, {"-captions", c.captions}}
	infos := make([]os.FileInfo, len(dests)) // of the dests that exist
	for i, d := range dests {
		// A further size's file is in its flag's directory, checked with the first size's.
		if d.index == 0 {
			if d.path == "-" {
				return fmt.Errorf("render: %s -: render writes a file, not standard output; name the file", d.flag)
			}
			if fi, err := os.Stat(filepath.Dir(d.path)); err != nil || !fi.IsDir() {
				return fmt.Errorf("render: %s: the directory %s does not exist; create it or write elsewhere", d.what(), filepath.Dir(d.path))
			}
			if err := checkWritable(filepath.Dir(d.path)); err != nil {
				return fmt.Errorf("render: %s: the directory %s cannot be written (%v); make it writable or write elsewhere", d.what(), filepath.Dir(d.path), err)
			}
		}
		fi, err := os.Lstat(d.path)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("render: %s: %w", strings.TrimSuffix(d.what(), ","), err)
		}
		// A file is written beside its path and renamed over it, which would replace a link, a
		// device (/dev/null, as root) or a pipe with a regular file: those are refused.
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			return fmt.Errorf("render: %s is a symbolic link; write to the file it points to, or remove the link", d.what())
		case fi.IsDir() && d.index > 0:
			return fmt.Errorf("render: %s is a directory; move it away or choose another %s", d.what(), d.flag)
		case fi.IsDir():
			return fmt.Errorf("render: %s is a directory; name the file to write in it, like %s", d.what(), filepath.Join(d.path, "out."+map[string]string{"-o": "mp4", "-poster": "jpg"}[d.flag]))
		case !fi.Mode().IsRegular():
			return fmt.Errorf("render: %s is not a regular file (a device, a pipe or a socket); write to a file", d.what())
		}
		for _, in := range inputs {
			if in.path == "" {
				continue
			}
			if ifi, err := os.Stat(in.path); err == nil && os.SameFile(fi, ifi) {
				return fmt.Errorf("render: %s is the %s file; write to another file", d.what(), in.flag)
			}
		}
		infos[i] = fi
	}
	// Two files written to one path: the second would replace the first. A name for the path the
	// user gave (-o, -poster) is the subject, as it is the one to change.
	for i, d := range dests {
		for j, e := range dests[:i] {
			same := infos[i] != nil && infos[j] != nil && os.SameFile(infos[i], infos[j])
			if !same && !samePath(d.path, e.path) {
				continue
			}
			if d.index > 0 && e.index == 0 {
				d, e = e, d
			}
			return fmt.Errorf("render: %s is %s; write to another file", strings.TrimSuffix(d.what(), ","), e.role())
		}
	}
	return nil
}

// samePath says whether a and b name the same path once made absolute and clean (which does not
// follow links: a file that exists is compared by os.SameFile too).
func samePath(a, b string) bool {
	aa, aerr := filepath.Abs(a)
	ba, berr := filepath.Abs(b)
	if aerr != nil || berr != nil {
		return filepath.Clean(a) == filepath.Clean(b)
	}
	return aa == ba
}

// checkWritable says why a file cannot be made in dir, or nil: it makes one and removes it, which
// asks the file system itself (a read-only mount or an immutable directory stops root too, which
// permission bits do not). The cause has no path: the file tried is the render's own.
func checkWritable(dir string) error {
	f, err := os.CreateTemp(dir, ".vidgen-check-")
	if err != nil {
		return pathCause(err)
	}
	f.Close()
	return pathCause(os.Remove(f.Name()))
}
