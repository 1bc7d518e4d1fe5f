package writer

// MaxPendingAcks is maxPendingAcks, for the tests.
const MaxPendingAcks = maxPendingAcks
