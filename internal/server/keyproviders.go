package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tenantcrypt/tenantcrypt/api"
	"github.com/tenantcrypt/tenantcrypt/internal/fault"
	"github.com/tenantcrypt/tenantcrypt/internal/keyprovider"
	"github.com/tenantcrypt/tenantcrypt/internal/kms"
	"github.com/tenantcrypt/tenantcrypt/internal/migration"
)

// KeyProviders is what the key-provider API needs (a *keyprovider.Service).
type KeyProviders interface {
	List(ctx context.Context, tenantID string) ([]keyprovider.Provider, error)
	Get(ctx context.Context, tenantID, fingerprint string) (keyprovider.Provider, error)
	Register(ctx context.Context, tenantID string, r keyprovider.Registration) (keyprovider.Provider, error)
	Test(ctx context.Context, tenantID, fingerprint string) (keyprovider.Provider, error)
	Update(ctx context.Context, tenantID, fingerprint string, name, description *string) error
	Delete(ctx context.Context, tenantID, fingerprint string) error
	// Patch replaces kind-specific settings (JSON Patch paths below the
	// kind's member, "/kmip/serverCA").
	Patch(ctx context.Context, tenantID, fingerprint string, ops []keyprovider.PatchOp) (keyprovider.Provider, error)
	// KindNames lists the kinds a registration may name ("AWS-KMS").
	KindNames() []string
	// SettingsOf names the member that shows p's kind-specific settings.
	SettingsOf(p keyprovider.Provider) (field string, config json.RawMessage)
}

// maxFingerprint bounds the {fp} path segment; fingerprints are 32 hex
// characters, the default provider's is the tenant id (at most 64).
const maxFingerprint = 64

func timeText(t time.Time) string {
	if t.IsZero() {
		return api.NeverTime
	}
	return t.UTC().Format(time.RFC3339Nano)
}

func (s *Server) keyProviderJSON(p keyprovider.Provider, current bool) api.KeyProvider {
	out := api.KeyProvider{
		ARN: p.ARN, Name: p.Name, Description: p.Description, KeyProvider: p.Kind, Current: current,
		TenantID: p.TenantID, CreatedAt: timeText(p.CreatedAt), ARNFingerPrint: p.Fingerprint,
		MultiRegion: p.MultiRegion, ReplicaKeys: []api.ReplicaKey{}, DRCompliant: p.DRCompliant,
		ComplianceError:      api.ComplianceError(p.Compliance),
		PromotedToCurrentAt:  timeText(p.PromotedAt),
		DemotedFromCurrentAt: timeText(p.DemotedAt),
	}
	for _, r := range p.Replicas {
		out.ReplicaKeys = append(out.ReplicaKeys, api.ReplicaKey(r))
	}
	if field, config := s.cfg.KeyProviders.SettingsOf(p); field != "" {
		out.Settings = map[string]json.RawMessage{field: config}
	}
	return out
}

// currentRef is the provider the API calls current: the tenant's provider,
// except while a migration runs, when it is still the one migrated from
// (the target becomes current when the migration completes).
func (s *Server) currentRef(ctx context.Context, tenantID string) (kms.Ref, error) {
	t, err := s.cfg.Keyring.Tenant(ctx, tenantID)
	if err != nil {
		return kms.Ref{}, err
	}
	m, err := s.cfg.Migrations.Latest(ctx, tenantID)
	switch {
	case err == nil && m.State != migration.StateCompleted && m.To == t.Provider:
		return m.From, nil
	case err == nil, errors.Is(err, fault.ErrNotFound):
		return t.Provider, nil
	}
	return kms.Ref{}, err
}

// defaultProviderJSON is the entry of the internal KMS that every tenant has.
func defaultProviderJSON(tenantID string, current kms.Ref, promoted, demoted time.Time) api.KeyProvider {
	return api.KeyProvider{
		ARN: api.DefaultProviderARN, Name: "Qlik managed key", Description: "tenantcrypt's internal KMS",
		KeyProvider: "Qlik", Current: current.IsInternal(), TenantID: tenantID,
		CreatedAt: "Qlik managed", ARNFingerPrint: tenantID, ReplicaKeys: []api.ReplicaKey{},
		PromotedToCurrentAt: timeText(promoted), DemotedFromCurrentAt: timeText(demoted),
	}
}

