// Package api is the vocabulary every Tidemark role and client speaks: the
// session Token, the error codes, the requests and results of writes, reads
// and scans, the key and id rules, the consistency levels, the header names
// and the JSON bodies shared by HTTP and NATS. It imports no NATS package.
package api
