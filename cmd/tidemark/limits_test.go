package main

import (
	"github.com/tidemark/tidemark/internal/natsserver"

	"github.com/tidemark/tidemark/wire"

	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tidemark/tidemark/internal/testenv"
)

// TestStartWarnsOfTheTransportValueLimit starts the writer and the gateway
// against a server whose max_payload cannot carry gateway.max_value_bytes:
// each says so at start, with the limit it enforces instead.
func TestStartWarnsOfTheTransportValueLimit(t *testing.T) {
	const maxPayload = 64 << 10
	e := testenv.StartServer(t, natsserver.ServerConfig{MaxPayload: maxPayload})
	limit := strconv.Itoa(wire.TransportMaxValue(maxPayload))
	for _, role := range []string{"writer", "gateway"} {
		t.Run(role, func(t *testing.T) {
			args := []string{role, "--nats", e.Server.ClientURL(), "--log-level", "warn"}
			if role == "gateway" {
				args = append(args, "--http", freeAddr(t))
			}
			var stderr testenv.LogBuffer
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- run(ctx, args, &stderr, &stderr) }()
			defer func() {
				cancel()
				if err := <-done; err != nil {
					t.Errorf("%s: %v", role, err)
				}
			}()
			testenv.Eventually(t, 20*time.Second, "the value limit warning", func() bool {
				out := stderr.String()
				return strings.Contains(out, "max_value_bytes") && strings.Contains(out, "65536") && strings.Contains(out, limit)
			})
		})
	}
}
