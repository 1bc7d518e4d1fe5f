package replica

import (
	"github.com/tidemark/tidemark/wire"

	"github.com/tidemark/tidemark/api"

	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"
	"github.com/rs/zerolog"

	"github.com/tidemark/tidemark/replicator"
	"github.com/tidemark/tidemark/stream"
)

// Snapshot bootstrap: a replica that finds the stream no longer holds what
// it needs (Config.Bootstrap) asks, on Subjects.Snapshot, any one ready
// replica for a snapshot; that replica writes a consistent snapshot of its
// Badger database into the JetStream object store SnapshotBucket and
// replies with the object's name and applied sequence; the asking replica
// downloads and restores it, deletes the object, and applies the stream
// from there (see replicator.Bootstrapper).
const (
	// DefaultSnapshotTimeout bounds how long a bootstrapping replica waits
	// for a snapshot to be made and stored.
	DefaultSnapshotTimeout = 10 * time.Minute
	// DefaultSnapshotCatchUp bounds how long a replica asked for a snapshot
	// at a sequence it has not applied yet waits to apply it.
	DefaultSnapshotCatchUp = 10 * time.Second
	// DefaultSnapshotTTL is how long the object store keeps a snapshot that
	// its asker did not delete (it crashed, say).
	DefaultSnapshotTTL = time.Hour
)

// snapshotBucketConfig is the object store that carries snapshots: file
// storage, replicated like the stream, snapshots expiring after
// DefaultSnapshotTTL.
func snapshotBucketConfig(st *stream.Stream) jetstream.ObjectStoreConfig {
	return jetstream.ObjectStoreConfig{
		Bucket:      wire.SnapshotBucket(st.Name()),
		Description: "Tidemark replica snapshots, for replicas that bootstrap",
		TTL:         DefaultSnapshotTTL,
		Storage:     jetstream.FileStorage,
		Replicas:    st.Replicas(),
	}
}

// serveSnapshots answers snapshot requests in wire.SnapshotQueueGroup once the
// replica is ready, until ctx ends. A replica that never gets ready answers
// none. A failure to register is logged, not fatal: the replica still
// serves reads.
//
// Requests are handled on micro's goroutine, one at a time (a replica makes
// one snapshot at a time; others wait in the subscription), which keeps
// micro's statistics right; serveSnapshots waits for the one in flight
// before it returns.
func (r *Replica) serveSnapshots(ctx context.Context) error {
	if err := r.repl.WaitReady(ctx); err != nil {
		return nil
	}
	r.removeSnapshotFiles()
	log := r.cfg.Logger.With().Str("replica", r.cfg.ID).Logger()
	svc, err := micro.AddService(r.cfg.Conn, micro.Config{
		Name:        wire.SnapshotServiceName,
		Version:     wire.SnapshotServiceVersion,
		Description: "Tidemark replica snapshots, for replicas that bootstrap",
		Metadata:    map[string]string{"replica": r.cfg.ID, "stream": r.cfg.Stream.ID()},
		QueueGroup:  wire.SnapshotQueueGroup,
	})
	if err != nil {
		log.Error().Err(err).Msg("snapshot service; not serving snapshots")
		return nil
	}
	var (
		mu      sync.Mutex // guards stopped and the calls to wg.Add
		stopped bool
		wg      sync.WaitGroup
	)
	defer func() {
		if err := svc.Stop(); err != nil {
			log.Warn().Err(err).Msg("stop snapshot service")
		}
		mu.Lock()
		stopped = true
		mu.Unlock()
		wg.Wait()
	}()
	handler := micro.HandlerFunc(func(req micro.Request) {
		mu.Lock()
		if stopped {
			mu.Unlock()
			_ = wire.RespondUnavailable(req, "replica is stopping")
			return
		}
		wg.Add(1)
		mu.Unlock()
		defer wg.Done()
		r.answerSnapshot(ctx, req, log)
	})
	subject := r.cfg.Subjects.Snapshot()
	if err := svc.AddEndpoint("snapshot", handler, micro.WithEndpointSubject(subject), micro.WithEndpointQueueGroup(wire.SnapshotQueueGroup)); err != nil {
		log.Error().Err(err).Msg("snapshot service; not serving snapshots")
		return nil
	}
	log.Info().Str("subject", subject).Str("queue", wire.SnapshotQueueGroup).Msg("serving snapshots")
	<-ctx.Done()
	return nil
}

