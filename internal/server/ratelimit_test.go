package server

import (
	"testing"
	"time"
)

func TestRateLimiter(t *testing.T) {
	now := time.Unix(1e9, 0)
	l := newRateLimiter(60) // one per second, burst 60
	l.now = func() time.Time { return now }
	for i := range 60 {
		if ok, _ := l.allow("a"); !ok {
			t.Fatalf("request %d of the burst refused", i+1)
		}
	}
	ok, retry := l.allow("a")
	if ok || retry <= 0 || retry > time.Second {
		t.Fatalf("61st request: ok=%v retry=%v, want refused with a retry within 1s", ok, retry)
	}
	if ok, _ := l.allow("b"); !ok {
		t.Errorf("another tenant was limited by the first one's use")
	}
	now = now.Add(2 * time.Second)
	for i := range 2 {
		if ok, _ := l.allow("a"); !ok {
			t.Errorf("request %d after 2s refused", i+1)
		}
	}
	if ok, _ := l.allow("a"); ok {
		t.Errorf("a third request after 2s was allowed, want 2 tokens only")
	}
}
