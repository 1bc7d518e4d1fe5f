package gateway

import (
	"github.com/tidemark/tidemark/wire"

	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"

	"github.com/tidemark/tidemark/stream"
)

// Defaults of the Monitor.
const (
	// DefaultStaleAfter is how long a replica or writer may stay silent
	// before the status says it is not answering. Replicas advertise at
	// least every second.
	DefaultStaleAfter = 3 * time.Second
	// DefaultForgetAfter is how long the status goes on showing a replica or
	// writer that does not answer.
	DefaultForgetAfter = time.Hour
	// DefaultLagAfter is how old the oldest message a ready replica has not
	// applied must be before the status calls it lagging (not applying) or
	// catching up (applying).
	DefaultLagAfter = time.Second
	// DefaultStatusRefresh is how long one look at the stream and the
	// writers serves status requests.
	DefaultStatusRefresh = 500 * time.Millisecond
	// DefaultPingWait bounds how long the monitor waits for the first writer
	// to answer its STATS request; DefaultPingQuiet how long it waits for
	// more after the latest answer.
	DefaultPingWait  = 500 * time.Millisecond
	DefaultPingQuiet = 50 * time.Millisecond

	maxTracked = 256             // replicas or writers the monitor follows at most
	rateWindow = 5 * time.Second // the apply rate is over this window
)

// States the status shows for a replica, besides the ones it advertises
// (wire.StateReady, StateCatchingUp, StateBootstrapping, StateStopped).
const (
	// StateLagging: ready, but the oldest message it has not applied is
	// older than LagAfter and it has not applied anything for as long.
	StateLagging = "lagging"
	// StateNotAnswering: not heard from for StaleAfter.
	StateNotAnswering = "not_answering"
	// StateNotReady: a replica that advertises no state is not ready.
	StateNotReady = "not_ready"
	// StateOtherStream: the replica applies a stream of another identity.
	StateOtherStream = "other_stream"
	// StateAnswering: a writer that answered the last look.
	StateAnswering = "answering"
)

// MonitorConfig configures a Monitor.
type MonitorConfig struct {
	// Conn reaches NATS: the replicas' advertisements, the writers' micro
	// service and JetStream.
	Conn *nats.Conn
	// JS is a JetStream context on Conn; nil makes one.
	JS jetstream.JetStream
	// Stream is the stream's name (stream.DefaultName when empty).
	Stream string
	// Subjects are the service subjects the replicas advertise on.
	Subjects wire.Subjects
	// WriterService is the writers' micro service name; empty leaves the
	// writers out of the status.
	WriterService string
	// StaleAfter, ForgetAfter, LagAfter and Refresh: the Default values
	// when zero.
	StaleAfter, ForgetAfter, LagAfter, Refresh time.Duration
}

// Monitor follows what the status page shows beyond the gateway itself: the
// stream's state from JetStream, the replicas from the status they
// advertise on NATS, and the writers from their micro service's STATS
// replies. It is safe for concurrent use.
type Monitor struct {
	cfg MonitorConfig
	now func() time.Time

	sub *nats.Subscription

	// mu guards the replicas, fed by advertisements.
	mu       sync.Mutex
	replicas map[string]*replicaTrack

	// lookMu serialises looks at the stream and the writers and guards
	// what the last one found.
	lookMu   sync.Mutex
	lookedAt time.Time // when the last look started
	streamSt StreamStatus
	oldest   map[uint64]time.Time // timestamps of messages replicas wait to apply
	writers  map[string]*writerTrack
	writersE string
}

type replicaTrack struct {
	ad      wire.ReplicaStatus
	seen    time.Time
	movedAt time.Time
	samples []applySample // for the apply rate, oldest first
	// catchFrom is where the current catch-up started, for its progress.
	catchFrom uint64
	catching  bool
}

type applySample struct {
	at      time.Time
	applied uint64
}