func (r *Replica) answerSnapshot(ctx context.Context, req micro.Request, log zerolog.Logger) {
	q, err := wire.DecodeSnapshotRequest(req.Data())
	var rep wire.SnapshotReply
	if err == nil {
		start := time.Now()
		if rep, err = r.storeSnapshot(ctx, q); err == nil {
			log.Info().Str("for", q.Replica).Str("name", rep.Name).Uint64("applied", rep.Applied).
				Uint64("bytes", rep.Size).Str("took", time.Since(start).Round(time.Millisecond).String()).Msg("snapshot stored")
			b, _ := json.Marshal(rep)
			if err := req.Respond(b); err != nil {
				log.Warn().Err(err).Msg("answer snapshot request")
			}
			return
		}
	}
	ev := log.Warn()
	if errors.Is(err, api.ErrUnavailable) {
		ev = log.Debug() // not ready, or asked by itself: another replica answers
	}
	ev.Err(err).Str("for", q.Replica).Uint64("need", q.Need).Msg("snapshot request refused")
	if err := req.Error(api.Code(err), err.Error(), nil); err != nil {
		log.Warn().Err(err).Msg("answer snapshot request")
	}
}

// storeSnapshot writes a snapshot to a file (snapshotFile), then stores it
// in the object store.
func (r *Replica) storeSnapshot(ctx context.Context, q wire.SnapshotRequest) (wire.SnapshotReply, error) {
	switch {
	case q.Stream != r.cfg.Stream.ID():
		return wire.SnapshotReply{}, api.Errorf(api.ErrInvalidRequest, "snapshot of stream id %s asked of a replica of stream id %s", q.Stream, r.cfg.Stream.ID())
	case q.Replica == r.cfg.ID:
		return wire.SnapshotReply{}, api.Errorf(api.ErrUnavailable, "replica %s does not bootstrap from itself", r.cfg.ID)
	}
	if err := r.Ready(); err != nil {
		return wire.SnapshotReply{}, api.Errorf(api.ErrUnavailable, "replica %s is not ready: %w", r.cfg.ID, err)
	}
	wctx, cancel := context.WithTimeout(ctx, DefaultSnapshotCatchUp)
	err := r.repl.WaitApplied(wctx, q.Need)
	cancel()
	if err != nil {
		return wire.SnapshotReply{}, api.Errorf(api.ErrUnavailable, "replica %s has applied %d, the snapshot must hold %d: %w", r.cfg.ID, r.repl.Applied(), q.Need, err)
	}

	f, applied, err := r.snapshotFile(ctx)
	if err != nil {
		return wire.SnapshotReply{}, err
	}
	defer os.Remove(f.Name())
	defer f.Close()

	js := r.cfg.Stream.JetStream()
	obs, err := js.CreateOrUpdateObjectStore(ctx, snapshotBucketConfig(r.cfg.Stream))
	if err != nil {
		return wire.SnapshotReply{}, fmt.Errorf("snapshot bucket: %w", err)
	}
	now := time.Now().UTC()
	name := fmt.Sprintf("%s-%d-%d", r.cfg.ID, applied, now.UnixNano())
	info, err := obs.Put(ctx, jetstream.ObjectMeta{
		Name:        name,
		Description: fmt.Sprintf("snapshot of replica %s at sequence %d, for %s", r.cfg.ID, applied, q.Replica),
		Metadata: map[string]string{
			wire.MetaStream:  r.cfg.Stream.ID(),
			wire.MetaApplied: strconv.FormatUint(applied, 10),
			wire.MetaReplica: r.cfg.ID,
			wire.MetaCreated: now.Format(time.RFC3339Nano),
		},
	}, f)
	if err != nil {
		return wire.SnapshotReply{}, fmt.Errorf("store snapshot: %w", err)
	}
	return wire.SnapshotReply{Name: name, Stream: r.cfg.Stream.ID(), Applied: applied, Replica: r.cfg.ID, Size: info.Size}, nil
}

