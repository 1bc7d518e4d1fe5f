package config_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/tidemark/tidemark/config"
)

func TestValidate_Errors(t *testing.T) {
	for _, tt := range []struct {
		name   string
		modify func(*config.Config)
		field  string
		want   string
	}{
		// nats
		{"nats.url empty", func(c *config.Config) { c.NATS.URL = "" }, "nats.url", "nats.url: must name at least one server"},
		{"nats.url only commas", func(c *config.Config) { c.NATS.URL = " , ," }, "nats.url", "nats.url: must name at least one server"},
		{"nats.url bad scheme", func(c *config.Config) { c.NATS.URL = "nats://a:4222,http://b:4222" }, "nats.url", `nats.url: entry 2: scheme must be nats, tls, ws or wss, got "http"`},
		{"nats.url no host", func(c *config.Config) { c.NATS.URL = "nats://" }, "nats.url", "nats.url: entry 1: has no host"},
		{"nats.url bad port", func(c *config.Config) { c.NATS.URL = "nats://a:xyz" }, "nats.url", "nats.url: entry 1: invalid port"},
		{"nats.url hides password", func(c *config.Config) { c.NATS.URL = "nats://user:s3cret@a:xyz" }, "nats.url", "nats.url: entry 1:"},
		{"nats.nkey with creds", func(c *config.Config) { c.NATS.Creds, c.NATS.NKey = "a.creds", "a.nk" }, "nats.nkey", "nats.nkey: must not be set together with nats.creds"},
		{"nats.tls_key missing", func(c *config.Config) { c.NATS.TLSCert = "cert.pem" }, "nats.tls_key", "nats.tls_key: must be set when nats.tls_cert is"},
		{"nats.tls_cert missing", func(c *config.Config) { c.NATS.TLSKey = "key.pem" }, "nats.tls_cert", "nats.tls_cert: must be set when nats.tls_key is"},

		// stream
		{"stream.name empty", func(c *config.Config) { c.Stream.Name = "" }, "stream.name", `stream.name: must be 1 to 64 letters, digits, '_' or '-', got ""`},
		{"stream.name dot", func(c *config.Config) { c.Stream.Name = "a.b" }, "stream.name", `got "a.b"`},
		{"stream.name space", func(c *config.Config) { c.Stream.Name = "a b" }, "stream.name", `got "a b"`},
		{"stream.name too long", func(c *config.Config) { c.Stream.Name = strings.Repeat("x", 65) }, "stream.name", "stream.name: must be 1 to 64"},
		{"stream.subject empty", func(c *config.Config) { c.Stream.Subject = "" }, "stream.subject", `stream.subject: must be dot-separated tokens of letters, digits, '_' or '-', got ""`},
		{"stream.subject wildcard", func(c *config.Config) { c.Stream.Subject = "tidemark.*" }, "stream.subject", `got "tidemark.*"`},
		{"stream.subject full wildcard", func(c *config.Config) { c.Stream.Subject = "tidemark.>" }, "stream.subject", `got "tidemark.>"`},
		{"stream.subject empty token", func(c *config.Config) { c.Stream.Subject = "tidemark..kv" }, "stream.subject", `got "tidemark..kv"`},
		{"stream.subject trailing dot", func(c *config.Config) { c.Stream.Subject = "tidemark." }, "stream.subject", `got "tidemark."`},
		{"stream.subject space", func(c *config.Config) { c.Stream.Subject = "tide mark" }, "stream.subject", `got "tide mark"`},
		{"stream.replicas -1", func(c *config.Config) { c.Stream.Replicas = -1 }, "stream.replicas", "stream.replicas: must be between 0 and 5, got -1"},
		{"stream.replicas 6", func(c *config.Config) { c.Stream.Replicas = 6 }, "stream.replicas", "stream.replicas: must be between 0 and 5, got 6"},
		{"stream.max_age negative", func(c *config.Config) { c.Stream.MaxAge = -1 }, "stream.max_age", "stream.max_age: must not be negative, got -1ns"},
		{"stream.max_age too short", func(c *config.Config) { c.Stream.MaxAge = config.Duration(time.Millisecond) }, "stream.max_age", "stream.max_age: must be 0 (unlimited) or at least 100ms, got 1ms"},
		{"stream.max_bytes 0", func(c *config.Config) { c.Stream.MaxBytes = 0 }, "stream.max_bytes", "stream.max_bytes: must be -1 (unlimited) or positive, got 0"},
		{"stream.max_bytes -2", func(c *config.Config) { c.Stream.MaxBytes = -2 }, "stream.max_bytes", "stream.max_bytes: must be -1 (unlimited) or positive, got -2"},
		{"stream.duplicate_window 0", func(c *config.Config) { c.Stream.DuplicateWindow = 0 }, "stream.duplicate_window", "stream.duplicate_window: must be at least 100ms, got 0s"},
		{"stream.duplicate_window negative", func(c *config.Config) { c.Stream.DuplicateWindow = config.Duration(-time.Second) }, "stream.duplicate_window", "stream.duplicate_window: must be at least 100ms, got -1s"},
		{"stream.duplicate_window over max_age", func(c *config.Config) { c.Stream.MaxAge = config.Duration(time.Minute) }, "stream.duplicate_window", "stream.duplicate_window: must not exceed stream.max_age (1m0s), got 2m0s"},

		// api
		{"api.prefix empty", func(c *config.Config) { c.API.Prefix = "" }, "api.prefix", `api.prefix: must be dot-separated tokens`},
		{"api.prefix wildcard", func(c *config.Config) { c.API.Prefix = "*" }, "api.prefix", `api.prefix: must be dot-separated tokens of letters, digits, '_' or '-', got "*"`},

		// gateway
		{"gateway.http empty", func(c *config.Config) { c.Gateway.HTTP = "" }, "gateway.http", `gateway.http: must be host:port, got ""`},
		{"gateway.http no port", func(c *config.Config) { c.Gateway.HTTP = "localhost" }, "gateway.http", `gateway.http: must be host:port, got "localhost"`},
		{"gateway.http named port", func(c *config.Config) { c.Gateway.HTTP = ":http" }, "gateway.http", `gateway.http: port must be a number from 0 to 65535, got ":http"`},
		{"gateway.http port too big", func(c *config.Config) { c.Gateway.HTTP = ":65536" }, "gateway.http", `gateway.http: port must be a number from 0 to 65535, got ":65536"`},
		{"gateway.max_value_bytes 0", func(c *config.Config) { c.Gateway.MaxValueBytes = 0 }, "gateway.max_value_bytes", "gateway.max_value_bytes: must be between 1 and 67108864, got 0"},
		{"gateway.max_value_bytes over 64MiB", func(c *config.Config) { c.Gateway.MaxValueBytes = 64<<20 + 1 }, "gateway.max_value_bytes", "gateway.max_value_bytes: must be between 1 and 67108864, got 67108865"},
		{"gateway.default_wait 0", func(c *config.Config) { c.Gateway.DefaultWait = 0 }, "gateway.default_wait", "gateway.default_wait: must be positive, got 0s"},
		{"gateway.max_wait 0", func(c *config.Config) { c.Gateway.MaxWait = 0 }, "gateway.max_wait", "gateway.max_wait: must be positive, got 0s"},
		{"gateway.default_wait over max_wait", func(c *config.Config) { c.Gateway.DefaultWait = config.Duration(time.Minute) }, "gateway.default_wait", "gateway.default_wait: must not exceed gateway.max_wait (30s), got 1m0s"},

		// replica
		{"replica.id bad", func(c *config.Config) { c.Replica.ID = "a/b" }, "replica.id", `replica.id: must be 1 to 64 letters, digits, '_' or '-', got "a/b"`},
		{"replica.id too long", func(c *config.Config) { c.Replica.ID = strings.Repeat("r", 65) }, "replica.id", "replica.id: must be 1 to 64"},
		{"replica.data empty", func(c *config.Config) { c.Replica.Data = "" }, "replica.data", "replica.data: must not be empty"},
		{"replica.http bad", func(c *config.Config) { c.Replica.HTTP = "9100" }, "replica.http", `replica.http: must be host:port, got "9100"`},

		// dev
		{"compaction.snapshot_messages 0", func(c *config.Config) { c.Compaction.SnapshotMessages = 0 }, "compaction.snapshot_messages", "compaction.snapshot_messages: must be between 1 and 1099511627776, got 0"},
		{"compaction.window_messages -1", func(c *config.Config) { c.Compaction.WindowMessages = -1 }, "compaction.window_messages", "compaction.window_messages: must be between 0 and 1099511627776, got -1"},
		{"compaction.snapshot_age 0", func(c *config.Config) { c.Compaction.SnapshotAge = 0 }, "compaction.snapshot_age", "compaction.snapshot_age: must be positive, got 0s"},
		{"compaction.interval 0", func(c *config.Config) { c.Compaction.Interval = 0 }, "compaction.interval", "compaction.interval: must be positive, got 0s"},
		{"replica.tombstone_horizon 0", func(c *config.Config) { c.Replica.TombstoneHorizon = 0 }, "replica.tombstone_horizon", "replica.tombstone_horizon: must be positive, got 0s"},
		{"writer.group_commit_min 0", func(c *config.Config) { c.Writer.GroupCommitMin = 0 }, "writer.group_commit_min", "writer.group_commit_min: must be between 1 and 1000, got 0"},
		{"writer.group_commit_min 1001", func(c *config.Config) { c.Writer.GroupCommitMin = 1001 }, "writer.group_commit_min", "writer.group_commit_min: must be between 1 and 1000, got 1001"},
		{"writer.txn_max_ops 999", func(c *config.Config) { c.Writer.TxnMaxOps = 999 }, "writer.txn_max_ops", "writer.txn_max_ops: must be between 1 and 998, got 999"},
		{"writer.txn_max_bytes 0", func(c *config.Config) { c.Writer.TxnMaxBytes = 0 }, "writer.txn_max_bytes", "writer.txn_max_bytes: must be between 1 and 67108864, got 0"},
		{"dev.replicas 0", func(c *config.Config) { c.Dev.Replicas = 0 }, "dev.replicas", "dev.replicas: must be between 1 and 16, got 0"},
		{"dev.replicas 17", func(c *config.Config) { c.Dev.Replicas = 17 }, "dev.replicas", "dev.replicas: must be between 1 and 16, got 17"},
		{"dev.nats_listen empty", func(c *config.Config) { c.Dev.NATSListen = "" }, "dev.nats_listen", `dev.nats_listen: must be host:port, got ""`},
		{"dev.nats_listen bad port", func(c *config.Config) { c.Dev.NATSListen = "127.0.0.1:-1" }, "dev.nats_listen", `dev.nats_listen: port must be a number from 0 to 65535, got "127.0.0.1:-1"`},
		{"dev.data empty", func(c *config.Config) { c.Dev.Data = "" }, "dev.data", "dev.data: must not be empty"},

		// log
		{"log.level", func(c *config.Config) { c.Log.Level = "trace" }, "log.level", `log.level: must be one of "debug", "info", "warn", "error", got "trace"`},
		{"log.level upper case", func(c *config.Config) { c.Log.Level = "INFO" }, "log.level", `got "INFO"`},
		{"log.format", func(c *config.Config) { c.Log.Format = "text" }, "log.format", `log.format: must be one of "json", "console", "", got "text"`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := config.Default()
			tt.modify(&c)
			err := c.Validate()
			if err == nil {
				t.Fatalf("Validate()=nil, want error")
			}
			if got, want := err.Error(), tt.want; !strings.Contains(got, want) {
				t.Fatalf("Validate()=%q, want it to contain %q", got, want)
			}
			if strings.Contains(err.Error(), "s3cret") {
				t.Fatalf("Validate()=%q, leaks the password", err)
			}
			if !errors.Is(err, config.ErrInvalid) {
				t.Fatalf("Validate()=%v, does not match ErrInvalid", err)
			}
			var fe *config.FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("Validate()=%v, not a *FieldError", err)
			}
			if got, want := fe.Field, tt.field; got != want {
				t.Fatalf("FieldError.Field=%q, want %q", got, want)
			}
			if got, want := strings.Count(err.Error(), "\n"), 0; got != want {
				t.Fatalf("Validate()=%q, want exactly one error", err)
			}
		})
	}
}

