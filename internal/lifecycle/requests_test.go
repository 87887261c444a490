package lifecycle

import "testing"

// TestRequests: Notify never blocks (requests beyond the capacity are
// dropped), and a Monitor given a queue serves that queue.
func TestRequests(t *testing.T) {
	r := NewRequests()
	for i := 0; i < requestsCapacity+10; i++ {
		r.Notify("acme")
	}
	if got, want := len(r.c), requestsCapacity; got != want {
		t.Errorf("queued %d requests, want %d", got, want)
	}

	shared := NewRequests()
	m, err := New(Config{Store: struct{ Store }{}, Tenants: struct{ Tenants }{}, KeyProviders: struct{ KeyProviders }{},
		Requests: shared})
	if err != nil {
		t.Fatal(err)
	}
	m.Notify("acme")
	if got := <-shared.c; got != "acme" {
		t.Errorf("the shared queue holds %q, want acme", got)
	}
}
