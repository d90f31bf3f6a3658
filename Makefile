# vidgen: `make run` serves the API, `make test` runs every check CI runs.
GO    ?= go
SUDO  := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
ADDR  ?= :8080
DATA  ?= ./data

.PHONY: run test build deps check-go fuzz bench soak clean

## deps: installs ffmpeg (with ffprobe) from the distribution when it is missing.
deps: check-go
	@if ! command -v ffmpeg >/dev/null 2>&1 || ! command -v ffprobe >/dev/null 2>&1; then \
		echo "ffmpeg not found: installing it with apt-get"; \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq ffmpeg; \
	fi

check-go:
	@command -v $(GO) >/dev/null 2>&1 || { echo "Go 1.26 or newer is needed: see https://go.dev/doc/install"; exit 1; }

## build: one static binary, ./vidgen.
build: check-go
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "-s -w -X main.version=$$(git describe --always --dirty 2>/dev/null || echo dev)" -o vidgen .

## run: serves the API and the renderer on $(ADDR), data in $(DATA).
run: deps build
	./vidgen serve -addr $(ADDR) -data $(DATA)

## test: formatting, vet, and the whole suite under the race detector (real SQLite, real ffmpeg).
test: deps
	@unformatted=$$(gofmt -l .); if [ -n "$$unformatted" ]; then echo "gofmt needed: $$unformatted"; exit 1; fi
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 30m ./...

## fuzz: every Fuzz target for FUZZTIME each (CI runs this too).
FUZZTIME ?= 5s
fuzz: check-go
	@for f in $$(grep -ho '^func Fuzz[A-Za-z0-9_]*' *_test.go | cut -d' ' -f2); do \
		echo "fuzz $$f"; $(GO) test -run='^$$' -fuzz="^$$f$$" -fuzztime=$(FUZZTIME) . || exit 1; \
	done

## bench: the render benchmark against the tutorial ffmpeg command (several minutes).
bench: deps
	bash bench/render.sh

## soak: the crash/restart soak test.
soak: deps
	bash bench/soak.sh

clean:
	rm -rf vidgen bench/out
