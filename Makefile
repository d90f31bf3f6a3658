# vidgen: `make run` serves the API, `make test` runs every check CI runs.
GO    ?= go
SUDO  := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
ADDR  ?= :8080
DATA  ?= ./data

.PHONY: run test test-s3 test-postgres test-backends e2e e2e-browser build deps check-go check-tools fuzz bench bench-nodes soak clean check-deploy check-metrics release check-release check-docker check-openapi

## deps: installs ffmpeg (with ffprobe) from the distribution when it is missing.
deps: check-go
	@if ! command -v ffmpeg >/dev/null 2>&1 || ! command -v ffprobe >/dev/null 2>&1; then \
		echo "ffmpeg not found: installing it with apt-get"; \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq ffmpeg; \
	fi

check-go:
	@command -v $(GO) >/dev/null 2>&1 || { echo "Go 1.26 or newer is needed: see https://go.dev/doc/install"; exit 1; }

## check-tools: the tests run the real ffmpeg, and the race detector needs cgo and so a C compiler.
## As root (a fresh machine, CI) what is missing is installed with apt-get; anyone else is told the
## command: the tests never run sudo.
check-tools: check-go
	@if ! command -v ffmpeg >/dev/null 2>&1 || ! command -v ffprobe >/dev/null 2>&1; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
			echo "ffmpeg not found: installing it with apt-get"; \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ffmpeg; \
		else \
			echo "The tests need ffmpeg and ffprobe: install them with 'sudo apt-get install -y ffmpeg' (or 'make deps')"; exit 1; \
		fi; \
	fi
	@if ! command -v "$$($(GO) env CC)" >/dev/null 2>&1; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
			echo "no C compiler (the race detector needs cgo): installing gcc with apt-get"; \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gcc libc6-dev; \
		else \
			echo "The tests run under the race detector, which needs a C compiler: install it with 'sudo apt-get install -y gcc'"; exit 1; \
		fi; \
	fi

## build: one static binary, ./vidgen.
build: check-go
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "-s -w -X main.version=$(VERSION)" -o vidgen .

## run: serves the API and the renderer on $(ADDR), data in $(DATA).
run: deps build
	./vidgen serve -addr $(ADDR) -data $(DATA)

## TEST_PARALLEL: parallel tests at once, two a core. The fast suite's tests wait on ffmpeg, ffprobe
## and HTTP as much as they compute: on two cores 4 kept both busier than go test's default of one a
## core (test binary 79-82 s against 85-96 s; 6 took 89 s).
TEST_PARALLEL ?= $(shell echo $$((2 * $$(nproc 2>/dev/null || echo 1))))

## test: formatting, vet, and the fast suite under the race detector (real HTTP, SQLite and ffmpeg).
test: check-tools
	@unformatted=$$(gofmt -l .); if [ -n "$$unformatted" ]; then echo "gofmt needed: $$unformatted"; exit 1; fi
	$(GO) vet ./...
	$(GO) vet -tags e2e ./...
	$(GO) test -race -count=1 -parallel $(TEST_PARALLEL) -timeout 20m ./...

## test-s3: the file backend's contract suite, the service on a bucket (TestFiles*) and the real
## binary on one (TestE2EFiles*), against a real S3-compatible server: scripts/s3-test.sh builds
## versitygw (pinned in tools/versitygw/go.mod) once into ~/.cache/vidgen (a cold build takes
## minutes), starts it on a free loopback port with a throwaway directory and a bucket, and stops it
## after. `make test` runs the disk's half alone.
test-s3: check-tools
	@command -v curl >/dev/null 2>&1 || { $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq curl >/dev/null; }
	GO=$(GO) bash scripts/s3-test.sh $(GO) test -race -count=1 -tags e2e -run 'TestFiles|TestE2EFiles' .

## test-postgres: the store's contract tests (each runs on SQLite and on Postgres) and the Postgres
## tests (with TestE2EPostgresKill9Reclaim: two real processes, one killed mid-render), against a throwaway PostgreSQL that scripts/postgres-test.sh starts on a free loopback port
## and stops after (it installs the postgresql package when initdb is missing). A test added to the
## contract suite (forEachStore) joins STORE_TESTS.
STORE_TESTS = Postgres|TestInstallID|TestSizesExpiredOutputs|Lease|TestIdempotencyClaimOwners|TestDeliveryClaims|TestMigrateStore|TestTransition|TestClaimOrder|TestOneActiveJobIndex|TestListJobsKeyset|TestJobOptionsStored|TestPruneDeliveries|TestStoreBackendName|TestConcurrentClaims|TestCancelRacesClaim
test-postgres: check-tools
	bash scripts/postgres-test.sh $(GO) test -race -count=1 -tags e2e -parallel $(TEST_PARALLEL) -run '$(STORE_TESTS)' -timeout 10m .

