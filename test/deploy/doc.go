// Package deploy proves the deployment files at the root of the repository,
// docker-compose.yml, Dockerfile and .dockerignore, without Docker: Docker
// cannot run where scanq is developed and tested.
//
// The compose file is loaded with github.com/compose-spec/compose-go/v2, the
// loader Docker Compose itself uses, so a file these tests accept is one
// `docker compose` accepts; its services are then checked against the real
// scanq: the subcommands of a freshly built binary, the configuration keys of
// package configs, and the configuration each service's environment loads
// into. The Dockerfile is parsed as text.
//
// It is its own module (it needs compose-go, which scanq does not), so run it
// from here:
//
//	cd test/deploy && go test ./...
package deploy
