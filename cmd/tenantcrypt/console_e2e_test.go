package main

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/tenantcrypt/tenantcrypt/internal/auth"
	"github.com/tenantcrypt/tenantcrypt/internal/console"
	"github.com/tenantcrypt/tenantcrypt/internal/keyprovider"
	"github.com/tenantcrypt/tenantcrypt/internal/testkms"
	"github.com/tenantcrypt/tenantcrypt/internal/tlsconfig"
)

// chromiumPath is Debian's Chromium, which .ci/run installs;
// TENANTCRYPT_CHROMIUM names another Chromium or Chrome binary.
func chromiumPath() string {
	if p := os.Getenv("TENANTCRYPT_CHROMIUM"); p != "" {
		return p
	}
	return "/usr/bin/chromium"
}

// TestConsoleInBrowser drives the admin console in headless Chromium, as a
// tenant admin would, against a real server whose AWS KMS is local-kms in
// two regions: sign in, register a key (after a validation error), test
// it, migrate to it and watch the progress bar, see the tenant's state
// change when the key's owner disables it, reset to the default provider,
// rename and delete the key, and verify the audit log. It saves screenshots
// of the main screens in $TENANTCRYPT_SCREENSHOTS (default: a temporary
// directory).
func TestConsoleInBrowser(t *testing.T) {
	t.Parallel()
	if _, err := os.Stat(chromiumPath()); err != nil {
		t.Skipf("%s is not installed: the console's browser test needs Debian's chromium (apt-get install chromium; .ci/run installs it), or TENANTCRYPT_CHROMIUM naming a Chromium binary", chromiumPath())
	}
	started := time.Now()
	shots := os.Getenv("TENANTCRYPT_SCREENSHOTS")
	if shots == "" {
		shots = t.TempDir()
	} else if err := os.MkdirAll(shots, 0o755); err != nil {
		t.Fatal(err)
	}
	// A revocation bound of 2 s shows the disabled key quickly; 600 data
	// keys at 100 per second make a migration of six seconds, which the
	// progress bar (polled every 500 ms) follows even when a loaded
	// machine starves the browser for a while.
	e := startCMKEnv(t, "--revocation-bound", "2s", "--migration-rate", "100", "--console-dev-tokens")
	admin := e.tenant(t, "acme", "enterprise")
	svc := e.token(auth.RoleService, "acme")
	items := make([]map[string]any, 600)
	for i := range items {
		items[i] = map[string]any{}
	}
	if r := e.do("POST", "/api/v1/encryption/datakeys", svc, map[string]any{"items": items}); r.status != 200 {
		t.Fatalf("datakeys: %d %s", r.status, r.body)
	}
	r := e.do("POST", "/api/v1/encryption/encrypt", svc, map[string]any{"plaintext": b64("tenant data")})
	if r.status != 200 {
		t.Fatalf("encrypt: %d %s", r.status, r.body)
	}
	ciphertext, _ := r.json(t)["ciphertext"].(string)
	if r := e.do("GET", "/console/", "", nil); r.status != 200 || r.header.Get("Content-Security-Policy") != console.ContentSecurityPolicy {
		t.Fatalf("GET /console/: %d, CSP %q", r.status, r.header.Get("Content-Security-Policy"))
	}
	t.Logf("setup: %s", time.Since(started).Round(time.Millisecond))

	b := newConsoleBrowser(t, e.testServer, shots)
	mrk := e.primary.ARN(testkms.MultiRegionKeyID)
	fp := keyprovider.Fingerprint(mrk)
	card := fmt.Sprintf(`article[data-fp="%s"]`, fp)
	defaultCard := `article[data-fp="acme"]`

	step := func(name string) func() {
		at := time.Now()
		return func() { t.Logf("%-40s %s", name, time.Since(at).Round(time.Millisecond)) }
	}

	// 1. Sign in: a malformed token and a service token are refused with
	// the reason next to the field; a development token signs in; after
	// signing out, a pasted tenant-admin token does.
	done := step("sign in")
	b.open("/console")
	b.waitText("h1", "Sign in")
	b.checkLabels("sign-in page")
	b.shot("01-sign-in")
	b.setValue("#token-input", "not-a-token")
	b.click(`form[aria-labelledby=token-title] button[type=submit]`)
	b.waitText("#token-error", "not a JWT")
	b.expectFocus("#token-input")
	b.setValue("#token-input", svc)
	b.click(`form[aria-labelledby=token-title] button[type=submit]`)
	b.waitText("#token-error", "tenant-admin role")
	b.sendKeys("#dev-tenant", "acme\r") // the keyboard submits the form
	b.waitText(`[data-testid=who-tenant]`, "acme")
	b.waitAttr(`[data-testid=tenant-state]`, "data-state", "active")
	b.click(`[data-action=sign-out]`)
	b.waitText("h1", "Sign in")
	if got := b.eval(`sessionStorage.getItem('tenantcrypt.console.token')`); got != nil {
		t.Errorf("a token is left in sessionStorage after signing out: %v", got)
	}
	b.setValue("#token-input", admin)
	b.click(`#token-remember`)
	b.click(`form[aria-labelledby=token-title] button[type=submit]`)
	b.waitAttr(`[data-testid=tenant-state]`, "data-state", "active")
	b.waitText(`[data-testid=current-provider]`, "Internal KMS")
	b.checkLabels("status page")
	b.shot("02-status-internal-kms")
	done()

	// 2. Register: a malformed ARN shows the server's message next to the
	// field, which gets the focus; then the real key registers.
	done = step("register (bad ARN, then the key)")
	b.click(`nav a[data-route=keys]`)
	b.waitVisible(defaultCard)
	b.expectFocus("main h1")
	b.waitVisible(`[data-testid=no-keys]`)
	b.sendKeys("#kp-arn", "arn:aws:kms:eu-west-1:111122223333:alias/production")
	b.sendKeys("#kp-name", "Acme production key\r")
	b.waitText("#kp-arn-error", "Encryption-35")
	b.expectFocus("#kp-arn")
	if got := b.eval(`document.getElementById('kp-arn').getAttribute('aria-invalid') + ' ' + document.getElementById('kp-arn').getAttribute('aria-describedby')`); got != "true kp-arn-hint kp-arn-error" {
		t.Errorf("the ARN field after the error: aria-invalid and aria-describedby = %v", got)
	}
	b.shot("03-register-validation-error")
	b.setValue("#kp-arn", mrk)
	b.setValue("#kp-description", "Multi-region key with its replica in eu-west-3")
	b.click(`#register-form button[type=submit]`)
	b.waitVisible(card)
	b.waitAttr(card+` [data-testid=compliance]`, "data-compliant", "true")
	b.expectFocus(card + " h3")
	if got := b.eval(`document.getElementById('kp-arn').value === '' && !document.getElementById('kp-arn').hasAttribute('aria-invalid')`); got != true {
		t.Errorf("the form after registering: %v, want empty and valid", got)
	}
	done()

	// 3. Test: the compliance result is shown in the card and focused.
	done = step("test")
	b.click(card + ` button[data-action=test]`)
	b.waitText(card+` [data-testid=compliance]`, "Test: DR compliant")
	b.expectFocus(card + ` [data-testid=compliance]`)
	b.waitText(card, "eu-west-3")
	b.checkLabels("key providers page")
	b.shot("04-key-providers")
	done()

	// 4. Migrate, with the keyboard in the confirmation (focus starts on
	// Cancel), and follow the progress bar to 100 %.
	done = step("migrate")
	b.click(card + ` button[data-action=migrate]`)
	b.waitVisible(`dialog[open]`)
	total := 0
	for _, n := range e.status(t, admin).CipherKeys {
		total += n
	}
	b.waitText(`dialog[open]`, fmt.Sprintf("%d existing data keys", total)) // the 600 and the encryption key
	b.waitText(`dialog[open]`, mrk)
	b.expectFocus(`dialog[open] button[value=cancel]`)
	b.shot("05-migrate-confirmation")
	b.keys("\t")
	b.expectFocus(`dialog[open] [data-testid=confirm]`)
	b.keys("\r")
	values := b.followProgress("06-migration-in-progress", "")
	t.Logf("progress values seen: %v", values)
	if !hasIntermediate(values) {
		t.Errorf("the progress bar showed no value between 0 and 100: %v", values)
	}
	b.waitVisible(card + ` [data-testid=current-badge]`)
	b.expectFocus(`[data-testid=migration] h2`) // where the confirmation sent it, through every state
	b.shot("07-migration-completed")
	done()

	// 5. The status page on the customer managed key, then the key's owner
	// disables it: the page shows the tenant's new state by itself.
	done = step("status on the key, key disabled")
	b.click(`nav a[data-route=status]`)
	b.waitText(`[data-testid=current-provider]`, "Acme production key")
	b.waitText(`[data-testid=key-checks]`, "eu-west-3")
	b.waitText(`[data-testid=dr-compliant]`, "Compliant")
	b.waitText(`[data-testid=revocation-bound]`, "2 s")
	b.shot("08-status-customer-managed-key")
	if _, err := e.customer(t).DisableKey(context.Background(), &kms.DisableKeyInput{KeyId: aws.String(testkms.MultiRegionKeyID)}); err != nil {
		t.Fatal(err)
	}
	disabled := time.Now()
	b.waitAttr(`[data-testid=tenant-state]`, "data-state", "key-unavailable")
	t.Logf("the console showed key-unavailable %s after DisableKey", time.Since(disabled).Round(time.Millisecond))
	b.waitText(`[data-testid=state-reason]`, "disabled")
	b.waitText(`[data-testid=key-state]`, "Disabled")
	b.shot("09-status-key-unavailable")
	if r := e.decrypt(svc, ciphertext); r.status != 403 {
		t.Errorf("decrypt while the console shows key-unavailable: %d %s", r.status, r.body)
	}
	if _, err := e.customer(t).EnableKey(context.Background(), &kms.EnableKeyInput{KeyId: aws.String(testkms.MultiRegionKeyID)}); err != nil {
		t.Fatal(err)
	}
	b.waitAttr(`[data-testid=tenant-state]`, "data-state", "active")
	done()

	// 6. Reset to the default provider, then rename and delete the key.
	done = step("reset, rename, delete")
	b.click(`nav a[data-route=keys]`)
	b.waitVisible(defaultCard + ` button[data-action=reset]`)
	b.click(defaultCard + ` button[data-action=reset]`)
	b.waitText(`dialog[open]`, "internal KMS")
	previous := b.eval(`document.querySelector('[data-testid=migration]').dataset.id`).(string)
	b.click(`dialog[open] [data-testid=confirm]`)
	b.followProgress("", previous)
	b.waitVisible(defaultCard + ` [data-testid=current-badge]`)
	b.click(card + ` button[data-action=rename]`)
	b.waitVisible(`dialog[open] input[name=name]`)
	b.expectFocus(`dialog[open] input[name=name]`)
	b.setValue(`dialog[open] input[name=name]`, "Old production key")
	b.click(`dialog[open] button[type=submit]`)
	b.waitText(card+" h3", "Old production key")
	b.expectFocus(card + " h3")
	b.click(card + ` button[data-action=delete]`)
	b.waitText(`dialog[open]`, "stays in AWS KMS")
	b.click(`dialog[open] [data-testid=confirm]`)
	b.waitGone(card)
	b.expectFocus("#providers-title")
	b.waitVisible(`[data-testid=no-keys]`)
	done()

	// 7. The audit log: every action above, with filters, and a verified
	// chain.
	done = step("audit log")
	b.click(`nav a[data-route=audit]`)
	b.waitVisible(`[data-testid=audit-events] table`)
	b.setValue("#f-action", "keyprovider.")
	b.click(`form[aria-label="Filter the events"] button[type=submit]`)
	b.waitText(`[data-testid=audit-summary]`, "match")
	for _, action := range []string{"keyprovider.register", "keyprovider.test", "keyprovider.migrate",
		"keyprovider.reset-to-default-provider", "keyprovider.update", "keyprovider.delete"} {
		b.waitVisible(fmt.Sprintf(`[data-testid=audit-events] tr[data-action="%s"]`, action))
	}
	if got := b.eval(`[...document.querySelectorAll('[data-testid=audit-events] tbody tr')].filter(r => !r.dataset.action.startsWith('keyprovider.')).length`); got != float64(0) {
		t.Errorf("the action filter let %v other events through", got)
	}
	if got := b.eval(`[...document.querySelectorAll('[data-testid=audit-events] tr[data-action="keyprovider.register"]')].some(r => r.textContent.includes('failure') && r.textContent.includes('Encryption-35'))`); got != true {
		t.Errorf("the refused registration is not in the audit log as a failure with Encryption-35")
	}
	b.selectValue("#f-result", "failure")
	b.click(`form[aria-label="Filter the events"] button[type=submit]`)
	b.waitJS("only failures listed", `document.querySelectorAll('[data-testid=audit-events] tbody tr').length > 0 &&
		[...document.querySelectorAll('[data-testid=audit-events] tbody tr')].every(r => r.textContent.includes('failure'))`)
	b.setValue("#f-from", "2001-01-01T00:00:00")
	b.setValue("#f-to", "2001-01-02T00:00:00")
	b.click(`form[aria-label="Filter the events"] button[type=submit]`)
	b.waitVisible(`[data-testid=audit-empty]`)
	b.click(`form[aria-label="Filter the events"] button[type=button]`) // Clear
	b.waitVisible(`[data-testid=audit-events] table`)
	b.click(`button[data-action=verify]`)
	b.waitAttr(`[data-testid=verify-verdict]`, "data-valid", "true")
	b.expectFocus(`[data-testid=verify-verdict]`)
	b.checkLabels("audit page")
	b.shotViewport("10-audit-log-verified")
	done()

	// 8. Phone width: no page-wide horizontal scrolling on any view.
	done = step("phone width")
	b.do("phone viewport", chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile, chromedp.EmulateTouch))
	for route, title := range map[string]string{"status": "Encryption status", "keys": "Key providers", "audit": "Audit log"} {
		b.click(fmt.Sprintf(`nav a[data-route=%s]`, route))
		b.waitText("main h1", title)
		b.waitJS(route+" loaded", `document.querySelector('main [aria-busy=true]') === null && document.querySelector('main .loading') === null`)
		if got := b.eval(`document.documentElement.scrollWidth - document.documentElement.clientWidth`); got != float64(0) {
			t.Errorf("%s at phone width scrolls sideways by %v px", route, got)
		}
		b.shot("11-phone-" + route)
	}
	done()

	b.checkNoProblems()
	if strings.Contains(e.logs.String(), "eyJ") {
		t.Errorf("a token reached the server log")
	}
	t.Logf("screenshots in %s; whole test %s", shots, time.Since(started).Round(time.Millisecond))
}

