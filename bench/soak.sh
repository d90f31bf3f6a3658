#!/usr/bin/env bash
# bench/soak.sh: run vidgen under a submit/poll/list/cancel load from several keys for SOAK_SECONDS
# (default 180), killing it with SIGKILL or stopping it with SIGTERM at random moments and starting
# it again each time. Then let it drain, stop it, and check: every job that got a 201 is in the
# database (lost = 0), none is left PENDING or PROCESSING (stuck = 0), no response was a 5xx, no
# SIGTERM exit was unclean, no ffmpeg outlived the server, and PRAGMA integrity_check says ok.
# Prints the figures; exits 1 when any check fails.
#
#   bench/soak.sh                      # 3 minutes
#   SOAK_SECONDS=60 SOAK_KEYS=4 bench/soak.sh
#
# Needs go, curl, ffmpeg. Uses the sqlite3 CLI for the checks when present, else the Go test helper
# TestE2ESoakVerify. Work files go to bench/out/soak-*/ (kept; they hold the server log).
set -euo pipefail

SOAK_SECONDS=${SOAK_SECONDS:-180}
SOAK_KEYS=${SOAK_KEYS:-6}
KILL_MIN=${SOAK_KILL_MIN:-3} # seconds between faults, at random in [KILL_MIN, KILL_MAX]
KILL_MAX=${SOAK_KILL_MAX:-10}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=${SOAK_OUT:-$ROOT/bench/out/soak-$(date +%Y%m%d-%H%M%S)}
DATA=$OUT/data
BIN=$OUT/vidgen
LOG=$OUT/server.log
mkdir -p "$OUT" "$DATA"

echo "soak: building into $OUT"
(cd "$ROOT" && go build -o "$BIN" .)
ffmpeg -v error -y -f lavfi -i testsrc2=s=320x240 -frames:v 1 "$OUT/img.png"
ffmpeg -v error -y -f lavfi -i sine=f=440:d=1.5 -ac 1 -ar 22050 "$OUT/tone.wav"

