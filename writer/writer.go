package writer

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/tidemark/tidemark/internal/backoff"
	"github.com/tidemark/tidemark/internal/deadline"
	"github.com/tidemark/tidemark/internal/metrics"

	"github.com/tidemark/tidemark/wire"

	"github.com/tidemark/tidemark/api"

	"cmp"
	"context"
	"errors"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"
	"github.com/rs/zerolog"

	"github.com/tidemark/tidemark/stream"
)

// Defaults of Config.
const (
	// DefaultRetryTimeout bounds how long one write keeps retrying transient
	// failures (no responders while JetStream elects a leader, timeouts).
	DefaultRetryTimeout = 10 * time.Second
	// DefaultAttemptTimeout bounds one request to JetStream within a write.
	DefaultAttemptTimeout = 5 * time.Second
)

// maxRetryDelay caps the backoff between two attempts of one request.
const maxRetryDelay = time.Second

// Config configures a Writer.
type Config struct {
	// Stream is the stream writes are published to.
	Stream *stream.Stream
	// MaxValueBytes is the largest value a put may carry;
	// api.DefaultMaxValueBytes when 0.
	MaxValueBytes int
	// Logger receives the writer's debug lines (retries).
	Logger zerolog.Logger
	// RetryTimeout bounds how long a write retries transient failures before
	// it fails with api.ErrUnavailable; DefaultRetryTimeout when 0. The
	// write's context may end it sooner.
	RetryTimeout time.Duration
	// AttemptTimeout bounds each request to JetStream; a request that times
	// out is retried with the same message id. DefaultAttemptTimeout when 0.
	AttemptTimeout time.Duration
	// GroupCommit publishes the writes waiting at the same moment to the
	// stream together, as JetStream atomic batches: a server that fsyncs
	// every write (sync_interval: always) then makes one fsync for many
	// writes instead of one each. Each write keeps its own revision, write
	// id and conditions. Where the server does not fsync every write,
	// batches cost more than they save: leave it off.
	GroupCommit bool
	// GroupCommitMin is the fewest writes that group commit sends as one
	// batch; fewer are published one by one. DefaultGroupCommitMin when 0.
	GroupCommitMin int
	// TxnMaxOps is the most ops a transaction may hold:
	// api.DefaultTxnMaxOps when 0, at most MaxTxnOps (what the server
	// takes in one atomic batch).
	TxnMaxOps int
	// TxnMaxBytes bounds the keys and values of a transaction:
	// api.DefaultTxnMaxBytes when 0.
	TxnMaxBytes int
	// Records reads keys from the replicas. A conditional write asks it,
	// with strong consistency, for the current revision of a key none of
	// whose messages the stream holds any more (removed by limits or a
	// purge); without it such a write fails with api.ErrUnavailable.
	Records Records
}

// Records reads a key's record from the replicas: a replica.Local, or the
// NATS client of the reader services.
type Records interface {
	Get(ctx context.Context, req api.GetRequest) (api.GetResult, error)
}

// Writer publishes writes to the stream. It is safe for concurrent use.
type Writer struct {
	stream         *stream.Stream
	pub            *publisher
	maxValueBytes  int
	retryTimeout   time.Duration
	attemptTimeout time.Duration
	log            zerolog.Logger

	txnMaxOps   int
	txnMaxBytes int

	records Records
	// removedFor is the id of the stream last seen to have removed
	// history (readRemoved): a stream never gets it back.
	removedFor atomic.Pointer[string]
	sessions   sessions
	metrics    writeMetrics // Prometheus metrics (metrics.go)
}

