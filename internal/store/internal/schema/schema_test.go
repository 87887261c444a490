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
		current int
		want    int // how many pending
		err     bool
	}{
		{0, 3, false},
		{2, 1, false},
		{3, 0, false},
		{4, 0, true},
		{-1, 0, true},
	}
	for _, tc := range tests {
		got, err := Pending(ms, tc.current)
		if (err != nil) != tc.err {
			t.Errorf("Pending(%d): got error %v, want error: %v", tc.current, err, tc.err)
		}
		if len(got) != tc.want {
			t.Errorf("Pending(%d): got %d migrations, want %d", tc.current, len(got), tc.want)
		}
		if tc.current > len(ms) && !errors.Is(err, ErrTooNew) {
			t.Errorf("Pending(%d): got %v, want %v", tc.current, err, ErrTooNew)
		}
	}
}
