package config_test

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tidemark/tidemark/config"
)

// writeFile writes data to a file in a temporary directory and returns its
// path.
func writeFile(t testing.TB, data string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "tidemark.yaml")
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

const fullYAML = `# every field
nats:
  url: nats://a:4222, nats://b:4222
  creds: /etc/tidemark/user.creds
  nkey: ""
  tls_cert: /etc/tls/cert.pem
  tls_key: /etc/tls/key.pem
  tls_ca: /etc/tls/ca.pem
  name: gateway-1
stream:
  name: KV_prod
  subject: prod.kv
  replicas: 3
  max_age: 720h
  max_bytes: 1073741824
  duplicate_window: 5m
  reconfigure: true
api:
  prefix: prod.api
gateway:
  http: 0.0.0.0:9090
  max_value_bytes: 4096
  default_wait: 2s
  max_wait: 10s
replica:
  id: replica-a
  data: /var/lib/tidemark
  sync_writes: true
  http: 127.0.0.1:9100
  bootstrap: false
  cache_mb: 16
  tombstone_horizon: 48h
compaction:
  enabled: false
  snapshot_messages: 5000
  snapshot_age: 1m
  window_messages: 200
  interval: 2s
writer:
  group_commit: false
  group_commit_min: 3
dev:
  replicas: 3
  nats_listen: 127.0.0.1:14222
  data: /tmp/td
  durable: true
log:
  level: debug
  format: json
`

func fullConfig() config.Config {
	return config.Config{
		NATS: config.NATSConfig{
			URL:     "nats://a:4222, nats://b:4222",
			Creds:   "/etc/tidemark/user.creds",
			TLSCert: "/etc/tls/cert.pem",
			TLSKey:  "/etc/tls/key.pem",
			TLSCA:   "/etc/tls/ca.pem",
			Name:    "gateway-1",
		},
		Stream: config.StreamConfig{
			Name:            "KV_prod",
			Subject:         "prod.kv",
			Replicas:        3,
			MaxAge:          config.Duration(720 * time.Hour),
			MaxBytes:        1 << 30,
			DuplicateWindow: config.Duration(5 * time.Minute),
			Reconfigure:     true,
		},
		API: config.APIConfig{Prefix: "prod.api"},
		Gateway: config.GatewayConfig{
			HTTP:          "0.0.0.0:9090",
			MaxValueBytes: 4096,
			DefaultWait:   config.Duration(2 * time.Second),
			MaxWait:       config.Duration(10 * time.Second),
			WatchProgress: config.Duration(5 * time.Second),
		},
		Writer: config.WriterConfig{GroupCommit: false, GroupCommitMin: 3, TxnMaxOps: config.DefaultWriterTxnMaxOps, TxnMaxBytes: config.DefaultWriterTxnMaxBytes},
		Replica: config.ReplicaConfig{
			ID:         "replica-a",
			Data:       "/var/lib/tidemark",
			SyncWrites: true,
			HTTP:       "127.0.0.1:9100",
			Bootstrap:  false,
			CacheMB:    16,

			TombstoneHorizon: config.Duration(48 * time.Hour),
			WatchWindow:      100000,
			WatchWindowMB:    64,
		},
		Compaction: config.CompactionConfig{
			Enabled: false, SnapshotMessages: 5000, SnapshotAge: config.Duration(time.Minute),
			WindowMessages: 200, Interval: config.Duration(2 * time.Second),
		},
		Dev: config.DevConfig{
			Replicas:   3,
			NATSListen: "127.0.0.1:14222",
			Data:       "/tmp/td",
			Durable:    true,
		},
		Log: config.LogConfig{Level: "debug", Format: config.LogFormatJSON},
	}
}

func TestLoad_NoFileNoEnv(t *testing.T) {
	c, err := config.Load("", nil)
	if err != nil {
		t.Fatalf("Load=%v", err)
	}
	if got, want := c, config.Default(); got != want {
		t.Fatalf("Load=%+v, want %+v", got, want)
	}
}

func TestLoad_YAML(t *testing.T) {
	c, err := config.Load(writeFile(t, fullYAML), nil)
	if err != nil {
		t.Fatalf("Load=%v", err)
	}
	if got, want := c, fullConfig(); got != want {
		t.Fatalf("Load=\n%+v\nwant\n%+v", got, want)
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("Validate=%v", err)
	}
}

