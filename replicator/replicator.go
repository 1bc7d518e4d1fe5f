package replicator

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/rs/zerolog"

	"github.com/tidemark/tidemark/stream"
)

// Defaults of Config and of the Badger settings.
const (
	// DefaultMaxBatch is the most messages applied in one transaction.
	DefaultMaxBatch = 1024
	// DefaultMaxBatchBytes is the most message bytes applied in one transaction.
	DefaultMaxBatchBytes = 1 << 20
	// DefaultProgressInterval is how often catch-up progress is logged.
	DefaultProgressInterval = 5 * time.Second
	// DefaultGCInterval is how often Badger's value log is garbage collected.
	DefaultGCInterval = 5 * time.Minute
	// DefaultCheckInterval is how often Run verifies that the stream still
	// holds the history the replica applied (history.go).
	DefaultCheckInterval = time.Second

	// DefaultScrubInterval is how often Run verifies the checksums of every
	// table of the store (corrupt.go).
	DefaultScrubInterval = 30 * time.Minute

	// DefaultMemTableSize is Badger's memtable size. With two memtables it
	// bounds write buffering to 32 MiB per replica; a transaction may hold
	// up to 15% of it (values over DefaultValueThreshold count as pointers).
	DefaultMemTableSize = 16 << 20
	// DefaultNumMemTables is how many memtables Badger keeps in memory.
	DefaultNumMemTables = 2
	// DefaultBlockCacheSize is Badger's block cache.
	DefaultBlockCacheSize = 16 << 20
	// DefaultIndexCacheSize bounds the memory Badger's table indexes take.
	DefaultIndexCacheSize = 8 << 20
	// DefaultValueThreshold is the value size from which Badger keeps a
	// value in its value log rather than in the LSM tree.
	DefaultValueThreshold = 4 << 10
	// DefaultValueLogFileSize is the size of one Badger value log file.
	DefaultValueLogFileSize = 64 << 20
)

// Config configures a Replicator.
type Config struct {
	// ID names the replica in logs.
	ID string
	// Dir is the Badger directory.
	Dir string
	// SyncWrites makes Badger fsync every commit. No guarantee needs it:
	// the stream is the durable source of truth, and a replica that lost
	// recent commits in a machine crash applies them again from the stream
	// while token reads wait (the tokens carry the position).
	SyncWrites bool
	// Stream is the stream to replicate.
	Stream *stream.Stream
	// Logger receives the replicator's logs and Badger's warnings.
	Logger zerolog.Logger
	// MaxBatch is the most messages applied in one transaction.
	MaxBatch int
	// MaxBatchBytes is the most message bytes applied in one transaction.
	MaxBatchBytes int
	// CheckInterval is how often Run verifies that the stream still holds
	// the history the replica applied: the same stream, not recreated, its
	// message at applied the one applied (history.go). It also verifies on
	// every reconnect and new consumer.
	CheckInterval time.Duration
	// ScrubInterval is how often Run verifies the checksums of every
	// Badger table, to find damage that appeared while it runs
	// (corrupt.go); 0 means DefaultScrubInterval.
	ScrubInterval time.Duration
	// CacheBytes bounds the cache of current records that point reads are
	// served from without a Badger transaction (see cache.go); 0 means
	// DefaultCacheBytes, a negative value turns the cache off.
	CacheBytes int64
	// ValueThreshold is the value size from which Badger keeps a value in
	// its value log rather than in the LSM tree; DefaultValueThreshold
	// when 0.
	ValueThreshold int64
	// WatchWindow and WatchWindowBytes bound the watch window, the most
	// recent changes kept in memory for watchers (feed.go): a watch resumes
	// from a revision inside it; 0 means DefaultWatchWindow and
	// DefaultWatchWindowBytes.
	WatchWindow      int
	WatchWindowBytes int64
	// TickInterval is how often a caught-up replica checks whether a key's
	// time to live has run out on an idle stream, which then needs a clock
	// tick to expire it (ttl.go); DefaultTickInterval when 0. Such a key
	// expires within about one interval plus the clock skew between the
	// replica and the stream's server.
	TickInterval time.Duration
	// Bootstrap, when set, lets Run restore a snapshot of another replica
	// when the stream no longer holds the next sequence (ErrGap), and go on
	// from there; without it Run stops with ErrGap. See bootstrap.go.
	Bootstrap Bootstrapper
	// TombstoneHorizon is how long, in stream time, a deleted key's
	// tombstone is kept; after it a read of the key is not found without
	// the delete's revision. DefaultTombstoneHorizon when 0.
	TombstoneHorizon time.Duration
	// SweepInterval is how often the apply loop forgets expired sessions
	// and collects tombstones past the horizon; DefaultSweepInterval when 0.
	SweepInterval time.Duration

	// UnsafeSplitApplied breaks the replicator on purpose, to show that the
	// tests catch what it guards against: each batch's data and its applied
	// sequence are committed in two transactions, the data first, so a
	// crash between them leaves a state ahead of its applied. Never set it
	// outside such tests.
	UnsafeSplitApplied bool
	// UnsafeAfterData, with UnsafeSplitApplied, is called between the two
	// commits with the batch's last sequence (a test kills the process there).
	UnsafeAfterData func(seq uint64)
}

