package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tenantcrypt/tenantcrypt/internal/keyring"
	"github.com/tenantcrypt/tenantcrypt/internal/store/postgres"
)

// replicaID names this process in the leases it takes (key checks,
// migrations): the host, the process id and a random suffix, so that two
// replicas never share a name and a restarted process is a new replica,
// whose predecessor's leases lapse.
func replicaID(log *slog.Logger) string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "unknown-host"
	}
	var b [4]byte
	_, _ = rand.Read(b[:])
	id := host + "/" + strconv.Itoa(os.Getpid()) + "/" + hex.EncodeToString(b[:])
	log.Info("this replica's name in the database's leases", "replica", id)
	return id
}

// followChanges makes the keyring hear at once of the tenants' changes that
// any replica commits, when the store can announce them (PostgreSQL's
// LISTEN/NOTIFY); with SQLite, a single process, there is nothing to hear.
// Pings every refresh/2 keep the keyring's trust in its copies of tenants
// alive; when the connection is down the keyring reads them again every
// refresh. It returns the function that stops following.
func followChanges(st any, ring *keyring.Service, reg *prometheus.Registry, refresh time.Duration, log *slog.Logger) (stop func()) {
	// Registered with SQLite too (at 0: one process has no other replicas
	// to hear of), so that every documented metric exists from the start.
	listening := prometheus.NewGauge(prometheus.GaugeOpts{Name: "tenantcrypt_tenant_changes_listening",
		Help: "1 while this replica hears of other replicas' tenant changes at once (LISTEN/NOTIFY), 0 while it polls for them (always 0 with SQLite)."})
	notified := prometheus.NewCounter(prometheus.CounterOpts{Name: "tenantcrypt_tenant_change_notifications_total",
		Help: "Tenant changes (state, provider, deletion) announced to this replica by the database."})
	reg.MustRegister(listening, notified)
	pg, ok := st.(*postgres.Store)
	if !ok {
		return func() {}
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		pg.Follow(ctx, ring, postgres.FollowConfig{
			PingInterval: refresh / 2,
			Listening: func(on bool) {
				if on {
					listening.Set(1)
				} else {
					listening.Set(0)
				}
			},
			Notified: notified.Inc,
			Logger:   log,
		})
	})
	return func() {
		cancel()
		wg.Wait()
	}
}
