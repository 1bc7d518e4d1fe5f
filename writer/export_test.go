package writer

// MaxPendingAcks is maxPendingAcks, for the tests.
const MaxPendingAcks = maxPendingAcks

// NewBatchingEveryWrite is New with group commit, where every write goes to
// the stream in an atomic batch, even one alone: the tests of what a write
// means run through the batches with it.
func NewBatchingEveryWrite(cfg Config) *Writer {
	cfg.GroupCommit = true
	w := New(cfg)
	if w.pub != nil {
		w.pub.minGroup, w.pub.direct = 1, false
	}
	return w
}

// HoldFlights keeps group commit's flights from leaving, as if every one
// of them were in the air: the writes that come queue.
func HoldFlights(w *Writer) {
	for range cap(w.pub.flights) {
		w.pub.flights <- struct{}{}
	}
}

// ReleaseFlights lets held flights leave: the first takes every write
// queued.
func ReleaseFlights(w *Writer) {
	for range cap(w.pub.flights) {
		<-w.pub.flights
	}
}

// Queued returns how many writes wait for a flight.
func Queued(w *Writer) int {
	w.pub.mu.Lock()
	defer w.pub.mu.Unlock()
	return len(w.pub.queue)
}
