package config

import (
	"time"

	"github.com/tidemark/tidemark/replica"
	"github.com/tidemark/tidemark/replicator"
	"github.com/tidemark/tidemark/stream"

	"github.com/tidemark/tidemark/api"
	"github.com/tidemark/tidemark/wire"
	"github.com/tidemark/tidemark/writer"
)

// Defaults for every setting; Default returns a Config holding them.
const (
	// DefaultNATSURL is the NATS server to connect to.
	DefaultNATSURL = "nats://127.0.0.1:4222"

	// DefaultStreamName is the JetStream stream holding the writes.
	DefaultStreamName = stream.DefaultName
	// DefaultStreamSubject is the subject prefix of the stream.
	DefaultStreamSubject = stream.DefaultSubject
	// DefaultStreamReplicas is the stream's replication factor: 0 picks R3
	// when the NATS cluster has at least three servers, else R1.
	DefaultStreamReplicas = 0
	// DefaultStreamMaxAge is the stream's age limit; 0 is unlimited.
	DefaultStreamMaxAge Duration = 0
	// DefaultStreamMaxBytes is the stream's size limit; -1 is unlimited.
	DefaultStreamMaxBytes int64 = -1
	// DefaultStreamDuplicateWindow is how long the stream remembers message
	// IDs to drop retried publishes.
	DefaultStreamDuplicateWindow = Duration(stream.DefaultDuplicateWindow)

	// DefaultAPIPrefix is the subject prefix of the NATS service endpoints.
	DefaultAPIPrefix = wire.DefaultAPIPrefix

	// DefaultGatewayHTTP is the gateway's HTTP listen address.
	DefaultGatewayHTTP = ":8080"
	// DefaultGatewayMaxValueBytes is the largest value the gateway accepts.
	DefaultGatewayMaxValueBytes = api.DefaultMaxValueBytes
	// DefaultGatewayDefaultWait bounds a read's wait for its token when the
	// request does not say.
	DefaultGatewayDefaultWait = Duration(api.DefaultWait)
	// DefaultGatewayMaxWait is the longest wait a request may ask for.
	DefaultGatewayMaxWait = Duration(api.DefaultMaxWait)

	// DefaultGatewayWatchProgress is how often an idle watch gets a
	// progress event.
	DefaultGatewayWatchProgress = Duration(api.DefaultWatchProgress)

	// DefaultWriterGroupCommit turns on the writer's group commit.
	DefaultWriterGroupCommit = true
	// DefaultWriterGroupCommitMin is the fewest writes sent as one batch.
	DefaultWriterGroupCommitMin = writer.DefaultGroupCommitMin
	// DefaultWriterTxnMaxOps is the most ops of a transaction.
	DefaultWriterTxnMaxOps = api.DefaultTxnMaxOps
	// DefaultWriterTxnMaxBytes bounds a transaction's keys and values.
	DefaultWriterTxnMaxBytes = api.DefaultTxnMaxBytes

	// DefaultReplicaData is the replica's Badger directory.
	DefaultReplicaData = "./tidemark-replica"
	// DefaultReplicaSyncWrites leaves Badger's fsyncs to Badger: the stream
	// is the durable source of truth, and a replica that restarts behind
	// what it served resumes from the stream while token reads wait.
	DefaultReplicaSyncWrites = false
	// DefaultReplicaBootstrap lets a replica behind a purge or the stream's
	// limits bootstrap from a snapshot of another replica.
	DefaultReplicaBootstrap = true
	// DefaultReplicaCacheMB is the size of a replica's record cache, in MiB.
	DefaultReplicaCacheMB = replicator.DefaultCacheBytes >> 20
	// DefaultReplicaWatchWindow is how many recent changes a replica keeps
	// for watches to resume in.
	DefaultReplicaWatchWindow = replicator.DefaultWatchWindow
	// DefaultReplicaWatchWindowMB bounds the watch window's keys and values, in MiB.
	DefaultReplicaWatchWindowMB = replicator.DefaultWatchWindowBytes >> 20

	// DefaultReplicaTombstoneHorizon is how long, in stream time, a
	// replica keeps a deleted key's tombstone.
	DefaultReplicaTombstoneHorizon = Duration(replicator.DefaultTombstoneHorizon)

	// DefaultCompactionEnabled turns compaction on.
	DefaultCompactionEnabled = true
	// DefaultCompactionSnapshotMessages is how many applied messages call
	// for a new base snapshot.
	DefaultCompactionSnapshotMessages = replica.DefaultSnapshotMessages
	// DefaultCompactionSnapshotAge is how old a base snapshot may get
	// while the stream moves.
	DefaultCompactionSnapshotAge = Duration(replica.DefaultSnapshotAge)
	// DefaultCompactionWindowMessages is how many of the newest messages
	// compaction always keeps, for replicas that were briefly down.
	DefaultCompactionWindowMessages = replica.DefaultWindowMessages
	// DefaultCompactionInterval is how often the compactor looks.
	DefaultCompactionInterval = Duration(replica.DefaultCompactInterval)

	// DefaultDevReplicas is how many replicas `tidemark dev` starts.
	DefaultDevReplicas = 2
	// DefaultDevNATSListen is the embedded NATS server's listen address.
	DefaultDevNATSListen = "127.0.0.1:4222"
	// DefaultDevData is the directory `tidemark dev` keeps its state in.
	DefaultDevData = "./tidemark-data"
	// DefaultDevDurable makes `tidemark dev` fsync like production.
	DefaultDevDurable = false

	// DefaultLogLevel is the lowest level logged.
	DefaultLogLevel = "info"
)

