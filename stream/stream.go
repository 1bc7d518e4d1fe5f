package stream

import (
	"github.com/tidemark/tidemark/internal/backoff"

	"github.com/tidemark/tidemark/api"

	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Defaults of the stream definition.
const (
	DefaultName            = "TIDEMARK"
	DefaultSubject         = "tidemark.kv"
	DefaultDuplicateWindow = 2 * time.Minute
)

// metaID is the stream metadata key that holds the stream's identity.
const metaID = "tidemark_id"

// Config defines the stream.
type Config struct {
	// Name is the JetStream stream name.
	Name string
	// Subject is the subject prefix; the stream holds Subject.>.
	Subject string
	// Replicas is the JetStream replication factor (R1, R3, ...); 0 picks
	// R3 when the NATS cluster has at least three servers, else R1.
	Replicas int
	// MaxAge bounds how long messages are kept; 0 keeps them forever.
	MaxAge time.Duration
	// MaxBytes bounds the stream size; 0 or -1 is unlimited.
	MaxBytes int64
	// DuplicateWindow is how long a write id is remembered for deduplication.
	DuplicateWindow time.Duration
	// Reconfigure lets Ensure change an existing stream whose replicas or
	// limits differ from this configuration. Without it Ensure keeps the
	// stream as it is and reports the differences (Stream.Drift), so that a
	// misconfigured writer cannot shrink replication or make the stream
	// drop messages that replicas still need.
	Reconfigure bool
}

func (c *Config) setDefaults() {
	if c.Name == "" {
		c.Name = DefaultName
	}
	if c.Subject == "" {
		c.Subject = DefaultSubject
	}
	if c.MaxBytes == 0 {
		c.MaxBytes = -1
	}
	if c.DuplicateWindow == 0 {
		c.DuplicateWindow = DefaultDuplicateWindow
	}
}

// IDOf returns the Tidemark identity recorded in a stream's configuration,
// or "" when it has none.
func IDOf(cfg jetstream.StreamConfig) string { return cfg.Metadata[metaID] }

// Stream is a handle on the Tidemark stream: its identity, subjects and the
// JetStream calls the roles make against it. It is safe for concurrent use.
type Stream struct {
	js      jetstream.JetStream
	cfg     Config
	ident   atomic.Pointer[identity] // the stream's identity (identity.go)
	suspect atomic.Bool              // the identity may have changed (identity.go)
	handle  jetstream.Stream
	lastMu  sync.Mutex
	last    uint64     // highest last sequence seen; only grows
	refresh *lastRound // the last-sequence request in flight, or nil
	queued  *lastRound // the request that starts when refresh ends, or nil
	drift   []string   // settings Ensure kept though configured otherwise
}

// Ensure creates the stream, or brings an existing one's managed settings in
// line with cfg, and returns a handle on it. A new stream gets a fresh random
// identity, so tokens of an older stream of the same name are rejected.
func Ensure(ctx context.Context, js jetstream.JetStream, cfg Config) (*Stream, error) {
	cfg.setDefaults()
	if cfg.Replicas == 0 {
		cfg.Replicas = 1
		if len(js.Conn().Servers()) >= 3 {
			cfg.Replicas = 3
		}
	}
	want := jetstream.StreamConfig{
		Name:        cfg.Name,
		Description: "Tidemark replication stream",
		Subjects:    []string{cfg.Subject + ".>"},
		Retention:   jetstream.LimitsPolicy,
		Discard:     jetstream.DiscardOld,
		Storage:     jetstream.FileStorage,
		Replicas:    cfg.Replicas,
		MaxAge:      cfg.MaxAge,
		MaxBytes:    cfg.MaxBytes,
		MaxMsgs:     -1,
		// Every write of a key must stay until a replica has applied it:
		// no per-subject compaction.
		MaxMsgsPerSubject: -1,
		Duplicates:        cfg.DuplicateWindow,
		DenyDelete:        true,
		AllowDirect:       true,
		// A conditional write of a session goes to the stream as one
		// atomic batch with its session's order marker (package writer).
		AllowAtomicPublish: true,
	}
	var lookup backoff.Backoff
	for attempt := 0; ; attempt++ {
		h, err := js.Stream(ctx, cfg.Name)
		switch {
		case errors.Is(err, jetstream.ErrStreamNotFound):
			id, err := newID()
			if err != nil {
				return nil, err
			}
			create := want
			create.Metadata = map[string]string{metaID: id}
			h, err = js.CreateStream(ctx, create)
			if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) && attempt < 3 {
				continue // another process created it first
			}
			if err != nil && attempt < 5 && ctx.Err() == nil {
				// The server may still be removing the files of a stream of
				// the same name ("error creating store for stream").
				if werr := lookup.Wait(ctx); werr == nil {
					continue
				}
			}
			if err != nil {
				return nil, fmt.Errorf("create stream %s: %w", cfg.Name, err)
			}
			return newStream(js, cfg, h)
		case err != nil:
			// JetStream may still be forming (a cluster electing its meta
			// leader) or the server briefly away: try again until ctx ends.
			if ctx.Err() != nil {
				return nil, fmt.Errorf("look up stream %s: %w", cfg.Name, err)
			}
			if err := lookup.Wait(ctx); err != nil {
				return nil, fmt.Errorf("look up stream %s: %w", cfg.Name, err)
			}
			attempt--
			continue
		}
		have := h.CachedInfo().Config
		if have.Storage != jetstream.FileStorage {
			return nil, fmt.Errorf("stream %s uses %s storage; Tidemark needs file storage so that acknowledged writes survive a restart", cfg.Name, have.Storage)
		}
		if have.Retention != jetstream.LimitsPolicy || have.MaxMsgsPerSubject > 0 {
			return nil, fmt.Errorf("stream %s keeps messages by %s retention with %d per subject; Tidemark needs limits retention with every write kept", cfg.Name, have.Retention, have.MaxMsgsPerSubject)
		}
		drift := driftOf(have, want)
		// Atomic publishes only add a way to write: a stream made before
		// the writer needed them gets them without Reconfigure.
		if have.Metadata[metaID] != "" && have.AllowAtomicPublish && (len(drift) == 0 || !cfg.Reconfigure) {
			s, err := newStream(js, cfg, h)
			if s != nil {
				s.drift = drift
			}
			return s, err
		}
		upd := have
		if cfg.Reconfigure || have.Metadata[metaID] == "" {
			upd.Subjects, upd.Replicas, upd.MaxAge, upd.MaxBytes = want.Subjects, want.Replicas, want.MaxAge, want.MaxBytes
			upd.Duplicates, upd.AllowDirect, upd.DenyDelete = want.Duplicates, want.AllowDirect, want.DenyDelete
			drift = nil
		}
		upd.AllowAtomicPublish = true
		upd.Metadata = maps(have.Metadata)
		if upd.Metadata[metaID] == "" {
			id, err := newID()
			if err != nil {
				return nil, err
			}
			upd.Metadata[metaID] = id
		}
		h, err = js.UpdateStream(ctx, upd)
		if err != nil {
			return nil, fmt.Errorf("update stream %s: %w", cfg.Name, err)
		}
		s, err := newStream(js, cfg, h)
		if s != nil {
			s.drift = drift
		}
		return s, err
	}
}