type writerTrack struct {
	stats    micro.Stats
	seen     time.Time
	requests int
	prevReq  int
	prevAt   time.Time
	rate     float64
}

// NewMonitor returns a monitor with defaults filled in; Open starts it.
func NewMonitor(cfg MonitorConfig) *Monitor {
	if cfg.Stream == "" {
		cfg.Stream = stream.DefaultName
	}
	if cfg.StaleAfter <= 0 {
		cfg.StaleAfter = DefaultStaleAfter
	}
	if cfg.ForgetAfter <= 0 {
		cfg.ForgetAfter = DefaultForgetAfter
	}
	if cfg.LagAfter <= 0 {
		cfg.LagAfter = DefaultLagAfter
	}
	if cfg.Refresh <= 0 {
		cfg.Refresh = DefaultStatusRefresh
	}
	return &Monitor{cfg: cfg, now: time.Now, replicas: map[string]*replicaTrack{}, writers: map[string]*writerTrack{},
		oldest: map[uint64]time.Time{}}
}

// Open subscribes to the replicas' advertisements.
func (m *Monitor) Open() error {
	if m.cfg.Conn == nil {
		return errors.New("monitor: no NATS connection")
	}
	if m.cfg.JS == nil {
		js, err := jetstream.New(m.cfg.Conn)
		if err != nil {
			return fmt.Errorf("monitor: jetstream: %w", err)
		}
		m.cfg.JS = js
	}
	sub, err := m.cfg.Conn.Subscribe(m.cfg.Subjects.StatusAll(), func(msg *nats.Msg) {
		st, err := wire.DecodeStatus(msg.Data)
		if err != nil {
			return // a bad advertisement shows nothing
		}
		m.observe(st)
	})
	if err != nil {
		return fmt.Errorf("monitor: subscribe: %w", err)
	}
	m.sub = sub
	return nil
}

// Close stops listening to advertisements. It is idempotent.
func (m *Monitor) Close() error {
	m.mu.Lock()
	sub := m.sub
	m.sub = nil
	m.mu.Unlock()
	if sub == nil {
		return nil
	}
	if err := sub.Unsubscribe(); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
		return err
	}
	return nil
}

// observe records one advertisement.
func (m *Monitor) observe(st wire.ReplicaStatus) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	tr := m.replicas[st.Replica]
	if tr == nil {
		if len(m.replicas) >= maxTracked && !m.forgetOldest(now) {
			return
		}
		tr = &replicaTrack{movedAt: now}
		m.replicas[st.Replica] = tr
	}
	if st.Applied != tr.ad.Applied {
		tr.movedAt = now
	}
	tr.ad, tr.seen = st, now
	if n := len(tr.samples); n == 0 || now.Sub(tr.samples[n-1].at) >= rateWindow/20 || st.Applied < tr.samples[n-1].applied {
		if n > 0 && st.Applied < tr.samples[n-1].applied {
			tr.samples = tr.samples[:0] // the replica started over (a restore)
		}
		tr.samples = append(tr.samples, applySample{at: now, applied: st.Applied})
	}
	for len(tr.samples) > 1 && now.Sub(tr.samples[0].at) > rateWindow {
		tr.samples = tr.samples[1:]
	}
}

// forgetOldest drops the replica heard from least recently, if it is not
// answering. mu is held.
func (m *Monitor) forgetOldest(now time.Time) bool {
	oldest := ""
	for id, tr := range m.replicas {
		if oldest == "" || tr.seen.Before(m.replicas[oldest].seen) {
			oldest = id
		}
	}
	if oldest == "" || now.Sub(m.replicas[oldest].seen) < m.cfg.StaleAfter {
		return false
	}
	delete(m.replicas, oldest)
	return true
}

