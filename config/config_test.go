package config_test

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tidemark/tidemark/config"
)

func TestDefault_Validates(t *testing.T) {
	if err := config.Default().Validate(); err != nil {
		t.Fatalf("Default().Validate()=%v, want nil", err)
	}
}

func TestDefault_Values(t *testing.T) {
	c := config.Default()
	for _, tt := range []struct {
		name string
		got  any
		want any
	}{
		{"nats.url", c.NATS.URL, "nats://127.0.0.1:4222"},
		{"stream.name", c.Stream.Name, "TIDEMARK"},
		{"stream.subject", c.Stream.Subject, "tidemark.kv"},
		{"stream.replicas", c.Stream.Replicas, 0},
		{"stream.max_age", c.Stream.MaxAge, config.Duration(0)},
		{"stream.max_bytes", c.Stream.MaxBytes, int64(-1)},
		{"stream.duplicate_window", c.Stream.DuplicateWindow, config.Duration(2 * time.Minute)},
		{"api.prefix", c.API.Prefix, "tidemark"},
		{"gateway.http", c.Gateway.HTTP, ":8080"},
		{"gateway.max_value_bytes", c.Gateway.MaxValueBytes, 1048576},
		{"gateway.default_wait", c.Gateway.DefaultWait, config.Duration(5 * time.Second)},
		{"gateway.max_wait", c.Gateway.MaxWait, config.Duration(30 * time.Second)},
		{"gateway.access_log", c.Gateway.AccessLog, false},
		{"replica.id", c.Replica.ID, ""},
		{"replica.data", c.Replica.Data, "./tidemark-replica"},
		{"replica.sync_writes", c.Replica.SyncWrites, false},
		{"writer.group_commit", c.Writer.GroupCommit, true},
		{"writer.group_commit_min", c.Writer.GroupCommitMin, 8},
		{"writer.txn_max_ops", c.Writer.TxnMaxOps, 100},
		{"writer.txn_max_bytes", c.Writer.TxnMaxBytes, 1 << 20},
		{"replica.http", c.Replica.HTTP, ""},
		{"replica.bootstrap", c.Replica.Bootstrap, true},
		{"replica.cache_mb", c.Replica.CacheMB, 64},
		{"replica.tombstone_horizon", c.Replica.TombstoneHorizon, config.Duration(24 * time.Hour)},
		{"compaction.enabled", c.Compaction.Enabled, true},
		{"compaction.snapshot_messages", c.Compaction.SnapshotMessages, int64(100000)},
		{"compaction.snapshot_age", c.Compaction.SnapshotAge, config.Duration(10 * time.Minute)},
		{"compaction.window_messages", c.Compaction.WindowMessages, int64(50000)},
		{"compaction.interval", c.Compaction.Interval, config.Duration(10 * time.Second)},
		{"replica.watch_window", c.Replica.WatchWindow, 100000},
		{"replica.watch_window_mb", c.Replica.WatchWindowMB, 64},
		{"gateway.watch_progress", c.Gateway.WatchProgress, config.Duration(5 * time.Second)},
		{"dev.replicas", c.Dev.Replicas, 2},
		{"dev.nats_listen", c.Dev.NATSListen, "127.0.0.1:4222"},
		{"dev.data", c.Dev.Data, "./tidemark-data"},
		{"dev.durable", c.Dev.Durable, false},
		{"log.level", c.Log.Level, "info"},
		{"log.format", c.Log.Format, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got, want := tt.got, tt.want; got != want {
				t.Fatalf("%s=%v (%T), want %v (%T)", tt.name, got, got, want, want)
			}
		})
	}
}