// defaultProvider is the default provider's entry with its promotion and
// demotion times, which the tenant's completed migrations to and from it
// give (it has no stored record to stamp, unlike a customer managed key).
func (s *Server) defaultProvider(ctx context.Context, tenantID string, current kms.Ref) (api.KeyProvider, error) {
	promoted, demoted, err := s.cfg.Migrations.ProviderSwitchTimes(ctx, tenantID, kms.InternalRef())
	if err != nil {
		return api.KeyProvider{}, err
	}
	return defaultProviderJSON(tenantID, current, promoted, demoted), nil
}

func (s *Server) fingerprint(r *http.Request) (string, error) {
	fp := r.PathValue("fp")
	if len(fp) > maxFingerprint {
		return "", &requestError{kind: kindFingerprintTooLong}
	}
	if fp == "" {
		return "", badRequest("the fingerprint is empty", nil)
	}
	return fp, nil
}

func (s *Server) listKeyProviders(w http.ResponseWriter, r *http.Request) error {
	ps, err := s.cfg.KeyProviders.List(r.Context(), principalFrom(r).TenantID)
	if err != nil {
		return err
	}
	current, err := s.currentRef(r.Context(), principalFrom(r).TenantID)
	if err != nil {
		return err
	}
	out := make([]api.KeyProvider, 0, len(ps))
	for _, p := range ps {
		out = append(out, s.keyProviderJSON(p, isCurrent(current, p.Fingerprint)))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) listAllKeyProviders(w http.ResponseWriter, r *http.Request) error {
	tenantID := principalFrom(r).TenantID
	current, err := s.currentRef(r.Context(), tenantID)
	if err != nil {
		return err
	}
	ps, err := s.cfg.KeyProviders.List(r.Context(), tenantID)
	if err != nil {
		return err
	}
	def, err := s.defaultProvider(r.Context(), tenantID, current)
	if err != nil {
		return err
	}
	out := []api.KeyProvider{def}
	for _, p := range ps {
		out = append(out, s.keyProviderJSON(p, isCurrent(current, p.Fingerprint)))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) registerKeyProvider(w http.ResponseWriter, r *http.Request) error {
	body, err := readBody(r)
	if err != nil {
		return err
	}
	var req api.RegisterKeyProviderRequest
	if err := decodeStrict(body, &req); err != nil {
		return err
	}
	kind := req.KeyProvider
	if kind == "" {
		kind = req.KeyProviderOld
	}
	if kinds := s.cfg.KeyProviders.KindNames(); !slices.Contains(kinds, kind) {
		quoted := make([]string, len(kinds))
		for i, k := range kinds {
			quoted[i] = strconv.Quote(k)
		}
		return badRequest(`field "keyprovider" must be `+strings.Join(quoted, " or "), map[string]any{"field": "keyprovider"})
	}
	if req.ARN == "" {
		return badRequest(`field "arn" is required`, map[string]any{"field": "arn"})
	}
	p, err := s.cfg.KeyProviders.Register(r.Context(), principalFrom(r).TenantID,
		keyprovider.Registration{Kind: kind, ARN: req.ARN, Name: req.Name, Description: req.Description, Settings: req.KindSettings()})
	if err != nil {
		return err
	}
	w.Header().Set("Location", api.RouteKeyProvider.Expand(p.Fingerprint))
	writeJSON(w, http.StatusCreated, s.keyProviderJSON(p, false))
	return nil
}

func (s *Server) getKeyProvider(w http.ResponseWriter, r *http.Request) error {
	fp, err := s.fingerprint(r)
	if err != nil {
		return err
	}
	tenantID := principalFrom(r).TenantID
	current, err := s.currentRef(r.Context(), tenantID)
	if err != nil {
		return err
	}
	if fp == tenantID {
		def, err := s.defaultProvider(r.Context(), tenantID, current)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, def)
		return nil
	}
	p, err := s.cfg.KeyProviders.Get(r.Context(), tenantID, fp)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, s.keyProviderJSON(p, isCurrent(current, fp)))
	return nil
}