// Values of LogConfig.Format; the empty string leaves it to the caller.
const (
	// LogFormatJSON writes one JSON object per line.
	LogFormatJSON = "json"
	// LogFormatConsole writes human-readable lines.
	LogFormatConsole = "console"
)

// MaxDevReplicas is the most replicas `tidemark dev` starts (dev.replicas).
const MaxDevReplicas = maxDevReplicas

// Limits enforced by Validate.
const (
	maxStreamReplicas    = 5
	maxGatewayValueBytes = 64 << 20
	maxDevReplicas       = 16
	maxReplicaCacheMB    = 1 << 20 // 1 TiB: a typo guard, not a policy
	minJetStreamDuration = Duration(100 * time.Millisecond)
	maxIdentifierLen     = 64
	minTokenKeyLen       = 16
	// maxCompactionMessages guards compaction's message counts from typos.
	maxCompactionMessages = 1 << 40
)

// Config is the whole Tidemark configuration.
type Config struct {
	NATS    NATSConfig    `yaml:"nats"`
	Stream  StreamConfig  `yaml:"stream"`
	API     APIConfig     `yaml:"api"`
	Gateway GatewayConfig `yaml:"gateway"`
	Replica ReplicaConfig `yaml:"replica"`
	Writer  WriterConfig  `yaml:"writer"`
	Dev     DevConfig     `yaml:"dev"`
	Log     LogConfig     `yaml:"log"`

	Compaction CompactionConfig `yaml:"compaction"`
}

// NATSConfig says how to connect to NATS.
type NATSConfig struct {
	// URL is the server URL, or a comma-separated list of them.
	URL string `yaml:"url"`
	// Creds is the path of a credentials (JWT) file.
	Creds string `yaml:"creds"`
	// NKey is the path of an nkey seed file.
	NKey string `yaml:"nkey"`
	// TLSCert is the path of a client certificate.
	TLSCert string `yaml:"tls_cert"`
	// TLSKey is the path of the client certificate's key.
	TLSKey string `yaml:"tls_key"`
	// TLSCA is the path of the CA certificates to trust.
	TLSCA string `yaml:"tls_ca"`
	// Name is the connection name shown by the server; empty lets the
	// caller choose.
	Name string `yaml:"name"`
}

// StreamConfig describes the JetStream stream holding the writes.
type StreamConfig struct {
	// Name is the stream name.
	Name string `yaml:"name"`
	// Subject is the prefix of the stream's subjects.
	Subject string `yaml:"subject"`
	// Replicas is the replication factor, 1 to 5, or 0 for R3 on a cluster
	// of three or more servers and R1 otherwise.
	Replicas int `yaml:"replicas"`
	// MaxAge drops messages older than this; 0 keeps them forever.
	MaxAge Duration `yaml:"max_age"`
	// MaxBytes caps the stream's size; -1 is unlimited.
	MaxBytes int64 `yaml:"max_bytes"`
	// DuplicateWindow is how long message IDs are remembered to drop
	// retried publishes.
	DuplicateWindow Duration `yaml:"duplicate_window"`
	// Reconfigure lets a writer change an existing stream whose replicas or
	// limits differ from this configuration. Without it the writer keeps
	// the stream as it is and warns, so that one misconfigured writer
	// cannot shrink the stream's replication or make it drop messages.
	Reconfigure bool `yaml:"reconfigure"`
}

// APIConfig describes the NATS service endpoints.
type APIConfig struct {
	// Prefix is the subject prefix of the endpoints.
	Prefix string `yaml:"prefix"`
}