// New returns a Writer for cfg, with defaults for the fields left zero.
func New(cfg Config) *Writer {
	w := &Writer{
		stream:         cfg.Stream,
		maxValueBytes:  cfg.MaxValueBytes,
		retryTimeout:   cfg.RetryTimeout,
		attemptTimeout: cfg.AttemptTimeout,
		log:            cfg.Logger,
		records:        cfg.Records,
		sessions:       sessions{max: DefaultMaxSessions},
		txnMaxOps:      min(cmp.Or(cfg.TxnMaxOps, api.DefaultTxnMaxOps), MaxTxnOps),
		txnMaxBytes:    cmp.Or(cfg.TxnMaxBytes, api.DefaultTxnMaxBytes),
	}
	if w.maxValueBytes <= 0 {
		w.maxValueBytes = api.DefaultMaxValueBytes
	}
	if w.retryTimeout <= 0 {
		w.retryTimeout = DefaultRetryTimeout
	}
	if w.attemptTimeout <= 0 {
		w.attemptTimeout = DefaultAttemptTimeout
	}
	if cfg.Stream != nil {
		w.pub = newPublisher(cfg.Stream.JetStream().Conn(), w.attemptTimeout, cfg.GroupCommit, cmp.Or(cfg.GroupCommitMin, DefaultGroupCommitMin), &w.metrics)
	}
	return w
}

// MaxValueBytes returns the largest value a put may carry: the configured
// limit, or less where the NATS server's max_payload cannot carry it.
func (w *Writer) MaxValueBytes() int { return w.ValueLimit().Bytes }

// ValueLimit returns the largest value a put may carry and why, for the
// max_payload of the server the writer is connected to now.
func (w *Writer) ValueLimit() wire.ValueLimit {
	var maxPayload int64
	if w.stream != nil {
		maxPayload = w.stream.JetStream().Conn().MaxPayload()
	}
	return wire.NewValueLimit(w.maxValueBytes, maxPayload)
}

// Write publishes a put or a delete and returns its revision and the
// session's new token. Invalid requests, and tokens of another stream or
// ahead of it, fail at once and publish nothing. A write retried with the
// same WriteID within the stream's duplicate window is stored once and
// returns the same revision. A conditional write that loses fails with
// api.ErrRevisionMismatch; a write that cannot reach the stream in time
// fails with api.ErrUnavailable.
func (w *Writer) Write(ctx context.Context, req api.WriteRequest) (res api.WriteResult, err error) {
	start := time.Now()
	defer func() { w.metrics.observe(req.Op, start, err) }()
	failed := api.WriteResult{Key: req.Key, Token: req.Token}
	if err := w.validate(req); err != nil {
		return failed, err
	}
	ctx, id, ss, done, err := w.admit(ctx, req.Token, req.WriteID, req.Session)
	if err != nil {
		return failed, err
	}
	defer done()
	return w.write(ctx, req, id, ss)
}

// admit starts a write or a transaction: it bounds ctx by the retry
// timeout (whose timer starts only if something waits on it other than the
// requests, which retry bounds), checks the token, names the write (its
// write id, or a new one) and takes its session, if it has one, for the
// whole write. done ends all that; it is nil when admit fails.
func (w *Writer) admit(ctx context.Context, tok api.Token, writeID, sessionID string) (_ context.Context, id string, ss *session, done func(), err error) {
	ctx, cancel := deadline.WithTimeout(ctx, w.retryTimeout)
	if err := w.checkToken(ctx, tok); err != nil {
		cancel()
		return ctx, "", nil, nil, err
	}
	if id = writeID; id == "" {
		id = nuid.Next()
	}
	if sessionID != "" {
		ss = w.sessions.acquire(sessionID)
	}
	return ctx, id, ss, func() {
		if ss != nil {
			w.sessions.release(ss)
		}
		cancel()
	}, nil
}

// checkToken checks a request's token against the stream, looking at the
// stream again when the token names another one.
func (w *Writer) checkToken(ctx context.Context, tok api.Token) error {
	err := w.stream.CheckToken(ctx, tok)
	if errors.Is(err, api.ErrTokenStreamMismatch) && w.stream.Refresh(ctx) == nil {
		// The stream may have been recreated since this writer last looked.
		err = w.stream.CheckToken(ctx, tok)
	}
	return err
}

