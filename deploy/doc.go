// Package deploy holds the container stack: deploy/Dockerfile (an image FROM
// scratch holding the static tidemark and nats-server binaries), the NATS
// JetStream cluster configurations in deploy/nats, a test of what
// ../docker-compose.yml publishes, and, behind the build tag compose, the
// test that runs it end to end (`make compose-test`). It has no Go API.
package deploy
