package main

import (
	"testing"
	"time"
)

// TestIdleTenantKeyChecks: a customer-managed-key tenant whose keys no
// replica holds is checked at the idle interval (here an hour: no
// DescribeKey at all), and when it turns active again between two such
// checks, a revocation right after its first use still refuses it within
// the revocation bound, although its data key is cached for far longer
// than the bound: the first use puts the tenant back on the fast schedule.
func TestIdleTenantKeyChecks(t *testing.T) {
	t.Parallel()
	for name, db := range backends(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			const bound, interval = 2 * time.Second, 500 * time.Millisecond
			dbArgs := db(t)
			common := append([]string{"--revocation-bound", bound.String(), "--key-check-interval", interval.String(), "--idle-key-check-interval", "1h"}, dbArgs...)
			e := startCMKEnv(t, append(common, "--cache-ttl", "1s", "--cache-idle", "1s")...)
			_, svc, ct := e.cmkTenant(t, "acme")

			// The cached keys expire after a second, and their mark half a
			// second later: then the checks stop.
			quiet := func(window time.Duration) bool {
				before := e.pProxy.Calls("DescribeKey")
				for deadline := time.Now().Add(window); time.Now().Before(deadline); {
					time.Sleep(50 * time.Millisecond)
					if e.pProxy.Calls("DescribeKey") != before {
						return false
					}
				}
				return true
			}
			until(t, "no key check for three intervals", 60*time.Second, func() bool { return quiet(3 * interval) })
			if !quiet(5 * interval) {
				t.Fatalf("an idle tenant's key was checked again within five check intervals")
			}

			// A restart with keys cached for a minute: the tenant is still
			// idle, and its first use must bring back the fast checks.
			e.restart(t, append(common, "--cache-ttl", "1m", "--cache-idle", "1m")...)
			latency := measureRevocation(t, e, svc, ct, bound)
			t.Logf("%s: revocation of a tenant that was idle took %s (bound %s, keys cached for 1m)", name, latency.Round(time.Millisecond), bound)
			if latency > bound {
				t.Errorf("revocation of a tenant that turned active took %s, more than the bound %s", latency, bound)
			}
		})
	}
}