func TestFields(t *testing.T) {
	names := config.Fields()
	if got, want := len(names), 48; got != want {
		t.Fatalf("len(Fields())=%d, want %d: %v", got, want, names)
	}
	if !slices.IsSorted(names) {
		t.Fatalf("Fields() not sorted: %v", names)
	}
	for _, want := range []string{"gateway.http", "dev.nats_listen", "replica.sync_writes", "stream.duplicate_window", "nats.tls_ca"} {
		if !slices.Contains(names, want) {
			t.Fatalf("Fields()=%v, want it to contain %q", names, want)
		}
	}
	names[0] = "changed"
	if got := config.Fields()[0]; got == "changed" {
		t.Fatalf("Fields() returned shared slice")
	}
}

func TestFields_GetSetRoundTrip(t *testing.T) {
	for _, name := range config.Fields() {
		t.Run(name, func(t *testing.T) {
			c := config.Default()
			s, err := c.Get(name)
			if err != nil {
				t.Fatalf("Get(%q)=%v", name, err)
			}
			if err := c.Set(name, s); err != nil {
				t.Fatalf("Set(%q, %q)=%v", name, s, err)
			}
			if got, want := c, config.Default(); got != want {
				t.Fatalf("after Set(%q, %q): %+v, want %+v", name, s, got, want)
			}
		})
	}
}

func TestEnvName(t *testing.T) {
	for _, tt := range []struct {
		field, want string
	}{
		{"gateway.max_value_bytes", "TIDEMARK_GATEWAY_MAX_VALUE_BYTES"},
		{"gateway.access_log", "TIDEMARK_GATEWAY_ACCESS_LOG"},
		{"nats.url", "TIDEMARK_NATS_URL"},
		{"dev.nats_listen", "TIDEMARK_DEV_NATS_LISTEN"},
	} {
		t.Run(tt.field, func(t *testing.T) {
			if got, want := config.EnvName(tt.field), tt.want; got != want {
				t.Fatalf("EnvName(%q)=%q, want %q", tt.field, got, want)
			}
		})
	}
}

func TestSet(t *testing.T) {
	for _, tt := range []struct {
		name  string
		field string
		value string
		check func(config.Config) bool
	}{
		{"string", "gateway.http", "127.0.0.1:9000", func(c config.Config) bool { return c.Gateway.HTTP == "127.0.0.1:9000" }},
		{"empty string", "nats.url", "", func(c config.Config) bool { return c.NATS.URL == "" }},
		{"int", "dev.replicas", "7", func(c config.Config) bool { return c.Dev.Replicas == 7 }},
		{"int plus sign", "dev.replicas", "+3", func(c config.Config) bool { return c.Dev.Replicas == 3 }},
		{"int negative", "dev.replicas", "-3", func(c config.Config) bool { return c.Dev.Replicas == -3 }},
		{"int64", "stream.max_bytes", "1099511627776", func(c config.Config) bool { return c.Stream.MaxBytes == 1<<40 }},
		{"bool false", "writer.group_commit", "false", func(c config.Config) bool { return !c.Writer.GroupCommit }},
		{"bool 1", "dev.durable", "1", func(c config.Config) bool { return c.Dev.Durable }},
		{"bool TRUE", "dev.durable", "TRUE", func(c config.Config) bool { return c.Dev.Durable }},
		{"duration ms", "gateway.default_wait", "250ms", func(c config.Config) bool { return c.Gateway.DefaultWait == config.Duration(250*time.Millisecond) }},
		{"duration h", "stream.max_age", "1h", func(c config.Config) bool { return c.Stream.MaxAge == config.Duration(time.Hour) }},
		{"duration compound", "gateway.max_wait", "1m30s", func(c config.Config) bool { return c.Gateway.MaxWait == config.Duration(90*time.Second) }},
		{"duration zero", "stream.max_age", "0", func(c config.Config) bool { return c.Stream.MaxAge == 0 }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := config.Default()
			if err := c.Set(tt.field, tt.value); err != nil {
				t.Fatalf("Set(%q, %q)=%v", tt.field, tt.value, err)
			}
			if !tt.check(c) {
				t.Fatalf("Set(%q, %q) gave %+v", tt.field, tt.value, c)
			}
		})
	}
}