// Open returns a handle on an existing stream, waiting (with backoff) until
// it exists or ctx ends. Roles that only read the stream use Open so that a
// misconfigured one never changes it.
func Open(ctx context.Context, js jetstream.JetStream, cfg Config) (*Stream, error) {
	cfg.setDefaults()
	var b backoff.Backoff
	for {
		h, err := js.Stream(ctx, cfg.Name)
		if err == nil {
			return newStream(js, cfg, h)
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("open stream %s: %w", cfg.Name, err)
		}
		if err := b.Wait(ctx); err != nil {
			return nil, fmt.Errorf("open stream %s: %w", cfg.Name, err)
		}
	}
}

func newStream(js jetstream.JetStream, cfg Config, h jetstream.Stream) (*Stream, error) {
	info := h.CachedInfo()
	id := info.Config.Metadata[metaID]
	if !api.ValidStreamID(id) {
		return nil, fmt.Errorf("stream %s has no Tidemark identity (metadata %s); was it created by another tool?", cfg.Name, metaID)
	}
	if !slices.Contains(info.Config.Subjects, cfg.Subject+".>") {
		return nil, fmt.Errorf("stream %s does not hold subjects %s.>", cfg.Name, cfg.Subject)
	}
	s := &Stream{js: js, cfg: cfg, handle: h, last: info.State.LastSeq}
	s.ident.Store(&identity{id: id, created: info.Created})
	s.watchIdentity()
	return s, nil
}

