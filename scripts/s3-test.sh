#!/usr/bin/env bash
# s3-test.sh: runs a command against a real S3-compatible server, versitygw with its POSIX backend.
#
#   scripts/s3-test.sh go test -run 'TestFiles' .
#
# The server's version is the one pinned in tools/versitygw/go.mod. It is built once (a cold build
# takes minutes) and cached outside the checkout, in ${XDG_CACHE_HOME:-$HOME/.cache}/vidgen, so later
# runs start in well under a second. The script starts it on a free loopback port with a throwaway
# directory, waits until it answers, creates a bucket, exports VIDGEN_TEST_S3 naming all of it, runs
# the command and stops the server on exit whatever the command did. With no command it only builds.
set -euo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}

version=$(cd tools/versitygw && $GO list -m -f '{{.Version}}' github.com/versity/versitygw)
cache=${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}/vidgen
bin=$cache/versitygw-$version
if [ ! -x "$bin" ]; then
  mkdir -p "$cache"
  echo "s3-test: building versitygw $version once into $bin (a few minutes)" >&2
  (cd tools/versitygw && CGO_ENABLED=0 $GO build -trimpath -o "$bin.tmp.$$" github.com/versity/versitygw/cmd/versitygw)
  mv "$bin.tmp.$$" "$bin"
fi
[ $# -gt 0 ] || exit 0
command -v curl >/dev/null 2>&1 || { echo "s3-test: needs curl (apt-get install -y curl)" >&2; exit 1; }

dir=$(mktemp -d)
pid=
child=
cleanup() {
  if [ -n "$child" ]; then kill "$child" 2>/dev/null || true; fi
  if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM # so that the EXIT trap stops the server on a signal too

# versitygw exits when its port is taken after all, and the start is tried on another.
. "$(dirname "${BASH_SOURCE[0]}")/free-port.sh"

access=vidgen-test
secret=vidgen-test-secret-$RANDOM$RANDOM
bucket=vidgen-test
mkdir -p "$dir/root" "$dir/meta"
for attempt in 1 2 3 4 5; do
  port=$(free_port)
  "$bin" --port "127.0.0.1:$port" --access "$access" --secret "$secret" \
    posix --sidecar "$dir/meta" "$dir/root" >"$dir/log" 2>&1 &
  pid=$!
  ready=
  for _ in $(seq 1 200); do
    kill -0 "$pid" 2>/dev/null || break
    # Up once the root answers 403 (an unsigned request is refused).
    if [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/")" = 403 ]; then ready=1; break; fi
    sleep 0.05
  done
  [ -n "$ready" ] && break
  kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; pid=
done
if [ -z "$ready" ]; then echo "s3-test: versitygw did not start:" >&2; cat "$dir/log" >&2; exit 1; fi

# S3 wants the payload's hash signed: that of no bytes.
empty=e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
curl -sf --aws-sigv4 "aws:amz:us-east-1:s3" --user "$access:$secret" -H "x-amz-content-sha256: $empty" -X PUT "http://127.0.0.1:$port/$bucket" >/dev/null ||
  { echo "s3-test: could not create bucket $bucket:" >&2; cat "$dir/log" >&2; exit 1; }

export VIDGEN_TEST_S3="http://$access:$secret@127.0.0.1:$port/$bucket?region=us-east-1"
echo "s3-test: versitygw $version on 127.0.0.1:$port, bucket $bucket" >&2
# In the background, so that a signal stops the server (and the command) at once.
"$@" &
child=$!
status=0
wait "$child" || status=$?
child=
exit $status