KEYS=()
for i in $(seq 1 "$SOAK_KEYS"); do
	json=$("$BIN" keys create -name "soak$i" -json -data "$DATA")
	KEYS+=("$(printf '%s' "$json" | sed -n 's/.*"apiKey":"\([^"]*\)".*/\1/p')")
done

PID=
# On any exit, stop the server and the workers this script started.
cleanup() {
	[ -z "$PID" ] || kill -KILL "$PID" 2>/dev/null || true
	for p in $(jobs -p); do kill "$p" 2>/dev/null || true; done
}
trap cleanup EXIT

listening() { grep -c "vidgen listening" "$LOG" 2>/dev/null || true; }

start_server() {
	local before
	touch "$LOG"
	before=$(listening)
	"$BIN" serve -data "$DATA" -addr 127.0.0.1:0 -metrics-addr off -ffmpeg ffmpeg -workers 2 -rate-api 0 -rate-submit 0 \
		-min-free 0 -shutdown-grace 2s 2>>"$LOG" &
	PID=$!
	for _ in $(seq 1 200); do
		if [ "$(listening)" -gt "$before" ]; then
			grep "vidgen listening" "$LOG" | tail -1 | sed -n 's/.* addr=\([^ ]*\).*/\1/p' >"$OUT/addr.tmp"
			mv "$OUT/addr.tmp" "$OUT/addr" # workers read it; mv is atomic
			return
		fi
		if ! kill -0 "$PID" 2>/dev/null; then
			echo "soak: vidgen failed to start; see $LOG" >&2
			exit 1
		fi
		sleep 0.05
	done
	echo "soak: vidgen did not start listening; see $LOG" >&2
	exit 1
}

END=$(($(date +%s) + SOAK_SECONDS))

# worker N KEY: one client. Every response's status goes to codes.N (000: no response, the server
# was down), every accepted job id to accepted.N.
worker() {
	local n=$1 key=$2 last="" body="$OUT/body.$1" code addr op
	: >"$OUT/codes.$n"
	: >"$OUT/accepted.$n"
	while [ "$(date +%s)" -lt "$END" ]; do
		addr=$(cat "$OUT/addr" 2>/dev/null || true)
		op=$((RANDOM % 20))
		if [ -z "$last" ] || [ $op -lt 7 ]; then
			code=$(curl -s -o "$body" -w '%{http_code}' --max-time 60 -H "X-API-Key: $key" \
				-F "image=@$OUT/img.png" -F "audio=@$OUT/tone.wav" "http://$addr/api/jobs" || true)
			if [ "$code" = 201 ]; then
				last=$(sed -n 's/.*"jobId":"\([^"]*\)".*/\1/p' "$body")
				echo "$last" >>"$OUT/accepted.$n"
			fi
		elif [ $op -lt 14 ]; then
			code=$(curl -s -o "$body" -w '%{http_code}' --max-time 30 -H "X-API-Key: $key" "http://$addr/api/status/$last" || true)
		elif [ $op -lt 17 ]; then
			code=$(curl -s -o "$body" -w '%{http_code}' --max-time 30 -H "X-API-Key: $key" "http://$addr/api/jobs?limit=5" || true)
		else
			code=$(curl -s -o "$body" -w '%{http_code}' --max-time 30 -X POST -H "X-API-Key: $key" "http://$addr/api/jobs/$last/cancel" || true)
		fi
		echo "${code:-000}" >>"$OUT/codes.$n"
		if [[ $code == 5* ]]; then
			echo "soak: $code: $(cat "$body")" >>"$OUT/5xx.log"
		fi
		sleep 0.0$((RANDOM % 10))
	done
}

start_server
for i in "${!KEYS[@]}"; do
	worker "$i" "${KEYS[$i]}" &
done

kills=0 terms=0 unclean=0
while :; do
	pause=$((KILL_MIN + RANDOM % (KILL_MAX - KILL_MIN + 1)))
	[ $(($(date +%s) + pause)) -lt "$END" ] || break
	sleep "$pause"
	if [ $((RANDOM % 10)) -lt 7 ]; then
		kill -KILL "$PID"
		wait "$PID" 2>/dev/null || true
		kills=$((kills + 1))
	else
		kill -TERM "$PID"
		status=0
		wait "$PID" || status=$?
		terms=$((terms + 1))
		if [ "$status" -ne 0 ]; then
			unclean=$((unclean + 1))
			echo "soak: exit status $status after SIGTERM" >&2
		fi
	fi
	start_server
done
wait_workers() { for p in $(jobs -p); do [ "$p" = "$PID" ] || wait "$p" 2>/dev/null || true; done; }
wait_workers

# Drain: wait until no key has a PENDING or PROCESSING job, then stop cleanly.
addr=$(cat "$OUT/addr")
drain_deadline=$(($(date +%s) + 180))
for key in "${KEYS[@]}"; do
	for st in PENDING PROCESSING; do
		while curl -s --max-time 30 -H "X-API-Key: $key" "http://$addr/api/jobs?status=$st&limit=1" | grep -q '"id"'; do
			if [ "$(date +%s)" -gt "$drain_deadline" ]; then
				echo "soak: jobs did not drain" >&2
				break 3
			fi
			sleep 0.2
		done
	done
done
kill -TERM "$PID"
status=0
wait "$PID" || status=$?
[ "$status" -eq 0 ] || unclean=$((unclean + 1))
sleep 0.5
leftover=$(pgrep -f -- "$DATA/" | wc -l || true)

# Figures.
cat "$OUT"/accepted.* | sort -u >"$OUT/accepted.txt"
cat "$OUT"/codes.* >"$OUT/codes.txt"
accepted=$(wc -l <"$OUT/accepted.txt")
answered=$(grep -vc '^000$' "$OUT/codes.txt" || true)
noresp=$(grep -c '^000$' "$OUT/codes.txt" || true)
fivexx=$(grep -c '^5' "$OUT/codes.txt" || true)
bycode=$(grep -v '^000$' "$OUT/codes.txt" | sort | uniq -c | awk '{printf "%s %s, ", $2, $1}' | sed 's/, $//')

if command -v sqlite3 >/dev/null; then
	integrity=$(sqlite3 "$DATA/vidgen.db" 'PRAGMA integrity_check')
	values=$(sed "s/.*/('&')/" "$OUT/accepted.txt" | paste -sd, -)
	if [ -n "$values" ]; then
		lost=$(sqlite3 "$DATA/vidgen.db" "WITH acc(id) AS (VALUES $values) SELECT count(*) FROM acc WHERE id NOT IN (SELECT id FROM jobs)")
		states=$(sqlite3 "$DATA/vidgen.db" "WITH acc(id) AS (VALUES $values) SELECT status || ' ' || count(*) FROM jobs WHERE id IN (SELECT id FROM acc) GROUP BY status" | paste -sd, - | sed 's/,/, /g')
	else
		lost=0 states=
	fi
	stuck=$(sqlite3 "$DATA/vidgen.db" "SELECT count(*) FROM jobs WHERE status IN ('PENDING','PROCESSING')")
	retried=$(sqlite3 "$DATA/vidgen.db" "SELECT count(*) FROM jobs WHERE retries > 0")
else
	line=$(cd "$ROOT" && VIDGEN_SOAK_DATA=$DATA VIDGEN_SOAK_IDS=$OUT/accepted.txt go test -tags e2e -run '^TestE2ESoakVerify$' -count=1 -v . | grep '^accepted=' || true)
	lost=$(sed -n 's/.*lost=\([0-9]*\).*/\1/p' <<<"$line")
	stuck=$(sed -n 's/.*stuck=\([0-9]*\).*/\1/p' <<<"$line")
	integrity=$(sed -n 's/.*integrity=\(.*\)$/\1/p' <<<"$line")
	states="(sqlite3 not installed)" retried="?"
fi

echo
echo "soak: ${SOAK_SECONDS}s, ${SOAK_KEYS} keys, $((kills + terms)) restarts ($kills kill -9, $terms SIGTERM)"
echo "  requests answered:  $answered ($bycode)"
echo "  no response:        $noresp (server down between a kill and the restart)"
echo "  accepted jobs:      $accepted (final: ${states:-none}; $retried retried after a kill)"
echo "  lost jobs:          ${lost:-?}"
echo "  stuck jobs:         ${stuck:-?}"
echo "  5xx responses:      $fivexx"
echo "  unclean exits:      $unclean (SIGTERM must exit 0)"
echo "  leftover ffmpeg:    $leftover"
echo "  integrity_check:    ${integrity:-?}"
echo "  files:              $OUT"
if [ "${lost:-x}" = 0 ] && [ "${stuck:-x}" = 0 ] && [ "$fivexx" = 0 ] && [ "$unclean" = 0 ] &&
	[ "$leftover" = 0 ] && [ "${integrity:-x}" = ok ] && [ "$accepted" -gt 0 ]; then
	echo "soak: PASS"
else
	echo "soak: FAIL"
	exit 1
fi