// snapshotFile writes a snapshot of the replica's state to a file in its
// directory (on the same volume as its data), so that Badger's read
// transaction lasts only as long as the local write, and returns it open
// at its start with its applied sequence. The caller closes and removes it.
func (r *Replica) snapshotFile(ctx context.Context) (*os.File, uint64, error) {
	f, err := os.CreateTemp(r.cfg.Dir, replicator.SnapshotFilePrefix+"*")
	if err != nil {
		return nil, 0, fmt.Errorf("snapshot file: %w", err)
	}
	applied, err := r.repl.Snapshot(ctx, f)
	if err == nil {
		_, err = f.Seek(0, io.SeekStart)
	}
	if err != nil {
		_ = f.Close()
		_ = os.Remove(f.Name())
		return nil, 0, fmt.Errorf("snapshot file: %w", err)
	}
	return f, applied, nil
}

// removeSnapshotFiles removes the snapshot files a crashed replica left in
// its directory.
func (r *Replica) removeSnapshotFiles() {
	entries, err := os.ReadDir(r.cfg.Dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		if !e.IsDir() && strings.HasPrefix(e.Name(), replicator.SnapshotFilePrefix) {
			_ = os.Remove(filepath.Join(r.cfg.Dir, e.Name()))
		}
	}
}

// fetcher is the replicator.Bootstrapper of a replica: it asks the ready
// replicas for a snapshot and downloads it from the object store.
type fetcher struct {
	id       string
	st       *stream.Stream
	subjects wire.Subjects
	nc       *nats.Conn // nil: the stream's connection
	log      zerolog.Logger
}

// maxSnapshotAsks is how many times one bootstrap attempt asks while the
// replicas that answer cannot help.
const maxSnapshotAsks = 4

// ask sends one snapshot request and waits for its answer.
func (f *fetcher) ask(ctx context.Context, nc *nats.Conn, q []byte) (*nats.Msg, error) {
	ctx, cancel := context.WithTimeout(ctx, DefaultSnapshotTimeout)
	defer cancel()
	msg, err := nc.RequestWithContext(ctx, f.subjects.Snapshot(), q)
	if errors.Is(err, nats.ErrNoResponders) {
		return nil, errors.New("no ready replica serves snapshots")
	}
	if err != nil {
		return nil, fmt.Errorf("ask for a snapshot: %w", err)
	}
	if code := msg.Header.Get(wire.HeaderErrorCode); code != "" {
		return nil, fmt.Errorf("ask for a snapshot: %w", api.FromCode(code, msg.Header.Get(wire.HeaderError)))
	}
	return msg, nil
}

// Bootstrap implements replicator.Bootstrapper: from the stored base
// snapshot (compact.go) when it reaches need, else from a snapshot a ready
// replica makes.
func (f *fetcher) Bootstrap(ctx context.Context, need uint64, restore func(io.Reader) (uint64, error)) error {
	done, err := f.fromBase(ctx, need, restore)
	if done || err != nil {
		return err
	}
	return f.fromReplica(ctx, need, restore)
}