## test-backends: what test-postgres and test-s3 run, and the tests of several real vidgen processes on
## one Postgres and one bucket (TestE2ENodes*, TestE2ERenderOnlyNode, which need both), under one
## throwaway PostgreSQL and one versitygw: the two scripts nested. CI runs this one in their place.
## Then deploy/check-scaling.sh on a fresh pair: every command of docs/scaling.md, two nodes behind
## the real nginx (installed with apt-get when missing), a job through it to one node and its video from
## the other (18 s).
NODE_TESTS = TestE2ENodes|TestE2ERenderOnlyNode
test-backends: check-tools
	@{ command -v curl && command -v jq && command -v nginx; } >/dev/null 2>&1 || { $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq curl jq nginx >/dev/null; }
	GO=$(GO) bash scripts/postgres-test.sh bash scripts/s3-test.sh $(GO) test -race -count=1 -tags e2e -parallel $(TEST_PARALLEL) \
		-run '$(STORE_TESTS)|TestFiles|TestE2EFiles|$(NODE_TESTS)' -timeout 15m .
	GO=$(GO) bash scripts/postgres-test.sh bash scripts/s3-test.sh bash deploy/check-scaling.sh

## e2e: the slow tests: kill -9 cycles of the real binary, SIGTERM, the Node.js receiver, slowloris,
## a descriptor flood, and every case of the tables of renders (make test renders one in sixteen); then
## the browser test. It installs libheif-examples (apt) when missing, so the HEIC and AVIF cases run.
E2E_TESTS = E2E|TestCorpus|TestFormatMatrix|TestPictureFidelity|TestAudioFidelity|TestLoudness|TestPlatformSizes|TestCaptionStill
e2e: check-tools
	@command -v heif-enc >/dev/null 2>&1 || { echo "heif-enc not found: installing libheif-examples with apt-get (HEIC/AVIF cases)"; \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq libheif-examples >/dev/null; }
	$(GO) test -race -count=1 -tags e2e -run '$(E2E_TESTS)' -timeout 30m .
	$(MAKE) e2e-browser

