package main

import (
	"encoding/json"
	"path/filepath"
	"slices"
	"strings"
)

// A job may make the same video in several sizes (the sizes field): one audio, encoded once, under
// one picture per size, published under one output token. The first size's files keep the keys and
// URLs of a job of one size; each further size's go under TOKEN.SIZE (outputFiles).

// maxSizes is the most sizes one job may ask for: every size there is.
const maxSizes = 5

// sizesAllowed is what the sizes field takes, for its message.
var sizesAllowed = "1 to 5 different sizes of " + strings.Join(sizeNames, ", ") +
	`, comma-separated (landscape,portrait) or as a JSON array (["landscape","portrait"])`

// parseSizes reads the sizes field into o: Size becomes its first size and Sizes all of them, nil
// when it names only one, so such a job is stored and rendered as one that gave size. Giving size
// too is a kindInvalid error, as is a list that is empty, too long, names a size twice or one that
// does not exist.
func parseSizes(fields map[string]string, o *Options) error {
	v, ok := fields["sizes"]
	if !ok {
		return nil
	}
	if _, both := fields["size"]; both {
		return errorf(kindInvalid, "size and sizes were both given: give size for one video, or sizes for one video in each of several sizes")
	}
	sizes, ok := parseSizeList(strings.TrimSpace(v))
	if !ok {
		return optionError("sizes", v, sizesAllowed)
	}
	o.Size, o.Sizes = sizes[0], sizes
	if len(sizes) == 1 {
		o.Sizes = nil
	}
	return nil
}

// parseSizeList accepts a comma-separated list or a JSON array of 1 to maxSizes size names, in
// any case and each once, and returns them as sizeNames spells them.
func parseSizeList(v string) ([]string, bool) {
	var names []string
	if strings.HasPrefix(v, "[") {
		if json.Unmarshal([]byte(v), &names) != nil {
			return nil, false
		}
	} else {
		names = strings.Split(v, ",")
	}
	if len(names) == 0 || len(names) > maxSizes {
		return nil, false
	}
	sizes := make([]string, 0, len(names))
	for _, n := range names {
		s, ok := oneOf(sizeNames)(strings.TrimSpace(n))
		if !ok || slices.Contains(sizes, s) {
			return nil, false
		}
		sizes = append(sizes, s)
	}
	return sizes, true
}

// sizes are the sizes of the job's videos, in order: Sizes, or Size alone.
func (o Options) sizes() []string {
	if len(o.Sizes) > 0 {
		return o.Sizes
	}
	return []string{o.Size}
}

// sized is o for the one video of size: a job of one size.
func (o Options) sized(size string) Options {
	o.Size, o.Sizes = size, nil
	return o
}

// outputNames are the names of a job's published files, one per size (sizes: Options.sizes(), or
// none for a job of one size), each with every ext of outputExts: the token for the first size,
// TOKEN.SIZE for each further one. The token stays the name's part before its first dot, which is
// what sweepFiles keeps the files of live jobs by.
func outputNames(token string, sizes []string) []string {
	names := []string{token}
	for _, s := range sizes[min(1, len(sizes)):] {
		names = append(names, token+"."+s)
	}
	return names
}

// sizedPath is where `vidgen render` writes the file of the i-th of sizes that it writes at path
// for the first: path itself, then path with the size before its extension (out.portrait.mp4).
func sizedPath(path string, sizes []string, i int) string {
	if i == 0 || path == "" {
		return path
	}
	ext := filepath.Ext(path)
	return strings.TrimSuffix(path, ext) + "." + sizes[i] + ext
}