func (s *Server) patchKeyProvider(w http.ResponseWriter, r *http.Request) error {
	fp, err := s.fingerprint(r)
	if err != nil {
		return err
	}
	body, err := readBody(r)
	if err != nil {
		return err
	}
	var ops []api.PatchOperation
	if err := decodeStrict(body, &ops); err != nil {
		if isPolicyError(err) {
			return err
		}
		return badRequest("the body must be a JSON Patch array: [{\"op\":\"replace\",\"path\":\"/name\",\"value\":\"...\"}]", nil)
	}
	if len(ops) == 0 {
		return badRequest("the patch is empty", nil)
	}
	var name, description *string
	var settings []keyprovider.PatchOp
	for i, op := range ops {
		if op.Op != "replace" {
			return badRequest(fmt.Sprintf("operation %d: only \"replace\" is supported, not %q", i, op.Op), map[string]any{"index": i})
		}
		if kindPath(op.Path) {
			// A kind's own setting: its kind checks the path and value.
			v, err := json.Marshal(op.Value)
			if err != nil {
				return badRequest(fmt.Sprintf("operation %d: the value is not JSON", i), map[string]any{"index": i})
			}
			settings = append(settings, keyprovider.PatchOp{Path: op.Path, Value: v})
			continue
		}
		v, ok := op.Value.(string)
		if !ok {
			return badRequest(fmt.Sprintf("operation %d: value must be a string", i), map[string]any{"index": i})
		}
		switch op.Path {
		case "/name":
			name = &v
		case "/description":
			description = &v
		default:
			return badRequest(fmt.Sprintf("operation %d: only /name and /description can be replaced, not %q", i, op.Path), map[string]any{"index": i})
		}
	}
	if fp == principalFrom(r).TenantID {
		return badRequest("the default key provider cannot be changed", nil)
	}
	if len(settings) > 0 {
		if _, err := s.cfg.KeyProviders.Patch(r.Context(), principalFrom(r).TenantID, fp, settings); err != nil {
			return err
		}
	}
	if name != nil || description != nil {
		if err := s.cfg.KeyProviders.Update(r.Context(), principalFrom(r).TenantID, fp, name, description); err != nil {
			return err
		}
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) deleteKeyProvider(w http.ResponseWriter, r *http.Request) error {
	fp, err := s.fingerprint(r)
	if err != nil {
		return err
	}
	if fp == principalFrom(r).TenantID {
		return badRequest("the default key provider cannot be deleted", nil)
	}
	if err := s.cfg.KeyProviders.Delete(r.Context(), principalFrom(r).TenantID, fp); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) testKeyProvider(w http.ResponseWriter, r *http.Request) error {
	fp, err := s.fingerprint(r)
	if err != nil {
		return err
	}
	tenantID := principalFrom(r).TenantID
	if fp == tenantID {
		return badRequest("the default key provider needs no test", nil)
	}
	p, err := s.cfg.KeyProviders.Test(r.Context(), tenantID, fp)
	if err != nil {
		return err
	}
	current, err := s.currentRef(r.Context(), tenantID)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, s.keyProviderJSON(p, isCurrent(current, fp)))
	return nil
}

// isCurrent reports whether current, a tenant's provider, names the
// registration with this fingerprint.
func isCurrent(current kms.Ref, fingerprint string) bool {
	fp, ok := current.Fingerprint()
	return ok && fp == fingerprint
}

// kindPath reports whether a PATCH path names a kind's own setting: one
// below a member ("/kmip/serverCA"), not a top-level field.
func kindPath(path string) bool {
	rest, ok := strings.CutPrefix(path, "/")
	i := strings.IndexByte(rest, '/')
	return ok && i > 0 && i < len(rest)-1
}