## fuzz: every Fuzz target of every package for FUZZTIME each (CI runs this too). A count of
## executions, not a duration: Go 1.26's fuzzer can fail a duration run with "context deadline
## exceeded" when its deadline races a busy worker (go.dev/issue/75804, fixed in Go 1.27); a count
## has no deadline. go test -list names a package's targets (build tags and all); only packages
## whose tests declare one are listed, so the others' test binaries are not built for nothing.
FUZZTIME ?= 10000x
fuzz: check-go
	@for pkg in $$($(GO) list -f '{{.ImportPath}}={{.Dir}}' ./...); do \
		dir=$${pkg#*=}; pkg=$${pkg%%=*}; \
		grep -qs '^func Fuzz' $$dir/*_test.go || continue; \
		for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
			echo "fuzz $$pkg $$f"; $(GO) test -run='^$$' -fuzz="^$$f$$" -fuzztime=$(FUZZTIME) $$pkg || exit 1; \
		done; \
	done

## bench: the render benchmark against the tutorial ffmpeg command (several minutes).
bench: deps
	bash bench/render.sh

## bench-nodes: jobs an hour for one node and two on one Postgres and bucket, and the SQLite single
## box, in one run, with their ratios (bench/nodes.sh starts the servers; ~2 minutes).
bench-nodes: deps
	bash bench/nodes.sh

## soak: the crash/restart soak test.
soak: deps
	bash bench/soak.sh

## check-deploy: deploy/check.sh: systemd-analyze verify on deploy/vidgen.service (systemd is installed
## when missing), caddy validate / nginx -t on the proxy examples when those are installed, and, as
## root, every command of docs/deploy.md in a scratch root (sqlite3 and jq are installed when missing),
## `vidgen keys` run as root among them; where systemd is init, the build as a Type=notify service;
## then TestE2EProxyUploads: both configurations in the real nginx and Caddy (installed as root when
## missing; skipped, and said so, otherwise), uploads at and over the limits (17 s).
check-deploy: check-go
	@command -v systemd-analyze >/dev/null 2>&1 || { $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq systemd >/dev/null; }
	@{ command -v sqlite3 && command -v jq; } >/dev/null 2>&1 || { $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq sqlite3 jq >/dev/null; }
	@if [ "$$(id -u)" = 0 ] && ! { command -v nginx && command -v caddy; } >/dev/null 2>&1; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx caddy >/dev/null; fi
	GO=$(GO) bash deploy/check.sh
	$(GO) test -count=1 -tags e2e -run '^TestE2EProxyUploads$$' .

## check-metrics: deploy/check-metrics.sh: promtool check rules and test rules on docs/alerts.yml, and
## promtool check metrics on a real scrape of a fresh build. promtool is taken from Debian's prometheus
## package when it is not on PATH (apt-get download: the package itself, which would start a
## Prometheus server, is not installed).
check-metrics: check-go
	@command -v curl >/dev/null 2>&1 || { $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq curl >/dev/null; }
	GO=$(GO) bash deploy/check-metrics.sh

## e2e-browser: e2e/browser.test.mjs: Debian's Chromium, headless and driven by playwright-core,
## submits a job through the page at /, waits for COMPLETED, checks the video plays on the page and on
## its share link, and saves docs/page.png and docs/share.png. It installs chromium (apt) and
## playwright-core (npm, e2e/package-lock.json) when missing; it needs Node.js 20 or newer.
e2e-browser: check-tools build
	@command -v chromium >/dev/null 2>&1 || { echo "chromium not found: installing it with apt-get"; \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium >/dev/null; }
	@command -v node >/dev/null 2>&1 || { echo "Node.js 20 or newer is needed for the browser test"; exit 1; }
	@[ -d e2e/node_modules/playwright-core ] || (cd e2e && npm ci --no-audit --no-fund)
	cd e2e && VIDGEN_BIN="$(CURDIR)/vidgen" node --test browser.test.mjs

## release: one archive an architecture, $(DIST)/vidgen-VERSION-linux-{amd64,arm64}.tar.gz, each a folder
## with the static binary, deploy/ (the systemd unit, its settings, the proxy configurations), LICENSE,
## README.md, openapi.yaml and docs/; the bare binaries beside them (docs/deploy.md installs one), and
## SHA256SUMS of all four. VERSION is `git describe --tags`: v1.2.0 on a tagged commit, v1.2.0-3-gabc1234
## after it, the commit alone before the first tag; `vidgen -version` prints it. The archives are
## byte-for-byte reproducible: sorted, owned by root, dated at the commit, gzip without a timestamp.
## check-release: TestReleaseArchives (e2e-tagged, not in make e2e) runs `make release` into a temporary
## folder and checks the archives' contents, the binaries' architecture and version, and SHA256SUMS
## (69 s with a warm build cache on 2 busy cores; the first cross builds took 4 min).
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
DIST    ?= dist
RELEASE_FILES = LICENSE README.md openapi.yaml docs deploy/vidgen.service deploy/vidgen.env deploy/Caddyfile deploy/nginx.conf
release: check-go
	rm -rf $(DIST) && mkdir -p $(DIST)
	@set -e; stamp=$$(git log -1 --format=%cI 2>/dev/null || date -u +%FT%TZ); \
	for arch in amd64 arm64; do \
		name=vidgen-$(VERSION)-linux-$$arch; stage=$$(mktemp -d); \
		echo "build $(DIST)/$$name.tar.gz"; \
		CGO_ENABLED=0 GOOS=linux GOARCH=$$arch $(GO) build -trimpath -ldflags "-s -w -X main.version=$(VERSION)" \
			-o $(DIST)/$$name .; \
		mkdir -p $$stage/$$name/deploy && cp $(DIST)/$$name $$stage/$$name/vidgen; \
		for f in $(RELEASE_FILES); do cp -r $$f $$stage/$$name/$$f; done; \
		tar -C $$stage --sort=name --owner=0 --group=0 --numeric-owner --mtime="$$stamp" \
			--mode='u+rwX,go+rX,go-w' -cf - $$name | gzip -n -9 > $(DIST)/$$name.tar.gz; \
		rm -rf $$stage; \
	done
	cd $(DIST) && sha256sum vidgen-* > SHA256SUMS && cat SHA256SUMS

check-release: check-go
	$(GO) test -count=1 -tags e2e -run '^TestReleaseArchives$$' -timeout 10m .

## check-openapi: tools/check-openapi.sh: the Go client oapi-codegen (pinned in tools/oapi-codegen/go.mod)
## generates from openapi.yaml builds, and openapi-typescript's types (tools/openapi-typescript, npm)
## compile under tsc --strict with the upload parts as Blob. 13 s with the tools installed.
check-openapi: check-go
	GO=$(GO) bash tools/check-openapi.sh

## check-docker: TestDockerfile, the Dockerfile's shape; then, as root, TestDockerImageSteps: the build
## stage here and every step of the image in a scratch root debootstrap makes (installed when missing),
## vidgen started there as the image's user, its HEALTHCHECK passing and a job rendered by the image's
## ffmpeg. 4m07s on 2 shared cores (debootstrap 1m50s, the image's apt-get 1m32s, then a render);
## DEBOOTSTRAP_CACHE=FILE.tar keeps the base between runs (200 MB). Not root: the steps are skipped.
DEBOOTSTRAP_CACHE ?=
check-docker: check-tools
	$(GO) test -count=1 -run '^TestDockerfile$$' .
	@command -v debootstrap >/dev/null 2>&1 || { $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq debootstrap >/dev/null; }
	VIDGEN_DEBOOTSTRAP_CACHE=$(DEBOOTSTRAP_CACHE) $(GO) test -count=1 -tags e2e -run '^TestDockerImageSteps$$' -timeout 45m -v .

clean:
	rm -rf vidgen bench/out dist