// driftOf describes how an existing stream's managed settings differ from
// the configured ones.
func driftOf(have, want jetstream.StreamConfig) []string {
	var d []string
	add := func(name string, h, w any) { d = append(d, fmt.Sprintf("%s is %v, configured %v", name, h, w)) }
	if !slices.Equal(have.Subjects, want.Subjects) {
		add("subjects", have.Subjects, want.Subjects)
	}
	if have.Replicas != want.Replicas {
		add("replicas", have.Replicas, want.Replicas)
	}
	if have.MaxAge != want.MaxAge {
		add("max age", have.MaxAge, want.MaxAge)
	}
	if have.MaxBytes != want.MaxBytes {
		add("max bytes", have.MaxBytes, want.MaxBytes)
	}
	if have.Duplicates != want.Duplicates {
		add("duplicate window", have.Duplicates, want.Duplicates)
	}
	if have.AllowDirect != want.AllowDirect {
		add("allow direct", have.AllowDirect, want.AllowDirect)
	}
	if have.DenyDelete != want.DenyDelete {
		add("deny delete", have.DenyDelete, want.DenyDelete)
	}
	return d
}

// Drift lists how the stream's settings differ from the configuration it
// was ensured with, when Ensure kept them (Config.Reconfigure unset).
func (s *Stream) Drift() []string { return s.drift }

// Replicas returns the stream's replication factor.
func (s *Stream) Replicas() int { return s.handle.CachedInfo().Config.Replicas }

func maps(m map[string]string) map[string]string {
	out := make(map[string]string, len(m)+1)
	for k, v := range m {
		out[k] = v
	}
	return out
}

