package server

import (
	"context"
	"net/http"

	"github.com/tenantcrypt/tenantcrypt/api"
	"github.com/tenantcrypt/tenantcrypt/internal/rotation"
)

// InternalKMS is what the internal KMS endpoints need (a
// *rotation.Service): rotations of the root key and of tenants' KEKs, with
// their rewraps in the background.
type InternalKMS interface {
	// Document errors: kms.ErrUnavailable.
	Document(ctx context.Context) (rotation.Document, error)
	// RotateRootKey and ReloadRootKeys errors:
	// rotation.ErrRootKeysFromEnvironment, rotation.ErrBusy,
	// rotation.ErrClosed, *rotation.KeyFileError,
	// rotation.ErrRootKeysRefused, kms.ErrUnavailable.
	RotateRootKey(ctx context.Context) (rotation.Document, error)
	ReloadRootKeys(ctx context.Context) (rotation.Document, error)
	// RotateTenantKey errors: keyring.ErrTenantNotFound,
	// rotation.ErrNotInternal, rotation.ErrBusy, rotation.ErrClosed,
	// kms.ErrUnavailable, fault.ErrStoreUnavailable.
	RotateTenantKey(ctx context.Context, tenantID string) (rotation.TenantRotation, error)
}

var errNoInternalKMS = &requestError{kind: kindNoInternalKMS}

func rotationJobJSON(st rotation.Status) api.RotationJob {
	out := api.RotationJob{
		ID: st.ID, State: st.State.String(), Trigger: st.Trigger, TenantID: st.TenantID, TargetVersion: st.Target,
		Rewrapped: st.Rewrapped, Skipped: st.Skipped, Failed: st.Failed,
		StartedAt: st.StartedAt, FinishedAt: st.FinishedAt, Error: st.Error,
	}
	if st.Kind != rotation.KindUnknown {
		out.Kind = st.Kind.String()
	}
	return out
}

func internalKMSJSON(d rotation.Document) api.InternalKMS {
	out := api.InternalKMS{
		RootKeySource: d.Source.String(), CurrentRootKeyVersion: d.Current,
		RootKeyVersions: make([]api.RootKeyVersion, 0, len(d.Versions)), Job: rotationJobJSON(d.Job),
	}
	for _, v := range d.Versions {
		out.RootKeyVersions = append(out.RootKeyVersions, api.RootKeyVersion{
			Version: v.Version, Current: v.Current, Loaded: v.Loaded, SealedKEKs: v.KEKs,
		})
	}
	return out
}

func (s *Server) getInternalKMS(w http.ResponseWriter, r *http.Request) error {
	if s.cfg.InternalKMS == nil {
		return errNoInternalKMS
	}
	d, err := s.cfg.InternalKMS.Document(r.Context())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, internalKMSJSON(d))
	return nil
}

func (s *Server) rotateRootKey(w http.ResponseWriter, r *http.Request) error {
	if s.cfg.InternalKMS == nil {
		return errNoInternalKMS
	}
	return s.rootKeyAction(w, r, "rotate-root-key", s.cfg.InternalKMS.RotateRootKey)
}

func (s *Server) reloadRootKeys(w http.ResponseWriter, r *http.Request) error {
	if s.cfg.InternalKMS == nil {
		return errNoInternalKMS
	}
	return s.rootKeyAction(w, r, "reload-root-keys", s.cfg.InternalKMS.ReloadRootKeys)
}

// rootKeyAction runs a root key action (no request body) and answers 202
// with the document: the rewrap it started runs in the background.
func (s *Server) rootKeyAction(w http.ResponseWriter, r *http.Request, action string, fn func(context.Context) (rotation.Document, error)) error {
	d, err := fn(r.Context())
	if err != nil {
		return err
	}
	s.log.InfoContext(r.Context(), "internal KMS: "+action, "request_id", requestIDFrom(r.Context()),
		"principal", principalFrom(r).Subject, "root_version", d.Current, "run", d.Job.ID)
	writeJSON(w, http.StatusAccepted, internalKMSJSON(d))
	return nil
}

func (s *Server) rotateTenantKey(w http.ResponseWriter, r *http.Request) error {
	if s.cfg.InternalKMS == nil {
		return errNoInternalKMS
	}
	tr, err := s.cfg.InternalKMS.RotateTenantKey(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	s.log.InfoContext(r.Context(), "internal KMS: rotate-key", "request_id", requestIDFrom(r.Context()),
		"principal", principalFrom(r).Subject, "tenant", tr.TenantID, "kek_version", tr.KEKVersion, "run", tr.Job.ID)
	writeJSON(w, http.StatusAccepted, api.TenantKeyRotation{TenantID: tr.TenantID, KEKVersion: tr.KEKVersion, Job: rotationJobJSON(tr.Job)})
	return nil
}