// GatewayConfig describes the HTTP gateway.
type GatewayConfig struct {
	// HTTP is the listen address, host:port.
	HTTP string `yaml:"http"`
	// MaxValueBytes is the largest value accepted, 1 byte to 64 MiB. Where
	// the NATS server's max_payload cannot carry that much in a reply, the
	// roles enforce the lower limit and warn at start.
	MaxValueBytes int `yaml:"max_value_bytes"`
	// DefaultWait bounds a read's wait for its token when the request does
	// not say.
	DefaultWait Duration `yaml:"default_wait"`
	// MaxWait is the longest wait a request may ask for.
	MaxWait Duration `yaml:"max_wait"`
	// TokenKeys, when set, is a comma-separated list of secret keys (each at
	// least 16 bytes): tokens given to HTTP clients are signed with the
	// first, and a token that none of them verifies is rejected. List a new
	// key first and keep the old one while its tokens are in use to rotate.
	TokenKeys string `yaml:"token_keys"`
	// Affinity pins each HTTP session's reads to one replica while it
	// answers, with the tidemark_replica cookie, as sticky sessions would.
	// Tokens still apply.
	Affinity bool `yaml:"affinity"`
	// AccessLog logs one line per HTTP request: method, path, status,
	// bytes, duration, the replica that served it and the token's sequence.
	AccessLog bool `yaml:"access_log"`
	// WatchProgress is how often an idle watch (GET /v1/watch) gets a
	// progress event, 100ms to 1m; a replica that sends nothing for three
	// of them is left for another.
	WatchProgress Duration `yaml:"watch_progress"`
}

// WriterConfig describes the writer role.
type WriterConfig struct {
	// HTTP is the listen address for health and metrics; empty is off.
	HTTP string `yaml:"http"`
	// GroupCommit publishes the writes waiting at the same moment as one
	// JetStream atomic batch, which a server that fsyncs every write
	// (sync_interval: always, as production runs) stores with one fsync.
	// Turn it off for a server that does not fsync every write, where a
	// batch costs more than it saves; `tidemark dev` uses it only with
	// dev.durable.
	GroupCommit bool `yaml:"group_commit"`
	// GroupCommitMin is the fewest waiting writes that group commit sends
	// as one batch (1 to 1000); fewer are published one by one. On a
	// single server's file store a batch costs about as much as a few
	// fsyncs.
	GroupCommitMin int `yaml:"group_commit_min"`
	// TxnMaxOps is the most ops a transaction (POST /v1/txn) may hold, 1
	// to 998: the server's 1000 messages of an atomic batch, less the
	// transaction's marker and a session's order marker. More are refused
	// with 400 invalid_request.
	TxnMaxOps int `yaml:"txn_max_ops"`
	// TxnMaxBytes bounds the keys and values of a transaction (1 byte to
	// 64 MiB); more are refused with 413 value_too_large. A transaction
	// sent over NATS must also fit the server's max_payload.
	TxnMaxBytes int `yaml:"txn_max_bytes"`
}

// ReplicaConfig describes one replica.
type ReplicaConfig struct {
	// ID names the replica; empty means derive it from the hostname.
	ID string `yaml:"id"`
	// Data is the Badger directory.
	Data string `yaml:"data"`
	// SyncWrites makes Badger fsync every commit. No guarantee needs it:
	// the stream is the durable source of truth, and tokens carry the
	// position, so a replica that restarts behind makes token reads wait.
	SyncWrites bool `yaml:"sync_writes"`
	// HTTP is the listen address for health and metrics; empty is off.
	HTTP string `yaml:"http"`
	// Bootstrap lets a replica that finds the stream no longer holds what
	// it needs (stream limits, a purge) restore a snapshot of a ready
	// replica and go on from there; off, it stops serving and says why.
	Bootstrap bool `yaml:"bootstrap"`
	// CacheMB bounds the in-memory cache of current records that point
	// reads are served from without a Badger transaction, in MiB; 0 turns
	// it off. `tidemark dev` gives each of its replicas this much.
	CacheMB int `yaml:"cache_mb"`
	// TombstoneHorizon is how long, in stream time, a replica keeps the
	// tombstone of a deleted key; after it a read of the key is a 404
	// without the delete's revision, as if the key had never existed.
	TombstoneHorizon Duration `yaml:"tombstone_horizon"`
	// WatchWindow is how many of the most recent changes the replica keeps
	// in memory for watches, 1 to 10000000: a watch resumes from a revision
	// inside it (older is 410 resume_point_compacted), and a watcher that
	// falls further behind is cut off. WatchWindowMB bounds their keys and
	// values, in MiB (1 to 65536).
	WatchWindow   int `yaml:"watch_window"`
	WatchWindowMB int `yaml:"watch_window_mb"`
}

