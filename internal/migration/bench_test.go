package migration_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awssdk "github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"

	"github.com/tenantcrypt/tenantcrypt/envelope"
	"github.com/tenantcrypt/tenantcrypt/internal/keyprovider"
	"github.com/tenantcrypt/tenantcrypt/internal/keyring"
	"github.com/tenantcrypt/tenantcrypt/internal/kms"
	"github.com/tenantcrypt/tenantcrypt/internal/kms/awskms"
	"github.com/tenantcrypt/tenantcrypt/internal/kms/awskms/awskind"
	"github.com/tenantcrypt/tenantcrypt/internal/kms/internalkms"
	"github.com/tenantcrypt/tenantcrypt/internal/migration"
	"github.com/tenantcrypt/tenantcrypt/internal/providers"
	"github.com/tenantcrypt/tenantcrypt/internal/store/sqlite"
	"github.com/tenantcrypt/tenantcrypt/internal/testkms"
)

// BenchmarkMigrationRewrap measures how fast a migration rewraps cipherkeys
// against local-kms, beside local-kms's own rate measured in the same run
// with the bare AWS SDK (the design's target: ≥ 1,000 cipherkeys/s, bound by
// the KMS rather than by tenantcrypt):
//
//	go test -run '^$' -bench Migration -benchtime 1x ./internal/migration
//	go test -run '^$' -bench Migration -benchtime 1x -v ./internal/migration    # and the ratios in words
//	go test -run '^$' -bench Migration/InternalToCMK -benchtime 1x -cpuprofile cpu.out ./internal/migration
//
// One op of InternalToCMK and CMKToCMK is a whole migration of
// benchCipherKeys data keys (seeding them is not timed); one op of the
// LocalKMS sub-benchmarks is benchCalls round trips, sequential and at the
// worker's concurrency. An internal→CMK rewrap asks local-kms for one
// Encrypt, a CMK→CMK rewrap for a Decrypt and an Encrypt: "%-of-local-kms"
// compares each migration with the matching raw rate. Everything runs in
// this process but local-kms: SQLite in a temporary directory, the internal
// KMS, the AWS provider (awskms, configured as `serve` configures it), the
// keyring and the migration worker with no rate cap. On a small machine
// local-kms and this process share the CPU: the AWS SDK's client side costs
// about as much CPU per call as local-kms itself.
func BenchmarkMigrationRewrap(b *testing.B) {
	env := newBenchEnv(b)
	// local-kms first, so that each migration's line can show its share.
	raw := map[int]float64{}
	b.Run("LocalKMSDecryptEncrypt", func(b *testing.B) {
		for _, c := range []int{1, benchConcurrency} {
			b.Run("concurrency="+strconv.Itoa(c), func(b *testing.B) {
				raw[c] = env.kmsCalls(b, c, true)
			})
		}
	})
	var encrypts float64
	b.Run("LocalKMSEncrypt/concurrency="+strconv.Itoa(benchConcurrency), func(b *testing.B) {
		encrypts = env.kmsCalls(b, benchConcurrency, false)
	})
	for _, m := range []struct {
		name, from, to string
		// what the worker asks of local-kms per cipherkey
		kmsRate float64
		kmsOps  string
	}{
		{"InternalToCMK", "", env.keyA, encrypts, "Encrypts"},
		{"CMKToCMK", env.keyA, env.keyB, raw[benchConcurrency], "Decrypt+Encrypt pairs"},
	} {
		b.Run(m.name, func(b *testing.B) {
			got := env.migrate(b, m.from, m.to)
			if m.kmsRate > 0 {
				b.ReportMetric(100*got/m.kmsRate, "%-of-local-kms")
				b.Logf("%s: %.0f cipherkeys/s = %.0f%% of local-kms's %.0f %s/s at concurrency %d (Decrypt+Encrypt pairs: %.0f/s sequential, %.0f/s at concurrency %d)",
					m.name, got, 100*got/m.kmsRate, m.kmsRate, m.kmsOps, benchConcurrency, raw[1], raw[benchConcurrency], benchConcurrency)
			}
		})
	}
}

const (
	// benchCipherKeys is how many data keys one migration rewraps.
	benchCipherKeys = 10000
	// benchCalls is how many round trips (Decrypt+Encrypt pairs, or
	// Encrypts) one op of the raw local-kms benchmarks makes.
	benchCalls = 4000
	// benchConcurrency is the worker's concurrency, set explicitly so that
	// the raw figure is measured with the same (migration.Config's default).
	benchConcurrency = 16
)