// StreamStatus is the stream as JetStream reports it.
type StreamStatus struct {
	Name      string    `json:"name"`
	ID        string    `json:"id"`
	FirstSeq  uint64    `json:"first_seq"`
	LastSeq   uint64    `json:"last_seq"`
	Messages  uint64    `json:"messages"`
	Bytes     uint64    `json:"bytes"`
	Storage   string    `json:"storage"`
	Replicas  int       `json:"replicas"`
	Created   time.Time `json:"created"`
	LastWrite time.Time `json:"last_write,omitzero"`
	// Cluster is the stream's Raft group on a NATS cluster.
	Cluster *jetstream.ClusterInfo `json:"cluster,omitempty"`
	// AsOf is when JetStream said so; Error, when set, why the figures are
	// older than this look.
	AsOf  time.Time `json:"as_of,omitzero"`
	Error string    `json:"error,omitempty"`
	// CompactionPoint is the last purge point the compacting replica
	// advertises (0: none heard); Base the newest base snapshot (null:
	// none stored).
	CompactionPoint uint64        `json:"compaction_point,omitempty"`
	Base            *BaseSnapshot `json:"base_snapshot"`
}

// BaseSnapshot is the stored base snapshot that compaction purges up to
// and that replicas bootstrap from.
type BaseSnapshot struct {
	Applied    uint64    `json:"applied"`
	Bytes      uint64    `json:"bytes"`
	Replica    string    `json:"replica"`
	Created    time.Time `json:"created"`
	AgeSeconds float64   `json:"age_seconds"`
}

// ReplicaView is one replica as the status shows it.
type ReplicaView struct {
	ID     string `json:"id"`
	Stream string `json:"stream"`
	// State is one of wire.StateReady, StateCatchingUp,
	// StateBootstrapping, StateStopped or this package's StateLagging,
	// StateNotAnswering, StateNotReady, StateOtherStream.
	State   string `json:"state"`
	Reason  string `json:"reason,omitempty"`
	Ready   bool   `json:"ready"`
	Applied uint64 `json:"applied"`
	// LagMessages is the stream's last sequence minus Applied; LagSeconds
	// the age of the oldest message not applied (null when unknown).
	LagMessages uint64   `json:"lag_messages"`
	LagSeconds  *float64 `json:"lag_seconds"`
	// Rate is the apply rate over the last few seconds, in messages per
	// second.
	Rate float64 `json:"rate"`
	// Progress (0 to 1) and ETASeconds are set while catching up.
	Progress   *float64  `json:"progress,omitempty"`
	ETASeconds *float64  `json:"eta_seconds,omitempty"`
	LastSeen   time.Time `json:"last_seen"`
	// NotAnsweringSince is when the replica was last heard from, once it
	// has been silent for StaleAfter.
	NotAnsweringSince *time.Time `json:"not_answering_since,omitempty"`
	// Tombstones is how many tombstones the replica held at its last sweep
	// (null before one); Compacting whether it is the one that compacts.
	Tombstones *int64 `json:"tombstones"`
	Compacting bool   `json:"compacting,omitempty"`
}

// EndpointView is one endpoint of a writer.
type EndpointView struct {
	Name      string  `json:"name"`
	Requests  int     `json:"requests"`
	Errors    int     `json:"errors"`
	AverageMs float64 `json:"average_ms"`
	LastError string  `json:"last_error,omitempty"`
}

// WriterView is one writer instance as the status shows it.
type WriterView struct {
	ID                string         `json:"id"`
	Version           string         `json:"version"`
	State             string         `json:"state"` // StateAnswering or StateNotAnswering
	Started           time.Time      `json:"started"`
	LastSeen          time.Time      `json:"last_seen"`
	NotAnsweringSince *time.Time     `json:"not_answering_since,omitempty"`
	Requests          int            `json:"requests"`
	Errors            int            `json:"errors"`
	Rate              float64        `json:"rate"` // requests per second between the last two looks
	Endpoints         []EndpointView `json:"endpoints"`
}