func TestLoad_YAMLPartial(t *testing.T) {
	for _, tt := range []struct {
		name  string
		yaml  string
		check func(config.Config) bool
	}{
		{"empty file", "", func(c config.Config) bool { return c == config.Default() }},
		{"comments only", "# nothing\n", func(c config.Config) bool { return c == config.Default() }},
		{"empty document", "---\n", func(c config.Config) bool { return c == config.Default() }},
		{"null document", "~\n", func(c config.Config) bool { return c == config.Default() }},
		{"empty section", "gateway:\n", func(c config.Config) bool { return c == config.Default() }},
		{"empty mapping section", "gateway: {}\n", func(c config.Config) bool { return c == config.Default() }},
		{"null keeps default", "gateway:\n  http:\n  max_wait: ~\n", func(c config.Config) bool { return c == config.Default() }},
		{"one field", "gateway:\n  http: :9999\n", func(c config.Config) bool {
			want := config.Default()
			want.Gateway.HTTP = ":9999"
			return c == want
		}},
		{"quoted number into string", "nats:\n  name: \"123\"\n", func(c config.Config) bool { return c.NATS.Name == "123" }},
		{"number into string", "nats:\n  name: 123\n", func(c config.Config) bool { return c.NATS.Name == "123" }},
		{"quoted empty string", "nats:\n  name: \"\"\n  url: ''\n", func(c config.Config) bool { return c.NATS.URL == "" }},
		{"flow style", "dev: {replicas: 4, durable: true}\n", func(c config.Config) bool { return c.Dev.Replicas == 4 && c.Dev.Durable }},
		{"anchor and alias", "gateway:\n  default_wait: &w 3s\n  max_wait: *w\n", func(c config.Config) bool {
			return c.Gateway.DefaultWait == config.Duration(3*time.Second) && c.Gateway.MaxWait == c.Gateway.DefaultWait
		}},
		{"explicit document end", "---\nlog:\n  level: warn\n...\n", func(c config.Config) bool { return c.Log.Level == "warn" }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, err := config.Load(writeFile(t, tt.yaml), nil)
			if err != nil {
				t.Fatalf("Load=%v", err)
			}
			if !tt.check(c) {
				t.Fatalf("Load gave %+v", c)
			}
		})
	}
}

func TestLoad_YAMLErrors(t *testing.T) {
	for _, tt := range []struct {
		name    string
		yaml    string
		want    []string
		unknown bool
	}{
		{"unknown field", "gateway:\n  http: :80\n  max_vaule_bytes: 5\n", []string{":3: gateway.max_vaule_bytes: unknown field"}, true},
		{"unknown section", "log:\n  level: info\ngatway:\n  http: :80\n", []string{":3: gatway: unknown field"}, true},
		{"dotted name at top", "gateway.http: :80\n", []string{":1: gateway.http: unknown field", `nest it under "gateway:"`}, true},
		{"wrong case", "Gateway:\n  HTTP: :80\n", []string{":1: Gateway: unknown field"}, true},
		{"merge key", "base: &b {http: x}\ngateway:\n  <<: *b\n", []string{"base: unknown field", ":3: gateway.<<: unknown field"}, true},
		{"every unknown field listed", "nats:\n  uri: x\n  nme: y\n", []string{":2: nats.uri: unknown field", ":3: nats.nme: unknown field"}, true},
		{"bad int", "gateway:\n  max_value_bytes: lots\n", []string{`:2: gateway.max_value_bytes: want an integer, got "lots"`}, false},
		{"float for int", "stream:\n  replicas: 1.0\n", []string{`:2: stream.replicas: want an integer, got "1.0"`}, false},
		{"bad bool", "replica:\n  sync_writes: yes\n", []string{`:2: replica.sync_writes: want true or false, got "yes"`}, false},
		{"bad duration", "\n\ngateway:\n  max_wait: 30\n", []string{`:4: gateway.max_wait: want a duration such as "250ms" or "2m", got "30"`}, false},
		{"negative duration", "stream:\n  max_age: -1h\n", []string{`:2: stream.max_age: must not be negative, got "-1h"`}, false},
		{"list value", "nats:\n  url: [a, b]\n", []string{`:2: nats.url: want a single value, got a list`}, false},
		{"mapping value", "nats:\n  url: {a: b}\n", []string{`:2: nats.url: want a single value, got a mapping`}, false},
		{"scalar section", "gateway: :8080\n", []string{`:1: gateway: want a mapping, got ":8080"`}, false},
		{"list section", "gateway:\n  - http\n", []string{`:2: gateway: want a mapping, got a list`}, false},
		{"scalar document", "hello\n", []string{`:1: invalid config: want a mapping of sections`}, false},
		{"list document", "- a\n- b\n", []string{`:1: invalid config: want a mapping of sections`}, false},
		{"duplicate section", "log:\n  level: info\nlog:\n  level: debug\n", []string{`:3: log: repeated, first given on line 1`}, false},
		{"duplicate field", "log:\n  level: info\n  level: debug\n", []string{`:3: log.level: repeated, first given on line 2`}, false},
		{"binary", "nats:\n  name: !!binary aGVsbG8=\n", []string{`:2: nats.name: want a plain value, got !!binary`}, false},
		{"non-scalar key", "? [a]\n: b\n", []string{`:1: invalid config: want a field name, got a list`}, false},
		{"non-scalar leaf key", "log:\n  ? [a]\n  : b\n", []string{`:2: log: want a field name, got a list`}, false},
		{"syntax error", "gateway:\n  http: :80\n bad\n", []string{"invalid config: yaml:"}, false},
		{"tab indentation", "gateway:\n\thttp: :80\n", []string{"invalid config: yaml:"}, false},
		{"two documents", "log:\n  level: info\n---\nlog:\n  level: debug\n", []string{":3: invalid config: want one YAML document, found another"}, false},
		{"unknown anchor", "gateway:\n  http: *nope\n", []string{"invalid config: yaml:"}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			path := writeFile(t, tt.yaml)
			_, err := config.Load(path, nil)
			if err == nil {
				t.Fatalf("Load=nil, want error")
			}
			if !strings.Contains(err.Error(), path) {
				t.Fatalf("Load=%q, want it to name the file %s", err, path)
			}
			for _, want := range tt.want {
				if got := err.Error(); !strings.Contains(got, want) {
					t.Fatalf("Load=%q, want it to contain %q", got, want)
				}
			}
			if !errors.Is(err, config.ErrInvalid) {
				t.Fatalf("Load=%v, does not match ErrInvalid", err)
			}
			if got, want := errors.Is(err, config.ErrUnknownField), tt.unknown; got != want {
				t.Fatalf("errors.Is(%v, ErrUnknownField)=%v, want %v", err, got, want)
			}
		})
	}
}