// Stats are counters of the apply loop.
type Stats struct {
	// Applied is the last stream sequence applied.
	Applied uint64
	// Messages is how many messages this process has applied.
	Messages uint64
	// Batches is how many transactions this process has committed.
	Batches uint64
	// Splits is how many times a batch was split because it was too big
	// for one Badger transaction.
	Splits uint64
	// Skipped is how many writes this process left out because they came
	// out of their session's order (see stream.SessionWindow).
	Skipped uint64
	// Expired is how many keys this process expired at the end of their
	// time to live.
	Expired uint64
	// CacheHits and CacheMisses count point reads answered from the record
	// cache and from Badger; CacheEntries is how many records it holds.
	CacheHits, CacheMisses uint64
	CacheEntries           int
	// Tombstones is how many tombstones the store held after the last
	// sweep (-1 before the first); TombstonesSwept how many sweeps
	// collected.
	Tombstones      int64
	TombstonesSwept uint64
}

// Replicator applies the stream to a Badger database. Its methods are safe
// for concurrent use; Run is called once.
type Replicator struct {
	cfg Config
	log zerolog.Logger

	applied  atomic.Uint64
	streamID atomic.Pointer[string] // the stream id the state belongs to (StreamID)
	messages atomic.Uint64
	batches  atomic.Uint64
	splits   atomic.Uint64
	metrics  applyMetrics // Prometheus metrics (metrics.go)
	// appliedTxn returns the transaction that records a batch's applied
	// sequence, given the one holding its data: the same one (sameTxn), or
	// for the broken replicator of UnsafeSplitApplied a second one.
	appliedTxn func(db *badger.DB, txn *badger.Txn, last uint64) (*badger.Txn, error)
	skipped    atomic.Uint64

	sessionsSwept   atomic.Uint64 // session records forgotten (sweepSessions)
	tombstonesSwept atomic.Uint64 // tombstones collected (sweepTombstones)
	tombstones      atomic.Int64  // tombstones left after the last sweep; -1 before it

	// nextExpiry is the earliest pending expiry of a key with a time to
	// live, in Unix nanoseconds of stream time (0: none); expired counts
	// the keys expired (ttl.go).
	nextExpiry atomic.Int64
	expired    atomic.Uint64

	// dbMu guards db: reads hold it shared, Open and Close exclusively.
	dbMu sync.RWMutex
	db   *badger.DB
	// cache holds current records for point reads (cache.go); nil when off.
	cache *recordCache
	// feed is the watch window (feed.go); feedBuf is the apply loop's
	// buffer of a commit's changes.
	feed    *feed
	feedBuf []feedEntry

	// mu guards the lifecycle, the stop reason, readiness and the waiters.
	mu        sync.Mutex
	running   bool
	closed    bool
	cancelRun context.CancelFunc
	runDone   chan struct{}
	err       error         // why the replicator stopped; nil while serving
	stopCh    chan struct{} // closed when err is set
	target    uint64        // the stream's last sequence when Run started
	targetSet bool
	verified  bool          // Run verified the state it applies onto since the last wrong hold
	readyCh   chan struct{} // closed once applied >= target
	waiters   waitHeap
	// spaceChecked is when the apply loop last checked free space.
	spaceChecked time.Time
	boot         error         // while Run restores a snapshot: why and how far (bootstrap.go)
	dl           *download     // the snapshot being received, while it is (bootstrap.go)
	corruptCh    chan error    // a read found the store damaged or full (corrupt.go)
	held         error         // why the replica does not serve for now (wait.go); nil while it does
	holdCh       chan struct{} // closed when held changes or is cleared
	holding      atomic.Bool   // held != nil, for the read path without the lock
	wrong        atomic.Bool   // held says the state must not be read (wait.go)

	// headMu guards head: the identity of the message at applied
	// (history.go), as of the last commit.
	headMu    sync.Mutex
	head      head
	headKnown bool

	// pauseMu guards paused and resumeCh, and is held by the apply loop
	// while it commits, so that Pause returns only after an in-flight
	// commit.
	// txnWaitHook, when set (by tests), is called on the apply goroutine
	// each time it holds part of a transaction, held messages, and waits
	// for the rest.
	txnWaitHook func(held int)

	pauseMu  sync.Mutex
	paused   bool
	resumeCh chan struct{}
}