// look refreshes the stream's state and the writers, unless the last look
// is younger than Refresh, and returns what it found with the replicas
// measured against it.
func (m *Monitor) look(ctx context.Context) (StreamStatus, []ReplicaView, []WriterView, string) {
	m.lookMu.Lock()
	defer m.lookMu.Unlock()
	if now := m.now(); now.Sub(m.lookedAt) >= m.cfg.Refresh {
		m.lookedAt = now
		m.lookStream(ctx)
		m.lookWriters(ctx)
	}
	views := m.replicaViews(m.streamSt, m.oldest)
	st := m.streamSt
	if st.Base != nil {
		b := *st.Base
		b.AgeSeconds = max(m.now().Sub(b.Created).Seconds(), 0)
		st.Base = &b
	}
	m.mu.Lock()
	for _, tr := range m.replicas {
		if tr.ad.Stream == st.ID {
			st.CompactionPoint = max(st.CompactionPoint, tr.ad.CompactPoint)
		}
	}
	m.mu.Unlock()
	return st, views, m.writerViews(), m.writersE
}

// lookBase reads the base snapshot's description from its object store;
// none stored (or of another stream) is nil.
func (m *Monitor) lookBase(ctx context.Context, id string) *BaseSnapshot {
	obs, err := m.cfg.JS.ObjectStore(ctx, wire.BaseBucket(m.cfg.Stream))
	if err != nil {
		return nil
	}
	info, err := obs.GetInfo(ctx, wire.BaseObject)
	if err != nil || info.Metadata[wire.MetaStream] != id {
		return nil
	}
	applied, created, err := wire.BaseMeta(info.Metadata)
	if err != nil {
		return nil
	}
	return &BaseSnapshot{Applied: applied, Bytes: info.Size, Replica: info.Metadata[wire.MetaReplica], Created: created}
}

func (m *Monitor) lookStream(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	h, err := m.cfg.JS.Stream(ctx, m.cfg.Stream)
	if err != nil {
		m.streamSt.Name = m.cfg.Stream
		m.streamSt.Error = fmt.Sprintf("stream %s info: %v", m.cfg.Stream, err)
		return
	}
	info := h.CachedInfo()
	if id := stream.IDOf(info.Config); id != m.streamSt.ID {
		clear(m.oldest) // a recreated stream: its sequences are other messages
	}
	m.streamSt = StreamStatus{
		Name: info.Config.Name, ID: stream.IDOf(info.Config),
		FirstSeq: info.State.FirstSeq, LastSeq: info.State.LastSeq,
		Messages: info.State.Msgs, Bytes: info.State.Bytes,
		Storage: strings.ToLower(info.Config.Storage.String()), Replicas: info.Config.Replicas,
		Created: info.Created, LastWrite: info.State.LastTime, Cluster: info.Cluster, AsOf: info.TimeStamp,
	}
	if m.streamSt.AsOf.IsZero() {
		m.streamSt.AsOf = m.now()
	}
	m.streamSt.Base = m.lookBase(ctx, m.streamSt.ID)
	// The timestamps of the messages lagging replicas wait for, for their
	// lag in seconds; a message the stream no longer holds has none.
	m.mu.Lock()
	want := map[uint64]bool{}
	for _, tr := range m.replicas {
		if next := tr.ad.Applied + 1; next <= info.State.LastSeq && next >= info.State.FirstSeq {
			want[next] = true
		}
	}
	m.mu.Unlock()
	for seq := range m.oldest {
		if !want[seq] {
			delete(m.oldest, seq)
		}
	}
	for seq := range want {
		if _, ok := m.oldest[seq]; ok {
			continue
		}
		if msg, err := h.GetMsg(ctx, seq); err == nil {
			m.oldest[seq] = msg.Time
		}
	}
}

