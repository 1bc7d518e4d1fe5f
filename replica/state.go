package replica

import (
	"github.com/tidemark/tidemark/wire"
)

// State returns what the replica is doing, one of the stream.State values,
// and why it does not serve ("" when it does).
func (r *Replica) State() (state, reason string) {
	if err := r.repl.Bootstrapping(); err != nil {
		return wire.StateBootstrapping, wire.ShortReason(err.Error())
	}
	if err := r.repl.Err(); err != nil {
		return wire.StateStopped, wire.ShortReason(err.Error())
	}
	if !r.repl.Ready() {
		return wire.StateCatchingUp, ""
	}
	return wire.StateReady, ""
}
