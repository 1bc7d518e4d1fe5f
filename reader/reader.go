package reader

import (
	"github.com/tidemark/tidemark/wire"

	"github.com/tidemark/tidemark/api"

	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/tidemark/tidemark/stream"
)

// Defaults of Config.
const ()

// Store is the replica state a Reader serves from.
type Store interface {
	// Applied returns the last stream sequence applied.
	Applied() uint64
	// WaitApplied returns once Applied() >= seq, or fails when ctx ends or
	// the store stops.
	WaitApplied(ctx context.Context, seq uint64) error
	// Get returns a key's record and the applied sequence of the snapshot
	// it was read from; api.ErrNotFound (with the delete's record for a
	// deleted key) when it does not exist.
	Get(key string) (api.Record, uint64, error)
	// Scan returns a page of live keys and the applied sequence of the
	// snapshot they were read from. The page holds at most limit keys, and
	// stops at the first that page does not Add (a nil page has no limit);
	// next is its last key when more remain.
	Scan(prefix, after string, limit int, page *wire.PageBudget) ([]api.Record, string, uint64, error)
	// Session returns the highest write number applied for a session
	// (0: none), for GetRequest.Session.
	Session(id string) (uint64, error)
	// Err returns why the store refuses to serve, or nil.
	Err() error
	// StreamID returns the id of the stream the store's state belongs to.
	StreamID() string
}

// Config configures a Reader.
type Config struct {
	// Replica is the replica's id, reported with every answer.
	Replica string
	// Store is the replica's state.
	Store Store
	// Stream is the stream the store replicates; tokens are checked against it.
	Stream *stream.Stream
	// DefaultWait bounds a read's wait for its token when the request does
	// not say.
	DefaultWait time.Duration
	// MaxWait is the longest wait a request may ask for.
	MaxWait time.Duration
	// Logger receives the reader's logs.
	Logger zerolog.Logger
}

// Reader answers reads from a Store, honouring session tokens. It is safe
// for concurrent use.
type Reader struct {
	cfg     Config
	log     zerolog.Logger
	metrics readMetrics // Prometheus metrics (metrics.go)
}

// New returns a Reader for cfg, with defaults for the zero fields.
func New(cfg Config) *Reader {
	if cfg.DefaultWait <= 0 {
		cfg.DefaultWait = api.DefaultWait
	}
	if cfg.MaxWait <= 0 {
		cfg.MaxWait = api.DefaultMaxWait
	}
	if cfg.DefaultWait > cfg.MaxWait {
		cfg.DefaultWait = cfg.MaxWait
	}
	return &Reader{cfg: cfg, log: cfg.Logger.With().Str("replica", cfg.Replica).Logger()}
}

// Wait returns how long a read that asks to wait d may wait for its token:
// the default wait when d <= 0, and at most the maximum wait.
func (r *Reader) Wait(d time.Duration) time.Duration {
	if d <= 0 {
		d = r.cfg.DefaultWait
	}
	return min(d, r.cfg.MaxWait)
}

// Replica returns the replica id the reader reports.
func (r *Reader) Replica() string { return r.cfg.Replica }

// Get reads one key as of at least the request's token. On
// api.ErrNotFound the result still carries the token and, for a deleted
// key, the delete's revision.
func (r *Reader) Get(ctx context.Context, req api.GetRequest) (res api.GetResult, err error) {
	defer r.metrics.observe(r.cfg.Replica, opGet, time.Now(), req.ReadSpec, &res.ServedBy, &err)
	res = api.GetResult{Record: api.Record{Key: req.Key}, ServedBy: api.ServedBy{Replica: r.cfg.Replica}}
	if err := api.ValidateKey(req.Key); err != nil {
		return res, err
	}
	var rec api.Record
	var found bool
	res.Token, res.ServedBy, found, err = r.read(ctx, "get", req.ReadSpec, func() (applied uint64, err error) {
		rec, applied, err = r.cfg.Store.Get(req.Key)
		if req.Session != "" && (err == nil || errors.Is(err, api.ErrNotFound)) {
			// Read after the key: at least as fresh as the applied served.
			n, serr := r.cfg.Store.Session(req.Session)
			if serr != nil {
				return applied, serr
			}
			res.SessionSeq = n
		}
		return applied, err
	})
	switch {
	case errors.Is(err, api.ErrNotFound) && found:
		res.Record = api.Record{Key: req.Key, Revision: rec.Revision, Deleted: rec.Deleted}
		if rec.Deleted {
			return res, api.Errorf(api.ErrNotFound, "key %q not found (deleted at revision %d)", req.Key, rec.Revision)
		}
		return res, api.Errorf(api.ErrNotFound, "key %q not found", req.Key)
	case err != nil:
		return res, err
	}
	res.Record = rec
	return res, nil
}