func TestLoad_YAMLFieldError(t *testing.T) {
	_, err := config.Load(writeFile(t, "gateway:\n  max_value_bytes: x\n"), nil)
	var fe *config.FieldError
	if !errors.As(err, &fe) {
		t.Fatalf("Load=%v, want a *FieldError", err)
	}
	if got, want := fe.Field, "gateway.max_value_bytes"; got != want {
		t.Fatalf("Field=%q, want %q", got, want)
	}
}

func TestLoad_MissingFile(t *testing.T) {
	_, err := config.Load(filepath.Join(t.TempDir(), "nope.yaml"), nil)
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Load=%v, want fs.ErrNotExist", err)
	}
}

func TestLoad_Env(t *testing.T) {
	c, err := config.Load("", []string{
		"PATH=/usr/bin",
		"TIDEMARK_CONFIG=/ignored.yaml",
		"TIDEMARK_NATS_URL=nats://env:4222",
		"TIDEMARK_GATEWAY_MAX_VALUE_BYTES=2048",
		"TIDEMARK_DEV_NATS_LISTEN=127.0.0.1:5222",
		"TIDEMARK_REPLICA_SYNC_WRITES=false",
		"TIDEMARK_STREAM_DUPLICATE_WINDOW=90s",
		"TIDEMARK_REPLICA_HTTP=",
		"TIDEMARK_LOG_FORMAT=a=b",
		"tidemark_log_level=debug",
		"TIDEMARK_NO_EQUALS_SIGN",
	})
	if err != nil {
		t.Fatalf("Load=%v", err)
	}
	want := config.Default()
	want.NATS.URL = "nats://env:4222"
	want.Gateway.MaxValueBytes = 2048
	want.Dev.NATSListen = "127.0.0.1:5222"
	want.Replica.SyncWrites = false
	want.Stream.DuplicateWindow = config.Duration(90 * time.Second)
	want.Log.Format = "a=b"
	if got := c; got != want {
		t.Fatalf("Load=\n%+v\nwant\n%+v", got, want)
	}
}

func TestLoad_EnvEveryField(t *testing.T) {
	// Every field can be set from the environment, under EnvName.
	want := fullConfig()
	var environ []string
	for _, name := range config.Fields() {
		v, err := want.Get(name)
		if err != nil {
			t.Fatal(err)
		}
		environ = append(environ, config.EnvName(name)+"="+v)
	}
	c, err := config.Load("", environ)
	if err != nil {
		t.Fatalf("Load=%v", err)
	}
	if got := c; got != want {
		t.Fatalf("Load=\n%+v\nwant\n%+v", got, want)
	}
}

