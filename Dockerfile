# syntax=docker/dockerfile:1
# vidgen's container image, written for Docker Engine 28 (BuildKit, the default builder since 23.0).
#   docker build --build-arg VERSION=$(git describe --tags --always) -t vidgen .
#   docker run -d --name vidgen -p 8080:8080 -v vidgen-data:/data \
#     -e VIDGEN_PUBLIC_URL=https://video.example.com vidgen
# The first start prints the first API key once to the log (docker logs vidgen); docs/deploy.md#docker
# has the rest. `make check-docker` checks this file and runs its steps in a scratch root.

# The build stage: one static binary, as `make build` makes it.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/vidgen .

# The image: Debian's ffmpeg and ffprobe, heif-convert for HEIC/AVIF uploads, CA certificates for
# HTTPS webhooks, and the binary, run as an unprivileged user whose data is the /data volume.
FROM debian:12-slim
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ffmpeg libheif-examples ca-certificates \
 && rm -rf /var/lib/apt/lists/*
RUN useradd --system --user-group --uid 10001 --home-dir /data --no-create-home --shell /usr/sbin/nologin vidgen \
 && install -d -o vidgen -g vidgen -m 0700 /data
COPY --from=build /out/vidgen /usr/local/bin/vidgen
ENV VIDGEN_DATA=/data VIDGEN_ADDR=:8080
USER vidgen
WORKDIR /data
VOLUME /data
EXPOSE 8080
# vidgen health asks the serve in this container for /api/health (VIDGEN_ADDR): no curl in the image.
HEALTHCHECK --interval=30s --timeout=10s --start-period=30s --retries=3 CMD ["vidgen", "health"]
# SIGTERM: vidgen drains HTTP, lets renders finish for -shutdown-grace (20 s) and exits in about 25 s;
# give `docker stop` more than that (docker stop -t 45, or stop_grace_period: 45s in compose).
STOPSIGNAL SIGTERM
ENTRYPOINT ["vidgen"]
CMD ["serve"]
