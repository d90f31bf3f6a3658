#!/usr/bin/env bash
# Benchmark of scaling out: jobs an hour for one vidgen node and for two on one Postgres and one
# bucket, and for the default single box (SQLite and the data directory), all in one run on this
# machine, with their ratios.
#
# Each configuration gets the same BENCH_JOBS jobs (a 640x360 PNG over BENCH_SECONDS of tone), each
# from a key of its own so that all are queued at once, submitted over HTTP to the nodes in turn;
# the time runs from the first submission until the last job is COMPLETED. Each node renders one job
# untimed first (ffmpeg and the node's caches warm). Each node has
# BENCH_WORKERS render workers, so two nodes have twice one node's: on one machine they share its
# cores, and the ratio says what the shared queue costs or gains there, not what a second machine
# would add.
#
#   bench/nodes.sh                 starts a throwaway PostgreSQL and versitygw (scripts/postgres-test.sh
#                                  and scripts/s3-test.sh) unless VIDGEN_TEST_POSTGRES and VIDGEN_TEST_S3
#                                  name servers already
#   BENCH_JOBS=N                   jobs per configuration (default 12)
#   BENCH_SECONDS=S                seconds of audio a job (default 10)
#   BENCH_WORKERS=W                render workers a node (default 1)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "$here")
if [ -z "${VIDGEN_TEST_POSTGRES:-}" ] || [ -z "${VIDGEN_TEST_S3:-}" ]; then
	exec bash "$root/scripts/postgres-test.sh" bash "$root/scripts/s3-test.sh" bash "$here/nodes.sh" "$@"