// Scan reads a page of live keys under a prefix as of at least the
// request's token.
func (r *Reader) Scan(ctx context.Context, req api.ScanRequest) (res api.ScanResult, err error) {
	defer r.metrics.observe(r.cfg.Replica, opScan, time.Now(), req.ReadSpec, &res.ServedBy, &err)
	res = api.ScanResult{ServedBy: api.ServedBy{Replica: r.cfg.Replica}}
	if err := req.Validate(); err != nil {
		return res, err
	}
	var (
		items []api.Record
		next  string
	)
	res.Token, res.ServedBy, _, err = r.read(ctx, "scan", req.ReadSpec, func() (applied uint64, err error) {
		// A page is bounded by bytes as well as by the limit, so that its
		// reply fits the max_payload; cut short, it goes on after its last
		// item.
		items, next, applied, err = r.cfg.Store.Scan(req.Prefix, req.After, req.Limit, wire.NewPageBudget(r.MaxPayload()))
		return applied, err
	})
	if err != nil {
		return res, err
	}
	if items == nil {
		items = []api.Record{}
	}
	res.Items, res.Next = items, next
	return res, nil
}

// MaxPayload returns the max_payload of the NATS server the stream's
// connection is on: every reply over NATS must fit it, and scan pages are
// cut to fit it wherever they are served. 0 when unknown.
func (r *Reader) MaxPayload() int64 {
	return r.cfg.Stream.JetStream().Conn().MaxPayload()
}

// read is what every read does around its store call: wait for what the
// consistency level needs, call the store (which returns the applied
// sequence of the snapshot it read; api.ErrNotFound passes through),
// refuse a snapshot behind what was needed, and work out the reply token
// and what to report of the read. found reports that the store answered
// (possibly api.ErrNotFound).
func (r *Reader) read(ctx context.Context, op string, spec api.ReadSpec,
	store func() (uint64, error)) (tok api.Token, s api.ServedBy, found bool, err error) {
	tok = spec.Token
	need, waited, err := r.awaitLevel(ctx, tok, spec.Consistency, spec.Wait)
	s = api.ServedBy{Replica: r.cfg.Replica, Waited: waited, StreamLast: r.cfg.Stream.KnownLast()}
	if err != nil {
		s.Applied = r.cfg.Store.Applied()
		return failedToken(tok, err), s, false, err
	}
	applied, err := store()
	s.Applied = applied
	if err != nil && !errors.Is(err, api.ErrNotFound) {
		return tok, s, false, r.internal(op, err)
	}
	if cerr := r.checkSnapshot(need, applied); cerr != nil {
		return tok, s, false, cerr
	}
	return r.cfg.Stream.Token(max(tok.Seq, applied)), s, true, err
}

// failedToken is the token a failed read reports: the request's, unless the
// request's token was itself the problem.
func failedToken(tok api.Token, err error) api.Token {
	if errors.Is(err, api.ErrTokenStreamMismatch) || errors.Is(err, api.ErrTokenFromFuture) {
		return api.Token{}
	}
	return tok
}

