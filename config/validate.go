package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/tidemark/tidemark/stream"
	"github.com/tidemark/tidemark/writer"
)

// Validate checks every setting and returns an error listing each bad one
// (joined with errors.Join), or nil. Each error is a *FieldError matching
// ErrInvalid, such as
//
//	gateway.max_value_bytes: must be between 1 and 67108864, got 0
func (c Config) Validate() error {
	var v validator

	// nats
	v.check("nats.url", natsURLs(c.NATS.URL))
	if c.NATS.Creds != "" && c.NATS.NKey != "" {
		v.add("nats.nkey", "must not be set together with nats.creds")
	}
	if c.NATS.TLSCert != "" && c.NATS.TLSKey == "" {
		v.add("nats.tls_key", "must be set when nats.tls_cert is")
	}
	if c.NATS.TLSKey != "" && c.NATS.TLSCert == "" {
		v.add("nats.tls_cert", "must be set when nats.tls_key is")
	}

	// stream
	v.check("stream.name", identifier(c.Stream.Name))
	v.check("stream.subject", subject(c.Stream.Subject))
	v.between("stream.replicas", int64(c.Stream.Replicas), 0, maxStreamReplicas)
	switch d := c.Stream.MaxAge; {
	case d < 0:
		v.add("stream.max_age", fmt.Sprintf("must not be negative, got %s", d))
	case d != 0 && d < minJetStreamDuration:
		v.add("stream.max_age", fmt.Sprintf("must be 0 (unlimited) or at least %s, got %s", minJetStreamDuration, d))
	}
	if b := c.Stream.MaxBytes; b == 0 || b < -1 {
		v.add("stream.max_bytes", fmt.Sprintf("must be -1 (unlimited) or positive, got %d", b))
	}
	switch d := c.Stream.DuplicateWindow; {
	case d < minJetStreamDuration:
		v.add("stream.duplicate_window", fmt.Sprintf("must be at least %s, got %s", minJetStreamDuration, d))
	case c.Stream.MaxAge >= minJetStreamDuration && d > c.Stream.MaxAge:
		v.add("stream.duplicate_window", fmt.Sprintf("must not exceed stream.max_age (%s), got %s", c.Stream.MaxAge, d))
	}

	// api
	v.check("api.prefix", subject(c.API.Prefix))

	// gateway
	v.check("gateway.http", listenAddr(c.Gateway.HTTP))
	v.between("gateway.max_value_bytes", int64(c.Gateway.MaxValueBytes), 1, maxGatewayValueBytes)
	v.positive("gateway.default_wait", c.Gateway.DefaultWait)
	v.positive("gateway.max_wait", c.Gateway.MaxWait)
	for i, k := range strings.Split(c.Gateway.TokenKeys, ",") {
		if k = strings.TrimSpace(k); k != "" && len(k) < minTokenKeyLen {
			v.add("gateway.token_keys", fmt.Sprintf("key %d is %d bytes, want at least %d", i+1, len(k), minTokenKeyLen))
		}
	}
	if c.Gateway.MaxWait > 0 && c.Gateway.DefaultWait > c.Gateway.MaxWait {
		v.add("gateway.default_wait", fmt.Sprintf("must not exceed gateway.max_wait (%s), got %s", c.Gateway.MaxWait, c.Gateway.DefaultWait))
	}

	if d := c.Gateway.WatchProgress; d < Duration(100*time.Millisecond) || d > Duration(time.Minute) {
		v.add("gateway.watch_progress", fmt.Sprintf("must be between 100ms and 1m, got %s", d))
	}

	// writer
	v.between("writer.group_commit_min", int64(c.Writer.GroupCommitMin), 1, stream.MaxAtomicBatch)
	v.between("writer.txn_max_ops", int64(c.Writer.TxnMaxOps), 1, writer.MaxTxnOps)
	v.between("writer.txn_max_bytes", int64(c.Writer.TxnMaxBytes), 1, 64<<20)

	// replica
	if c.Replica.ID != "" {
		v.check("replica.id", identifier(c.Replica.ID))
	}
	v.nonEmpty("replica.data", c.Replica.Data)
	v.between("replica.cache_mb", int64(c.Replica.CacheMB), 0, maxReplicaCacheMB)
	v.between("replica.watch_window", int64(c.Replica.WatchWindow), 1, 10_000_000)
	v.between("replica.watch_window_mb", int64(c.Replica.WatchWindowMB), 1, 65536)
	if c.Replica.HTTP != "" {
		v.check("replica.http", listenAddr(c.Replica.HTTP))
	}

	v.positive("replica.tombstone_horizon", c.Replica.TombstoneHorizon)

	// compaction
	v.between("compaction.snapshot_messages", c.Compaction.SnapshotMessages, 1, maxCompactionMessages)
	v.between("compaction.window_messages", c.Compaction.WindowMessages, 0, maxCompactionMessages)
	v.positive("compaction.snapshot_age", c.Compaction.SnapshotAge)
	v.positive("compaction.interval", c.Compaction.Interval)

	// dev
	v.between("dev.replicas", int64(c.Dev.Replicas), 1, maxDevReplicas)
	v.check("dev.nats_listen", listenAddr(c.Dev.NATSListen))
	v.nonEmpty("dev.data", c.Dev.Data)

	// log
	v.oneOf("log.level", c.Log.Level, "debug", "info", "warn", "error")
	v.oneOf("log.format", c.Log.Format, LogFormatJSON, LogFormatConsole, "")

	return errors.Join(v.errs...)
}

