package storetest

import (
	"context"

	"github.com/tenantcrypt/tenantcrypt/internal/audit"
)

func (r *roundRobin) AppendEvents(ctx context.Context, events []audit.Event, seal func(*audit.Event)) ([]audit.Event, error) {
	return r.next().AppendEvents(ctx, events, seal)
}

func (r *roundRobin) ChainHead(ctx context.Context, chainID string) (audit.Head, error) {
	return r.next().ChainHead(ctx, chainID)
}

func (r *roundRobin) Events(ctx context.Context, chainID string, f audit.Filter, limit int) ([]audit.Event, error) {
	return r.next().Events(ctx, chainID, f, limit)
}

func (r *roundRobin) PutCheckpoint(ctx context.Context, c audit.Checkpoint) error {
	return r.next().PutCheckpoint(ctx, c)
}

func (r *roundRobin) Checkpoints(ctx context.Context, chainID string, afterSeq int64, limit int) ([]audit.Checkpoint, error) {
	return r.next().Checkpoints(ctx, chainID, afterSeq, limit)
}

func (r *roundRobin) Chains(ctx context.Context, after string, limit int) ([]string, error) {
	return r.next().Chains(ctx, after, limit)
}

func (r *roundRobin) Prune(ctx context.Context, c audit.Checkpoint) (int, error) {
	return r.next().Prune(ctx, c)
}
