package rotation

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"time"
)

// State is where a Job stands.
type State int

// States. The zero value is invalid.
const (
	StateUnknown State = iota
	// StateIdle: nothing has run since the process started.
	StateIdle
	// StateRunning: a run is in progress.
	StateRunning
	// StateCompleted: the last run did all its work.
	StateCompleted
	// StateFailed: the last run stopped on an error (Status.Error), or
	// because the process shut down; its work so far stays done.
	StateFailed
)

// String is the state as the API spells it.
func (s State) String() string {
	switch s {
	case StateIdle:
		return "idle"
	case StateRunning:
		return "running"
	case StateCompleted:
		return "completed"
	case StateFailed:
		return "failed"
	}
	return "unknown"
}

// Kind is what a run does.
type Kind int

// Kinds. The zero value is invalid (and is the kind of an idle job).
const (
	KindUnknown Kind = iota
	// KindRewrapKEKs reseals every tenant KEK under the current root key
	// version (internalkms.Service.RewrapKEKs).
	KindRewrapKEKs
	// KindRewrapCipherKeys moves one tenant's cipherkeys that the internal
	// KMS wraps under an older KEK version to the newest one.
	KindRewrapCipherKeys
)

// String is the kind as the API spells it.
func (k Kind) String() string {
	switch k {
	case KindRewrapKEKs:
		return "rewrap-keks"
	case KindRewrapCipherKeys:
		return "rewrap-cipherkeys"
	}
	return "unknown"
}

// Status is a snapshot of a Job: its running or last run.
type Status struct {
	// ID names the run (24 hex digits); empty while idle.
	ID    string
	Kind  Kind
	State State
	// Trigger is what started the run: "start", "rotate-root-key",
	// "reload-root-keys" or "rotate-key".
	Trigger string
	// TenantID is the tenant of a KindRewrapCipherKeys run.
	TenantID string
	// Target is the version keys move to: the root key version of a
	// KindRewrapKEKs run, the KEK version of a KindRewrapCipherKeys run.
	Target uint32
	// Rewrapped counts the keys the run resealed; Skipped those another
	// writer (another process) changed first; Failed those that could not
	// be opened and were left as they are.
	Rewrapped, Skipped, Failed int64
	StartedAt, FinishedAt      time.Time
	// Error says why a failed run stopped. It never holds key material.
	Error string
}

// Task is one run of a Job.
type Task struct {
	Kind     Kind
	Trigger  string
	TenantID string
	// Prepare, if not nil, runs within Start, once the job is reserved for
	// this task and before anything runs in the background, and returns the
	// run's Target. If it fails, Start returns its error and the job's
	// status stays as it was.
	Prepare func(ctx context.Context) (target uint32, err error)
	// Run does the work in the background and reports counts to p. Its ctx
	// ends when the Job is closed.
	Run func(ctx context.Context, target uint32, p *Progress) error
}

// Errors of Start.
var (
	// ErrBusy: a run is in progress (or being prepared); a *BusyError
	// says which.
	ErrBusy = errors.New("a background rewrap is running")
	// ErrClosed: the job was closed (the process is shutting down).
	ErrClosed = errors.New("the internal KMS rotation jobs are shutting down")
)

// BusyError refuses a Start while another run is in progress. It matches
// ErrBusy.
type BusyError struct {
	// Running is the run in progress; its State is StateRunning, or
	// StateUnknown while it is being prepared.
	Running Status
}

func (e *BusyError) Error() string {
	r := e.Running
	if r.State != StateRunning {
		return ErrBusy.Error() + ": another rotation is starting"
	}
	what := r.Kind.String()
	if r.TenantID != "" {
		what += " of tenant " + r.TenantID
	}
	return fmt.Sprintf("%s: %s (%s), started %s, has rewrapped %d so far",
		ErrBusy, what, r.Trigger, r.StartedAt.UTC().Format(time.RFC3339), r.Rewrapped)
}

// Is makes errors.Is(err, ErrBusy) hold.
func (e *BusyError) Is(target error) bool { return target == ErrBusy }

// Job runs one Task at a time in the background and keeps the status of
// the running or last run. It is safe for concurrent use. Close stops the
// run in progress and waits for it.
type Job struct {
	log    *slog.Logger
	now    func() time.Time
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu       sync.Mutex
	reserved bool // a Task is being prepared or runs
	closed   bool
	status   Status
	done     chan struct{} // closed when the current run ends
}