// write publishes a validated request with write id id; ss is its session,
// locked, or nil.
func (w *Writer) write(ctx context.Context, req api.WriteRequest, id string, ss *session) (api.WriteResult, error) {
	failed := api.WriteResult{Key: req.Key, Token: req.Token}
	was := w.stream.ID()
	var at placed
	var err error
	switch {
	case req.IfRevision != 0:
		at, err = w.writeIfRevision(ctx, req, id, ss)
	case req.IfAbsent:
		at, err = w.writeIfAbsent(ctx, req, id, ss)
	case ss != nil:
		at, err = w.writeInSession(ctx, req, id, ss)
	default:
		at, err = w.publish(ctx, req, id, expectation{})
	}
	if err != nil {
		return failed, err
	}
	tok, err := w.answer(ctx, req.Token, was, at, id)
	if err != nil {
		if errors.Is(err, errLostHistory) {
			return api.WriteResult{Key: req.Key}, err
		}
		return failed, err
	}
	return api.WriteResult{Key: req.Key, Revision: at.seq, Token: tok}, nil
}

// errLostHistory marks the failure of lostHistory, whose reply carries no
// token.
var errLostHistory = errors.New("the stream lost history the token covers")

// answer returns the session's token after a write (or a transaction)
// that the stream holds at at, published when the stream's identity was
// was, its message at at.seq carrying message id id; or why the write must
// not be acknowledged (wrapping errLostHistory when the reply must carry
// no token).
func (w *Writer) answer(ctx context.Context, reqTok api.Token, was string, at placed, id string) (api.Token, error) {
	seq := at.seq
	if err := w.sameStream(ctx, was, seq, id); err != nil {
		return api.Token{}, err
	}
	w.stream.ObserveLast(seq)
	// The token is normally just the write's; a retried write answered from
	// the duplicate window may be older than the session's token, which must
	// not go back. A write that the stream took after it was recreated under
	// the request (sameStream) is stored there; but a session that sent a
	// token of the old stream must not be told that it went on from it:
	// the write is an unknown outcome to it, and its retry is refused for
	// that token, so the session starts again on the new stream. So is a
	// write stored as new behind the token of the same stream (lostHistory).
	tok := w.stream.Token(seq)
	if !reqTok.IsZero() && reqTok.Stream != tok.Stream {
		// Checked against the old identity, before this writer (by this
		// write or a concurrent one) took on the new one.
		return api.Token{}, api.Errorf(api.ErrUnavailable,
			"stream %s was recreated while the write was in flight; the write is in the new stream, which the request's token does not name: start the session again", w.stream.Name())
	}
	if err := w.lostHistory(reqTok, at); err != nil {
		// The request's token points at writes the stream no longer
		// holds, and the write sits behind it: return neither.
		return api.Token{}, err
	}
	return reqTok.Merge(tok)
}

// lostHistory fails a write that the stream stored as new at or below the
// sequence of the request's token, a token of the same stream: a new write
// goes after everything the stream holds, so the stream no longer holds
// writes that it acknowledged and the session saw (its store was restored
// from an older copy, its leader lost its tail). The write is stored, but
// the session's token covers other writes at its place: to the session its
// outcome is unknown (api.ErrUnavailable). The stream is marked suspect, so
// that the next token check reads its last sequence from the server and
// refuses the token as one from the future: the session starts from a
// fresh read. A write stored earlier (a duplicate ack, a write found by its
// id) may well be at or below the token: a retry of a write the session
// has seen.
func (w *Writer) lostHistory(reqTok api.Token, at placed) error {
	if at.earlier || reqTok.IsZero() || at.seq > reqTok.Seq {
		return nil
	}
	w.stream.Suspect()
	return api.Errorf(api.ErrUnavailable,
		"stream %s lost acknowledged writes that the request's token covers: the write was stored as new at %d, at or below the token's %d, so its outcome is unknown to the session; start the session again from a fresh read, without that token: %w",
		w.stream.Name(), at.seq, reqTok.Seq, errLostHistory)
}

// placed is where the stream holds a write.
type placed struct {
	seq uint64 // the write's stream sequence
	// earlier: the stream held it before this request stored anything
	// (a duplicate ack, or found by its write id): a retry.
	earlier bool
}

