package main

// Where a keys command finds the data directory, and as whom it writes there: an operator logged in
// as root (a fresh Debian server) or through sudo types `vidgen keys create -name app` and must
// reach the database the service uses, leaving every file the service's user's.

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// unitPaths are where an installed vidgen.service is looked for, in systemd's order of precedence;
// VIDGEN_UNIT names another unit file (an instance under another name).
var unitPaths = []string{
	"/etc/systemd/system/vidgen.service",
	"/usr/local/lib/systemd/system/vidgen.service",
	"/usr/lib/systemd/system/vidgen.service",
	"/lib/systemd/system/vidgen.service",
}

// keysDataDir is the data directory a keys command works on, and where that came from (for the
// message that names it): -data when given, else VIDGEN_DATA, else the installed unit's VIDGEN_DATA
// (its Environment= lines, its drop-ins', then its EnvironmentFile=, which wins, as systemd reads
// them) or, lacking that, its StateDirectory under /var/lib. With none of them it fails with the
// flag to pass: guessing ./data would create a second, empty database no service reads.
func keysDataDir(flagValue string, env func(string) string) (dir, from string, err error) {
	if flagValue != "" {
		return flagValue, "-data", nil
	}
	if v := env("VIDGEN_DATA"); v != "" {
		return v, "VIDGEN_DATA", nil
	}
	paths, named := unitPaths, env("VIDGEN_UNIT")
	if named != "" {
		paths = []string{named}
	}
	for _, p := range paths {
		dir, _, err := unitEnv(p)
		if errors.Is(err, fs.ErrNotExist) && named == "" {
			continue
		}
		if err != nil {
			return "", "", fmt.Errorf("read the data directory from %s: %w; pass -data DIR", p, err)
		}
		if dir == "" {
			return "", "", fmt.Errorf("%s sets no VIDGEN_DATA and no StateDirectory: pass -data DIR, the directory vidgen serve uses", p)
		}
		return dir, "the unit " + p, nil
	}
	return "", "", fmt.Errorf("no data directory: pass -data DIR (the directory vidgen serve uses) or set VIDGEN_DATA; "+
		"no installed vidgen.service to read it from (looked for %s; VIDGEN_UNIT names another)", strings.Join(unitPaths, ", "))
}

// unitDatabase is the Postgres URL the installed unit gives the serve of the data directory dir
// (VIDGEN_DATABASE_URL in its environment), and the unit's path: "" when no unit is installed, when
// it serves another directory or keeps its store in the directory's SQLite file. A keys command
// that wrote to vidgen.db there would write to a file the service never reads: one migrate-store
// left behind, or an empty one. A unit this user may not read counts as none: -data names the
// directory then, as it did before units named databases, and the node's own traces (see
// openKeysDataStore) still tell a Postgres service's directory.
func unitDatabase(dir string, env func(string) string) (url, unit string) {
	paths := unitPaths
	if named := env("VIDGEN_UNIT"); named != "" {
		paths = []string{named}
	}
	for _, p := range paths {
		unitDir, vars, err := unitEnv(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil || unitDir == "" || filepath.Clean(unitDir) != filepath.Clean(dir) {
			return "", ""
		}
		return vars[envName("database")], p
	}
	return "", ""
}

// unitEnv reads the unit file at path and its drop-ins: the service's environment as systemd gives
// it, and the data directory, VIDGEN_DATA of that environment, else /var/lib/ and its
// StateDirectory; "" when it sets neither.
func unitEnv(path string) (dir string, vars map[string]string, err error) {
	files := []string{path}
	dropIns, _ := filepath.Glob(path + ".d/*.conf") // sorted, as systemd applies them
	files = append(files, dropIns...)
	vars = map[string]string{}
	var envFiles []string
	state := ""
	for i, f := range files {
		entries, err := unitServiceEntries(f)
		if err != nil && (i == 0 || !errors.Is(err, fs.ErrNotExist)) {
			return "", nil, err
		}
		for _, e := range entries {
			switch e.key {
			case "Environment":
				for _, a := range splitUnitWords(e.value) {
					if k, v, ok := strings.Cut(a, "="); ok {
						vars[k] = v
					}
				}
			case "EnvironmentFile":
				envFiles = append(envFiles, e.value)
			case "StateDirectory":
				if w := splitUnitWords(e.value); len(w) > 0 && state == "" {
					state = w[0]
				}
			}
		}
	}
	for _, f := range envFiles {
		optional := strings.HasPrefix(f, "-")
		err := readEnvFile(strings.TrimPrefix(f, "-"), vars)
		// An optional file this user may not read (root's, mode 0600, as deploy.md installs it) is
		// passed over as a missing one is: the unit's own Environment= still names the directory,
		// and a command run as the service's user must reach it.
		if err != nil && !(optional && (errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrPermission))) {
			return "", nil, err
		}
	}
	if v := vars["VIDGEN_DATA"]; v != "" {
		return v, vars, nil
	}
	if state != "" {
		return filepath.Join("/var/lib", state), vars, nil
	}
	return "", vars, nil
}

type unitEntry struct{ key, value string }

// unitServiceEntries are the Key=Value lines of the [Service] section of the unit file at path.
func unitServiceEntries(path string) ([]unitEntry, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []unitEntry
	section := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || line[0] == '#' || line[0] == ';':
		case line[0] == '[':
			section = line
		case section == "[Service]":
			if k, v, ok := strings.Cut(line, "="); ok {
				out = append(out, unitEntry{strings.TrimSpace(k), strings.TrimSpace(v)})
			}
		}
	}
	return out, sc.Err()
}

