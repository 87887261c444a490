// Package schema reads the versioned SQL migrations that the store backends
// embed, so that both apply them by the same rules: files named
// NNNN_description.sql, numbered 1, 2, 3… without gaps, applied in order, each
// exactly once, and never on a database that a newer binary has migrated
// further than this one can work with.
//
// A migration that only adds (an "expand": new tables, new columns with
// defaults) says so with a line
//
//	-- compatible-with: N
//
// meaning that a binary that knows schema versions up to N works on a
// database migrated to this one, so that replicas still running the older
// binary during a rolling upgrade can restart, and the upgrade can be rolled
// back. Without the line only binaries that know the migration may run on
// it. The stores record the line with each applied version.
package schema

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strconv"
	"strings"
)

// ErrTooNew reports a database whose schema version is newer than the newest
// migration this binary embeds: a newer tenantcrypt has migrated it, and this
// one must not write to a schema it does not understand.
var ErrTooNew = errors.New("database schema is newer than this tenantcrypt binary supports; upgrade tenantcrypt")

// Migration is one schema version.
type Migration struct {
	Version int
	Name    string // the file name, for error messages
	SQL     string
	// CompatibleWith is the oldest schema version a binary may know and
	// still run on a database migrated to Version: the file's
	// "-- compatible-with: N" line, or Version.
	CompatibleWith int
}

// compatibleLine starts the line that declares a migration an expand.
const compatibleLine = "-- compatible-with:"

// Load reads every *.sql file in dir of fsys, in version order. It fails on a
// malformed file name, a duplicate version or a gap, so that a mistake in the
// migrations breaks the build's tests instead of a production start.
func Load(fsys fs.FS, dir string) ([]Migration, error) {
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil {
		return nil, fmt.Errorf("schema: reading migrations: %w", err)
	}
	var ms []Migration
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || !strings.HasSuffix(name, ".sql") {
			continue
		}
		num, _, ok := strings.Cut(name, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v < 1 {
			return nil, fmt.Errorf("schema: migration %s: name must be NNNN_description.sql", name)
		}
		b, err := fs.ReadFile(fsys, path.Join(dir, name))
		if err != nil {
			return nil, fmt.Errorf("schema: reading migration %s: %w", name, err)
		}
		m := Migration{Version: v, Name: name, SQL: string(b), CompatibleWith: v}
		for line := range strings.Lines(m.SQL) {
			rest, ok := strings.CutPrefix(strings.TrimSpace(line), compatibleLine)
			if !ok {
				continue
			}
			n, err := strconv.Atoi(strings.TrimSpace(rest))
			if err != nil || n < 1 || n > v {
				return nil, fmt.Errorf("schema: migration %s: %q must name a version from 1 to %d", name, strings.TrimSpace(line), v)
			}
			m.CompatibleWith = n
		}
		ms = append(ms, m)
	}
	slices.SortFunc(ms, func(a, b Migration) int { return a.Version - b.Version })
	for i, m := range ms {
		if m.Version != i+1 {
			return nil, fmt.Errorf("schema: migration %s: want version %d (versions start at 1, without gaps or duplicates)", m.Name, i+1)
		}
	}
	if len(ms) == 0 {
		return nil, errors.New("schema: no migrations")
	}
	return ms, nil
}

// Pending returns the migrations to apply to a database at version current
// (0: empty), whose applied migrations require a binary that knows at least
// version required (the largest CompatibleWith they recorded). A database
// migrated beyond this binary's versions by expands only is used as it is.
// Errors: ErrTooNew, wrapped with the versions.
func Pending(ms []Migration, current, required int) ([]Migration, error) {
	latest := len(ms)
	if current < 0 {
		return nil, fmt.Errorf("schema: invalid database schema version %d", current)
	}
	if required > latest {
		return nil, fmt.Errorf("database schema version %d needs a binary that knows version %d, this one knows up to %d: %w", current, required, latest, ErrTooNew)
	}
	return ms[min(current, latest):], nil
}