func TestSet_Errors(t *testing.T) {
	for _, tt := range []struct {
		name    string
		field   string
		value   string
		want    string
		unknown bool
	}{
		{"unknown field", "gateway.htp", "x", `gateway.htp: unknown field`, true},
		{"section only", "gateway", "x", `gateway: unknown field`, true},
		{"env style name", "GATEWAY_HTTP", "x", `GATEWAY_HTTP: unknown field`, true},
		{"int garbage", "gateway.max_value_bytes", "abc", `gateway.max_value_bytes: want an integer, got "abc"`, false},
		{"int float", "dev.replicas", "1.5", `dev.replicas: want an integer, got "1.5"`, false},
		{"int space", "dev.replicas", " 3", `dev.replicas: want an integer, got " 3"`, false},
		{"int empty", "dev.replicas", "", `dev.replicas: want an integer, got ""`, false},
		{"int out of range", "dev.replicas", "99999999999999999999", `dev.replicas: integer out of range, got "99999999999999999999"`, false},
		{"int64 out of range", "stream.max_bytes", "9223372036854775808", `stream.max_bytes: integer out of range`, false},
		{"bool yes", "replica.sync_writes", "yes", `replica.sync_writes: want true or false, got "yes"`, false},
		{"bool empty", "dev.durable", "", `dev.durable: want true or false, got ""`, false},
		{"duration no unit", "gateway.default_wait", "5", `gateway.default_wait: want a duration such as "250ms" or "2m", got "5"`, false},
		{"duration garbage", "stream.duplicate_window", "soon", `stream.duplicate_window: want a duration`, false},
		{"duration negative", "gateway.max_wait", "-1s", `gateway.max_wait: must not be negative, got "-1s"`, false},
		{"duration overflow", "stream.max_age", "10000000h", `stream.max_age: want a duration`, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := config.Default()
			err := c.Set(tt.field, tt.value)
			if err == nil {
				t.Fatalf("Set(%q, %q)=nil, want error", tt.field, tt.value)
			}
			if got, want := err.Error(), tt.want; !strings.Contains(got, want) {
				t.Fatalf("Set(%q, %q)=%q, want it to contain %q", tt.field, tt.value, got, want)
			}
			if !errors.Is(err, config.ErrInvalid) {
				t.Fatalf("Set error %v does not match ErrInvalid", err)
			}
			if got, want := errors.Is(err, config.ErrUnknownField), tt.unknown; got != want {
				t.Fatalf("errors.Is(%v, ErrUnknownField)=%v, want %v", err, got, want)
			}
			var fe *config.FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("Set error %v is not a *FieldError", err)
			}
			if got, want := fe.Field, tt.field; got != want {
				t.Fatalf("FieldError.Field=%q, want %q", got, want)
			}
			if got, want := c, config.Default(); got != want {
				t.Fatalf("failed Set changed the config: %+v", got)
			}
		})
	}
}

func TestGet_Unknown(t *testing.T) {
	_, err := config.Default().Get("nope.nope")
	if !errors.Is(err, config.ErrUnknownField) {
		t.Fatalf("Get(unknown)=%v, want ErrUnknownField", err)
	}
}

func TestDuration_Text(t *testing.T) {
	var d config.Duration
	if err := d.UnmarshalText([]byte("1m30s")); err != nil {
		t.Fatalf("UnmarshalText=%v", err)
	}
	if got, want := d, config.Duration(90*time.Second); got != want {
		t.Fatalf("UnmarshalText gave %v, want %v", got, want)
	}
	b, err := d.MarshalText()
	if err != nil {
		t.Fatalf("MarshalText=%v", err)
	}
	if got, want := string(b), "1m30s"; got != want {
		t.Fatalf("MarshalText=%q, want %q", got, want)
	}
	for _, bad := range []string{"-1s", "x", "", "5"} {
		if err := d.UnmarshalText([]byte(bad)); !errors.Is(err, config.ErrInvalid) {
			t.Fatalf("UnmarshalText(%q)=%v, want ErrInvalid", bad, err)
		}
	}
}
