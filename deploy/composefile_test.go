package deploy_test

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/tidemark/tidemark/config"
)

// httpPort is the HTTP port (metrics, health) of each role in the
// containers of docker-compose.yml.
var httpPort = map[string]string{"nats": "8222", "writer": "9100", "replica": "9100", "gateway": "8080"}

// published matches a port published on loopback with a host port that a
// variable overrides: 127.0.0.1:${TIDEMARK_X_PORT:-18081}:8080.
var published = regexp.MustCompile(`^127\.0\.0\.1:\$\{(TIDEMARK_[A-Z0-9_]+_PORT):-([0-9]+)\}:([0-9]+)$`)

// Every service of docker-compose.yml publishes its role's metrics and
// health port on 127.0.0.1 only, on a host port of its own that a
// TIDEMARK_*_PORT variable overrides; none of those variables names a
// Tidemark setting, so setting one never changes a process's configuration.
func TestComposeFilePublishesEveryHTTPPort(t *testing.T) {
	data, err := os.ReadFile("../docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Services map[string]struct {
			Ports []string `yaml:"ports"`
		} `yaml:"services"`
	}
	if err := yaml.Unmarshal(data, &doc); err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	if len(doc.Services) != 10 {
		t.Fatalf("docker-compose.yml has %d services, want 10 (3 NATS servers, 2 writers, 3 replicas, 2 gateways)", len(doc.Services))
	}
	vars, hostPorts := map[string]string{}, map[string]string{}
	var environ []string
	for name, svc := range doc.Services {
		role, _, _ := strings.Cut(name, "-")
		want, ok := httpPort[role]
		if !ok {
			t.Fatalf("service %s: unknown role %q", name, role)
		}
		found := false
		for _, p := range svc.Ports {
			m := published.FindStringSubmatch(p)
			if m == nil {
				t.Errorf("service %s publishes %q, want 127.0.0.1:${TIDEMARK_..._PORT:-port}:port", name, p)
				continue
			}
			if other, dup := vars[m[1]]; dup {
				t.Errorf("services %s and %s share the variable %s", name, other, m[1])
			}
			if other, dup := hostPorts[m[2]]; dup {
				t.Errorf("services %s and %s share the default host port %s", name, other, m[2])
			}
			vars[m[1]], hostPorts[m[2]] = name, name
			environ = append(environ, m[1]+"="+m[2])
			found = found || m[3] == want
		}
		if !found {
			t.Errorf("service %s does not publish its HTTP port %s: %v", name, want, svc.Ports)
		}
	}
	unknown := config.UnknownEnv(environ)
	for _, kv := range environ {
		if v, _, _ := strings.Cut(kv, "="); !slices.Contains(unknown, v) {
			t.Errorf("compose variable %s names a Tidemark setting; pick another name", v)
		}
	}
	if _, err := config.Load("", environ); err != nil {
		t.Errorf("the compose variables break loading the configuration: %v", err)
	}
}