// CompactionConfig describes how the stream is kept bounded: replicas store
// a base snapshot on a schedule and one of them purges the stream below
// what the snapshot, the live replicas and the catch-up window still need.
type CompactionConfig struct {
	// Enabled runs the compactor in replicas (`tidemark replica`, and one
	// replica of `tidemark dev`).
	Enabled bool `yaml:"enabled"`
	// SnapshotMessages is how many messages applied since the newest base
	// snapshot call for a new one.
	SnapshotMessages int64 `yaml:"snapshot_messages"`
	// SnapshotAge is how old the newest base snapshot may get while the
	// stream moves before a new one is taken.
	SnapshotAge Duration `yaml:"snapshot_age"`
	// WindowMessages is how many of the newest messages are always kept,
	// so that a replica that was briefly down resumes from the stream
	// rather than from a snapshot; 0 keeps none beyond what the base
	// snapshot and the live replicas need.
	WindowMessages int64 `yaml:"window_messages"`
	// Interval is how often the compactor looks whether to snapshot or
	// purge.
	Interval Duration `yaml:"interval"`
}

// DevConfig describes the single-process stack of `tidemark dev`.
type DevConfig struct {
	// Replicas is how many replicas to start, 1 to 16.
	Replicas int `yaml:"replicas"`
	// NATSListen is the embedded NATS server's listen address, host:port.
	NATSListen string `yaml:"nats_listen"`
	// Data is the directory for the stream and the replicas.
	Data string `yaml:"data"`
	// Durable makes the dev stack fsync like production.
	Durable bool `yaml:"durable"`
}

// LogConfig describes logging.
type LogConfig struct {
	// Level is debug, info, warn or error.
	Level string `yaml:"level"`
	// Format is LogFormatJSON, LogFormatConsole, or empty to let the
	// caller decide.
	Format string `yaml:"format"`
}

// Default returns a Config holding every default.
func Default() Config {
	return Config{
		NATS: NATSConfig{
			URL: DefaultNATSURL,
		},
		Stream: StreamConfig{
			Name:            DefaultStreamName,
			Subject:         DefaultStreamSubject,
			Replicas:        DefaultStreamReplicas,
			MaxAge:          DefaultStreamMaxAge,
			MaxBytes:        DefaultStreamMaxBytes,
			DuplicateWindow: DefaultStreamDuplicateWindow,
		},
		API: APIConfig{
			Prefix: DefaultAPIPrefix,
		},
		Gateway: GatewayConfig{
			HTTP:          DefaultGatewayHTTP,
			MaxValueBytes: DefaultGatewayMaxValueBytes,
			DefaultWait:   DefaultGatewayDefaultWait,
			MaxWait:       DefaultGatewayMaxWait,
			WatchProgress: DefaultGatewayWatchProgress,
		},
		Writer: WriterConfig{
			GroupCommit:    DefaultWriterGroupCommit,
			GroupCommitMin: DefaultWriterGroupCommitMin,
			TxnMaxOps:      DefaultWriterTxnMaxOps,
			TxnMaxBytes:    DefaultWriterTxnMaxBytes,
		},
		Replica: ReplicaConfig{
			Data:       DefaultReplicaData,
			SyncWrites: DefaultReplicaSyncWrites,
			Bootstrap:  DefaultReplicaBootstrap,
			CacheMB:    DefaultReplicaCacheMB,

			TombstoneHorizon: DefaultReplicaTombstoneHorizon,
			WatchWindow:      DefaultReplicaWatchWindow,
			WatchWindowMB:    DefaultReplicaWatchWindowMB,
		},
		Compaction: CompactionConfig{
			Enabled:          DefaultCompactionEnabled,
			SnapshotMessages: DefaultCompactionSnapshotMessages,
			SnapshotAge:      DefaultCompactionSnapshotAge,
			WindowMessages:   DefaultCompactionWindowMessages,
			Interval:         DefaultCompactionInterval,
		},
		Dev: DevConfig{
			Replicas:   DefaultDevReplicas,
			NATSListen: DefaultDevNATSListen,
			Data:       DefaultDevData,
			Durable:    DefaultDevDurable,
		},
		Log: LogConfig{
			Level: DefaultLogLevel,
		},
	}
}
