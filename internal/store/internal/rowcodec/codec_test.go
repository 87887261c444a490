package rowcodec

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/tenantcrypt/tenantcrypt/internal/audit"
	"github.com/tenantcrypt/tenantcrypt/internal/keyprovider"
	"github.com/tenantcrypt/tenantcrypt/internal/keyring"
	"github.com/tenantcrypt/tenantcrypt/internal/kms"
	"github.com/tenantcrypt/tenantcrypt/internal/kms/internalkms"
	"github.com/tenantcrypt/tenantcrypt/internal/lifecycle"
	"github.com/tenantcrypt/tenantcrypt/internal/migration"
)

// plainTimes passes times through as they are, NULL as nil.
type plainTimes struct{}

func (plainTimes) Arg(t time.Time) any { return t }
func (plainTimes) NullArg(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t
}
func (plainTimes) Dest(t *time.Time) any     { return t }
func (plainTimes) NullDest(t *time.Time) any { return t }

var testCodec = Codec{Store: "test", Times: plainTimes{}}

// row is a row as a database would return it: the arguments it was written
// with, read back in order (nil as the destination's zero value).
type row []any

func (r row) Scan(dest ...any) error {
	if len(dest) != len(r) {
		return fmt.Errorf("scanning %d columns into %d destinations", len(r), len(dest))
	}
	for i, d := range dest {
		v := reflect.ValueOf(d).Elem()
		if r[i] == nil {
			v.SetZero()
			continue
		}
		a := reflect.ValueOf(r[i])
		if !a.Type().AssignableTo(v.Type()) {
			return fmt.Errorf("column %d: cannot scan %T into %T", i, r[i], d)
		}
		v.Set(a)
	}
	return nil
}

// columns counts a column list's columns.
func columns(list string) int { return strings.Count(list, ",") + 1 }

