// Package workload runs concurrent client sessions against Tidemark and
// records every operation in a history. Each session is sequential: it
// issues one operation at a time (put, delete, get, scan on keys shared by
// every session and on keys of its own, every value unique), carries its
// session token from reply to request, and sends each request to a
// randomly chosen HTTP gateway or straight to the NATS services, with no
// stickiness. What it records is what the client saw: the checker decides
// whether that was allowed.
package workload

import (
	"github.com/tidemark/tidemark/wire"

	"github.com/tidemark/tidemark/api"

	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/tidemark/tidemark/chaos/history"
	"github.com/tidemark/tidemark/client"
)

// Defaults of Config.
const (
	DefaultSessions   = 8
	DefaultSharedKeys = 8
	DefaultOwnKeys    = 4
	DefaultReadWait   = 5 * time.Second
	// DefaultOpTimeout bounds one operation, above the gateway's write
	// timeout and a read's wait plus its reply margin.
	DefaultOpTimeout = 20 * time.Second
	// DefaultMaxThink is the longest pause between two operations of a
	// session.
	DefaultMaxThink = 20 * time.Millisecond
	// DefaultWatchProgress is how often an idle watcher gets a progress
	// event: short, so that a watcher whose replica stopped resumes on
	// another within a few seconds.
	DefaultWatchProgress = time.Second
	// DefaultWatchRelist is Config.WatchRelist's default.
	DefaultWatchRelist = 300
)

// Prefixes of the keys a workload writes.
const (
	SharedPrefix = "shared/"
	ownPrefix    = "s%03d/"
)

// Config configures a workload.
type Config struct {
	// Seed makes the choices of every session reproducible (the timing is not).
	Seed uint64
	// Sessions is the number of concurrent sessions.
	Sessions int
	// OpsPerSession, when > 0, stops each session after that many
	// operations; otherwise sessions run until Run's context ends.
	OpsPerSession int
	// SharedKeys and OwnKeys are how many keys all sessions share and how
	// many each session has to itself.
	SharedKeys, OwnKeys int
	// Gateways are base URLs of HTTP gateways ("http://127.0.0.1:8080").
	Gateways []string
	// NATS, when set, lets sessions call the services over NATS as well.
	NATS *nats.Conn
	// Subjects are the service subjects for NATS.
	Subjects wire.Subjects
	// Replicas are replica ids that reads may be pinned to.
	Replicas []string
	// NoTokens makes sessions send no token (a negative control: the
	// session guarantees are then not promised).
	NoTokens bool
	// SessionOrder sends every write with the session's id and a
	// sequence number (monotonic writes enforced by the writer and replicas).
	SessionOrder bool
	// ReadWait is the wait bound a read asks for.
	ReadWait time.Duration
	// OpTimeout bounds one operation.
	OpTimeout time.Duration
	// MaxThink is the longest pause between two operations of a session.
	MaxThink time.Duration
	// RunID is put into values and write ids so that two runs against the
	// same stream never collide; Seed when empty.
	RunID string
	// RacePairs is the number of racing pairs to run besides the sessions
	// (see race): two clients sending writes of one Tidemark session with
	// the same or adjacent session sequence at the same time, through two
	// gateways.
	RacePairs int
	// Reusers is the number of clients to run besides the sessions that
	// send a write id again with other content, and again with the same
	// content (see reuse).
	Reusers int
	// TTL gives one put in four a time to live of 1 to 3 seconds.
	TTL bool
	// Watchers is the number of watchers to run besides the sessions,
	// over NATS (see watch): the even ones watch the shared prefix, the
	// odd ones a session's own.
	Watchers int
	// WatchProgress is how often an idle watcher gets a progress event
	// (DefaultWatchProgress when 0).
	WatchProgress time.Duration
	// WatchRelist makes each watcher list again after a random
	// WatchRelist to 2*WatchRelist change events (DefaultWatchRelist
	// when 0; never when negative).
	WatchRelist int
}

func (c *Config) setDefaults() {
	if c.Sessions <= 0 {
		c.Sessions = DefaultSessions
	}
	if c.SharedKeys <= 0 {
		c.SharedKeys = DefaultSharedKeys
	}
	if c.OwnKeys <= 0 {
		c.OwnKeys = DefaultOwnKeys
	}
	if c.ReadWait <= 0 {
		c.ReadWait = DefaultReadWait
	}
	if c.OpTimeout <= 0 {
		c.OpTimeout = DefaultOpTimeout
	}
	if c.MaxThink < 0 {
		c.MaxThink = 0
	} else if c.MaxThink == 0 {
		c.MaxThink = DefaultMaxThink
	}
	if c.WatchProgress <= 0 {
		c.WatchProgress = DefaultWatchProgress
	}
	if c.WatchRelist == 0 {
		c.WatchRelist = DefaultWatchRelist
	}
	if c.RunID == "" {
		c.RunID = fmt.Sprintf("%d", c.Seed)
	}
}