func hasIntermediate(values []float64) bool {
	for _, v := range values {
		if v > 0 && v < 100 {
			return true
		}
	}
	return false
}

// consoleBrowser is a headless Chromium tab on the console, with the
// assertions the test needs. Every failure stops the test with what was
// being waited for.
type consoleBrowser struct {
	t     *testing.T
	ctx   context.Context
	base  string
	shots string

	mu       sync.Mutex
	problems []string // uncaught exceptions and console errors
	failed   []string // failed loads (e.g. 4xx answers) the browser logged
}

func newConsoleBrowser(t *testing.T, ts *testServer, shots string) *consoleBrowser {
	t.Helper()
	// Trust exactly the test server's certificate (by its public key), not
	// every certificate.
	tlsCfg, err := tlsconfig.ClientConfig(filepath.Join(ts.dataDir, "tls", "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(ts.url)
	conn, err := tls.Dial("tcp", u.Host, tlsCfg)
	if err != nil {
		t.Fatal(err)
	}
	leaf := conn.ConnectionState().PeerCertificates[0]
	conn.Close()
	spki := sha256.Sum256(leaf.RawSubjectPublicKeyInfo)

	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath()),
		chromedp.NoSandbox, // tests run as root on CI
		chromedp.DisableGPU,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
		chromedp.Flag("ignore-certificate-errors-spki-list", base64.StdEncoding.EncodeToString(spki[:])),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("no-proxy-server", true),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelTab := chromedp.NewContext(actx)
	ctx, cancelTime := context.WithTimeout(ctx, 3*time.Minute)
	t.Cleanup(func() {
		cancelTime()
		cancelTab()
		cancelAlloc() // stops Chromium and waits for it
	})
	b := &consoleBrowser{t: t, ctx: ctx, base: ts.url, shots: shots}

	exceptions := chromedp.Events(ctx, runtime.ExceptionThrown)
	entries := chromedp.Events(ctx, log.EntryAdded)
	go func() {
		for ev, err := range exceptions {
			if err != nil {
				return
			}
			b.problem("uncaught exception: " + ev.ExceptionDetails.Text + " " + exceptionDescription(ev))
		}
	}()
	go func() {
		for ev, err := range entries {
			if err != nil {
				return
			}
			// The API's 4xx answers the test provokes are logged by the
			// browser as failed loads ("network"); anything else is a bug.
			if ev.Entry.Level == log.EntryLevelError && ev.Entry.Source != log.EntrySourceNetwork {
				b.problem(fmt.Sprintf("console %s: %s", ev.Entry.Source, ev.Entry.Text))
			} else if ev.Entry.Level == log.EntryLevelError {
				b.mu.Lock()
				b.failed = append(b.failed, ev.Entry.URL+": "+ev.Entry.Text)
				b.mu.Unlock()
			}
		}
	}()
	// Record Content-Security-Policy violations from inside the page.
	if _, err := chromedp.Call(ctx, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{
		Source: `window.__cspViolations = [];
document.addEventListener('securitypolicyviolation', (e) => window.__cspViolations.push(e.violatedDirective + ' ' + e.blockedURI));`,
	}); err != nil {
		t.Fatalf("starting Chromium: %v", err)
	}
	return b
}

func exceptionDescription(ev runtime.EventExceptionThrown) string {
	if ev.ExceptionDetails.Exception != nil {
		return ev.ExceptionDetails.Exception.Description
	}
	return ""
}

func (b *consoleBrowser) problem(s string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.problems = append(b.problems, s)
}

func (b *consoleBrowser) checkNoProblems() {
	b.t.Helper()
	if got := b.eval(`window.__cspViolations.join('; ')`); got != "" {
		b.t.Errorf("Content-Security-Policy violations: %v", got)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, p := range b.problems {
		b.t.Errorf("browser: %s", p)
	}
}

func (b *consoleBrowser) do(what string, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	if err := chromedp.Do(b.ctx, actions...); err != nil {
		b.fail(what, err)
	}
}

// fail stops the test, with a screenshot of the page as it was.
func (b *consoleBrowser) fail(what string, err error) {
	b.t.Helper()
	if png, serr := chromedp.Run(b.ctx, chromedp.FullScreenshot(100)); serr == nil {
		name := filepath.Join(b.shots, "failure.png")
		if os.WriteFile(name, png, 0o644) == nil {
			b.t.Logf("screenshot of the failure: %s", name)
		}
	}
	if text, terr := chromedp.Run(b.ctx, chromedp.Evaluate[string](`document.querySelector('main') ? document.querySelector('main').innerText.slice(0, 3000) : ''`)); terr == nil {
		b.t.Logf("the page's text:\n%s", text)
	}
	b.t.Fatalf("%s: %v", what, err)
}

func (b *consoleBrowser) open(path string) {
	b.t.Helper()
	b.do("open "+path, chromedp.Navigate(b.base+path))
}

func (b *consoleBrowser) eval(js string) any {
	b.t.Helper()
	v, err := chromedp.Run(b.ctx, chromedp.Evaluate[any](js))
	if err != nil {
		b.fail("evaluate "+js, err)
	}
	return v
}

// waitJS waits until the expression is true.
func (b *consoleBrowser) waitJS(what, js string) {
	b.t.Helper()
	if _, err := chromedp.Run(b.ctx, chromedp.Poll[chromedp.Void](js,
		chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(30*time.Second))); err != nil {
		b.fail("waiting for "+what, err)
	}
}

func (b *consoleBrowser) waitVisible(sel string) {
	b.t.Helper()
	b.waitJS(sel+" visible", fmt.Sprintf(`(() => { const el = document.querySelector(%q); return !!el && el.getClientRects().length > 0; })()`, sel))
}

func (b *consoleBrowser) waitGone(sel string) {
	b.t.Helper()
	b.waitJS(sel+" gone", fmt.Sprintf(`document.querySelector(%q) === null`, sel))
}

func (b *consoleBrowser) waitText(sel, text string) {
	b.t.Helper()
	b.waitJS(fmt.Sprintf("%s to say %q", sel, text),
		fmt.Sprintf(`(() => { const el = document.querySelector(%q); return !!el && !el.hidden && el.textContent.includes(%q); })()`, sel, text))
}

func (b *consoleBrowser) waitAttr(sel, attr, value string) {
	b.t.Helper()
	b.waitJS(fmt.Sprintf("%s[%s=%s]", sel, attr, value),
		fmt.Sprintf(`(() => { const el = document.querySelector(%q); return !!el && el.getAttribute(%q) === %q; })()`, sel, attr, value))
}

// expectFocus checks that the focused element is the one sel names.
func (b *consoleBrowser) expectFocus(sel string) {
	b.t.Helper()
	b.waitJS("focus on "+sel, fmt.Sprintf(`document.activeElement === document.querySelector(%q)`, sel))
}

// click clicks the element with the mouse, as a person would: once it is
// enabled and has stayed where it is for one polling interval (a click at
// a button's place while the page still moves would land elsewhere).
func (b *consoleBrowser) click(sel string) {
	b.t.Helper()
	b.waitJS(sel+" clickable and still", fmt.Sprintf(`(() => {
		const el = document.querySelector(%[1]q);
		if (!el || el.disabled || el.getClientRects().length === 0) return false;
		const r = el.getBoundingClientRect();
		const at = [%[1]q, r.x, r.y, r.width, r.height].join(' ');
		const still = window.__clickAt === at;
		window.__clickAt = at;
		return still; })()`, sel))
	b.do("click "+sel, chromedp.Click(chromedp.CSS(sel), chromedp.NodeVisible))
}

// sendKeys types into the element ("\r" is Enter).
func (b *consoleBrowser) sendKeys(sel, keys string) {
	b.t.Helper()
	b.waitVisible(sel)
	b.do("type into "+sel, chromedp.SendKeys(chromedp.CSS(sel), keys))
}

// keys types into whatever has the focus.
func (b *consoleBrowser) keys(keys string) {
	b.t.Helper()
	b.do("press "+fmt.Sprintf("%q", keys), chromedp.KeyEvent(keys))
}

// setValue replaces a field's value (long tokens are pasted, not typed).
func (b *consoleBrowser) setValue(sel, value string) {
	b.t.Helper()
	b.waitVisible(sel)
	js := fmt.Sprintf(`(() => { const el = document.querySelector(%q); el.focus(); el.value = %q; el.dispatchEvent(new Event('input', {bubbles: true})); return true; })()`, sel, value)
	b.eval(js)
}

func (b *consoleBrowser) selectValue(sel, value string) { b.setValue(sel, value) }

// checkLabels checks that every form control has an accessible name and
// every button a text.
func (b *consoleBrowser) checkLabels(where string) {
	b.t.Helper()
	got := b.eval(`[...document.querySelectorAll('input, select, textarea, button')]
		.filter(el => el.getClientRects().length > 0)
		.filter(el => el.tagName === 'BUTTON'
			? !el.textContent.trim() && !el.getAttribute('aria-label')
			: !(el.labels && el.labels.length) && !el.getAttribute('aria-label') && !el.getAttribute('aria-labelledby'))
		.map(el => el.outerHTML.slice(0, 120)).join('\n')`)
	if got != "" {
		b.t.Errorf("%s: controls without an accessible name:\n%v", where, got)
	}
}

// followProgress samples the progress bar of the migration (other than the
// one with id previous) until it completes, saving a screenshot the first
// time it is part way (when name is set), and returns the values seen.
func (b *consoleBrowser) followProgress(name, previous string) []float64 {
	b.t.Helper()
	var values []float64
	shot := name == ""
	deadline := time.Now().Add(60 * time.Second)
	for {
		raw := b.eval(fmt.Sprintf(`(() => { const m = document.querySelector('[data-testid=migration]');
			const p = document.getElementById('migration-progress');
			return m && p && m.dataset.id !== %q ? JSON.stringify({v: p.value, s: p.dataset.state, text: document.querySelector('[data-testid=migration-percent]').textContent}) : ''; })()`, previous))
		var m struct {
			V    float64 `json:"v"`
			S    string  `json:"s"`
			Text string  `json:"text"`
		}
		if s, _ := raw.(string); s != "" && json.Unmarshal([]byte(s), &m) == nil {
			if len(values) == 0 || values[len(values)-1] != m.V {
				values = append(values, m.V)
			}
			if !shot && m.V > 0 && m.V < 100 {
				b.shot(name)
				shot = true
			}
			if m.S == "Completed" {
				if m.V != 100 || m.Text != "100 %" {
					b.t.Errorf("completed migration's progress bar: %v, %q", m.V, m.Text)
				}
				return values
			}
		}
		if time.Now().After(deadline) {
			b.fail("the migration to complete", fmt.Errorf("progress %v", values))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// shot saves a screenshot of the whole page.
func (b *consoleBrowser) shot(name string) {
	b.t.Helper()
	b.save(name, chromedp.FullScreenshot(100))
}

// shotViewport saves a screenshot of what the window shows.
func (b *consoleBrowser) shotViewport(name string) {
	b.t.Helper()
	b.do("scroll to the top", chromedp.Evaluate[chromedp.Void](`window.scrollTo(0, 0)`))
	b.save(name, chromedp.CaptureScreenshot())
}

func (b *consoleBrowser) save(name string, capture chromedp.Action[[]byte]) {
	b.t.Helper()
	png, err := chromedp.Run(b.ctx, capture)
	if err != nil {
		b.fail("screenshot "+name, err)
	}
	if err := os.WriteFile(filepath.Join(b.shots, name+".png"), png, 0o644); err != nil {
		b.t.Fatal(err)
	}
}

// TestConsoleIdleTenantNoFailedPolls opens the console of a tenant that
// never migrated and leaves it open for more than one poll interval of the
// migration panel: the panel must not ask for migration details that do
// not exist (a 404 in the browser's console and in the server's log for
// every open console), but still poll, to notice a migration started
// elsewhere.
func TestConsoleIdleTenantNoFailedPolls(t *testing.T) {
	if _, err := os.Stat(chromiumPath()); err != nil {
		t.Skipf("%s is not installed: the console's browser test needs Debian's chromium (apt-get install chromium; .ci/run installs it), or TENANTCRYPT_CHROMIUM naming a Chromium binary", chromiumPath())
	}
	t.Parallel()
	ts := startServer(t, nil)
	if r := ts.do("POST", "/api/v1/tenants", ts.token(auth.RolePlatformAdmin, ""), map[string]any{"id": "idle", "name": "Idle", "edition": "enterprise"}); r.status != 201 {
		t.Fatalf("create tenant: %d %s", r.status, r.body)
	}
	b := newConsoleBrowser(t, ts, t.TempDir())
	b.open("/console")
	b.waitText("h1", "Sign in")
	b.setValue("#token-input", ts.token(auth.RoleTenantAdmin, "idle"))
	b.click(`form[aria-labelledby=token-title] button[type=submit]`)
	b.waitAttr(`[data-testid=tenant-state]`, "data-state", "active")

	// The migration panel polls the provider list every 5 s while no
	// migration is known: a list request 5 s after the first one means a
	// full poll interval has passed with the console open.
	listTimes := func() []time.Time {
		var times []time.Time
		for _, line := range strings.Split(ts.logs.String(), "\n") {
			var e struct {
				Time  time.Time
				Route string
			}
			if json.Unmarshal([]byte(line), &e) == nil && e.Route == "GET /api/v1/encryption/keyproviders/actions/list" {
				times = append(times, e.Time)
			}
		}
		return times
	}
	// waitPollInterval waits until a list request comes 5 s after the
	// first one since the page (status, then keys) opened.
	waitPollInterval := func(page string, skip int) {
		deadline := time.Now().Add(45 * time.Second)
		for {
			times := listTimes()[skip:]
			if len(times) > 0 && times[len(times)-1].Sub(times[0]) >= 5*time.Second {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("the %s page did not poll the provider list again within 45 s (list requests at %v)", page, times)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	waitPollInterval("status", 0)
	// The key providers page has a migration panel too.
	seen := len(listTimes())
	b.click(`nav a[data-route=keys]`)
	b.waitVisible(`article[data-fp="idle"]`)
	waitPollInterval("keys", seen)
	const details = "/migration/actions/details"
	for _, line := range strings.Split(ts.logs.String(), "\n") {
		if strings.Contains(line, details) {
			t.Errorf("the console asked for the details of a migration that never ran: %s", line)
		}
	}
	b.mu.Lock()
	for _, f := range b.failed {
		t.Errorf("the browser logged a failed request: %s", f)
	}
	b.mu.Unlock()
	b.checkNoProblems()
}
