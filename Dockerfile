# syntax=docker/dockerfile:1
#
# scanq container image: one static binary on distroless, running as a
# non-root user. Every role is a subcommand: `docker run scanq worker`,
# `... scheduler`, `... api`, `... emulator`; with no arguments it runs
# `scanq serve` (every role in one process, demo mode on embedded defaults).
#
#   docker build -t scanq:local .
#   docker run --rm -p 127.0.0.1:8080:8080 -e SCANQ_API_ALLOW_UNAUTHENTICATED=true scanq:local
#                                                       # demo: http://localhost:8080/monitoring/
#   docker compose up -d                                # the fleet: see docker-compose.yml
#
# The demo needs SCANQ_API_ALLOW_UNAUTHENTICATED=true because the container's
# API listens on every interface of the container and has no credentials;
# with SCANQ_API_TOKEN set it needs nothing more.
#
# test/deploy checks this file (cd test/deploy && go test ./...).

# ---- build: a static binary ------------------------------------------------
# BUILDPLATFORM/TARGETARCH let `docker buildx build --platform linux/arm64`
# cross-compile natively instead of emulating the whole toolchain.
FROM --platform=$BUILDPLATFORM golang:1.26 AS build
ARG TARGETOS=linux
ARG TARGETARCH
WORKDIR /src

# Modules first, so a source change does not download them again; the cache
# mounts keep modules and build results across builds without putting them
# in any layer.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod \
    go mod download

COPY . .
# CGO_ENABLED=0: a static binary that needs no libc, so it runs on
# distroless/static. -trimpath keeps build paths out of the binary; -s -w
# drop the symbol table and DWARF. Time zones for schedules come from
# time/tzdata, which package configs imports, so the image needs no zoneinfo.
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH \
    go build -trimpath -ldflags "-s -w" -o /out/scanq ./cmd/scanq

# ---- final: distroless static, non-root -------------------------------------
# CA certificates (for https:// HSS endpoints and rediss://) and /etc/passwd
# with the nonroot user (uid 65532) come with the base image; there is no
# shell and no package manager.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/scanq /scanq
USER nonroot:nonroot
# scanq api / scanq serve listen on api.addr. Its default, 127.0.0.1:8080, is
# unreachable from outside a container, so the image listens on every
# interface of the container; without api.token (or api.ak/api.sk) the API
# then refuses to start unless SCANQ_API_ALLOW_UNAUTHENTICATED=true is given
# to `docker run`: the image itself never opens an unauthenticated API.
ENV SCANQ_API_ADDR=:8080
EXPOSE 8080
ENTRYPOINT ["/scanq"]
CMD ["serve"]
