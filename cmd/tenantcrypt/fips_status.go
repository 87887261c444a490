package main

import (
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tenantcrypt/tenantcrypt/internal/fips"
)

// registerFIPSMetric exports the process's FIPS 140-3 mode as
// tenantcrypt_fips140_mode{mode="off"|"on"|"only"}: 1 for the mode the
// process runs in, 0 for the others (docs/fips.md).
func registerFIPSMetric(reg *prometheus.Registry) {
	g := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "tenantcrypt_fips140_mode",
		Help: "FIPS 140-3 mode of the Go Cryptographic Module: 1 for the mode in effect (off, on or only)."}, []string{"mode"})
	current := fips.Mode()
	for _, m := range fips.Modes() {
		v := 0.0
		if m == current {
			v = 1
		}
		g.WithLabelValues(m).Set(v)
	}
	reg.MustRegister(g)
}

// logFIPSMode says at start which FIPS 140-3 mode the process runs in and
// with which module.
func logFIPSMode(log *slog.Logger) {
	log.Info("FIPS 140-3 mode", "fips140", fips.Mode(), "module", fips.ModuleVersion())
}
