package replica

import "github.com/tidemark/tidemark/stream"

// State returns what the replica is doing, one of the stream.State values,
// and why it does not serve ("" when it does).
func (r *Replica) State() (state, reason string) {
	if err := r.repl.Bootstrapping(); err != nil {
		return stream.StateBootstrapping, stream.ShortReason(err.Error())
	}
	if err := r.repl.Err(); err != nil {
		return stream.StateStopped, stream.ShortReason(err.Error())
	}
	if !r.repl.Ready() {
		return stream.StateCatchingUp, ""
	}
	return stream.StateReady, ""
}