// lookWriters asks every writer instance for its STATS and gathers the
// answers until none came for PingQuiet.
func (m *Monitor) lookWriters(ctx context.Context) {
	if m.cfg.WriterService == "" {
		return
	}
	subject, err := micro.ControlSubject(micro.StatsVerb, m.cfg.WriterService, "")
	if err != nil {
		m.writersE = err.Error()
		return
	}
	inbox := m.cfg.Conn.NewRespInbox()
	sub, err := m.cfg.Conn.SubscribeSync(inbox)
	if err != nil {
		m.writersE = fmt.Sprintf("writers: %v", err)
		return
	}
	defer func() { _ = sub.Unsubscribe() }()
	if err := m.cfg.Conn.PublishRequest(subject, inbox, nil); err != nil {
		m.writersE = fmt.Sprintf("writers: %v", err)
		return
	}
	m.writersE = ""
	wait := DefaultPingWait
	for answered := 0; answered < maxTracked; answered++ {
		wctx, cancel := context.WithTimeout(ctx, wait)
		msg, err := sub.NextMsgWithContext(wctx)
		cancel()
		if err != nil {
			break
		}
		wait = DefaultPingQuiet
		st, err := decodeWriterStats(msg.Data)
		if err != nil {
			continue
		}
		m.observeWriter(st)
	}
}

// decodeWriterStats decodes a micro service STATS reply.
func decodeWriterStats(data []byte) (micro.Stats, error) {
	var st micro.Stats
	if err := json.Unmarshal(data, &st); err != nil {
		return micro.Stats{}, fmt.Errorf("writer stats: %w", err)
	}
	if st.Type != micro.StatsResponseType || st.ID == "" || len(st.ID) > 64 || len(st.Version) > 64 || len(st.Endpoints) > 64 {
		return micro.Stats{}, errors.New("writer stats: not a stats response of one service instance")
	}
	for _, e := range st.Endpoints {
		if e == nil {
			return micro.Stats{}, errors.New("writer stats: null endpoint")
		}
		e.LastError = wire.ShortReason(e.LastError)
		e.Data = nil
	}
	return st, nil
}

func (m *Monitor) observeWriter(st micro.Stats) {
	now := m.now()
	tr := m.writers[st.ID]
	if tr == nil {
		if len(m.writers) >= maxTracked {
			return
		}
		tr = &writerTrack{}
		m.writers[st.ID] = tr
	}
	req := 0
	for _, e := range st.Endpoints {
		req += e.NumRequests
	}
	if !tr.prevAt.IsZero() && now.After(tr.prevAt) && req >= tr.prevReq {
		tr.rate = float64(req-tr.prevReq) / now.Sub(tr.prevAt).Seconds()
	}
	tr.prevReq, tr.prevAt = req, now
	tr.stats, tr.seen, tr.requests = st, now, req
}

