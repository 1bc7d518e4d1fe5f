package replicator

// SetTxnWaitHook sets a hook the apply loop calls each time it holds part
// of a transaction and waits for the rest; set it before Run.
func SetTxnWaitHook(r *Replicator, hook func(held int)) { r.txnWaitHook = hook }