// TestRoundTrip: every Args method writes its column list in the order its
// Scan method reads, and a value reads back as it was written.
func TestRoundTrip(t *testing.T) {
	now := time.Date(2026, 12, 7, 23, 0, 0, 123456000, time.UTC)
	var id [16]byte
	id[0] = 7
	tests := []struct {
		name    string
		columns string
		write   func() ([]any, error)
		read    func(Scanner) (any, error)
		want    any
	}{
		{
			"tenant", TenantColumns,
			func() ([]any, error) {
				return testCodec.TenantArgs(keyring.Tenant{ID: "acme", Name: "Acme", Edition: keyring.EditionBusiness, HIPAA: true,
					State: keyring.StateActive, StateReason: "why", StateChangedAt: now, Provider: kms.InternalRef(),
					CreatedAt: now, UpdatedAt: now, Quota: keyring.Quota{Rate: 2.5, Burst: 1000}})
			},
			func(sc Scanner) (any, error) { return testCodec.ScanTenant(sc) },
			keyring.Tenant{ID: "acme", Name: "Acme", Edition: keyring.EditionBusiness, HIPAA: true,
				State: keyring.StateActive, StateReason: "why", StateChangedAt: now, Provider: kms.InternalRef(),
				CreatedAt: now, UpdatedAt: now, Quota: keyring.Quota{Rate: 2.5, Burst: 1000}},
		},
		{
			"tenant never changed state", TenantColumns,
			func() ([]any, error) {
				return testCodec.TenantArgs(keyring.Tenant{ID: "acme", Edition: keyring.EditionBusiness, State: keyring.StateActive, Provider: kms.MustCMKRef("x"), CreatedAt: now, UpdatedAt: now})
			},
			func(sc Scanner) (any, error) { return testCodec.ScanTenant(sc) },
			keyring.Tenant{ID: "acme", Edition: keyring.EditionBusiness, State: keyring.StateActive, Provider: kms.MustCMKRef("x"), CreatedAt: now, UpdatedAt: now},
		},
		{
			"cipherkey", CipherKeyColumns,
			func() ([]any, error) {
				return testCodec.CipherKeyArgs(keyring.CipherKey{TenantID: "acme", ID: id, Purpose: keyring.PurposeEncryption, Active: true,
					Provider: kms.InternalRef(), KeyVersion: "3", Wrapped: []byte("w"), CreatedAt: now, UsesReserved: 5})
			},
			func(sc Scanner) (any, error) { return testCodec.ScanCipherKey(sc) },
			keyring.CipherKey{TenantID: "acme", ID: id, Purpose: keyring.PurposeEncryption, Active: true,
				Provider: kms.InternalRef(), KeyVersion: "3", Wrapped: []byte("w"), CreatedAt: now, UsesReserved: 5},
		},
		{
			"kek", KEKColumns,
			func() ([]any, error) {
				return testCodec.KEKArgs(internalkms.KEK{TenantID: "acme", Version: 1<<32 - 1, RootVersion: 2, Wrapped: []byte("w"), CreatedAt: now}), nil
			},
			func(sc Scanner) (any, error) { return testCodec.ScanKEK(sc) },
			internalkms.KEK{TenantID: "acme", Version: 1<<32 - 1, RootVersion: 2, Wrapped: []byte("w"), CreatedAt: now},
		},
		{
			"migration", MigrationColumns,
			func() ([]any, error) {
				return testCodec.MigrationArgs(migration.Migration{ID: "m", TenantID: "acme", From: kms.InternalRef(), To: kms.MustCMKRef("x"), FromARN: "a", ToARN: "b",
					State: migration.StateCompleted, Total: 3, Done: 3, InitiatedAt: now, CompletedAt: now, UpdatedAt: now, LastError: "e"})
			},
			func(sc Scanner) (any, error) { return testCodec.ScanMigration(sc) },
			migration.Migration{ID: "m", TenantID: "acme", From: kms.InternalRef(), To: kms.MustCMKRef("x"), FromARN: "a", ToARN: "b",
				State: migration.StateCompleted, Total: 3, Done: 3, InitiatedAt: now, CompletedAt: now, UpdatedAt: now, LastError: "e"},
		},
		{
			"key check", KeyCheckColumns,
			func() ([]any, error) {
				return testCodec.KeyCheckArgs(lifecycle.KeyCheck{TenantID: "acme", Provider: kms.MustCMKRef("x"), Region: "eu-west-1", KeyARN: "arn",
					CheckedAt: now, Result: "ok", KeyState: "Enabled", Detail: "d"})
			},
			func(sc Scanner) (any, error) { return testCodec.ScanKeyCheck(sc) },
			lifecycle.KeyCheck{TenantID: "acme", Provider: kms.MustCMKRef("x"), Region: "eu-west-1", KeyARN: "arn",
				CheckedAt: now, Result: "ok", KeyState: "Enabled", Detail: "d"},
		},
		{
			"audit event", AuditEventColumns,
			func() ([]any, error) {
				return testCodec.AuditEventArgs(audit.Event{ChainID: "acme", Seq: 2, Time: now, TenantID: "acme", Principal: "p", TokenID: "t",
					SourceAddr: "s", RequestID: "r", Action: "a.b", Target: "x", Result: "ok", ErrorCode: "E",
					Details: map[string]string{"k": "v"}, PrevHash: []byte("p"), Hash: []byte("h")})
			},
			func(sc Scanner) (any, error) { return testCodec.ScanAuditEvent(sc) },
			audit.Event{ChainID: "acme", Seq: 2, Time: now, TenantID: "acme", Principal: "p", TokenID: "t",
				SourceAddr: "s", RequestID: "r", Action: "a.b", Target: "x", Result: "ok", ErrorCode: "E",
				Details: map[string]string{"k": "v"}, PrevHash: []byte("p"), Hash: []byte("h")},
		},
		{
			// Empty details and nil hashes read back as nil.
			"audit event without details", AuditEventColumns,
			func() ([]any, error) {
				return testCodec.AuditEventArgs(audit.Event{ChainID: "acme", Seq: 1, Time: now, Details: map[string]string{}})
			},
			func(sc Scanner) (any, error) { return testCodec.ScanAuditEvent(sc) },
			audit.Event{ChainID: "acme", Seq: 1, Time: now},
		},
		{
			"checkpoint", CheckpointColumns,
			func() ([]any, error) {
				return testCodec.CheckpointArgs(audit.Checkpoint{ChainID: "acme", Seq: 9, Hash: []byte("h"), Time: now, KeyID: "k", Signature: []byte("s")}), nil
			},
			func(sc Scanner) (any, error) { return testCodec.ScanCheckpoint(sc) },
			audit.Checkpoint{ChainID: "acme", Seq: 9, Hash: []byte("h"), Time: now, KeyID: "k", Signature: []byte("s")},
		},
		{
			"key provider", KeyProviderColumns,
			func() ([]any, error) { return testCodec.KeyProviderArgs(testProvider(now)) },
			func(sc Scanner) (any, error) { return testCodec.ScanKeyProvider(sc) },
			testProvider(now),
		},
		{
			// Never promoted, demoted or tested; no replicas, config or
			// secret: the empty ones read back as nil.
			"key provider without options", KeyProviderColumns,
			func() ([]any, error) {
				return testCodec.KeyProviderArgs(keyprovider.Provider{TenantID: "acme", Fingerprint: "f", Kind: "AWS-KMS", ARN: "key/x",
					Replicas: []keyprovider.Replica{}, Config: []byte{}, WrappedSecret: []byte{}, CreatedAt: now})
			},
			func(sc Scanner) (any, error) { return testCodec.ScanKeyProvider(sc) },
			keyprovider.Provider{TenantID: "acme", Fingerprint: "f", Kind: "AWS-KMS", ARN: "key/x", CreatedAt: now},
		},
		{
			"root record", RootRecordColumns,
			func() ([]any, error) {
				return testCodec.RootRecordArgs(internalkms.RootRecord{Source: internalkms.RootSourcePKCS11, Current: 1<<32 - 1, Token: "t", KeyLabel: "k", UpdatedAt: now}), nil
			},
			func(sc Scanner) (any, error) { return testCodec.ScanRootRecord(sc) },
			internalkms.RootRecord{Source: internalkms.RootSourcePKCS11, Current: 1<<32 - 1, Token: "t", KeyLabel: "k", UpdatedAt: now},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args, err := tt.write()
			if err != nil {
				t.Fatalf("write: %v", err)
			}
			if got, want := len(args), columns(tt.columns); got != want {
				t.Fatalf("got %d arguments for %d columns", got, want)
			}
			got, err := tt.read(row(args))
			if err != nil {
				t.Fatalf("read: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("read back\n got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

// testProvider is a key provider with every field set (but Key, which
// stores leave nil).
func testProvider(now time.Time) keyprovider.Provider {
	return keyprovider.Provider{TenantID: "acme", Fingerprint: "0123456789abcdef0123456789abcdef", Kind: "KMIP",
		ARN: "kmip://kms.example/key", Config: []byte(`{"a":1}`), WrappedSecret: []byte("s"), Name: "n", Description: "d",
		MultiRegion: true, Replicas: []keyprovider.Replica{{ARN: "arn:r", Region: "eu-west-2"}}, DRCompliant: true,
		Compliance: keyprovider.ComplianceError{Code: "c", Region: "r", Message: "m"},
		CreatedAt:  now, PromotedAt: now.Add(time.Second), DemotedAt: now.Add(2 * time.Second), TestedAt: now.Add(3 * time.Second)}
}

// TestKeyProviderUpdateArgs: the arguments of UpdateKeyProvider are, column
// by column of KeyProviderSetColumns and then tenant_id and fingerprint, the
// arguments KeyProviderArgs writes to those columns.
func TestKeyProviderUpdateArgs(t *testing.T) {
	now := time.Date(2026, 12, 7, 23, 0, 0, 123456000, time.UTC)
	for _, p := range []keyprovider.Provider{testProvider(now), {TenantID: "acme", Fingerprint: "f", CreatedAt: now}} {
		all, err := testCodec.KeyProviderArgs(p)
		if err != nil {
			t.Fatal(err)
		}
		byColumn := map[string]any{}
		for i, col := range strings.Split(KeyProviderColumns, ",") {
			byColumn[strings.TrimSpace(col)] = all[i]
		}
		update, err := testCodec.KeyProviderUpdateArgs(p)
		if err != nil {
			t.Fatal(err)
		}
		cols := append(strings.Split(KeyProviderSetColumns, ","), "tenant_id", "fingerprint")
		if len(update) != len(cols) {
			t.Fatalf("got %d update arguments for %d columns", len(update), len(cols))
		}
		for i, col := range cols {
			col = strings.TrimSpace(col)
			want, ok := byColumn[col]
			if !ok {
				t.Fatalf("update column %q is not a key provider column", col)
			}
			if !reflect.DeepEqual(update[i], want) {
				t.Errorf("update argument %d (%s) = %#v, want %#v", i, col, update[i], want)
			}
		}
	}
}

// TestBytesNeverNil: nil byte slices are written as empty ones (the columns
// are NOT NULL) and read back as nil.
func TestBytesNeverNil(t *testing.T) {
	args, err := testCodec.CipherKeyArgs(keyring.CipherKey{TenantID: "acme", Purpose: keyring.PurposeEncryption, Provider: kms.InternalRef()})
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range []int{6, 7} { // wrapped, context_digest
		if b, ok := args[i].([]byte); !ok || b == nil {
			t.Errorf("argument %d: got %#v, want an empty, non-nil []byte", i, args[i])
		}
	}
	k, err := testCodec.ScanCipherKey(row(args))
	if err != nil {
		t.Fatal(err)
	}
	if k.Wrapped != nil || k.ContextDigest != nil {
		t.Errorf("read back Wrapped %#v, ContextDigest %#v, want nil", k.Wrapped, k.ContextDigest)
	}
}

// TestRefusesInvalid: a value that would not read back is refused before it
// is written, and a stored value that does not parse fails the read; both
// errors name the store.
func TestRefusesInvalid(t *testing.T) {
	now := time.Now().UTC()
	writes := []struct {
		name string
		err  error
	}{
		{"edition", func() error {
			_, err := testCodec.TenantArgs(keyring.Tenant{ID: "acme", Edition: 99, State: keyring.StateActive})
			return err
		}()},
		{"tenant state", func() error {
			_, err := testCodec.TenantArgs(keyring.Tenant{ID: "acme", Edition: keyring.EditionBusiness, State: 99})
			return err
		}()},
		{"purpose", func() error {
			_, err := testCodec.CipherKeyArgs(keyring.CipherKey{TenantID: "acme", Purpose: 99})
			return err
		}()},
		{"uses reserved", func() error {
			_, err := testCodec.CipherKeyArgs(keyring.CipherKey{TenantID: "acme", Purpose: keyring.PurposeEncryption, Provider: kms.InternalRef(), UsesReserved: -1})
			return err
		}()},
		{"tenant without provider", func() error {
			_, err := testCodec.TenantArgs(keyring.Tenant{ID: "acme", Edition: keyring.EditionBusiness, State: keyring.StateActive})
			return err
		}()},
		{"cipherkey without provider", func() error {
			_, err := testCodec.CipherKeyArgs(keyring.CipherKey{TenantID: "acme", Purpose: keyring.PurposeEncryption})
			return err
		}()},
		{"migration without source", func() error {
			_, err := testCodec.MigrationArgs(migration.Migration{ID: "m", TenantID: "acme", To: kms.InternalRef(), State: migration.StateNew})
			return err
		}()},
		{"migration without target", func() error {
			_, err := testCodec.MigrationArgs(migration.Migration{ID: "m", TenantID: "acme", From: kms.InternalRef(), State: migration.StateNew})
			return err
		}()},
		{"key check without provider", func() error {
			_, err := testCodec.KeyCheckArgs(lifecycle.KeyCheck{TenantID: "acme", Region: "eu-west-1"})
			return err
		}()},
		{"migration state", func() error {
			_, err := testCodec.MigrationArgs(migration.Migration{ID: "m", TenantID: "acme", From: kms.InternalRef(), To: kms.MustCMKRef("x"), State: 99})
			return err
		}()},
	}
	for _, w := range writes {
		if w.err == nil {
			t.Errorf("writing an invalid %s: got no error", w.name)
		} else if !strings.HasPrefix(w.err.Error(), "test: ") {
			t.Errorf("writing an invalid %s: got %q, want it to start with the store's name", w.name, w.err)
		}
	}

	tenant, err := testCodec.TenantArgs(keyring.Tenant{ID: "acme", Edition: keyring.EditionBusiness, State: keyring.StateActive, Provider: kms.MustCMKRef("x"), CreatedAt: now, UpdatedAt: now})
	if err != nil {
		t.Fatal(err)
	}
	key, err := testCodec.CipherKeyArgs(keyring.CipherKey{TenantID: "acme", Purpose: keyring.PurposeEncryption, Provider: kms.InternalRef(), CreatedAt: now})
	if err != nil {
		t.Fatal(err)
	}
	m, err := testCodec.MigrationArgs(migration.Migration{ID: "m", TenantID: "acme", From: kms.InternalRef(), To: kms.MustCMKRef("x"), State: migration.StateCompleted})
	if err != nil {
		t.Fatal(err)
	}
	check, err := testCodec.KeyCheckArgs(lifecycle.KeyCheck{TenantID: "acme", Provider: kms.MustCMKRef("x"), CheckedAt: now})
	if err != nil {
		t.Fatal(err)
	}
	event, err := testCodec.AuditEventArgs(audit.Event{ChainID: "acme"})
	if err != nil {
		t.Fatal(err)
	}
	// Every key provider encodes (its only encoded field, the replicas, is a
	// list of strings), so there is no invalid one to refuse on the way in.
	provider, err := testCodec.KeyProviderArgs(testProvider(now))
	if err != nil {
		t.Fatal(err)
	}
	with := func(args []any, i int, v any) row {
		r := row(append([]any(nil), args...))
		r[i] = v
		return r
	}
	reads := []struct {
		name string
		read func() error
	}{
		{"edition", func() error { _, err := testCodec.ScanTenant(with(tenant, 2, "bogus")); return err }},
		{"tenant state", func() error { _, err := testCodec.ScanTenant(with(tenant, 4, "bogus")); return err }},
		{"key id", func() error { _, err := testCodec.ScanCipherKey(with(key, 1, []byte{1, 2})); return err }},
		{"purpose", func() error { _, err := testCodec.ScanCipherKey(with(key, 2, "bogus")); return err }},
		{"migration state", func() error { _, err := testCodec.ScanMigration(with(m, 6, "bogus")); return err }},
		{"tenant provider", func() error { _, err := testCodec.ScanTenant(with(tenant, 7, "Internal")); return err }},
		{"cipherkey provider", func() error { _, err := testCodec.ScanCipherKey(with(key, 4, "")); return err }},
		{"migration source", func() error { _, err := testCodec.ScanMigration(with(m, 2, "cmk:")); return err }},
		{"migration target", func() error {
			_, err := testCodec.ScanMigration(with(m, 3, "arn:aws:kms:eu-west-1:1:key/x"))
			return err
		}},
		{"key check provider", func() error { _, err := testCodec.ScanKeyCheck(with(check, 1, "internal ")); return err }},
		{"details", func() error { _, err := testCodec.ScanAuditEvent(with(event, 12, "[]")); return err }},
		{"replicas", func() error { _, err := testCodec.ScanKeyProvider(with(provider, 6, "bogus")); return err }},
		{"replicas not an array", func() error { _, err := testCodec.ScanKeyProvider(with(provider, 6, `{"arn":"x"}`)); return err }},
	}
	for _, r := range reads {
		err := r.read()
		if err == nil {
			t.Errorf("reading an invalid stored %s: got no error", r.name)
		} else if !strings.HasPrefix(err.Error(), "test: ") {
			t.Errorf("reading an invalid stored %s: got %q, want it to start with the store's name", r.name, err)
		}
	}
	// The stores wrap this one with what they were reading.
	if _, err := testCodec.ScanRootRecord(row{"file", int64(1 << 32), "", "", now}); err == nil {
		t.Error("reading a root key version out of range: got no error")
	}
}

func TestActionRange(t *testing.T) {
	tests := []struct {
		action, lo, hi string
		ok             bool
	}{
		{"keyprovider.", "keyprovider.", "keyprovider/", true},
		{"kms.Decrypt", "", "", false},
		{"", "", "", false},
		{".", ".", "/", true},
	}
	for _, tt := range tests {
		lo, hi, ok := ActionRange(tt.action)
		if lo != tt.lo || hi != tt.hi || ok != tt.ok {
			t.Errorf("ActionRange(%q) = %q, %q, %v; want %q, %q, %v", tt.action, lo, hi, ok, tt.lo, tt.hi, tt.ok)
		}
	}
}

func TestCounts(t *testing.T) {
	if m := CountMap[string](nil); m == nil || len(m) != 0 {
		t.Errorf("CountMap(nil) = %#v, want an empty map", m)
	}
	var states []Count[keyring.TenantState]
	for _, r := range []row{{"active", int64(2)}, {"locked", int64(1)}} {
		c, err := ScanTenantStateCount(r)
		if err != nil {
			t.Fatal(err)
		}
		states = append(states, c)
	}
	if got, want := CountMap(states), map[keyring.TenantState]int{keyring.StateActive: 2, keyring.StateLocked: 1}; !reflect.DeepEqual(got, want) {
		t.Errorf("tenant state counts: got %v, want %v", got, want)
	}
	if _, err := ScanTenantStateCount(row{"bogus", int64(1)}); err == nil {
		t.Error("a stored state that does not parse: got no error")
	}
	if c, err := ScanRootVersionCount(row{int64(1<<32 - 1), int64(3)}); err != nil || c != (Count[uint32]{Key: 1<<32 - 1, N: 3}) {
		t.Errorf("root version count: got %+v, %v", c, err)
	}
	for _, v := range []int64{-1, 1 << 32} {
		if _, err := ScanRootVersionCount(row{v, int64(1)}); err == nil {
			t.Errorf("root version %d: got no error", v)
		}
	}
	var refs []Count[kms.Ref]
	for _, r := range []row{{"internal", int64(2)}, {"cmk:x", int64(1)}} {
		c, err := ScanRefCount(r)
		if err != nil {
			t.Fatal(err)
		}
		refs = append(refs, c)
	}
	if got, want := CountMap(refs), map[kms.Ref]int{kms.InternalRef(): 2, kms.MustCMKRef("x"): 1}; !reflect.DeepEqual(got, want) {
		t.Errorf("provider counts: got %v, want %v", got, want)
	}
	if _, err := ScanRefCount(row{"Internal", int64(1)}); err == nil {
		t.Error("a stored provider that does not parse: got no error")
	}
}

// TestRefs: a Ref is stored as its text form, which the internal KMS's SQL
// literal spells too.
func TestRefs(t *testing.T) {
	if got := Ref(kms.MustCMKRef("x")); got != "cmk:x" {
		t.Errorf("Ref(cmk:x) = %q", got)
	}
	if got := Ref(kms.Ref{}); got != "" {
		t.Errorf("Ref of the zero Ref = %q, want the empty text, which matches no row", got)
	}
	if InternalRefLiteral != "'"+Ref(kms.InternalRef())+"'" {
		t.Errorf("InternalRefLiteral = %s", InternalRefLiteral)
	}
	if r, err := testCodec.ScanRef("tenant", row{"cmk:x"}); err != nil || r != kms.MustCMKRef("x") {
		t.Errorf("ScanRef(cmk:x) = %v, %v", r, err)
	}
	if _, err := testCodec.ScanRef("tenant", row{"cmk:X"}); err == nil || !strings.HasPrefix(err.Error(), "test: ") {
		t.Errorf("ScanRef(cmk:X) = %v, want an error that names the store", err)
	}
	if _, err := testCodec.ScanRef("tenant", row{"a", "b"}); err == nil || strings.HasPrefix(err.Error(), "test: ") {
		t.Errorf("ScanRef of a failed scan = %v, want the scan's error as it is", err)
	}
}
