// Package natsserver starts the embedded NATS server with JetStream that
// tidemark dev and the tests run on.
package natsserver

import (
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/rs/zerolog"
)

// DefaultMaxPayload is the embedded server's maximum message size: room for
// a 1 MiB value plus headers, and for larger configured values.
const DefaultMaxPayload = 8 << 20

// ServerConfig configures an embedded NATS server with JetStream.
type ServerConfig struct {
	// Listen is the client address, host:port; port 0 or -1 picks a free port.
	Listen string
	// StoreDir is where JetStream keeps its files.
	StoreDir string
	// SyncAlways makes JetStream fsync every write before acknowledging it
	// (sync_interval: always). Without it JetStream syncs every two minutes
	// and a machine crash can lose recently acknowledged writes.
	SyncAlways bool
	// Name is the server name; empty picks one.
	Name string
	// Logger receives the server's log lines; the zero value discards them.
	Logger zerolog.Logger
	// MaxPayload is the server's max_payload, the largest message it
	// accepts; DefaultMaxPayload when 0.
	MaxPayload int32
}

// StartServer starts an embedded NATS server with JetStream and waits until
// it accepts connections. The caller calls Shutdown and WaitForShutdown.
func StartServer(cfg ServerConfig) (*server.Server, error) {
	host, port, err := splitListen(cfg.Listen)
	if err != nil {
		return nil, err
	}
	if cfg.MaxPayload <= 0 {
		cfg.MaxPayload = DefaultMaxPayload
	}
	opts := &server.Options{
		ServerName: cfg.Name,
		Host:       host,
		Port:       port,
		JetStream:  true,
		StoreDir:   cfg.StoreDir,
		MaxPayload: cfg.MaxPayload,
		NoSigs:     true,
		SyncAlways: cfg.SyncAlways,
	}
	s, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("embedded nats: %w", err)
	}
	s.SetLogger(natsLogger{cfg.Logger}, false, false)
	go s.Start()
	if !s.ReadyForConnections(30 * time.Second) {
		s.Shutdown()
		return nil, fmt.Errorf("embedded nats: not ready on %s", cfg.Listen)
	}
	return s, nil
}

func splitListen(addr string) (string, int, error) {
	if addr == "" {
		return "127.0.0.1", -1, nil
	}
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, fmt.Errorf("nats listen address %q: %w", addr, err)
	}
	port, err := strconv.Atoi(p)
	if err != nil || port < -1 || port > 65535 {
		return "", 0, fmt.Errorf("nats listen address %q: bad port", addr)
	}
	if port == 0 {
		port = -1
	}
	if host == "" {
		host = "0.0.0.0"
	}
	return host, port, nil
}

// natsLogger adapts zerolog to the nats-server logger.
type natsLogger struct{ l zerolog.Logger }

func (n natsLogger) Noticef(format string, v ...any) { n.l.Debug().Msgf(format, v...) }
func (n natsLogger) Warnf(format string, v ...any)   { n.l.Warn().Msgf(format, v...) }
func (n natsLogger) Fatalf(format string, v ...any)  { n.l.Error().Msgf(format, v...) }
func (n natsLogger) Errorf(format string, v ...any)  { n.l.Error().Msgf(format, v...) }
func (n natsLogger) Debugf(format string, v ...any)  { n.l.Trace().Msgf(format, v...) }
func (n natsLogger) Tracef(format string, v ...any)  { n.l.Trace().Msgf(format, v...) }