// fromBase restores the base snapshot if there is one that reaches need,
// and reports whether it tried. A base snapshot that cannot be read or
// restored is an error: the next attempt asks again, and finds a newer one
// or none.
func (f *fetcher) fromBase(ctx context.Context, need uint64, restore func(io.Reader) (uint64, error)) (bool, error) {
	base, err := readBase(ctx, f.st)
	if err != nil {
		f.log.Warn().Err(err).Msg("read the base snapshot; asking the replicas")
		return false, nil
	}
	if base == nil || base.Applied < need {
		if base != nil {
			f.log.Info().Uint64("base", base.Applied).Uint64("need", need).Msg("the base snapshot is older than where the stream starts; asking the replicas")
		}
		return false, nil
	}
	obs, err := f.st.JetStream().ObjectStore(ctx, wire.BaseBucket(f.st.Name()))
	if err != nil {
		return true, fmt.Errorf("base snapshot bucket: %w", err)
	}
	f.log.Info().Uint64("applied", base.Applied).Uint64("bytes", base.Bytes).Str("of", base.Replica).Msg("downloading and restoring the base snapshot")
	res, err := obs.Get(ctx, wire.BaseObject)
	if err != nil {
		return true, fmt.Errorf("get the base snapshot: %w", err)
	}
	defer res.Close()
	applied, err := restore(replicator.WithSize(res, int64(base.Bytes)))
	if err != nil {
		return true, fmt.Errorf("base snapshot: %w", err)
	}
	if applied < need {
		return true, fmt.Errorf("%w: the base snapshot holds sequences up to %d, need %d", replicator.ErrBadSnapshot, applied, need)
	}
	return true, nil
}

// fromReplica asks the ready replicas for a snapshot and restores it.
func (f *fetcher) fromReplica(ctx context.Context, need uint64, restore func(io.Reader) (uint64, error)) error {
	nc := f.nc
	if nc == nil {
		nc = f.st.JetStream().Conn()
	}
	q, err := json.Marshal(wire.SnapshotRequest{Stream: f.st.ID(), Replica: f.id, Need: need})
	if err != nil {
		return err
	}
	f.log.Info().Uint64("need", need).Str("subject", f.subjects.Snapshot()).Msg("asking for a snapshot")
	var msg *nats.Msg
	for try := 1; ; try++ {
		msg, err = f.ask(ctx, nc, q)
		// The queue group picks a replica at random: one that cannot
		// help (this very replica, if it was serving) may be followed
		// by one that can.
		if !errors.Is(err, api.ErrUnavailable) || try == maxSnapshotAsks {
			break
		}
	}
	if err != nil {
		return err
	}
	rep, err := wire.DecodeSnapshotReply(msg.Data)
	if err != nil {
		return err
	}
	switch {
	case rep.Stream != f.st.ID():
		return fmt.Errorf("%w: replica %s offers a snapshot of stream id %s, want %s: %w", replicator.ErrBadSnapshot, rep.Replica, rep.Stream, f.st.ID(), replicator.ErrStreamMismatch)
	case rep.Applied < need:
		return fmt.Errorf("%w: replica %s offers a snapshot at %d, need %d", replicator.ErrBadSnapshot, rep.Replica, rep.Applied, need)
	}

	obs, err := f.st.JetStream().ObjectStore(ctx, wire.SnapshotBucket(f.st.Name()))
	if err != nil {
		return fmt.Errorf("snapshot bucket: %w", err)
	}
	defer func() {
		// The snapshot was made for this replica alone.
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if err := obs.Delete(dctx, rep.Name); err != nil {
			f.log.Debug().Err(err).Str("name", rep.Name).Msg("delete snapshot")
		}
	}()
	f.log.Info().Str("from", rep.Replica).Str("name", rep.Name).Uint64("applied", rep.Applied).Uint64("bytes", rep.Size).
		Msg("downloading and restoring a snapshot")
	res, err := obs.Get(ctx, rep.Name)
	if err != nil {
		return fmt.Errorf("get snapshot %s: %w", rep.Name, err)
	}
	defer res.Close()
	var rd io.Reader = res
	if rep.Size > 0 {
		rd = replicator.WithSize(res, int64(rep.Size))
	}
	applied, err := restore(rd)
	if err != nil {
		return err
	}
	if applied != rep.Applied {
		return fmt.Errorf("%w: snapshot %s holds sequences up to %d, its replica said %d", replicator.ErrBadSnapshot, rep.Name, applied, rep.Applied)
	}
	return nil
}