// sameStream makes sure that the token of a write stored at seq names the
// stream that stored it: after a sign that the stream was deleted and
// recreated (stream.Stream.Suspected), the handle takes on the identity of
// the stream that now has the name, and a write that was in flight across
// the change is answered only if the new stream holds it at seq. Which
// stream stored it is otherwise unknown, and it fails with
// api.ErrUnavailable: the client retries it with its write id.
func (w *Writer) sameStream(ctx context.Context, was string, seq uint64, id string) error {
	if !w.stream.Suspected() && w.stream.ID() == was {
		return nil
	}
	if err := w.stream.Refresh(ctx); err != nil {
		return err
	}
	if w.stream.ID() == was {
		return nil
	}
	m, err := w.getMsg(ctx, seq, "")
	if err != nil {
		return err
	}
	if m == nil || msgID(m) != id {
		return api.Errorf(api.ErrUnavailable,
			"stream %s was recreated while the write was in flight; its outcome is unknown: retry it with its write id", w.stream.Name())
	}
	return nil
}

// writeInSession publishes an unconditional write of a session after
// claiming its number (session.go).
func (w *Writer) writeInSession(ctx context.Context, req api.WriteRequest, id string, ss *session) (placed, error) {
	c, err := w.claimNumber(ctx, req, id, ss)
	if err != nil {
		return placed{}, err
	}
	at, err := w.publish(ctx, req, id, expectLastFor(c.subject, c.last.seq))
	if wire.WrongLastSeq(err) {
		ss.last.ok = false
		return w.overtaken(ctx, req, id, c)
	}
	return at, err
}

// publishIf publishes req only while its key's last sequence is expect. A
// session's write (ss not nil) goes to the stream in one atomic batch with
// the marker that claims its number (session.go). A lost condition fails
// with JetStream's wrong-last-sequence error.
func (w *Writer) publishIf(ctx context.Context, req api.WriteRequest, id string, ss *session, expect uint64) (placed, error) {
	if ss == nil {
		return w.publish(ctx, req, id, expectLast(expect))
	}
	for round := 1; ; round++ {
		c, err := w.order(ctx, req, id, ss)
		if err != nil {
			return placed{}, err
		}
		if c.mine {
			// An earlier attempt stored the batch: the write follows its marker.
			return w.stored(ctx, req, id, c.last.seq+1, nil)
		}
		mk := stream.MarkerMsg(w.stream.Subject(), req.Session, req.SessionSeq)
		mk.Header.Set(stream.HeaderMsgID, MarkerID(id))
		expectLast(c.last.seq).set(mk)
		m := stream.Message(w.stream.Subject(), req)
		m.Header.Set(stream.HeaderMsgID, id)
		expectLast(expect).set(m)
		var seq uint64
		known := w.stream.KnownLast()
		err = w.retry(ctx, "publish batch", func(ctx context.Context) error {
			var err error
			seq, err = stream.PublishBatch(ctx, w.stream.JetStream().Conn(), []*nats.Msg{mk, m})
			return err
		})
		ss.last.ok = false
		switch {
		case err == nil:
			if seq <= known {
				w.stream.Suspect() // as in publishMsg
			}
			ss.last = marker{seq: seq - 1, n: req.SessionSeq, id: MarkerID(id), ok: true}
			return placed{seq: seq}, nil
		case wire.APIErrorCode(err) == errCodeBatchDuplicate && round == 1:
			continue // stored by an earlier attempt: order finds its marker
		case wire.APIErrorCode(err) == errCodeBatchDuplicate:
			return placed{}, api.Errorf(api.ErrWriteIDReused, "write id %q already names a stored write; use a new write id for a new write", id)
		case wire.WrongLastSeq(err):
			last, lerr := w.lastMarker(ctx, req.Session)
			if lerr != nil {
				return placed{}, lerr
			}
			ss.last = last
			if last.seq == c.last.seq {
				return placed{}, err // the key's condition, not the session's
			}
			if round >= maxClaimRounds {
				return placed{}, api.Errorf(api.ErrUnavailable, "session %s: write %d lost its claim %d times to concurrent writes of the session", req.Session, req.SessionSeq, round)
			}
		default:
			return placed{}, w.publishError(req, err)
		}
	}
}