// New returns a Replicator for cfg, with defaults for the zero fields. It
// does no I/O; call Open.
func New(cfg Config) *Replicator {
	if cfg.MaxBatch == 0 {
		cfg.MaxBatch = DefaultMaxBatch
	}
	if cfg.MaxBatchBytes == 0 {
		cfg.MaxBatchBytes = DefaultMaxBatchBytes
	}
	if cfg.CheckInterval == 0 {
		cfg.CheckInterval = DefaultCheckInterval
	}
	if cfg.CacheBytes == 0 {
		cfg.CacheBytes = DefaultCacheBytes
	}
	if cfg.ScrubInterval <= 0 {
		cfg.ScrubInterval = DefaultScrubInterval
	}
	if cfg.TickInterval <= 0 {
		cfg.TickInterval = DefaultTickInterval
	}
	if cfg.TombstoneHorizon <= 0 {
		cfg.TombstoneHorizon = DefaultTombstoneHorizon
	}
	if cfg.SweepInterval <= 0 {
		cfg.SweepInterval = DefaultSweepInterval
	}
	log := cfg.Logger.With().Str("replica", cfg.ID).Logger()
	if cfg.Stream != nil {
		log = log.With().Str("stream", cfg.Stream.Name()).Logger()
	}
	r := &Replicator{
		cfg:     cfg,
		log:     log,
		stopCh:  make(chan struct{}),
		readyCh: make(chan struct{}),
		cache:   newRecordCache(cfg.CacheBytes),
		feed:    newFeed(cfg.WatchWindow, cfg.WatchWindowBytes),

		corruptCh:  make(chan error, 1),
		appliedTxn: appliedTxnOf(cfg),
	}
	r.tombstones.Store(-1)
	return r
}