// await checks that the store serves and that tok belongs to the stream,
// then waits until the store has applied tok, bounded by the request's wait.
// It returns how long it waited.
//
// When the store is behind the token, the token may also be ahead of the
// stream; finding out may take a round trip to the server. The check runs
// alongside the wait, so a valid token is never delayed by it; an invalid
// one fails once the server's answers have stayed behind it for
// stream.TokenGrace, well inside the wait. A token the store has applied is
// never from the future and needs no check.
func (r *Reader) await(ctx context.Context, tok api.Token, wait time.Duration) (time.Duration, error) {
	if err := r.serves(tok); err != nil {
		return 0, err
	}
	if tok.Seq <= r.cfg.Store.Applied() {
		return 0, nil // applied <= the stream's last, so tok is not from the future
	}
	start := time.Now()
	wait = r.Wait(wait)

	waitCtx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	checkCtx, stopCheck := context.WithCancel(waitCtx)
	defer stopCheck()
	var (
		wg       sync.WaitGroup
		checkErr error // set before the check cancels checkCtx
	)
	if tok.Seq > r.cfg.Stream.KnownLast() { // else CheckToken has nothing to ask
		wg.Add(1)
		go func() {
			defer wg.Done()
			// CheckToken keeps asking for a while (stream.TokenGrace)
			// before it calls a token from the future, so an answer that
			// predates the token's write, or a cluster's lagging stream
			// info, cannot reject a genuine token; meanwhile the store
			// may reach it, which ends the check.
			err := r.cfg.Stream.CheckToken(checkCtx, tok)
			if errors.Is(err, api.ErrTokenFromFuture) {
				checkErr = err
				stopCheck()
			}
			// Any other failure (the server is unreachable) leaves the
			// wait to decide: a token the store reaches is valid.
		}()
	}
	err := r.cfg.Store.WaitApplied(checkCtx, tok.Seq)
	stopCheck()
	wg.Wait()
	waited := time.Since(start)
	switch {
	case err == nil:
		return waited, nil
	case r.cfg.Store.Applied() >= tok.Seq:
		// Applied while the check ended the wait: the token is valid,
		// whatever an answer of the server said.
		return waited, nil
	case checkErr != nil:
		return waited, checkErr
	case ctx.Err() != nil:
		return waited, fmt.Errorf("wait for sequence %d: %w", tok.Seq, ctx.Err())
	case waitCtx.Err() != nil:
		return waited, api.Errorf(api.ErrTokenWaitTimeout,
			"replica %s has applied %d, the token wants %d; waited %v", r.cfg.Replica, r.cfg.Store.Applied(), tok.Seq, waited.Round(time.Millisecond))
	default:
		return waited, r.unavailable(err)
	}
}

// serves checks that the store serves, that tok belongs to the stream, and
// that the store's state belongs to it too: a store that still holds the
// state of a stream since deleted and recreated (and rebuilds) serves no
// token of the new one.
func (r *Reader) serves(tok api.Token) error {
	if err := r.cfg.Store.Err(); err != nil {
		return r.unavailable(err)
	}
	id := r.cfg.Stream.ID()
	if err := tok.Check(id); err != nil {
		return err
	}
	if have := r.cfg.Store.StreamID(); have != id {
		return api.Errorf(api.ErrUnavailable, "replica %s holds the state of stream id %s, and the stream is now %s: it rebuilds", r.cfg.Replica, have, id)
	}
	return nil
}

// checkSnapshot guards the read-your-writes promise: a snapshot behind the
// position the read must reflect is never served.
func (r *Reader) checkSnapshot(need, applied uint64) error {
	if applied < need {
		return api.Errorf(api.ErrInternal, "replica %s read a snapshot at %d behind the token %d", r.cfg.Replica, applied, need)
	}
	return nil
}

// awaitLevel waits for what the read's consistency level needs and returns
// the stream position the read must reflect:
//   - Session: the request's token;
//   - Strong: the stream's last sequence as of the request (asked of the
//     server now, not from a cache, so every write acknowledged before the
//     request is included), or the token if later;
//   - Eventual: nothing; the read is served at once from whatever the
//     replica has applied.
func (r *Reader) awaitLevel(ctx context.Context, tok api.Token, c api.Consistency, wait time.Duration) (uint64, time.Duration, error) {
	switch c {
	case api.Eventual:
		return 0, 0, r.serves(tok)
	case api.Strong:
		if err := r.serves(tok); err != nil {
			return 0, 0, err
		}
		info, err := r.cfg.Stream.Info(ctx)
		if err != nil {
			return 0, 0, api.Errorf(api.ErrUnavailable, "strong read: the stream's last sequence is unknown: %w", err)
		}
		if last := info.State.LastSeq; last > tok.Seq {
			tok = r.cfg.Stream.Token(last)
		}
	}
	waited, err := r.await(ctx, tok, wait)
	return tok.Seq, waited, err
}

// answersAtOnce reports whether a read of spec needs no wait
// and no request to the server: its token is applied already, or it is
// eventual. The read itself still checks everything.
func (r *Reader) answersAtOnce(spec api.ReadSpec) bool {
	c := spec.Consistency
	return c == api.Eventual || (c != api.Strong && spec.Token.Seq <= r.cfg.Store.Applied())
}

func (r *Reader) unavailable(err error) error {
	return api.Errorf(api.ErrUnavailable, "replica %s is not serving: %w", r.cfg.Replica, err)
}

func (r *Reader) internal(op string, err error) error {
	r.log.Error().Err(err).Str("op", op).Msg("store read")
	return api.Errorf(api.ErrInternal, "replica %s: %s: %w", r.cfg.Replica, op, err)
}