// errCodeBatchDuplicate is JetStream's refusal of an atomic batch that holds
// a message id already in the duplicate window.
const errCodeBatchDuplicate = 10201

// validate checks everything about req that needs no server.
func (w *Writer) validate(req api.WriteRequest) error {
	if err := req.Validate(); err != nil {
		return err
	}
	if req.Op == api.OpPut {
		return w.ValueLimit().Check(int64(len(req.Value)))
	}
	return nil
}

// publish publishes req with message id id and the expectation exp,
// retrying transient failures with the same id, and returns where the ack
// says the stream holds it. An ack from the duplicate window is checked to
// be req's own write.
func (w *Writer) publish(ctx context.Context, req api.WriteRequest, id string, exp expectation) (placed, error) {
	ack, err := w.publishMsg(ctx, req, stream.Message(w.stream.Subject(), req), id, exp)
	if err != nil {
		return placed{}, err
	}
	if ack.Duplicate {
		// The write id is in the duplicate window: a retry of this write,
		// or another write that reuses its id.
		w.log.Debug().Str("key", req.Key).Str("write_id", id).Uint64("seq", ack.Sequence).Msg("duplicate write")
		return w.stored(ctx, req, id, ack.Sequence, nil)
	}
	return placed{seq: ack.Sequence}, nil
}

// publishMsg publishes m, a message of req, with message id id and the
// expectation exp, retrying transient failures with the same id.
func (w *Writer) publishMsg(ctx context.Context, req api.WriteRequest, m *nats.Msg, id string, exp expectation) (*jetstream.PubAck, error) {
	m.Header.Set(stream.HeaderMsgID, id)
	exp.set(m)
	known := w.stream.KnownLast()
	var ack *jetstream.PubAck
	err := w.retry(ctx, "publish", func(ctx context.Context) error {
		var err error
		ack, err = w.pub.publish(ctx, m)
		return err
	})
	if err != nil {
		return nil, w.publishError(req, err)
	}
	if ack.Stream != w.stream.Name() {
		return nil, api.Errorf(api.ErrInternal, "write of %q was stored in stream %s, not %s", req.Key, ack.Stream, w.stream.Name())
	}
	if !ack.Duplicate && ack.Sequence <= known {
		// Stored below the last sequence seen before it was sent: not in
		// the stream that sequence was seen in.
		w.stream.Suspect()
	}
	return ack, nil
}

// expectation is what the stream must hold for a message to be stored:
// nothing (the zero value), or a last sequence of a subject, which the
// server checks as it stores the message, alone or in an atomic batch.
type expectation struct {
	on      bool
	subject string // the message's own subject when empty
	seq     uint64 // 0: no message
}

// expectLast expects the message's own subject to have last sequence seq.
func expectLast(seq uint64) expectation { return expectation{on: true, seq: seq} }

// expectLastFor expects subject to have last sequence seq.
func expectLastFor(subject string, seq uint64) expectation {
	return expectation{on: true, subject: subject, seq: seq}
}

// set puts e into m's headers.
func (e expectation) set(m *nats.Msg) {
	if !e.on {
		return
	}
	m.Header.Set(jetstream.ExpectedLastSubjSeqHeader, strconv.FormatUint(e.seq, 10))
	if e.subject != "" {
		m.Header.Set(jetstream.ExpectedLastSubjSeqSubjHeader, e.subject)
	}
}