func TestLoad_EnvOverridesFile(t *testing.T) {
	path := writeFile(t, "gateway:\n  http: :1111\n  max_wait: 10s\nlog:\n  level: warn\n")
	c, err := config.Load(path, []string{
		"TIDEMARK_GATEWAY_HTTP=:2222",
		"TIDEMARK_LOG_LEVEL=error",
	})
	if err != nil {
		t.Fatalf("Load=%v", err)
	}
	if got, want := c.Gateway.HTTP, ":2222"; got != want {
		t.Fatalf("Gateway.HTTP=%q, want %q", got, want)
	}
	if got, want := c.Log.Level, "error"; got != want {
		t.Fatalf("Log.Level=%q, want %q", got, want)
	}
	if got, want := c.Gateway.MaxWait, config.Duration(10*time.Second); got != want {
		t.Fatalf("Gateway.MaxWait=%v, want %v (from the file)", got, want)
	}
}

func TestSet_OverridesEnv(t *testing.T) {
	path := writeFile(t, "dev:\n  replicas: 3\n")
	c, err := config.Load(path, []string{"TIDEMARK_DEV_REPLICAS=4"})
	if err != nil {
		t.Fatalf("Load=%v", err)
	}
	if got, want := c.Dev.Replicas, 4; got != want {
		t.Fatalf("Dev.Replicas=%d, want %d (env over file)", got, want)
	}
	if err := c.Set("dev.replicas", "5"); err != nil {
		t.Fatalf("Set=%v", err)
	}
	if got, want := c.Dev.Replicas, 5; got != want {
		t.Fatalf("Dev.Replicas=%d, want %d (flag over env)", got, want)
	}
}

func TestLoad_EnvErrors(t *testing.T) {
	for _, tt := range []struct {
		name    string
		environ []string
		want    []string
		unknown bool
	}{
		{"bad int", []string{"TIDEMARK_GATEWAY_MAX_VALUE_BYTES=1MiB"}, []string{`TIDEMARK_GATEWAY_MAX_VALUE_BYTES: gateway.max_value_bytes: want an integer, got "1MiB"`}, false},
		{"bad bool", []string{"TIDEMARK_DEV_DURABLE=on"}, []string{`TIDEMARK_DEV_DURABLE: dev.durable: want true or false, got "on"`}, false},
		{"bad duration", []string{"TIDEMARK_GATEWAY_DEFAULT_WAIT=5"}, []string{`TIDEMARK_GATEWAY_DEFAULT_WAIT: gateway.default_wait: want a duration`}, false},
		{"negative duration", []string{"TIDEMARK_STREAM_MAX_AGE=-5m"}, []string{`stream.max_age: must not be negative`}, false},
		{"every error listed", []string{"TIDEMARK_DEV_DURABLE=on", "TIDEMARK_DEV_REPLICAS=two"}, []string{"dev.durable: want true or false", "dev.replicas: want an integer"}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := config.Load("", tt.environ)
			if err == nil {
				t.Fatalf("Load=nil, want error")
			}
			for _, want := range tt.want {
				if got := err.Error(); !strings.Contains(got, want) {
					t.Fatalf("Load=%q, want it to contain %q", got, want)
				}
			}
			if !errors.Is(err, config.ErrInvalid) {
				t.Fatalf("Load=%v, does not match ErrInvalid", err)
			}
			if got, want := errors.Is(err, config.ErrUnknownField), tt.unknown; got != want {
				t.Fatalf("errors.Is(%v, ErrUnknownField)=%v, want %v", err, got, want)
			}
		})
	}
}

// A TIDEMARK_ variable that names no setting is left alone (listed by
// UnknownEnv for a warning): an unrelated variable never breaks a command.
func TestLoad_UnknownEnv(t *testing.T) {
	environ := []string{"TIDEMARK_GATEWAY_HTTPS=:80", "TIDEMARK_NATS_PORT=18422", "TIDEMARK_=x", "TIDEMARK_DEV_REPLICAS=3", "OTHER=1"}
	c, err := config.Load("", environ)
	if err != nil {
		t.Fatalf("Load=%v, want nil", err)
	}
	if got, want := c.Dev.Replicas, 3; got != want {
		t.Fatalf("Dev.Replicas=%d, want %d", got, want)
	}
	if got, want := strings.Join(config.UnknownEnv(environ), ","), "TIDEMARK_GATEWAY_HTTPS,TIDEMARK_NATS_PORT,TIDEMARK_"; got != want {
		t.Fatalf("UnknownEnv=%s, want %s", got, want)
	}
}

func TestLoad_YAMLAliasErrorLine(t *testing.T) {
	// An error in an aliased value names the line of the alias.
	_, err := config.Load(writeFile(t, "nats:\n  name: &n five\ndev:\n  replicas: *n\n"), nil)
	if got, want := err.Error(), `:4: dev.replicas: want an integer, got "five"`; !strings.Contains(got, want) {
		t.Fatalf("Load=%q, want it to contain %q", got, want)
	}
}