// splitUnitWords splits a unit setting's value into words as systemd does for Environment=: at
// spaces, except inside double or single quotes, which are removed.
func splitUnitWords(s string) []string {
	var words []string
	var b strings.Builder
	in, quote, started := false, byte(0), false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quote != 0 && c == quote:
			quote = 0
		case quote == 0 && (c == '"' || c == '\''):
			quote, started = c, true
		case quote == 0 && (c == ' ' || c == '\t'):
			if in || started {
				words = append(words, b.String())
				b.Reset()
			}
			in, started = false, false
			continue
		default:
			b.WriteByte(c)
		}
		in = true
	}
	if in || started {
		words = append(words, b.String())
	}
	return words
}

// readEnvFile adds the KEY=VALUE lines of an EnvironmentFile to vars (later lines win); comments
// and blank lines are skipped, and quotes around a value removed.
func readEnvFile(path string, vars map[string]string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' || line[0] == ';' {
			continue
		}
		if k, v, ok := strings.Cut(line, "="); ok {
			v = strings.TrimSpace(v)
			if len(v) >= 2 && (v[0] == '"' || v[0] == '\'') && v[len(v)-1] == v[0] {
				v = v[1 : len(v)-1]
			}
			vars[strings.TrimSpace(k)] = v
		}
	}
	return nil
}

// account is who a process runs as, or owns a file: ids and, when the system knows them, names.
type account struct {
	uid, gid    int
	name, group string
}

// accountOf names uid and gid from the system's user and group databases, or by number.
func accountOf(uid, gid int) account {
	a := account{uid: uid, gid: gid, name: strconv.Itoa(uid), group: strconv.Itoa(gid)}
	if u, err := user.LookupId(a.name); err == nil {
		a.name = u.Username
	}
	if g, err := user.LookupGroupId(a.group); err == nil {
		a.group = g.Name
	}
	return a
}

// ownerOf is the account that owns the file fi describes.
func ownerOf(fi os.FileInfo) account {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return account{uid: -1, gid: -1}
	}
	return accountOf(int(st.Uid), int(st.Gid))
}

// becomeOwner, run as root, makes this process the owner of the data directory (its user, group
// and that group alone) for the rest of a keys command, so that the database, its -wal and -shm
// files and the lock that SQLite and vidgen create, now or later in the command, are the service's
// and not root's. A chown afterwards could not promise that: SQLite makes -wal and -shm when it
// needs them and keeps them after. The switch holds for every thread of the process (Go 1.16+).
type becomeOwner func(owner account) error

// switchToOwner is the becomeOwner of the real command.
func switchToOwner(owner account) error {
	if err := syscall.Setgroups([]int{owner.gid}); err != nil {
		return fmt.Errorf("setgroups: %w", err)
	}
	if err := syscall.Setgid(owner.gid); err != nil {
		return fmt.Errorf("setgid %d: %w", owner.gid, err)
	}
	if err := syscall.Setuid(owner.uid); err != nil {
		return fmt.Errorf("setuid %d: %w", owner.uid, err)
	}
	return nil
}

// actAsOwnerOf prepares a keys command (cmd, as typed) to write in the data directory dir: as root
// on a directory another account owns, it becomes that account; as anyone else who cannot write
// there, it fails with the commands that can. It never creates dir: a mistyped path must not become
// a second, empty database, so a missing one is an error saying how the guide creates it.
func actAsOwnerOf(dir string, cmd []string, become becomeOwner) error {
	fi, err := os.Stat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("no data directory at %s: create it for the service's user first (install -d -o vidgen -g vidgen -m 0700 %s) "+
			"or start vidgen serve once; vidgen keys never creates one", dir, dir)
	}
	if err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("data directory: %s is not a directory", dir)
	}
	owner := ownerOf(fi)
	if os.Geteuid() == 0 {
		if owner.uid <= 0 {
			return nil // root's own directory: root writes as itself
		}
		if err := become(owner); err != nil {
			return fmt.Errorf("write as %s, who owns %s: %w; run it as that user: runuser -u %s -- %s", owner.name, dir, err, owner.name, shellJoin(cmd))
		}
		return nil
	}
	if syscall.Access(dir, 7) == nil { // read, write and search: R_OK|W_OK|X_OK
		return nil
	}
	me := accountOf(os.Getuid(), os.Getgid())
	if owner.uid == 0 {
		return fmt.Errorf("the data directory %s belongs to root, and %s cannot write there: run `sudo %s`", dir, me.name, shellJoin(cmd))
	}
	return fmt.Errorf("the data directory %s belongs to %s, and %s cannot write there: run `sudo %s` (as root, vidgen keys writes as %s) "+
		"or `sudo runuser -u %s -- %s`", dir, owner.name, me.name, shellJoin(cmd), owner.name, owner.name, shellJoin(cmd))
}

// shellJoin quotes args for a shell where they need it, for a command a message tells the user to run.
func shellJoin(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		if a == "" || strings.ContainsAny(a, " \t\n'\"\\$`!*?[]{}()<>|&;#~") {
			a = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		q[i] = a
	}
	return strings.Join(q, " ")
}
