// Package deploy holds the container stack: deploy/Dockerfile (an image FROM
// scratch holding the static tidemark and nats-server binaries), the NATS
// JetStream cluster configurations in deploy/nats, and, behind the build tag
// compose, the test that runs ../docker-compose.yml end to end
// (`make compose-test`). It has no Go API.
package deploy