// Open validates the configuration, opens the Badger directory and reads
// the applied sequence. It fails with ErrStreamMismatch when the directory
// holds data of another stream identity.
func (r *Replicator) Open() error {
	switch {
	case r.cfg.Dir == "":
		return errors.New("replicator: no directory")
	case r.cfg.Stream == nil:
		return errors.New("replicator: no stream")
	case r.cfg.MaxBatch < 0:
		return fmt.Errorf("replicator: max batch %d: want > 0", r.cfg.MaxBatch)
	case r.cfg.MaxBatchBytes < 0:
		return fmt.Errorf("replicator: max batch bytes %d: want > 0", r.cfg.MaxBatchBytes)
	case r.cfg.CheckInterval < 0:
		return fmt.Errorf("replicator: check interval %v: want > 0", r.cfg.CheckInterval)
	}
	r.dbMu.Lock()
	defer r.dbMu.Unlock()
	r.mu.Lock()
	closed := r.closed
	r.mu.Unlock()
	if closed {
		return ErrClosed
	}
	if r.db != nil {
		return errors.New("replicator: already open")
	}
	if err := r.recoverInstall(); err != nil { // an interrupted snapshot install (bootstrap.go)
		return fmt.Errorf("badger %s: %w", r.cfg.Dir, err)
	}
	db, applied, h, known, err := r.openChecked()
	if errors.Is(err, ErrCorrupt) {
		// Damaged files: keep them for inspection and start empty; Run
		// rebuilds from the stream or a snapshot.
		r.log.Error().Err(err).Str("dir", r.cfg.Dir).Msg("replica store does not open; moving it aside and rebuilding")
		if err = r.clearDir(true); err == nil {
			db, applied, h, known, err = r.openChecked()
		}
	}
	if err != nil {
		return err
	}
	r.db = db
	r.cache.reset()
	r.setHead(h, known)
	r.applied.Store(applied)
	r.feed.reset(applied)
	if applied > 0 {
		// Not served until Run has verified that the stream still holds
		// this history (history.go).
		r.hold(fmt.Errorf("%w: replica %s: not verified against the stream since it was opened", ErrUnverified, r.cfg.ID))
	}
	r.cfg.Stream.ObserveLast(applied)
	r.log.Info().Str("dir", r.cfg.Dir).Uint64("applied", applied).Str("stream_id", r.cfg.Stream.ID()).Msg("replica opened")
	return nil
}

// openChecked opens Badger, reads the applied sequence and head and checks
// the directory's stream identity.
func (r *Replicator) openChecked() (db *badger.DB, applied uint64, h head, known bool, err error) {
	db, err = r.openBadger()
	if err != nil {
		if err = classify(err); openFailedCorrupt(err) && !errors.Is(err, ErrCorrupt) {
			err = fmt.Errorf("%w: %w", ErrCorrupt, err)
		}
		return nil, 0, head{}, false, fmt.Errorf("open badger %s: %w", r.cfg.Dir, err)
	}
	defer func() {
		if err != nil {
			_ = closeBadger(db)
			db = nil
		}
	}()
	var id string
	var format int
	applied, id, format, err = readMeta(db)
	if err == nil {
		err = r.checkIdentity(db, applied, id, format)
	}
	if err == nil {
		err = db.View(func(txn *badger.Txn) (err error) {
			defer guard("read m/head", &err)
			h, known, err = readHead(txn)
			return err
		})
		known = known || applied == 0
	}
	return db, applied, h, known, classify(err)
}

func (r *Replicator) checkIdentity(db *badger.DB, applied uint64, id string, format int) error {
	want := r.cfg.Stream.ID()
	switch {
	case format != 0 && format != formatV1:
		return fmt.Errorf("badger %s: storage format %d, this version reads %d", r.cfg.Dir, format, formatV1)
	case id == want && format == formatV1:
		r.streamID.Store(&want)
		return nil
	case id != "" && id != want && applied > 0:
		return fmt.Errorf("%w: %s holds data of stream id %s up to sequence %d, the stream %s has id %s (was it recreated?); remove the directory to rebuild the replica",
			ErrStreamMismatch, r.cfg.Dir, id, applied, r.cfg.Stream.Name(), want)
	}
	// A new directory, or one that never applied anything: claim it.
	if err := writeIdentity(db, want); err != nil {
		return fmt.Errorf("badger %s: write stream id: %w", r.cfg.Dir, err)
	}
	r.streamID.Store(&want)
	return nil
}

// Target returns the stream's last sequence as of the start of the
// current run, which the replica must reach to be ready; 0 before Run has
// read it.
func (r *Replicator) Target() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.target
}

