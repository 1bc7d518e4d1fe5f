// Package natsconn connects the roles to NATS: retrying with backoff,
// logging connection events, and telling which connection errors retrying
// cannot fix.
package natsconn

import (
	"github.com/tidemark/tidemark/wire"

	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/tidemark/tidemark/internal/backoff"

	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"
)

// ConnectConfig says how to reach NATS.
type ConnectConfig struct {
	// URL is one server URL or a comma-separated list.
	URL string
	// Name is the connection name shown by the server.
	Name string
	// Creds is a credentials (JWT + seed) file.
	Creds string
	// NKey is an nkey seed file.
	NKey string
	// TLSCert, TLSKey and TLSCA configure TLS; any one of them turns it on.
	TLSCert, TLSKey, TLSCA string
	// Logger receives connection state changes, once each.
	Logger zerolog.Logger
}

// Conn is a NATS connection with its health as Tidemark reports it.
type Conn struct {
	*nats.Conn
	up atomic.Bool
}

// Healthy reports whether the connection is currently connected.
func (c *Conn) Healthy() bool { return c.up.Load() && c.IsConnected() }

// Connect connects to NATS, retrying with backoff until ctx ends, and keeps
// reconnecting forever afterwards. State changes are logged once each.
func Connect(ctx context.Context, cfg ConnectConfig) (*Conn, error) {
	c := &Conn{}
	log := cfg.Logger
	opts := []nats.Option{
		nats.Name(cfg.Name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		nats.ReconnectJitter(100*time.Millisecond, time.Second),
		nats.RetryOnFailedConnect(false),
		nats.PingInterval(5 * time.Second),
		nats.MaxPingsOutstanding(3),
		nats.ReconnectBufSize(8 << 20),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			c.up.Store(false)
			if err != nil {
				log.Warn().Err(err).Msg("nats disconnected; reconnecting")
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			c.up.Store(true)
			log.Info().Str("server", nc.ConnectedUrlRedacted()).Msg("nats reconnected")
		}),
		nats.ClosedHandler(func(*nats.Conn) { c.up.Store(false) }),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			subj := ""
			if sub != nil {
				subj = sub.Subject
			}
			log.Warn().Err(err).Str("subject", subj).Msg("nats async error")
		}),
	}
	if cfg.Creds != "" {
		opts = append(opts, nats.UserCredentials(cfg.Creds))
	}
	if cfg.NKey != "" {
		o, err := nats.NkeyOptionFromSeed(cfg.NKey)
		if err != nil {
			return nil, fmt.Errorf("nkey %s: %w", cfg.NKey, err)
		}
		opts = append(opts, o)
	}
	if cfg.TLSCA != "" {
		opts = append(opts, nats.RootCAs(cfg.TLSCA))
	}
	if cfg.TLSCert != "" || cfg.TLSKey != "" {
		opts = append(opts, nats.ClientCert(cfg.TLSCert, cfg.TLSKey))
	}
	url := strings.Join(strings.Fields(strings.ReplaceAll(cfg.URL, ",", " ")), ",")
	if url == "" {
		url = nats.DefaultURL
	}
	var b backoff.Backoff
	warned := false
	for {
		nc, err := nats.Connect(url, opts...)
		if err == nil {
			c.Conn = nc
			c.up.Store(true)
			log.Info().Str("server", nc.ConnectedUrlRedacted()).Msg("nats connected")
			return c, nil
		}
		if ctx.Err() != nil || wire.Permanent(err) {
			return nil, fmt.Errorf("connect %s: %w", url, err)
		}
		ev := log.Debug()
		if !warned {
			ev, warned = log.Warn(), true
		}
		ev.Err(err).Str("url", url).Msg("nats connect; retrying")
		if err := b.Wait(ctx); err != nil {
			return nil, fmt.Errorf("connect %s: %w", url, err)
		}
	}
}
