package storetest

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/tenantcrypt/tenantcrypt/internal/kms/internalkms"
)

func testKEKs(t *testing.T, s Store) {
	ctx := t.Context()
	got, err := s.KEKs(ctx, "acme")
	if err != nil {
		t.Fatalf("KEKs(no KEKs): %v", err)
	}
	if got == nil || len(got) != 0 {
		t.Errorf("KEKs(no KEKs): got %#v, want an empty slice", got)
	}

	// No tenant row is needed: the internal KMS owns its KEKs.
	acme := []internalkms.KEK{
		newKEK("acme", 3, 1),
		newKEK("acme", 1, 1),
		newKEK("acme", math.MaxUint32, math.MaxUint32),
		newKEK("acme", 0, 0),
		newKEK("acme", 2, 7),
	}
	for _, k := range acme {
		insertKEK(t, s, k)
	}
	insertKEK(t, s, newKEK("other", 1, 1))

	want := slices.Clone(acme)
	slices.SortFunc(want, func(a, b internalkms.KEK) int { return cmp.Compare(a.Version, b.Version) })
	got, err = s.KEKs(ctx, "acme")
	if err != nil {
		t.Fatalf("KEKs: %v", err)
	}
	checkKEKs(t, "KEKs(acme)", got, want)

	t.Run("exists", func(t *testing.T) {
		dup := newKEK("acme", 2, 9)
		dup.Wrapped = []byte("impostor")
		checkErr(t, "InsertKEK(duplicate)", s.InsertKEK(ctx, dup), internalkms.ErrKEKExists)
		got, err := s.KEKs(ctx, "acme")
		if err != nil {
			t.Fatalf("KEKs: %v", err)
		}
		checkKEKs(t, "KEKs(acme) after refused insert", got, want)
	})
	t.Run("same-version-other-tenant", func(t *testing.T) {
		got, err := s.KEKs(ctx, "other")
		if err != nil {
			t.Fatalf("KEKs: %v", err)
		}
		checkKEKs(t, "KEKs(other)", got, []internalkms.KEK{newKEK("other", 1, 1)})
	})
}

func testRewrapKEK(t *testing.T, s Store) {
	ctx := t.Context()
	k := newKEK("acme", 4, 1)
	insertKEK(t, s, k)
	sibling := newKEK("acme", 5, 1)
	insertKEK(t, s, sibling)
	other := newKEK("other", 4, 1)
	insertKEK(t, s, other)

	steps := []struct {
		name             string
		tenant           string
		version          uint32
		oldRoot, newRoot uint32
		wrapped          []byte
		err              error
		want             internalkms.KEK // acme's version 4 afterwards
	}{
		{"rewrap", "acme", 4, 1, 2, []byte("under root 2"), nil, internalkms.KEK{RootVersion: 2, Wrapped: []byte("under root 2")}},
		{"stale-old-root", "acme", 4, 1, 3, []byte("lost"), internalkms.ErrKEKConflict, internalkms.KEK{RootVersion: 2, Wrapped: []byte("under root 2")}},
		{"rewrap-again", "acme", 4, 2, 3, []byte("under root 3"), nil, internalkms.KEK{RootVersion: 3, Wrapped: []byte("under root 3")}},
		{"unknown-version", "acme", 9, 3, 4, []byte("x"), internalkms.ErrKEKConflict, internalkms.KEK{RootVersion: 3, Wrapped: []byte("under root 3")}},
		{"unknown-tenant", "missing", 4, 3, 4, []byte("x"), internalkms.ErrKEKConflict, internalkms.KEK{RootVersion: 3, Wrapped: []byte("under root 3")}},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			err := s.RewrapKEK(ctx, st.tenant, st.version, st.oldRoot, st.newRoot, st.wrapped)
			checkErr(t, "RewrapKEK", err, st.err)
			got, err := s.KEKs(ctx, "acme")
			if err != nil {
				t.Fatalf("KEKs: %v", err)
			}
			want := k
			want.RootVersion, want.Wrapped = st.want.RootVersion, st.want.Wrapped
			checkKEKs(t, "KEKs(acme)", got, []internalkms.KEK{want, sibling})
			got, err = s.KEKs(ctx, "other")
			if err != nil {
				t.Fatalf("KEKs: %v", err)
			}
			checkKEKs(t, "KEKs(other)", got, []internalkms.KEK{other})
		})
	}
}