fi
JOBS=${BENCH_JOBS:-12}
SECONDS_A_JOB=${BENCH_SECONDS:-10}
WORKERS=${BENCH_WORKERS:-1}
for tool in curl jq ffmpeg; do
	command -v "$tool" >/dev/null 2>&1 || { echo "bench: needs $tool (apt-get install -y $tool)" >&2; exit 1; }
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/vidgen-nodes.XXXXXX")
pids=()
stop_nodes() {
	for p in "${pids[@]}"; do
		kill "$p" 2>/dev/null || true
		wait "$p" 2>/dev/null || true
	done
	pids=()
}
cleanup() { stop_nodes; rm -rf "$tmp"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

say() { printf '%s\n' "$*" >&2; }
now() { printf '%s' "${EPOCHREALTIME/,/.}"; }

(cd "$root" && CGO_ENABLED=0 go build -o "$tmp/vidgen" .)
ffmpeg -v error -f lavfi -i color=c=0x336699:s=640x360 -frames:v 1 "$tmp/img.png"
ffmpeg -v error -f lavfi -i "sine=frequency=440:duration=$SECONDS_A_JOB" "$tmp/tone.wav"

# VIDGEN_TEST_S3 is http://KEY:SECRET@HOST:PORT/BUCKET?region=REGION.
s3=${VIDGEN_TEST_S3#*://}
s3_creds=${s3%%@*} s3_rest=${s3#*@}
s3_endpoint=${VIDGEN_TEST_S3%%://*}://${s3_rest%%/*}
s3_bucket=${s3_rest#*/} s3_bucket=${s3_bucket%%\?*}
s3_region=${VIDGEN_TEST_S3##*region=}
export VIDGEN_S3_ACCESS_KEY_ID=${s3_creds%%:*} VIDGEN_S3_SECRET_ACCESS_KEY=${s3_creds#*:} VIDGEN_S3_REGION=$s3_region

# start_node NAME [FLAGS...]: a node on data directory $tmp/NAME; its URL goes to urls.
urls=()
start_node() {
	local name=$1 dir=$tmp/$1 addr=
	shift
	mkdir -p "$dir"
	"$tmp/vidgen" serve -data "$dir" -addr 127.0.0.1:0 -metrics-addr off -workers "$WORKERS" \
		-rate-api 0 -rate-submit 0 -min-free 0 "$@" 2>"$dir.log" &
	pids+=($!)
	for _ in $(seq 1 400); do
		addr=$(sed -n 's/.*msg="vidgen listening" addr=\([^ ]*\).*/\1/p' "$dir.log" | head -1)
		[ -n "$addr" ] && break
		sleep 0.05
	done
	[ -n "$addr" ] || { say "bench: node $name did not start:"; cat "$dir.log" >&2; exit 1; }
	urls+=("http://$addr")
}

# run NAME KEYS_FLAGS N: submits N jobs, each with a key of its own made with `vidgen keys create
# KEYS_FLAGS`, to the nodes of urls in turn and prints the seconds until every one is COMPLETED.
run() {
	local name=$1 keyflags=$2 n=$3 i keys=() ids=() t0 left id st
	for i in $(seq 1 "$n"); do
		# shellcheck disable=SC2086 # keyflags is flags
		keys+=("$("$tmp/vidgen" keys create -name "$name-$i" -json $keyflags | jq -r .apiKey)")
	done
	t0=$(now)
	for i in $(seq 0 $((n - 1))); do
		id=$(curl -sf -H "X-API-Key: ${keys[$i]}" -F image=@"$tmp/img.png" -F audio=@"$tmp/tone.wav" \
			"${urls[$((i % ${#urls[@]}))]}/api/jobs" | jq -r .jobId) || { say "bench: $name: submission $i refused"; exit 1; }
		ids+=("$id")
	done
	left=$n
	while [ "$left" -gt 0 ]; do
		left=0
		for i in $(seq 0 $((n - 1))); do
			[ -n "${ids[$i]}" ] || continue
			st=$(curl -sf -H "X-API-Key: ${keys[$i]}" "${urls[0]}/api/status/${ids[$i]}" | jq -r .status)
			case $st in
			COMPLETED) ids[i]= ;;
			FAILED | CANCELLED) say "bench: $name: job ${ids[$i]} ended $st"; exit 1 ;;
			*) left=$((left + 1)) ;;
			esac
		done
		[ "$left" -eq 0 ] || sleep 0.2
	done
	awk -v a="$(now)" -v b="$t0" 'BEGIN { printf "%.2f", a - b }'
}

pg=$VIDGEN_TEST_POSTGRES
shared() { echo "-database $pg -files s3://$s3_bucket/$1 -s3-endpoint $s3_endpoint -s3-path-style"; }
say "bench: $JOBS jobs of $SECONDS_A_JOB s a configuration, $WORKERS worker(s) a node, $(nproc) cores"

urls=()
start_node box
run box-warm "-data $tmp/box" "${#urls[@]}" >/dev/null # each node's first job is not timed
box=$(run box "-data $tmp/box" "$JOBS")
stop_nodes

urls=()
# shellcheck disable=SC2046
start_node one $(shared one)
run one-warm "-database $pg" "${#urls[@]}" >/dev/null
one=$(run one "-database $pg" "$JOBS")
stop_nodes

urls=()
# shellcheck disable=SC2046
start_node two-a $(shared two)
# shellcheck disable=SC2046
start_node two-b $(shared two)
run two-warm "-database $pg" "${#urls[@]}" >/dev/null
two=$(run two "-database $pg" "$JOBS")
stop_nodes

rate() { awk -v n="$JOBS" -v s="$1" 'BEGIN { printf "%.0f", n * 3600 / s }'; }
printf '%-36s %8s %10s\n' configuration seconds jobs/hour
printf '%-36s %8s %10s\n' "SQLite + data directory, one node" "$box" "$(rate "$box")"
printf '%-36s %8s %10s\n' "Postgres + bucket, one node" "$one" "$(rate "$one")"
printf '%-36s %8s %10s\n' "Postgres + bucket, two nodes" "$two" "$(rate "$two")"
awk -v one="$one" -v two="$two" -v box="$box" 'BEGIN {
	printf "two nodes / one node (Postgres + bucket): %.2fx the jobs an hour\n", one / two
	printf "SQLite box / Postgres node: %.2fx the jobs an hour\n", one / box
}'