// publishError maps a publish failure that retry gave up on to a sentinel.
func (w *Writer) publishError(req api.WriteRequest, err error) error {
	var apiErr *jetstream.APIError
	switch {
	case errors.Is(err, api.ErrUnavailable), wire.WrongLastSeq(err):
		return err
	case errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamMessageExceedsMaximum:
		return api.Errorf(api.ErrValueTooLarge, "value is %d bytes, over the stream's maximum message size", len(req.Value))
	case errors.Is(err, nats.ErrMaxPayload):
		return api.Errorf(api.ErrValueTooLarge, "value is %d bytes, over the NATS maximum payload of %d bytes (with headers)", len(req.Value), w.stream.JetStream().Conn().MaxPayload())
	default:
		return w.requestError("publish", err)
	}
}

// requestError maps a failed request to the stream that is not transient.
func (w *Writer) requestError(what string, err error) error {
	if wire.Closed(err) {
		return api.Errorf(api.ErrUnavailable, "stream %s: %s: NATS connection closed", w.stream.Name(), what)
	}
	return api.Errorf(api.ErrInternal, "stream %s: %s: %w", w.stream.Name(), what, err)
}

// retry calls fn, each call bounded by the attempt timeout, until it succeeds,
// fails with an error that is not transient (returned as is), or ctx ends
// (an error wrapping api.ErrUnavailable, whatever the last failure was). A
// call that ctx ends sooner runs in ctx; otherwise in a context of its own,
// which is then the write's only timer (deadline.Within).
func (w *Writer) retry(ctx context.Context, what string, fn func(ctx context.Context) error) error {
	b := backoff.Backoff{Max: maxRetryDelay}
	start := time.Now()
	for attempt := 1; ; attempt++ {
		actx, cancel := deadline.Within(ctx, w.attemptTimeout)
		err := fn(actx)
		cancel()
		if err == nil || (ctx.Err() == nil && !wire.Transient(err)) {
			return err
		}
		if ctx.Err() == nil {
			w.log.Debug().Err(err).Str("stream", w.stream.Name()).Str("request", what).Int("attempt", attempt).Msg("stream request failed; retrying")
			if b.Wait(ctx) == nil {
				continue
			}
		}
		return api.Errorf(api.ErrUnavailable, "stream %s: %s: no answer after %d attempts in %v: %v",
			w.stream.Name(), what, attempt, time.Since(start).Round(time.Millisecond), err)
	}
}

// getMsg returns the message at seq or, with a subject, the first message of
// that subject at or after seq; nil when there is none.
func (w *Writer) getMsg(ctx context.Context, seq uint64, subject string) (*jetstream.RawStreamMsg, error) {
	var opts []jetstream.GetMsgOpt
	if subject != "" {
		opts = append(opts, jetstream.WithGetMsgSubject(subject))
	}
	return w.get(ctx, "get message", func(ctx context.Context, h jetstream.Stream) (*jetstream.RawStreamMsg, error) {
		return h.GetMsg(ctx, seq, opts...)
	})
}

// lastMsg returns the last message of subject; nil when there is none.
func (w *Writer) lastMsg(ctx context.Context, subject string) (*jetstream.RawStreamMsg, error) {
	return w.get(ctx, "get last message", func(ctx context.Context, h jetstream.Stream) (*jetstream.RawStreamMsg, error) {
		return h.GetLastMsgForSubject(ctx, subject)
	})
}

func (w *Writer) get(ctx context.Context, what string, fn func(context.Context, jetstream.Stream) (*jetstream.RawStreamMsg, error)) (*jetstream.RawStreamMsg, error) {
	var m *jetstream.RawStreamMsg
	err := w.retry(ctx, what, func(ctx context.Context) error {
		var err error
		m, err = fn(ctx, w.stream.Handle())
		return err
	})
	switch {
	case errors.Is(err, jetstream.ErrMsgNotFound):
		return nil, nil
	case errors.Is(err, api.ErrUnavailable):
		return nil, err
	case err != nil:
		return nil, w.requestError(what, err)
	}
	return m, nil
}

// Collector returns the writer's Prometheus metrics: writes by operation
// and outcome, and write latency. Register it once per registry.
func (w *Writer) Collector() prometheus.Collector {
	w.metrics.init()
	return metrics.Collectors{w.metrics.writes, w.metrics.seconds, w.metrics.batches, w.metrics.batched}
}