func testKEKsNotWrappedBy(t *testing.T, s Store) {
	ctx := t.Context()
	all := []internalkms.KEK{
		newKEK("a", 1, 1), newKEK("a", 2, 2), newKEK("a", 3, 3),
		newKEK("b", 1, 2), newKEK("b", 2, 3),
		newKEK("c", 1, 3),
		newKEK("d", 1, math.MaxUint32),
	}
	for _, k := range all {
		insertKEK(t, s, k)
	}
	key := func(k internalkms.KEK) string { return fmt.Sprintf("%s/%d", k.TenantID, k.Version) }
	notBy := func(root uint32) []string {
		var w []string
		for _, k := range all {
			if k.RootVersion != root {
				w = append(w, key(k))
			}
		}
		slices.Sort(w)
		return w
	}

	tests := []struct {
		name  string
		root  uint32
		limit int
		want  int // how many
	}{
		{"root-3", 3, 100, 4},
		{"root-1", 1, 100, 6},
		{"root-max", math.MaxUint32, 100, 6},
		{"root-unused", 4, 100, 7},
		{"limit", 3, 2, 2},
		{"limit-zero", 3, 0, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.KEKsNotWrappedBy(ctx, tc.root, tc.limit)
			if err != nil {
				t.Fatalf("KEKsNotWrappedBy(%d, %d): %v", tc.root, tc.limit, err)
			}
			if len(got) != tc.want {
				t.Fatalf("KEKsNotWrappedBy(%d, %d): got %d KEKs %+v, want %d", tc.root, tc.limit, len(got), got, tc.want)
			}
			eligible := notBy(tc.root)
			var keys []string
			for _, k := range got {
				if k.RootVersion == tc.root {
					t.Errorf("got KEK %s wrapped by root %d", key(k), tc.root)
				}
				if !slices.Contains(eligible, key(k)) {
					t.Errorf("got KEK %s, not among %q", key(k), eligible)
				}
				keys = append(keys, key(k))
				for _, w := range all {
					if key(w) == key(k) {
						checkKEKs(t, "KEK "+key(k), []internalkms.KEK{k}, []internalkms.KEK{w})
					}
				}
			}
			slices.Sort(keys)
			if len(slices.Compact(keys)) != len(got) {
				t.Errorf("got duplicates: %s", strings.Join(keys, " "))
			}
			if tc.limit >= len(eligible) && !slices.Equal(keys, eligible) {
				t.Errorf("got %q, want %q", keys, eligible)
			}
		})
	}

	t.Run("drains-by-rewrapping", func(t *testing.T) {
		// How the root key rotation uses it: fetch a batch, rewrap, repeat.
		for round := 0; ; round++ {
			if round > len(all) {
				t.Fatal("KEKsNotWrappedBy does not drain")
			}
			batch, err := s.KEKsNotWrappedBy(ctx, 9, 3)
			if err != nil {
				t.Fatalf("KEKsNotWrappedBy: %v", err)
			}
			if len(batch) == 0 {
				break
			}
			for _, k := range batch {
				if err := s.RewrapKEK(ctx, k.TenantID, k.Version, k.RootVersion, 9, []byte("root 9")); err != nil {
					t.Fatalf("RewrapKEK(%s): %v", key(k), err)
				}
			}
		}
		got, err := s.KEKsNotWrappedBy(ctx, 9, 100)
		if err != nil || len(got) != 0 {
			t.Errorf("KEKsNotWrappedBy after draining: got %+v, %v; want none", got, err)
		}
	})
}