// benchEnv is everything a migration needs, wired as `tenantcrypt serve`
// wires it, with local-kms as AWS KMS.
type benchEnv struct {
	store        *sqlite.Store
	providers    keyring.Providers
	keyProviders *keyprovider.Service
	ring         *keyring.Service
	migrations   *migration.Service
	kms          *testkms.Server
	sdk          *awssdk.Client

	keyA, keyB string // ARNs of two keys at local-kms
	tenants    int
	keys       int // data keys per seeded tenant; 0 means benchCipherKeys
}

func newBenchEnv(b testing.TB) *benchEnv {
	b.Helper()
	ctx := context.Background()
	dir := b.TempDir()
	st, err := sqlite.Open(ctx, filepath.Join(dir, "tenantcrypt.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	roots, err := internalkms.LoadOrCreateRootKeyFile(filepath.Join(dir, "root-keys.json"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(roots.Destroy)
	local := testkms.Start(b, testkms.Options{})
	aws, err := awskms.New(ctx, awskms.Config{
		Region:      local.Region,
		Endpoints:   map[string]string{local.Region: local.URL},
		Credentials: credentials.NewStaticCredentialsProvider("AKIDTENANTCRYPTBENCH", "tenantcrypt-bench-secret", ""),
	})
	if err != nil {
		b.Fatal(err)
	}
	awsKind, err := awskind.New(awskind.Config{Client: aws, Region: local.Region})
	if err != nil {
		b.Fatal(err)
	}
	keyProviders, err := keyprovider.New(keyprovider.Config{Store: st, Tenants: st, Kinds: []keyprovider.Kind{awsKind}})
	if err != nil {
		b.Fatal(err)
	}
	providers := providers.New(internalkms.New(roots, st), providers.WithCMKs(keyProviders))
	ring, err := keyring.New(keyring.Config{Store: st, Providers: providers})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(ring.Close)
	migrations, err := migration.New(migration.Config{
		Store: st, KeyProviders: keyProviders, Keyring: ring, Providers: providers,
		Rate: 0, Concurrency: benchConcurrency,
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(migrations.Close)
	return &benchEnv{
		store: st, keyProviders: keyProviders, providers: providers, ring: ring, migrations: migrations, kms: local, sdk: local.Client(b),
		keyA: local.ARN(testkms.MultiRegionKeyID), keyB: local.ARN(testkms.SecondMultiRegionKeyID),
	}
}

// migrate runs b.N migrations of benchCipherKeys data keys from the
// provider with ARN from ("" for the internal KMS) to the one with ARN to,
// and returns the cipherkeys rewrapped per second.
func (e *benchEnv) migrate(b *testing.B, from, to string) float64 {
	ctx := context.Background()
	var keys int64
	var elapsed time.Duration
	for range b.N {
		b.StopTimer()
		tenant := e.seed(b, from)
		b.StartTimer()
		start := time.Now()
		m, err := e.migrations.Migrate(ctx, tenant, keyprovider.Fingerprint(to))
		if err != nil {
			b.Fatal(err)
		}
		m = e.wait(b, tenant)
		elapsed += time.Since(start)
		keys += m.Done
		if m.Done < benchCipherKeys {
			b.Fatalf("migration rewrapped %d cipherkeys, want at least %d", m.Done, benchCipherKeys)
		}
	}
	rate := float64(keys) / elapsed.Seconds()
	b.ReportMetric(rate, "cipherkeys/s")
	return rate
}

// seed makes a tenant with benchCipherKeys data keys wrapped by the
// provider with ARN on ("" for the internal KMS), and registers keyA and
// keyB for it.
func (e *benchEnv) seed(b testing.TB, on string) string {
	b.Helper()
	ctx := context.Background()
	e.tenants++
	tenant := "bench-" + strconv.Itoa(e.tenants)
	if _, err := e.ring.CreateTenant(ctx, keyring.TenantSpec{ID: tenant, Name: tenant, Edition: keyring.EditionEnterprise}); err != nil {
		b.Fatal(err)
	}
	now := time.Now().UTC().Truncate(time.Microsecond)
	for _, arn := range []string{e.keyA, e.keyB} {
		// Registered as keyprovider.Service would after its checks, which
		// need multi-region metadata that local-kms lacks.
		if err := e.store.InsertKeyProvider(ctx, keyprovider.Provider{
			TenantID: tenant, Fingerprint: keyprovider.Fingerprint(arn), ARN: arn, Name: arn,
			MultiRegion: true, DRCompliant: true, CreatedAt: now, TestedAt: now,
		}); err != nil {
			b.Fatal(err)
		}
	}
	// Seeded on the internal KMS, whose keys are cheap to make; moved to
	// the starting CMK by a migration that is not timed.
	n := e.keys
	if n == 0 {
		n = benchCipherKeys
	}
	for i := range n {
		dk, err := e.ring.IssuePlaintextDataKey(ctx, tenant, envelope.Context{"object": strconv.Itoa(i)})
		if err != nil {
			b.Fatal(err)
		}
		dk.Plaintext.Destroy()
	}
	if on != "" {
		if _, err := e.migrations.Migrate(ctx, tenant, keyprovider.Fingerprint(on)); err != nil {
			b.Fatal(err)
		}
		e.wait(b, tenant)
	}
	return tenant
}

// wait polls the tenant's migration until it completes.
func (e *benchEnv) wait(b testing.TB, tenant string) migration.Migration {
	b.Helper()
	deadline := time.Now().Add(5 * time.Minute)
	for {
		m, err := e.migrations.Latest(context.Background(), tenant)
		if err != nil {
			b.Fatal(err)
		}
		if m.State == migration.StateCompleted {
			if m.LastError != "" {
				b.Fatalf("migration completed with error %q", m.LastError)
			}
			return m
		}
		if time.Now().After(deadline) {
			b.Fatalf("migration not completed after 5 minutes: %d of %d done, last error %q", m.Done, m.Total, m.LastError)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// kmsCalls makes b.N × benchCalls round trips at local-kms with the AWS
// SDK, concurrency at a time, and returns their rate per second. With pairs,
// each is what a CMK→CMK rewrap asks of KMS: decrypt a data key wrapped by
// keyA, then encrypt it under keyB, with the same encryption context;
// without, only the Encrypt, which is all an internal→CMK rewrap asks.
func (e *benchEnv) kmsCalls(b *testing.B, concurrency int, pairs bool) float64 {
	ctx := context.Background()
	ec := map[string]string{
		kms.BindingTenant:  "bench",
		kms.BindingKeyID:   "AAAAAAAAAAAAAAAAAAAAAAAAAA",
		kms.BindingContext: fmt.Sprintf("%x", [32]byte{}),
	}
	plaintext := make([]byte, kms.DataKeySize)
	_, _ = rand.Read(plaintext)
	enc, err := e.sdk.Encrypt(ctx, &awssdk.EncryptInput{KeyId: aws.String(e.keyA), Plaintext: plaintext, EncryptionContext: ec})
	if err != nil {
		b.Fatal(err)
	}
	call := func() error {
		pt := plaintext
		if pairs {
			dec, err := e.sdk.Decrypt(ctx, &awssdk.DecryptInput{
				CiphertextBlob: enc.CiphertextBlob, KeyId: aws.String(e.keyA), EncryptionContext: ec,
				EncryptionAlgorithm: types.EncryptionAlgorithmSpecSymmetricDefault,
			})
			if err != nil {
				return err
			}
			pt = dec.Plaintext
		}
		_, err := e.sdk.Encrypt(ctx, &awssdk.EncryptInput{
			KeyId: aws.String(e.keyB), Plaintext: pt, EncryptionContext: ec,
			EncryptionAlgorithm: types.EncryptionAlgorithmSpecSymmetricDefault,
		})
		return err
	}
	var elapsed time.Duration
	for range b.N {
		next := make(chan struct{}, benchCalls)
		for range benchCalls {
			next <- struct{}{}
		}
		close(next)
		var (
			wg       sync.WaitGroup
			mu       sync.Mutex
			firstErr error
		)
		start := time.Now()
		for range concurrency {
			wg.Go(func() {
				for range next {
					if err := call(); err != nil {
						mu.Lock()
						firstErr = err
						mu.Unlock()
						return
					}
				}
			})
		}
		wg.Wait()
		elapsed += time.Since(start)
		if firstErr != nil {
			b.Fatal(firstErr)
		}
	}
	unit := "encrypts/s"
	if pairs {
		unit = "pairs/s"
	}
	rate := float64(b.N*benchCalls) / elapsed.Seconds()
	b.ReportMetric(rate, unit)
	return rate
}