func TestValidate_OK(t *testing.T) {
	for _, tt := range []struct {
		name   string
		modify func(*config.Config)
	}{
		{"nats.url list", func(c *config.Config) { c.NATS.URL = "nats://a:4222, tls://b:4222,,c:4222" }},
		{"nats.url no scheme", func(c *config.Config) { c.NATS.URL = "localhost:4222" }},
		{"nats.url websocket", func(c *config.Config) { c.NATS.URL = "wss://nats.example.com" }},
		{"nats.url with user", func(c *config.Config) { c.NATS.URL = "nats://user:pass@a:4222" }},
		{"nats creds", func(c *config.Config) { c.NATS.Creds = "user.creds" }},
		{"nats nkey", func(c *config.Config) { c.NATS.NKey = "user.nk" }},
		{"nats tls pair", func(c *config.Config) { c.NATS.TLSCert, c.NATS.TLSKey = "c.pem", "k.pem" }},
		{"nats tls ca only", func(c *config.Config) { c.NATS.TLSCA = "ca.pem" }},
		{"stream.name 64", func(c *config.Config) { c.Stream.Name = strings.Repeat("A", 64) }},
		{"stream.subject one token", func(c *config.Config) { c.Stream.Subject = "kv" }},
		{"stream.replicas 5", func(c *config.Config) { c.Stream.Replicas = 5 }},
		{"stream.max_age equals window", func(c *config.Config) { c.Stream.MaxAge = c.Stream.DuplicateWindow }},
		{"stream.max_bytes positive", func(c *config.Config) { c.Stream.MaxBytes = 1 }},
		{"stream.duplicate_window 100ms", func(c *config.Config) { c.Stream.DuplicateWindow = config.Duration(100 * time.Millisecond) }},
		{"gateway.http port 0", func(c *config.Config) { c.Gateway.HTTP = "127.0.0.1:0" }},
		{"gateway.http ipv6", func(c *config.Config) { c.Gateway.HTTP = "[::1]:8080" }},
		{"gateway.max_value_bytes 64MiB", func(c *config.Config) { c.Gateway.MaxValueBytes = 64 << 20 }},
		{"gateway waits equal", func(c *config.Config) { c.Gateway.DefaultWait = c.Gateway.MaxWait }},
		{"replica.id set", func(c *config.Config) { c.Replica.ID = "replica-1_a" }},
		{"replica.http set", func(c *config.Config) { c.Replica.HTTP = ":9100" }},
		{"dev.replicas 16", func(c *config.Config) { c.Dev.Replicas = 16 }},
		{"writer.group_commit_min 1", func(c *config.Config) { c.Writer.GroupCommitMin = 1 }},
		{"log console", func(c *config.Config) { c.Log.Format, c.Log.Level = config.LogFormatConsole, "error" }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := config.Default()
			tt.modify(&c)
			if err := c.Validate(); err != nil {
				t.Fatalf("Validate()=%v, want nil", err)
			}
		})
	}
}

func TestValidate_ListsEveryError(t *testing.T) {
	c := config.Default()
	c.Gateway.MaxValueBytes = 0
	c.Dev.Replicas = 0
	c.Log.Level = "loud"
	err := c.Validate()
	for _, want := range []string{"gateway.max_value_bytes:", "dev.replicas:", "log.level:"} {
		if got := err.Error(); !strings.Contains(got, want) {
			t.Fatalf("Validate()=%q, want it to contain %q", got, want)
		}
	}
	if got, want := strings.Count(err.Error(), "\n"), 2; got != want {
		t.Fatalf("Validate()=%q has %d newlines, want %d", err, got, want)
	}
}

func TestValidateTokenKeys(t *testing.T) {
	c := config.Default()
	c.Gateway.TokenKeys = "a-key-of-twenty-bytes, short"
	err := c.Validate()
	if err == nil || !strings.Contains(err.Error(), "gateway.token_keys: key 2 is 5 bytes") {
		t.Fatalf("Validate()=%v, want the short key named", err)
	}
	c.Gateway.TokenKeys = "a-key-of-twenty-bytes,another-long-key-here"
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
}