// StreamID returns the id of the stream the replica's state belongs to:
// the stream handle's id, except while a replica whose stream was deleted
// and recreated still holds the old stream's state (it rebuilds; see
// reset.go). Tokens of another stream than this are not served.
func (r *Replicator) StreamID() string {
	if id := r.streamID.Load(); id != nil {
		return *id
	}
	return ""
}

// Close stops Run, wakes every waiter with ErrClosed and closes Badger. It
// is idempotent.
func (r *Replicator) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	cancel, done := r.cancelRun, r.runDone
	r.mu.Unlock()

	r.fail(ErrClosed)
	if cancel != nil {
		cancel()
		<-done
	}
	r.dbMu.Lock()
	defer r.dbMu.Unlock()
	if r.db == nil {
		return nil
	}
	err := closeBadger(r.db)
	r.db = nil
	r.cache.reset()
	if err != nil {
		return fmt.Errorf("close badger %s: %w", r.cfg.Dir, err)
	}
	return nil
}

func (r *Replicator) notOpen() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return ErrClosed
	}
	return ErrNotOpen
}

// Err returns why the replicator does not serve (ErrGap, ErrBadMessage,
// ErrClosed, ...), or nil while it does.
func (r *Replicator) Err() error {
	if !r.holding.Load() {
		select {
		case <-r.stopCh:
		default:
			return nil // the common case, without the lock readers would share
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.stopReason()
}

func (r *Replicator) isReady() bool {
	select {
	case <-r.readyCh:
		return true
	default:
		return false
	}
}

// Ready reports whether the replica has caught up, that is applied the
// stream's last sequence as of the start of Run, and still serves; not
// while it bootstraps from a snapshot (bootstrap.go).
func (r *Replicator) Ready() bool {
	return r.isReady() && r.Err() == nil && r.Bootstrapping() == nil
}

// WaitReady returns once the replica has caught up. It returns Err() if the
// replicator stops first, and ctx.Err() when ctx ends.
// While the replica is held (not serving for now: rebuilding, unverified,
// disk full) it waits for that to end.
func (r *Replicator) WaitReady(ctx context.Context) error {
	for {
		select {
		case <-r.readyCh:
		case <-r.stopCh:
			return r.Err()
		case <-ctx.Done():
			return ctx.Err()
		}
		r.mu.Lock()
		err, held, ch := r.err, r.held, r.holdCh
		r.mu.Unlock()
		if err != nil || held == nil {
			return err
		}
		select {
		case <-ch:
		case <-r.stopCh:
			return r.Err()
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Pause holds the apply loop: once Pause returns, no transaction commits
// until Resume. The consumer keeps receiving up to its buffer. It is meant
// for tests and maintenance.
func (r *Replicator) Pause() {
	r.pauseMu.Lock()
	defer r.pauseMu.Unlock()
	if !r.paused {
		r.paused = true
		r.resumeCh = make(chan struct{})
		r.log.Info().Uint64("applied", r.Applied()).Msg("apply loop paused")
	}
}

// Resume lets a paused apply loop continue.
func (r *Replicator) Resume() {
	r.pauseMu.Lock()
	defer r.pauseMu.Unlock()
	if r.paused {
		r.paused = false
		close(r.resumeCh)
		r.log.Info().Uint64("applied", r.Applied()).Msg("apply loop resumed")
	}
}

// Stats returns the apply loop's counters.
func (r *Replicator) Stats() Stats {
	st := Stats{
		Applied:  r.applied.Load(),
		Messages: r.messages.Load(),
		Batches:  r.batches.Load(),
		Splits:   r.splits.Load(),
		Skipped:  r.skipped.Load(),
		Expired:  r.expired.Load(),

		Tombstones:      r.tombstones.Load(),
		TombstonesSwept: r.tombstonesSwept.Load(),
	}
	st.CacheHits, st.CacheMisses, st.CacheEntries = r.cache.stats()
	return st
}