// Run runs the sessions until each has done OpsPerSession operations or ctx
// ends, and returns every operation, by session and in issue order. An
// operation in flight when ctx ends is finished (bounded by OpTimeout), not
// abandoned, so that its outcome is known.
func Run(ctx context.Context, cfg Config) ([]history.Op, error) {
	ops, _, err := RunWatched(ctx, cfg)
	return ops, err
}

// RunWatched is Run that also returns what the watchers saw, each from its
// start until the sessions are done.
func RunWatched(ctx context.Context, cfg Config) ([]history.Op, []history.Watch, error) {
	cfg.setDefaults()
	if len(cfg.Gateways) == 0 && cfg.NATS == nil {
		return nil, nil, fmt.Errorf("workload: no gateway and no NATS connection")
	}
	if cfg.Watchers > 0 && cfg.NATS == nil {
		return nil, nil, fmt.Errorf("workload: watchers need a NATS connection")
	}
	hc := &http.Client{
		Timeout: cfg.OpTimeout,
		Transport: &http.Transport{
			MaxIdleConnsPerHost: cfg.Sessions,
			IdleConnTimeout:     30 * time.Second,
		},
	}
	defer hc.CloseIdleConnections()
	var nt *client.NATS
	if cfg.NATS != nil {
		nt = client.NewNATS(cfg.NATS, cfg.Subjects)
	}
	n := cfg.Sessions + 2*cfg.RacePairs + cfg.Reusers
	out := make([][]history.Op, n)
	mk := func(i int) *session {
		return &session{cfg: &cfg, id: i, http: hc, nats: nt, rng: newRand(cfg.Seed, i)}
	}
	watches := make([]history.Watch, cfg.Watchers)
	wctx, stopWatchers := context.WithCancel(ctx)
	defer stopWatchers()
	var watchers sync.WaitGroup
	for i := range cfg.Watchers {
		w := &watcher{cfg: &cfg, c: client.New(nt), rng: rand.New(rand.NewPCG(cfg.Seed, 0x77a7c4+uint64(i))), rec: &watches[i]}
		w.rec.ID, w.rec.Prefix = i, SharedPrefix
		if i%2 == 1 {
			w.rec.Prefix = fmt.Sprintf(ownPrefix, (i/2)%cfg.Sessions)
		}
		watchers.Add(1)
		go func() {
			defer watchers.Done()
			w.run(wctx)
		}()
	}
	var wg sync.WaitGroup
	for i := range cfg.Sessions {
		s := mk(i)
		wg.Add(1)
		go func() {
			defer wg.Done()
			out[i] = s.run(ctx)
		}()
	}
	for k := range cfg.RacePairs {
		i := cfg.Sessions + 2*k
		p, q := mk(i), mk(i+1)
		if len(cfg.Gateways) > 1 {
			p.gateway, q.gateway = cfg.Gateways[0], cfg.Gateways[1]
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			out[i], out[i+1] = race(ctx, k, p, q)
		}()
	}
	for k := range cfg.Reusers {
		i := cfg.Sessions + 2*cfg.RacePairs + k
		s := mk(i)
		wg.Add(1)
		go func() {
			defer wg.Done()
			out[i] = reuse(ctx, k, s)
		}()
	}
	wg.Wait()
	stopWatchers()
	watchers.Wait()
	var ops []history.Op
	for _, o := range out {
		ops = append(ops, o...)
	}
	sort.SliceStable(ops, func(a, b int) bool {
		if ops[a].Session != ops[b].Session {
			return ops[a].Session < ops[b].Session
		}
		return ops[a].Index < ops[b].Index
	})
	return ops, watches, nil
}

// newRand returns the random source of session i.
func newRand(seed uint64, i int) *rand.Rand { return rand.New(rand.NewPCG(seed, uint64(i)+1)) }

// session is one sequential client.
type session struct {
	cfg    *Config
	id     int
	http   *http.Client
	nats   *client.NATS
	rng    *rand.Rand
	token  api.Token
	writes uint64 // session sequence of the last write issued
	// gateway, when set, is the only path the session takes.
	gateway string
}

func (s *session) run(ctx context.Context) []history.Op {
	var ops []history.Op
	for i := 0; s.cfg.OpsPerSession <= 0 || i < s.cfg.OpsPerSession; i++ {
		if ctx.Err() != nil {
			break
		}
		op := s.next(i)
		octx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.OpTimeout)
		s.do(octx, &op)
		cancel()
		ops = append(ops, op)
		if s.cfg.MaxThink > 0 {
			t := time.NewTimer(time.Duration(s.rng.Int64N(int64(s.cfg.MaxThink))))
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
			}
		}
	}
	return ops
}