func newID() (string, error) {
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("stream id: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}

// ID returns the stream's identity, the one written into tokens.
func (s *Stream) ID() string { return s.ident.Load().id }

// Name returns the JetStream stream name.
func (s *Stream) Name() string { return s.cfg.Name }

// Subject returns the subject prefix of the stream.
func (s *Stream) Subject() string { return s.cfg.Subject }

// JetStream returns the JetStream context the stream was opened with.
func (s *Stream) JetStream() jetstream.JetStream { return s.js }

// KeySubject returns the stream subject that key is written on.
func (s *Stream) KeySubject(key string) string { return KeySubject(s.cfg.Subject, key) }

// Token returns a token of this stream at seq.
func (s *Stream) Token(seq uint64) api.Token { return api.NewToken(s.ID(), seq) }

// ObserveLast records that the stream's last sequence is at least seq, as
// learned from a publish ack or a delivered message.
func (s *Stream) ObserveLast(seq uint64) {
	s.lastMu.Lock()
	if seq > s.last {
		s.last = seq
	}
	s.lastMu.Unlock()
}

// KnownLast returns the highest last sequence seen, without asking the server.
func (s *Stream) KnownLast() uint64 {
	s.lastMu.Lock()
	defer s.lastMu.Unlock()
	return s.last
}

// Info fetches the stream's current state from the server.
func (s *Stream) Info(ctx context.Context) (*jetstream.StreamInfo, error) {
	info, err := s.handle.Info(ctx)
	if err != nil {
		return nil, fmt.Errorf("stream %s info: %w", s.cfg.Name, err)
	}
	s.ObserveLast(info.State.LastSeq)
	return info, nil
}

// LastSeqTimeout bounds the request LastSeq shares between its callers. It
// is the request's own bound: no caller's context cancels a request that
// others wait on, and each caller stops waiting when its own context ends.
const LastSeqTimeout = 5 * time.Second

// TokenGrace is how long CheckToken keeps asking when the server's last
// sequence is behind a token before it calls the token one from the future.
// On a cluster the stream's info can lag behind what followers deliver and
// what has been acknowledged, so a genuine token may briefly look ahead;
// a token really ahead of the stream is rejected after this grace.
const TokenGrace = 500 * time.Millisecond

// lastRound is one last-sequence request that concurrent callers share.
type lastRound struct {
	done chan struct{} // closed when last and err are set
	last uint64
	err  error
}

// LastSeq returns the stream's last sequence, asking the server: the answer
// comes from a request sent after the call began, so it covers every write
// acknowledged before it. Concurrent callers share one request (callers
// that arrive while one is in flight share the next), which is bounded by
// LastSeqTimeout and not by any caller's ctx; each caller waits until its
// own ctx ends.
func (s *Stream) LastSeq(ctx context.Context) (uint64, error) {
	s.lastMu.Lock()
	var r *lastRound
	switch {
	case s.refresh == nil:
		r = &lastRound{done: make(chan struct{})}
		s.refresh = r
		go s.runLastRounds(context.WithoutCancel(ctx), r)
	case s.queued == nil:
		// The request in flight may predate writes this caller has seen
		// acknowledged: wait for the next one.
		s.queued = &lastRound{done: make(chan struct{})}
		r = s.queued
	default:
		r = s.queued
	}
	s.lastMu.Unlock()
	select {
	case <-r.done:
		return r.last, r.err
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

// runLastRounds sends the request of r, then of each round queued while one
// was in flight, until none is queued. base carries the first caller's
// values but not its cancellation; each request is bounded by
// LastSeqTimeout, so the goroutine ends within that of its last round.
func (s *Stream) runLastRounds(base context.Context, r *lastRound) {
	for r != nil {
		ctx, cancel := context.WithTimeout(base, LastSeqTimeout)
		_, err := s.Info(ctx)
		cancel()
		s.lastMu.Lock()
		r.last, r.err = s.last, err
		close(r.done)
		r, s.queued = s.queued, nil
		s.refresh = r
		s.lastMu.Unlock()
	}
}

// CheckToken verifies that t belongs to this stream and is not ahead of its
// last sequence. It asks the server only when t is ahead of what this
// process has already seen, and while the server's answer is behind t it
// asks again, with backoff, for up to TokenGrace (bounded by ctx) before it
// fails with ErrTokenFromFuture: a stale answer (a cluster's info lagging
// its followers) never rejects a genuine token, and a token really ahead is
// still rejected quickly.
func (s *Stream) CheckToken(ctx context.Context, t api.Token) error {
	if s.Suspected() {
		// The connection came back, or the stream may have been replaced:
		// what this process knew of the stream may be past what it holds
		// now (a store restored from an older copy). A failure leaves the
		// checks below to the server's answers.
		_ = s.Refresh(ctx)
	}
	if err := t.Check(s.ID()); err != nil {
		return err
	}
	if t.Seq <= s.KnownLast() {
		return nil
	}
	deadline := time.Now().Add(TokenGrace)
	retry := backoff.Backoff{Min: 10 * time.Millisecond, Max: 100 * time.Millisecond}
	for {
		last, err := s.LastSeq(ctx)
		if err != nil {
			return api.Errorf(api.ErrUnavailable, "stream %s: %w", s.cfg.Name, err)
		}
		if t.Seq <= max(last, s.KnownLast()) {
			return nil
		}
		d := retry.Next()
		if time.Until(deadline) < d {
			return api.Errorf(api.ErrTokenFromFuture, "token sequence %d is ahead of the stream's last sequence %d", t.Seq, last)
		}
		if err := backoff.Sleep(ctx, d); err != nil {
			return api.Errorf(api.ErrUnavailable, "stream %s: %w", s.cfg.Name, err)
		}
	}
}

// Handle returns the JetStream stream handle, for direct gets and the like.
func (s *Stream) Handle() jetstream.Stream { return s.handle }
