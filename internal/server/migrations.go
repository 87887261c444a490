package server

import (
	"context"
	"net/http"
	"time"

	"github.com/tenantcrypt/tenantcrypt/api"
	"github.com/tenantcrypt/tenantcrypt/envelope"
	"github.com/tenantcrypt/tenantcrypt/internal/kms"
	"github.com/tenantcrypt/tenantcrypt/internal/migration"
)

// Migrations is what the migration endpoints need (a *migration.Service).
type Migrations interface {
	// Migrate starts moving the tenant's keys to the provider with this
	// fingerprint. Errors: keyprovider.ErrNotFound, *migration.NotStartedError,
	// migration.ErrRunning, *migration.PrepareError.
	Migrate(ctx context.Context, tenantID, fingerprint string) (migration.Migration, error)
	// Reset starts moving the tenant's keys back to the internal KMS;
	// started is false when the tenant is on it already.
	Reset(ctx context.Context, tenantID string) (m migration.Migration, started bool, err error)
	// Latest returns the running or last migration. Errors:
	// fault.ErrNotFound when there never was one.
	Latest(ctx context.Context, tenantID string) (migration.Migration, error)
	// ProviderSwitchTimes returns when the provider ref last became the
	// tenant's current one and last stopped being so (zero: never).
	ProviderSwitchTimes(ctx context.Context, tenantID string, ref kms.Ref) (promoted, demoted time.Time, err error)
}

func migrationJSON(m migration.Migration) api.Migration {
	out := api.Migration{
		ID: m.ID, State: m.State.String(), TenantID: m.TenantID,
		InitiatedAt: timeText(m.InitiatedAt), CompletedAt: timeText(m.CompletedAt),
		MigratingFrom: m.FromARN, MigratingTo: m.ToARN, Error: m.LastError,
	}
	switch {
	case m.State == migration.StateCompleted:
		out.Progress = 100
	case m.Total > 0:
		out.Progress = float64(int(10000*float64(m.Done)/float64(m.Total))) / 100
	}
	if fp, ok := m.To.Fingerprint(); ok {
		out.MigratingToFingerprint = fp
		out.MigratingToPrefix = envelope.CMKPrefix(fp)
	} else {
		out.MigratingToFingerprint = m.TenantID
		out.MigratingToPrefix = envelope.InternalPrefix(m.TenantID)
	}
	return out
}

func (s *Server) migrate(w http.ResponseWriter, r *http.Request) error {
	fp, err := s.fingerprint(r)
	if err != nil {
		return err
	}
	m, err := s.cfg.Migrations.Migrate(r.Context(), principalFrom(r).TenantID, fp)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, migrationJSON(m))
	return nil
}

func (s *Server) resetToDefault(w http.ResponseWriter, r *http.Request) error {
	m, started, err := s.cfg.Migrations.Reset(r.Context(), principalFrom(r).TenantID)
	if err != nil {
		return err
	}
	if !started {
		writeJSON(w, http.StatusOK, api.Message{Message: "the tenant already uses the default key provider"})
		return nil
	}
	// Fetch-based clients drop a 205's body and poll the details, which
	// already show this migration: it was stored before this answer.
	writeJSON(w, http.StatusResetContent, migrationJSON(m))
	return nil
}

func (s *Server) migrationDetails(w http.ResponseWriter, r *http.Request) error {
	m, err := s.cfg.Migrations.Latest(r.Context(), principalFrom(r).TenantID)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, migrationJSON(m))
	return nil
}