// next chooses the session's next operation.
func (s *session) next(index int) history.Op {
	op := history.Op{Session: s.id, Index: index}
	own := fmt.Sprintf(ownPrefix, s.id)
	key := func() string {
		if s.rng.IntN(2) == 0 {
			return fmt.Sprintf("%s%02d", SharedPrefix, s.rng.IntN(s.cfg.SharedKeys))
		}
		return fmt.Sprintf("%s%d", own, s.rng.IntN(s.cfg.OwnKeys))
	}
	switch n := s.rng.IntN(100); {
	case n < 32:
		op.Kind = history.Put
	case n < 40:
		op.Kind = history.Delete
	case n < 48:
		op.Kind = history.Txn
	case n < 85:
		op.Kind = history.Get
	default:
		op.Kind = history.Scan
	}
	switch op.Kind {
	case history.Put, history.Delete:
		op.Key = key()
		op.WriteID = fmt.Sprintf("w-%s-%d-%d", s.cfg.RunID, s.id, index)
		if op.Kind == history.Put {
			pad := strings.Repeat("x", s.rng.IntN(64))
			if s.rng.IntN(50) == 0 {
				pad = strings.Repeat("y", 16<<10+s.rng.IntN(16<<10))
			}
			op.Value = fmt.Appendf(nil, "v-%s-%d-%d-%s", s.cfg.RunID, s.id, index, pad)
			if s.cfg.TTL && s.rng.IntN(4) == 0 {
				op.TTL = time.Duration(1+s.rng.IntN(3)) * time.Second
			}
		}
		if s.cfg.SessionOrder {
			s.writes++
			op.SessionID = fmt.Sprintf("c%s-s%d", s.cfg.RunID, s.id)
			op.SessionSeq = s.writes
		}
	case history.Txn:
		// Two to four keys, shared and own, each put or deleted, with
		// unique values: the checker tells every transaction's writes
		// apart in the stream and in every read.
		op.WriteID = fmt.Sprintf("w-%s-%d-%d", s.cfg.RunID, s.id, index)
		seen := map[string]bool{}
		for j := range 2 + s.rng.IntN(3) {
			k := key()
			if seen[k] {
				continue
			}
			seen[k] = true
			t := history.TxnOp{Kind: history.Put, Key: k, Value: fmt.Appendf(nil, "v-%s-%d-%d-%d", s.cfg.RunID, s.id, index, j)}
			if s.rng.IntN(5) == 0 {
				t.Kind, t.Value = history.Delete, nil
			}
			op.TxnOps = append(op.TxnOps, t)
		}
		if s.cfg.SessionOrder {
			s.writes++
			op.SessionID = fmt.Sprintf("c%s-s%d", s.cfg.RunID, s.id)
			op.SessionSeq = s.writes
		}
	case history.Get:
		op.Key = key()
	case history.Scan:
		op.Prefix = SharedPrefix
		if s.rng.IntN(2) == 0 {
			op.Prefix = own
		}
		op.Limit = 1 + s.rng.IntN(12)
		if s.rng.IntN(3) == 0 {
			op.After = key()
			if !strings.HasPrefix(op.After, op.Prefix) {
				op.After = ""
			}
		}
	}
	return op
}

// do sends op over a randomly chosen path and records the outcome.
func (s *session) do(ctx context.Context, op *history.Op) {
	if !s.cfg.NoTokens {
		op.TokenIn = s.token.Seq
	}
	useNATS := s.gateway == "" && s.nats != nil && (len(s.cfg.Gateways) == 0 || s.rng.IntN(2) == 0)
	if !op.Kind.Writes() && len(s.cfg.Replicas) > 0 && (useNATS || s.rng.IntN(2) == 0) {
		op.Replica = s.cfg.Replicas[s.rng.IntN(len(s.cfg.Replicas))]
	}
	tok := s.token
	if s.cfg.NoTokens {
		tok = api.Token{}
	}
	op.Invoke = time.Now()
	var out api.Token
	if useNATS {
		op.Via = "nats"
		out = s.doNATS(ctx, op, tok)
	} else {
		base := s.gateway
		if base == "" {
			base = s.cfg.Gateways[s.rng.IntN(len(s.cfg.Gateways))]
		}
		op.Via = "http " + strings.TrimPrefix(base, "http://")
		out = s.doHTTP(ctx, base, op, tok)
	}
	op.Complete = time.Now()
	op.TokenOut, op.Stream = out.Seq, out.Stream
	switch {
	case op.Code == api.CodeTokenStreamMismatch || op.Code == api.CodeTokenFromFuture:
		// The token names a history the stream no longer has (the stream
		// was recreated, or lost its tail): start the session again.
		s.token = api.Token{}
	default:
		if m, err := s.token.Merge(out); err == nil {
			s.token = m
		}
	}
}

// writeOutcome classifies a failed write by its error code: a rejection
// is a definite failure; anything that may have reached the stream is
// indeterminate.
func writeOutcome(code string) history.Outcome {
	if api.Refused(code) {
		return history.Failed
	}
	return history.Indeterminate
}

// readOutcome classifies a failed read: a read changes nothing, so only a
// definite error reply is Failed; a lost reply is Indeterminate.
func readOutcome(code string) history.Outcome {
	switch code {
	case api.CodeUnavailable, api.CodeInternal, "":
		return history.Indeterminate
	}
	return history.Failed
}

func (s *session) fail(op *history.Op, code, msg string) {
	op.Code, op.Error = code, msg
	if op.Kind.Writes() {
		op.Outcome = writeOutcome(code)
	} else {
		op.Outcome = readOutcome(code)
	}
}
