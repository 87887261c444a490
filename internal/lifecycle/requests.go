package lifecycle

// Requests is a queue of tenants whose keys should be checked soon, out of
// turn: the keyring reports into it the keys that refused a call on use.
// It exists before both its producer (the keyring) and its consumer (the
// Monitor, which needs the keyring), so that neither waits for the other
// to be built: make it with NewRequests and give it to Config.Requests.
type Requests struct {
	c chan string
}

// requestsCapacity is how many requests wait at most; beyond it they are
// dropped, and the next sweep checks those tenants.
const requestsCapacity = 1024

// NewRequests returns an empty queue.
func NewRequests() *Requests { return &Requests{c: make(chan string, requestsCapacity)} }

// Notify asks for a check of the tenant's key soon, without waiting.
// Requests beyond the queue's capacity are dropped; the next sweep checks
// those tenants.
func (r *Requests) Notify(tenantID string) {
	select {
	case r.c <- tenantID:
	default:
	}
}