// writerViews lists the writers, answering or not, by id. lookMu is held.
func (m *Monitor) writerViews() []WriterView {
	now := m.now()
	out := []WriterView{}
	for id, tr := range m.writers {
		silent := now.Sub(tr.seen)
		if silent > m.cfg.ForgetAfter {
			delete(m.writers, id)
			continue
		}
		v := WriterView{ID: id, Version: tr.stats.Version, State: StateAnswering, Started: tr.stats.Started,
			LastSeen: tr.seen, Requests: tr.requests, Rate: tr.rate, Endpoints: []EndpointView{}}
		// A writer missing from the last look is not answering.
		if tr.seen.Before(m.lookedAt) || silent > m.cfg.StaleAfter {
			since := tr.seen
			v.State, v.NotAnsweringSince, v.Rate = StateNotAnswering, &since, 0
		}
		for _, e := range tr.stats.Endpoints {
			v.Errors += e.NumErrors
			v.Endpoints = append(v.Endpoints, EndpointView{Name: e.Name, Requests: e.NumRequests, Errors: e.NumErrors,
				AverageMs: ms(e.AverageProcessingTime), LastError: e.LastError})
		}
		out = append(out, v)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// replicaViews lists the replicas, answering or not, by id, against the
// stream's state st.
func (m *Monitor) replicaViews(st StreamStatus, oldest map[uint64]time.Time) []ReplicaView {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	out := []ReplicaView{}
	for id, tr := range m.replicas {
		if now.Sub(tr.seen) > m.cfg.ForgetAfter {
			delete(m.replicas, id)
			continue
		}
		out = append(out, m.view(id, tr, st, oldest, now))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// view derives what the status shows of one replica. mu is held.
func (m *Monitor) view(id string, tr *replicaTrack, st StreamStatus, oldest map[uint64]time.Time, now time.Time) ReplicaView {
	ad := tr.ad
	v := ReplicaView{ID: id, Stream: ad.Stream, State: ad.State, Reason: ad.Reason, Ready: ad.Ready,
		Applied: ad.Applied, LastSeen: tr.seen, Rate: tr.rate(now, ad), Tombstones: ad.Tombstones, Compacting: ad.CompactPoint != 0}
	if v.State == "" { // a replica that does not advertise its state
		v.State = wire.StateReady
		if !ad.Ready {
			v.State = StateNotReady
		}
	}
	if st.LastSeq > ad.Applied {
		v.LagMessages = st.LastSeq - ad.Applied
	}
	lagSeconds := 0.0
	if v.LagMessages > 0 {
		lagSeconds = -1
		if t, ok := oldest[ad.Applied+1]; ok {
			lagSeconds = max(0, now.Sub(t).Seconds())
		}
	}
	if lagSeconds >= 0 {
		v.LagSeconds = &lagSeconds
	}
	stalled := now.Sub(tr.movedAt) >= m.cfg.LagAfter
	behind := v.LagMessages > 0 && (lagSeconds >= m.cfg.LagAfter.Seconds() || (lagSeconds < 0 && stalled))
	switch {
	case now.Sub(tr.seen) > m.cfg.StaleAfter:
		since := tr.seen
		v.State, v.NotAnsweringSince, v.Rate = StateNotAnswering, &since, 0
	case st.ID != "" && ad.Stream != st.ID:
		v.State = StateOtherStream
		v.Reason = fmt.Sprintf("applies stream %s, not %s", ad.Stream, st.ID)
	case v.State == wire.StateReady && behind && stalled:
		v.State = StateLagging
		v.Reason = fmt.Sprintf("nothing applied for %.0fs", now.Sub(tr.movedAt).Seconds())
	case v.State == wire.StateReady && behind:
		v.State = wire.StateCatchingUp
	}
	// A catch-up's progress counts from where the replica stood when it was
	// first seen behind: lagging, then applying again, goes on from there.
	if (v.State == wire.StateCatchingUp || v.State == StateLagging) && v.LagMessages > 0 {
		if !tr.catching || tr.catchFrom > ad.Applied {
			tr.catching, tr.catchFrom = true, ad.Applied
		}
	} else {
		tr.catching = false
	}
	if v.State == wire.StateCatchingUp && v.LagMessages > 0 {
		if st.LastSeq > tr.catchFrom {
			p := float64(ad.Applied-tr.catchFrom) / float64(st.LastSeq-tr.catchFrom)
			v.Progress = &p
		}
		if v.Rate > 0 {
			eta := float64(v.LagMessages) / v.Rate
			v.ETASeconds = &eta
		}
	}
	return v
}

// rate is the apply rate over the samples' window, up to now; with less
// than a second of samples, the replica's own advertised rate.
func (tr *replicaTrack) rate(now time.Time, ad wire.ReplicaStatus) float64 {
	if len(tr.samples) == 0 {
		return 0
	}
	first := tr.samples[0]
	dt := now.Sub(first.at)
	if dt < time.Second {
		return ad.Rate
	}
	if ad.Applied < first.applied {
		return 0
	}
	return float64(ad.Applied-first.applied) / dt.Seconds()
}
