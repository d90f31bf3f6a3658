# bench/lib.sh: the helpers every bench script shares; sourced, never run.
# shellcheck shell=bash
. "$(dirname "${BASH_SOURCE[0]}")/../scripts/free-port.sh"

say() { printf '%s\n' "$*" >&2; }
die() { say "bench: $*"; exit 1; }
now() { printf '%s' "${EPOCHREALTIME/,/.}"; }
sub() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", a - b }'; }
div() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; }
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

# json_field NAME: the string field NAME of the JSON object on standard input.
json_field() { sed -n "s/.*\"$1\":\"\\([^\"]*\\)\".*/\\1/p"; }

# completed_in T0 BODY: the seconds from T0 (this script's clock, read just before the upload) to
# the updatedAt of BODY, the status body of a COMPLETED job (the server's clock: the same
# machine's).
completed_in() { sub "$(date -d "$(printf '%s' "$2" | json_field updatedAt)" +%s.%N)" "$1"; }

# created_to_end FILE: the seconds from createdAt to updatedAt of the status body in FILE, a
# COMPLETED job: the job without its upload and the upload's checks, which happen before the job
# exists.
created_to_end() {
	local body
	body=$(<"$1")
	sub "$(date -d "$(printf '%s' "$body" | json_field updatedAt)" +%s.%N)" \
		"$(date -d "$(printf '%s' "$body" | json_field createdAt)" +%s.%N)"
}

# await_job BASE KEY ID: polls job ID on the server at BASE until it is COMPLETED and prints its
# status body; a job that failed or was cancelled ends the bench. One process a poll (no parsing
# subshells), so polling steals little CPU from the render, and the first poll waits a second: a
# short clip's render is over by then, and a poll at its start (~25 ms of CPU for curl, this shell
# and the request) took ~0.03 s from a 0.7 s render on two cores.
await_job() {
	local base=$1 key=$2 id=$3 body
	sleep 1
	while :; do
		body=$(curl -sS -H "X-API-Key: $key" "$base/api/status/$id")
		case $body in
		*'"status":"COMPLETED"'*) break ;;
		*'"status":"FAILED"'* | *'"status":"CANCELLED"'*) die "job $id: $body" ;;
		esac
		sleep 0.5
	done
	printf '%s' "$body"
}

# scratch: sets tmp to a new scratch directory and server_pids to none; on exit the servers in
# server_pids are stopped and the directory removed.
scratch() {
	tmp=$(mktemp -d "${TMPDIR:-/tmp}/vidgen-bench.XXXXXX")
	server_pids=()
	trap scratch_cleanup EXIT
	trap 'exit 130' INT TERM
}
scratch_cleanup() {
	local p
	for p in "${server_pids[@]}"; do
		kill "$p" 2>/dev/null || true
		wait "$p" 2>/dev/null || true
	done
	rm -rf "$tmp"
}

# The helpers below read FFMPEG and FFPROBE (the binaries), tmp (the bench's scratch directory) and
# server_pids (the servers to stop on exit): the script sets the first two, scratch the others.

# ff ARGS...: ffmpeg, quiet, overwriting.
ff() { "$FFMPEG" -nostdin -hide_banner -v error -y "$@"; }

# speech SECONDS OUT: speech-like MP3, mono 44.1 kHz, 128k. With espeak-ng installed, a synthetic
# voice reading a text over and over; without it, band-limited pink noise in syllables (3.3 Hz) and
# pauses. speech_kind says which.
speech_text="Most clips people make for social feeds are short. A still picture, a voice, and a minute to say something worth hearing."
if command -v espeak-ng >/dev/null 2>&1; then
	speech_kind="espeak-ng voice"
	speech() {
		espeak-ng -s 160 -w "$tmp/voice.wav" "$speech_text"
		ff -stream_loop -1 -i "$tmp/voice.wav" -t "$1" -ar 44100 -ac 1 -c:a libmp3lame -b:a 128k "$2"
	}
else
	speech_kind="noise bursts with pauses (no espeak-ng)"
	speech() {
		ff -f lavfi -i "anoisesrc=c=pink:r=44100:a=0.5:d=$1:seed=3" \
			-af "volume='0.2+0.8*abs(sin(2*PI*3.3*t))*gt(sin(2*PI*0.4*t),-0.3)':eval=frame,lowpass=f=4000,highpass=f=100" \
			-ac 1 -c:a libmp3lame -b:a 128k "$2"
	}
fi

# serve BIN DATA: starts BIN serving DATA on a free loopback port with an API key, one render worker
# and no rate limits, using $FFMPEG and $FFPROBE; sets base and api_key to reach it and adds its
# process to server_pids (the caller's cleanup stops them).
serve() {
	local bin=$1 data=$2 key_json port
	# vidgen keys never creates the data directory: the service's user owns it (docs/deploy.md).
	mkdir -p -m 0700 "$data"
	key_json=$("$bin" keys create -name bench -json -data "$data")
	api_key=$(printf '%s' "$key_json" | json_field apiKey)
	[[ -n $api_key ]] || die "no API key in: $key_json"
	port=$(free_port)
	base=http://127.0.0.1:$port
	"$bin" serve -data "$data" -addr "127.0.0.1:$port" -metrics-addr off -public-url "$base" \
		-rate-api 0 -rate-submit 0 -workers 1 -ffmpeg "$FFMPEG" -ffprobe "$FFPROBE" 2>"$data.log" &
	server_pids+=($!)
	for _ in $(seq 100); do
		curl -fsS "$base/health" >/dev/null 2>&1 && break
		kill -0 "$!" 2>/dev/null || { cat "$data.log" >&2; die "server exited"; }
		sleep 0.05
	done
	curl -fsS "$base/health" >/dev/null || die "server did not come up"
}

# vidgen_run IMAGE AUDIO OUT [FIELD=VALUE...]: submits a job (with those option fields), polls until
# it ends, downloads the video to OUT (its status body to OUT.status) and prints the seconds from
# submit to COMPLETED (completed_in). The end comes from the job, not from the poll that saw it, so
# the script can poll slowly: a poll costs ~25 ms of CPU (curl, this shell, the request), and
# polling every 50 ms, as it once did, took a third of a core from the render on a 2-core machine,
# at a higher priority than the render's (see renderNice), and added ~0.5 s to the 60 s case.
vidgen_run() {
	local image=$1 audio=$2 out=$3 t0 resp id body f fields=()
	shift 3
	for f in "$@"; do fields+=(-F "$f"); done
	t0=$(now)
	resp=$(curl -sS -H "X-API-Key: $api_key" -F "image=@$image" -F "audio=@$audio" "${fields[@]}" "$base/api/jobs")
	# The job renders from here on: the id is read without a process of its own.
	[[ $resp =~ \"jobId\":\"([^\"]+)\" ]] || die "submit failed: $resp"
	id=${BASH_REMATCH[1]}
	body=$(await_job "$base" "$api_key" "$id")
	completed_in "$t0" "$body"
	printf '%s' "$body" >"$out.status"
	curl -fsS -o "$out" "$(printf '%s' "$body" | json_field outputVideo)"
}
