package schema

import (
	"errors"
	"testing"
	"testing/fstest"
)

func TestLoad(t *testing.T) {
	file := func(s string) *fstest.MapFile { return &fstest.MapFile{Data: []byte(s)} }
	tests := []struct {
		name    string
		files   fstest.MapFS
		want    []int
		wantErr bool
	}{
		{"ordered", fstest.MapFS{"m/0002_b.sql": file("B"), "m/0001_a.sql": file("A"), "m/README": file("")}, []int{1, 2}, false},
		{"gap", fstest.MapFS{"m/0001_a.sql": file("A"), "m/0003_c.sql": file("C")}, nil, true},
		{"duplicate", fstest.MapFS{"m/0001_a.sql": file("A"), "m/1_b.sql": file("B")}, nil, true},
		{"starts-at-two", fstest.MapFS{"m/0002_a.sql": file("A")}, nil, true},
		{"bad-name", fstest.MapFS{"m/init.sql": file("A")}, nil, true},
		{"zero", fstest.MapFS{"m/0000_a.sql": file("A")}, nil, true},
		{"empty", fstest.MapFS{"m/README": file("")}, nil, true},
		{"no-dir", fstest.MapFS{}, nil, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ms, err := Load(tc.files, "m")
			if gotErr := err != nil; gotErr != tc.wantErr {
				t.Fatalf("Load: got error %v, want error: %v", err, tc.wantErr)
			}
			var got []int
			for _, m := range ms {
				got = append(got, m.Version)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("Load: got versions %v, want %v", got, tc.want)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Errorf("Load: got versions %v, want %v", got, tc.want)
				}
			}
		})
	}
}

func TestPending(t *testing.T) {
	ms := []Migration{{Version: 1}, {Version: 2}, {Version: 3}}
	tests := []struct {
		name              string
		current, required int
		want              int // how many pending
		err               bool
	}{
		{"empty", 0, 0, 3, false},
		{"behind", 2, 2, 1, false},
		{"current", 3, 3, 0, false},
		{"newer, only expands since 3", 5, 3, 0, false},
		{"newer, expands since 2", 4, 2, 0, false},
		{"newer, needs 4", 4, 4, 0, true},
		{"newer, needs 5", 5, 5, 0, true},
		{"invalid", -1, 0, 0, true},
	}
	for _, tc := range tests {
		got, err := Pending(ms, tc.current, tc.required)
		if (err != nil) != tc.err {
			t.Errorf("%s: Pending(%d, %d): got error %v, want error: %v", tc.name, tc.current, tc.required, err, tc.err)
		}
		if len(got) != tc.want {
			t.Errorf("%s: Pending(%d, %d): got %d migrations, want %d", tc.name, tc.current, tc.required, len(got), tc.want)
		}
		if tc.err && tc.current >= 0 && !errors.Is(err, ErrTooNew) {
			t.Errorf("%s: Pending(%d, %d): got %v, want %v", tc.name, tc.current, tc.required, err, ErrTooNew)
		}
	}
}

func TestCompatibleWith(t *testing.T) {
	file := func(s string) *fstest.MapFile { return &fstest.MapFile{Data: []byte(s)} }
	ms, err := Load(fstest.MapFS{
		"m/0001_a.sql": file("CREATE TABLE a (x int);"),
		"m/0002_b.sql": file("-- Adds a column.\n-- compatible-with: 1\nALTER TABLE a ADD COLUMN y int;"),
		"m/0003_c.sql": file("ALTER TABLE a DROP COLUMN x;"),
	}, "m")
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []int{1, 1, 3} {
		if got := ms[i].CompatibleWith; got != want {
			t.Errorf("migration %d: CompatibleWith = %d, want %d", i+1, got, want)
		}
	}
	for _, bad := range []string{"-- compatible-with: 3", "-- compatible-with: 0", "-- compatible-with: two"} {
		_, err := Load(fstest.MapFS{"m/0001_a.sql": file("x"), "m/0002_b.sql": file(bad)}, "m")
		if err == nil {
			t.Errorf("Load of a migration 2 saying %q: got no error", bad)
		}
	}
}
