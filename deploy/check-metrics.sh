#!/usr/bin/env bash
# deploy/check-metrics.sh (make check-metrics): Prometheus' own checker, promtool, on what vidgen
# ships for Prometheus:
# - docs/alerts.yml: promtool check rules, then promtool test rules docs/alerts_test.yml (the queue
#   and failure alerts fire on a stuck or failing vidgen's series, not on a healthy one's);
# - a real scrape: the build serves its metrics listener on a free loopback port, answers a few
#   requests, and promtool check metrics lints what GET /metrics returns (names, units, HELP).
# promtool comes from PATH, else from Debian's prometheus package: installing that package would also
# install and start a Prometheus server (19 MB download, 96 MB installed, eleven libjs-* packages), so
# only promtool is taken out of it (apt-get download, dpkg-deb -x: no root, nothing installed) and kept
# in ~/.cache/vidgen.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/free-port.sh
GO=${GO:-go}
tmp=$(mktemp -d)
pid=
trap '[ -z "$pid" ] || kill "$pid" 2>/dev/null; rm -rf "$tmp"' EXIT

promtool=$(command -v promtool || true)
cached=${XDG_CACHE_HOME:-$HOME/.cache}/vidgen/promtool
if [ -z "$promtool" ] && [ -x "$cached" ]; then promtool=$cached; fi
if [ -z "$promtool" ]; then
  command -v apt-get >/dev/null 2>&1 && command -v dpkg-deb >/dev/null 2>&1 ||
    { echo "promtool not found: install Prometheus' promtool (Debian: apt-get install prometheus)"; exit 1; }
  echo "promtool not found: taking it from Debian's prometheus package (apt-get download, nothing installed)"
  (cd "$tmp" && apt-get download -q prometheus 2>&1 | grep -v '^W: Download is performed unsandboxed' || true)
  ls "$tmp"/prometheus_*.deb >/dev/null 2>&1 || { echo "apt-get download prometheus failed (apt-get update first?)"; exit 1; }
  dpkg-deb -x "$tmp"/prometheus_*.deb "$tmp/pkg"
  mkdir -p "$(dirname "$cached")" && cp "$tmp/pkg/usr/bin/promtool" "$cached"
  promtool=$cached
fi
"$promtool" --version 2>&1 | head -1

"$promtool" check rules docs/alerts.yml
(cd docs && "$promtool" test rules alerts_test.yml)

CGO_ENABLED=0 "$GO" build -o "$tmp/vidgen" .
port=$(free_port) mport=$(free_port)
"$tmp/vidgen" serve -data "$tmp/data" -addr "127.0.0.1:$port" -metrics-addr "127.0.0.1:$mport" -log-format json 2>"$tmp/log" &
pid=$!
for _ in $(seq 150); do
  curl -sf "http://127.0.0.1:$port/api/health" >/dev/null && break
  kill -0 "$pid" 2>/dev/null || { echo "vidgen did not start:"; cat "$tmp/log"; exit 1; }
  sleep 0.2
done
# A few answers, so the request counters and histograms have series too: a 200, a 401, a 404.
curl -s -o /dev/null "http://127.0.0.1:$port/api/jobs"
curl -s -o /dev/null "http://127.0.0.1:$port/api/nothing"
curl -sf "http://127.0.0.1:$mport/metrics" > "$tmp/scrape"
grep -q '^vidgen_jobs_finished_total' "$tmp/scrape" || { echo "the scrape has no vidgen_jobs_finished_total"; exit 1; }
if ! out=$("$promtool" check metrics < "$tmp/scrape" 2>&1) || [ -n "$out" ]; then
  echo "promtool check metrics on a scrape of vidgen:"; echo "$out"; exit 1
fi
echo "GET /metrics: promtool check metrics clean ($(grep -vc '^#' "$tmp/scrape") samples)"