// NewJob returns an idle Job; a nil logger discards, a nil now is time.Now.
func NewJob(logger *slog.Logger, now func() time.Time) *Job {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if now == nil {
		now = time.Now
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Job{log: logger, now: now, ctx: ctx, cancel: cancel, status: Status{State: StateIdle}}
}

// Status returns a snapshot of the running or last run.
func (j *Job) Status() Status {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.status
}

// Start runs t unless another Task is being prepared or runs: it reserves
// the job, runs t.Prepare, then starts t.Run in the background and returns
// the new run's status (StateRunning). Errors: *BusyError (ErrBusy),
// ErrClosed, or Prepare's error, after which nothing runs and the status is
// unchanged.
func (j *Job) Start(ctx context.Context, t Task) (Status, error) {
	j.mu.Lock()
	switch {
	case j.closed:
		j.mu.Unlock()
		return Status{}, ErrClosed
	case j.reserved:
		running := Status{}
		if j.status.State == StateRunning {
			running = j.status
		}
		j.mu.Unlock()
		return Status{}, &BusyError{Running: running}
	}
	j.reserved = true
	j.mu.Unlock()
	started := false
	defer func() {
		// A failed (or panicking) Prepare frees the job.
		if !started {
			j.mu.Lock()
			j.reserved = false
			j.mu.Unlock()
		}
	}()

	var target uint32
	if t.Prepare != nil {
		var err error
		if target, err = t.Prepare(ctx); err != nil {
			return Status{}, err
		}
	}

	var id [12]byte
	_, _ = rand.Read(id[:])
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.closed {
		return Status{}, ErrClosed
	}
	started = true
	j.status = Status{
		ID: hex.EncodeToString(id[:]), Kind: t.Kind, State: StateRunning, Trigger: t.Trigger,
		TenantID: t.TenantID, Target: target, StartedAt: j.now().UTC(),
	}
	done := make(chan struct{})
	j.done = done
	j.wg.Add(1)
	go func() {
		defer j.wg.Done()
		defer close(done)
		err := j.run(t, target)
		j.finish(err)
	}()
	return j.status, nil
}

// run calls t.Run, turning a panic into an error so that a bug in a
// background rewrap fails the run instead of the process.
func (j *Job) run(t Task, target uint32) (err error) {
	defer func() {
		if v := recover(); v != nil {
			j.log.Error("internal KMS: background rewrap panicked", "panic", fmt.Sprintf("%T", v), "stack", string(debug.Stack()))
			err = errors.New("internal error; see the server log")
		}
	}()
	return t.Run(j.ctx, target, &Progress{j: j})
}

func (j *Job) finish(err error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	st := &j.status
	st.FinishedAt = j.now().UTC()
	j.reserved = false
	log := j.log.With("run", st.ID, "kind", st.Kind.String(), "trigger", st.Trigger, "target_version", st.Target,
		"rewrapped", st.Rewrapped, "skipped", st.Skipped, "failed", st.Failed)
	if st.TenantID != "" {
		log = log.With("tenant", st.TenantID)
	}
	switch {
	case err == nil:
		st.State = StateCompleted
		log.Info("internal KMS: background rewrap completed")
	case j.ctx.Err() != nil:
		st.State = StateFailed
		st.Error = "stopped before it finished: the server is shutting down; what was rewrapped stays rewrapped"
		log.Warn("internal KMS: background rewrap stopped by shutdown")
	default:
		st.State = StateFailed
		st.Error = err.Error()
		log.Error("internal KMS: background rewrap failed", "error", st.Error)
	}
}

// Wait blocks until no run is in progress, or ctx ends, and returns the
// status then.
func (j *Job) Wait(ctx context.Context) (Status, error) {
	for {
		j.mu.Lock()
		done, running := j.done, j.status.State == StateRunning
		j.mu.Unlock()
		if !running || done == nil {
			return j.Status(), nil
		}
		select {
		case <-done:
		case <-ctx.Done():
			return j.Status(), ctx.Err()
		}
	}
}

// Close stops the run in progress, waits for it to end, and refuses later
// Starts.
func (j *Job) Close() {
	j.mu.Lock()
	j.closed = true
	j.mu.Unlock()
	j.cancel()
	j.wg.Wait()
}

// Progress is how a running Task reports what it has done.
type Progress struct{ j *Job }

// Add counts keys rewrapped, skipped (changed first by another writer) and
// failed (left as they were).
func (p *Progress) Add(rewrapped, skipped, failed int) {
	p.j.mu.Lock()
	defer p.j.mu.Unlock()
	p.j.status.Rewrapped += int64(rewrapped)
	p.j.status.Skipped += int64(skipped)
	p.j.status.Failed += int64(failed)
}
