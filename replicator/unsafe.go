package replicator

import "github.com/dgraph-io/badger/v4"

// appliedTxnOf chooses how a batch's applied sequence is committed: with
// its data, always, but for Config.UnsafeSplitApplied.
func appliedTxnOf(cfg Config) func(db *badger.DB, txn *badger.Txn, last uint64) (*badger.Txn, error) {
	if !cfg.UnsafeSplitApplied {
		return sameTxn
	}
	after := cfg.UnsafeAfterData
	return func(db *badger.DB, txn *badger.Txn, last uint64) (*badger.Txn, error) {
		if err := txn.Commit(); err != nil {
			return nil, err
		}
		if after != nil {
			after(last)
		}
		return db.NewTransaction(true), nil
	}
}

// sameTxn commits a batch's applied sequence in the transaction of its data.
func sameTxn(_ *badger.DB, txn *badger.Txn, _ uint64) (*badger.Txn, error) { return txn, nil }