// validator collects one FieldError per broken rule.
type validator struct {
	errs []error
}

// add records that field breaks a rule described by msg.
func (v *validator) add(field, msg string) {
	v.errs = append(v.errs, invalid(field, msg))
}

// check records field as bad if err, a rule's message, is not nil.
func (v *validator) check(field string, err error) {
	if err != nil {
		v.add(field, err.Error())
	}
}

// between checks that n lies in [lo, hi].
func (v *validator) between(field string, n, lo, hi int64) {
	if n < lo || n > hi {
		v.add(field, fmt.Sprintf("must be between %d and %d, got %d", lo, hi, n))
	}
}

// positive checks that d is above zero.
func (v *validator) positive(field string, d Duration) {
	if d <= 0 {
		v.add(field, fmt.Sprintf("must be positive, got %s", d))
	}
}

// nonEmpty checks that s is set.
func (v *validator) nonEmpty(field, s string) {
	if s == "" {
		v.add(field, "must not be empty")
	}
}

// oneOf checks that s is one of allowed.
func (v *validator) oneOf(field, s string, allowed ...string) {
	for _, a := range allowed {
		if s == a {
			return
		}
	}
	quoted := make([]string, len(allowed))
	for i, a := range allowed {
		quoted[i] = strconv.Quote(a)
	}
	v.add(field, fmt.Sprintf("must be one of %s, got %q", strings.Join(quoted, ", "), s))
}

// identifier checks s against ^[A-Za-z0-9_-]{1,64}$.
func identifier(s string) error {
	if len(s) < 1 || len(s) > maxIdentifierLen || !isToken(s) {
		return fmt.Errorf("must be 1 to %d letters, digits, '_' or '-', got %q", maxIdentifierLen, s)
	}
	return nil
}

// subject checks that s is a NATS subject of [A-Za-z0-9_-]+ tokens
// separated by dots, with no wildcards.
func subject(s string) error {
	for tok := range strings.SplitSeq(s, ".") {
		if tok == "" || !isToken(tok) {
			return fmt.Errorf("must be dot-separated tokens of letters, digits, '_' or '-', got %q", s)
		}
	}
	return nil
}

// isToken reports whether s is made only of [A-Za-z0-9_-].
func isToken(s string) bool {
	for i := range len(s) {
		switch b := s[i]; {
		case 'a' <= b && b <= 'z', 'A' <= b && b <= 'Z', '0' <= b && b <= '9', b == '_', b == '-':
		default:
			return false
		}
	}
	return true
}

// listenAddr checks that s is host:port with a numeric port, such as
// ":8080" or "127.0.0.1:0".
func listenAddr(s string) error {
	_, port, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Errorf("must be host:port, got %q", s)
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return fmt.Errorf("port must be a number from 0 to 65535, got %q", s)
	}
	return nil
}

// natsURLs checks a comma-separated list of NATS server URLs the way the
// NATS client reads it: empty entries are skipped, the scheme defaults to
// nats. Messages do not repeat the URL, which may hold a password.
func natsURLs(s string) error {
	n := 0
	for i, u := range strings.Split(s, ",") {
		u = strings.TrimSpace(u)
		if u == "" {
			continue
		}
		n++
		if !strings.Contains(u, "://") {
			u = "nats://" + u
		}
		p, err := url.Parse(u)
		if err != nil {
			var ue *url.Error
			if errors.As(err, &ue) {
				err = ue.Err
			}
			return fmt.Errorf("entry %d: %s", i+1, err)
		}
		switch p.Scheme {
		case "nats", "tls", "ws", "wss":
		default:
			return fmt.Errorf("entry %d: scheme must be nats, tls, ws or wss, got %q", i+1, p.Scheme)
		}
		if p.Host == "" {
			return fmt.Errorf("entry %d: has no host", i+1)
		}
	}
	if n == 0 {
		return errors.New("must name at least one server")
	}
	return nil
}
