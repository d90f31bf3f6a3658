#!/usr/bin/env bash
# Benchmark of captioned stills: a captioned job against the same job without captions, and against
# the single ffmpeg command a user would write (subtitles filter + libx264), in one run on the same
# files.
#
# A 1920x1080 JPEG over 60 s and 600 s of speech-like MP3, with one cue every 3 s (2.6 s on screen,
# then 0.4 s without), at the picture's own size (1920x1080, 25 fps) and size=portrait (1080x1920,
# 30 fps), through a real `vidgen serve`. The still and captioned jobs run in turn, BENCH_RUNS times
# each, and the median is reported; the user's command runs once. Peak memory is the largest total
# resident set of vidgen and its children (or of the user's ffmpeg) sampled every 0.1 s. Prints a
# table, and PASS/MISS for the target: a captioned job within 1.5x the time of the same job without.
# Every vidgen output is checked with ffprobe and its captions by decoding frames around two cue
# edges (a frame before a cue and one during it must differ in the caption's rows).
#
#   bench/moving.sh                  everything (the 600 s user commands take ~5-15 minutes each)
#   BENCH_QUICK=1 bench/moving.sh    skip the 600 s user commands
#   BENCH_RUNS=N                      vidgen runs per job, median reported (default 3)
#   BENCH_SECONDS="60 600"            the audio lengths
#   BENCH_SIZES="original portrait"   the sizes
#   FFMPEG=... FFPROBE=...            other binaries (default: from PATH)
set -euo pipefail

FFMPEG=${FFMPEG:-ffmpeg}
FFPROBE=${FFPROBE:-ffprobe}
RUNS=${BENCH_RUNS:-3}
QUICK=${BENCH_QUICK:-0}
read -ra SECONDS_LIST <<<"${BENCH_SECONDS:-60 600}"
read -ra SIZES <<<"${BENCH_SIZES:-original portrait}"

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(git -C "$here" rev-parse --show-toplevel 2>/dev/null || dirname "$here")

tmp=$(mktemp -d "${TMPDIR:-/tmp}/vidgen-bench.XXXXXX")
server_pid=
cleanup() {
	if [[ -n $server_pid ]]; then
		kill "$server_pid" 2>/dev/null || true
		wait "$server_pid" 2>/dev/null || true
	fi
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# say, die, now, sub, div, median, ff
source "$here/lib.sh"

# --- peak memory ---------------------------------------------------------------------------------

# tree_rss PID: the resident set of PID and its descendants, in kB (read from /proc, no process
# started, so sampling costs the machine little).
tree_rss() {
	local pid=$1 total=0 k v c
	{ while read -r k v _; do [[ $k == VmRSS: ]] && total=$v; done <"/proc/$pid/status"; } 2>/dev/null || true
	for c in $(cat "/proc/$pid/task/"*/children 2>/dev/null || true); do
		v=$(tree_rss "$c")
		total=$((total + ${v:-0}))
	done
	printf '%s' "$total"
}

# sample PID FILE: writes to FILE the largest tree_rss of PID seen every 0.1 s until FILE.stop exists.
sample() {
	local pid=$1 out=$2 peak=0 r
	while [[ ! -e $out.stop ]]; do
		r=$(tree_rss "$pid")
		if ((${r:-0} > peak)); then peak=$r; fi
		sleep 0.1
	done
	printf '%s' "$peak" >"$out"
}

# peak_start PID / peak_stop: sample PID's tree in the background; peak_stop sets peak_mb to the
# peak in MB (in this shell: the sampler is its child).
peak_start() { rm -f "$tmp/peak" "$tmp/peak.stop"; sample "$1" "$tmp/peak" & sampler=$!; }
peak_stop() { touch "$tmp/peak.stop"; wait "$sampler"; peak_mb=$(awk -v k="$(cat "$tmp/peak")" 'BEGIN { printf "%.0f", k / 1024 }'); }

# children_cpu PID: the CPU seconds (user and system) of the children PID has waited for, from
# /proc/PID/stat: every ffmpeg and ffprobe a vidgen job runs. Unlike wall time, it does not depend on
# what else the machine runs.
children_cpu() {
	local stat
	stat=$(<"/proc/$1/stat")
	stat=${stat##*) }
	read -ra f <<<"$stat"
	awk -v u="${f[13]}" -v s="${f[14]}" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.2f", (u + s) / hz }'
}

# --- build and fixtures --------------------------------------------------------------------------

say "building vidgen from $root"
(cd "$root" && go build -o "$tmp/vidgen" .)
built=$(git -C "$root" describe --always --dirty 2>/dev/null || echo '?')

say "generating fixtures"
fx=$tmp/fixtures
mkdir -p "$fx"
ff -f lavfi -i testsrc2=s=1920x1080:r=1 -frames:v 1 -q:v 2 "$fx/photo.jpg"
for s in "${SECONDS_LIST[@]}"; do
	# Speech-like: band-limited pink noise in syllables (3.3 Hz) and pauses, mono 44.1 kHz, 128k.
	ff -f lavfi -i "anoisesrc=c=pink:r=44100:a=0.5:d=$s:seed=3" \
		-af "volume='0.2+0.8*abs(sin(2*PI*3.3*t))*gt(sin(2*PI*0.4*t),-0.3)':eval=frame,lowpass=f=4000,highpass=f=100" \
		-ac 1 -c:a libmp3lame -b:a 128k "$fx/$s.mp3"
	awk -v n="$s" 'function t(s) { return sprintf("%02d:%02d:%02d,%03d", s / 3600, s / 60 % 60, s % 60, (s - int(s)) * 1000 + 0.5) }
		BEGIN { for (i = 0; 3 * i < n; i++) printf "%d\n%s --> %s\nCaption number %d, a line of\nordinary length for a podcast\n\n", i + 1, t(3 * i), t(3 * i + 2.6), i + 1 }' >"$fx/$s.srt"
done

# --- server --------------------------------------------------------------------------------------

key_json=$("$tmp/vidgen" keys create -name bench -json -data "$tmp/data")
api_key=$(printf '%s' "$key_json" | sed -n 's/.*"apiKey":"\([^"]*\)".*/\1/p')
[[ -n $api_key ]] || die "no API key in: $key_json"
port=
for _ in $(seq 20); do
	p=$((20000 + RANDOM % 20000))
	if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then port=$p; break; fi
done
[[ -n $port ]] || die "no free port"
base=http://127.0.0.1:$port
"$tmp/vidgen" serve -data "$tmp/data" -addr "127.0.0.1:$port" -metrics-addr off -public-url "$base" \
	-rate-api 0 -rate-submit 0 -workers 1 -ffmpeg "$FFMPEG" -ffprobe "$FFPROBE" 2>"$tmp/server.log" &
server_pid=$!
for _ in $(seq 100); do
	curl -fsS "$base/health" >/dev/null 2>&1 && break
	kill -0 "$server_pid" 2>/dev/null || { cat "$tmp/server.log" >&2; die "server exited"; }
	sleep 0.05
done
curl -fsS "$base/health" >/dev/null || die "server did not come up"

# vidgen_run OUT [-F ARGS...]: submits a job, polls until it ends, downloads the video to OUT and
# prints the seconds from submit to COMPLETED (the job's updatedAt, as bench/render.sh measures),
# the peak memory in MB of vidgen and its children during the job, and their CPU seconds.
vidgen_run() {
	local out=$1 t0 resp id body cpu0
	shift
	peak_start "$server_pid"
	cpu0=$(children_cpu "$server_pid")
	t0=$(now)
	resp=$(curl -sS -H "X-API-Key: $api_key" "$@" "$base/api/jobs")
	id=$(printf '%s' "$resp" | json_field jobId)
	[[ -n $id ]] || die "submit failed: $resp"
	body=$(await_job "$base" "$api_key" "$id")
	peak_stop
	printf '%s %s %s' "$(sub "$(date -d "$(printf '%s' "$body" | json_field updatedAt)" +%s.%N)" "$t0")" "$peak_mb" \
		"$(sub "$(children_cpu "$server_pid")" "$cpu0")"
	curl -fsS -o "$out" "$(printf '%s' "$body" | json_field outputVideo)"
}

# user_run ARGS...: runs ffmpeg ARGS (the user's command) and prints its seconds, its peak memory
# in MB and its CPU seconds.
user_run() {
	local t0 cpu0 me=$BASHPID # this function's shell, which waits for the ffmpeg
	cpu0=$(children_cpu "$me")
	t0=$(now)
	"$FFMPEG" -nostdin -v error -y "$@" 2>"$tmp/user.err" &
	local pid=$!
	peak_start "$pid"
	wait "$pid" || { cat "$tmp/user.err" >&2; die "failed: ffmpeg $*"; }
	peak_stop
	printf '%s %s %s' "$(sub "$(now)" "$t0")" "$peak_mb" "$(sub "$(children_cpu "$me")" "$cpu0")"
}

# frame_at VIDEO SECONDS: the grey frame shown at SECONDS, as raw bytes in a file; prints its path.
frame_at() {
	ff -ss "$2" -i "$1" -frames:v 1 -vf format=gray -f rawvideo "$tmp/frame-$2.raw"
	printf '%s' "$tmp/frame-$2.raw"
}

# check VIDEO AUDIO CAPTIONED: "ok" when VIDEO is H.264 yuv420p BT.709 with AAC-LC and lasts as long as
# AUDIO (±0.1 s), and when CAPTIONED its second cue (3.0-5.6 s) comes and goes on time: the frame
# before its start and the one at it differ, and so do the last one before its end and the one at it;
# else what is wrong.
check() {
	local v=$1 a=$2 captioned=$3 bad=() vs ad vd fps
	vs=$("$FFPROBE" -v error -select_streams v:0 -show_entries stream=codec_name,pix_fmt,color_space -of csv=p=0 "$v")
	[[ $vs == "h264,yuv420p,bt709" ]] || bad+=("video:$vs")
	[[ $("$FFPROBE" -v error -select_streams a:0 -show_entries stream=codec_name,profile -of csv=p=0 "$v") == "aac,LC" ]] || bad+=(audio)
	ad=$("$FFPROBE" -v error -show_entries format=duration -of csv=p=0 "$a")
	vd=$("$FFPROBE" -v error -show_entries format=duration -of csv=p=0 "$v")
	awk -v a="$ad" -v v="$vd" 'BEGIN { d = a - v; exit !(d < 0.1 && d > -0.1) }' || bad+=("duration:$vd/$ad")
	if [[ $captioned == 1 ]]; then
		fps=$("$FFPROBE" -v error -select_streams v:0 -show_entries stream=r_frame_rate -of csv=p=0 "$v")
		fps=${fps%/1}
		# -ss T decodes from the first frame at or after T: half a frame before a frame's time is that frame.
		at() { frame_at "$v" "$(awk -v t="$1" -v f="$fps" 'BEGIN { printf "%.4f", t - 0.5 / f }')"; }
		edge() { ! cmp -s "$(at "$(awk -v t="$1" -v f="$fps" 'BEGIN { print t - 1 / f }')")" "$(at "$1")"; }
		edge 3 || bad+=("no-caption-from-3s")
		edge 5.6 || bad+=("caption-after-5.6s")
	fi
	if ((${#bad[@]})); then printf '%s' "${bad[*]}"; else printf 'ok'; fi
}

# --- cases ---------------------------------------------------------------------------------------

rows=()
results=()
for s in "${SECONDS_LIST[@]}"; do
	for size in "${SIZES[@]}"; do
		c="${s}s:$size"
		fields=(-F "image=@$fx/photo.jpg" -F "audio=@$fx/$s.mp3" -F "size=$size")
		st=() sm=() sc=() ct=() cm=() cc=()
		for ((i = 0; i < RUNS; i++)); do
			say "case $c: still, captioned ($((i + 1))/$RUNS)"
			read -r t m u <<<"$(vidgen_run "$tmp/still.mp4" "${fields[@]}")"
			st+=("$t") sm+=("$m") sc+=("$u")
			read -r t m u <<<"$(vidgen_run "$tmp/captioned.mp4" "${fields[@]}" -F "captions=@$fx/$s.srt")"
			ct+=("$t") cm+=("$m") cc+=("$u")
		done
		still=$(median "${st[@]}") captioned=$(median "${ct[@]}")
		stillcpu=$(median "${sc[@]}") captcpu=$(median "${cc[@]}")
		ok=$(check "$tmp/still.mp4" "$fx/$s.mp3" 0)/$(check "$tmp/captioned.mp4" "$fx/$s.mp3" 1)
		user=- umem=- ucpu=-
		if [[ ! ($QUICK == 1 && $s == 600) ]]; then
			say "case $c: the user's command"
			vf="subtitles=$fx/$s.srt" rate=25
			if [[ $size == portrait ]]; then
				vf="scale=1080:1920:force_original_aspect_ratio=decrease,pad=1080:1920:(ow-iw)/2:(oh-ih)/2,$vf" rate=30
			fi
			read -r user umem ucpu <<<"$(user_run -loop 1 -framerate "$rate" -i "$fx/photo.jpg" -i "$fx/$s.mp3" -vf "$vf" \
				-c:v libx264 -tune stillimage -pix_fmt yuv420p -c:a aac -b:a 192k -shortest "$tmp/user.mp4")"
		fi
		ratio=$(div "$captioned" "$still")
		cpuratio=$(div "$captcpu" "$stillcpu")
		rows+=("$(printf '%-16s %8s %11s %8s %8s %8s | %7s %7s %8s %7s | %8s %8s %8s  %s' "$c" "$still" "$captioned" "$ratio" "$user" \
			"$( [[ $user == - ]] && echo - || div "$user" "$captioned")" "$stillcpu" "$captcpu" "$cpuratio" "$ucpu" \
			"$(median "${sm[@]}")" "$(median "${cm[@]}")" "$umem" "$ok")")
		results+=("$(printf '%-5s %s captioned within 1.5x of the still job (wall %sx; CPU %sx)' \
			"$(awk -v r="$ratio" 'BEGIN { print (r <= 1.5 ? "PASS" : "MISS") }')" "$c" "$ratio" "$cpuratio")")
	done
done

echo
echo "vidgen $built, ffmpeg $("$FFMPEG" -version | awk 'NR == 1 { print $3 }'), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), $(date -u +%F); vidgen: median of $RUNS"
echo "1920x1080 JPEG + speech MP3, a cue every 3 s; user = ffmpeg -loop 1 ... -vf subtitles -c:v libx264 -tune stillimage (-shortest)"
echo "wall: submit to COMPLETED (median); cpu: CPU seconds of the job's processes (median); MB: peak resident memory"
printf '%-16s %8s %11s %8s %8s %8s | %7s %7s %8s %7s | %8s %8s %8s  %s\n' case still_s captioned_s cap/still user_s user/cap \
	still_cpu capt_cpu cap/still user_cpu still_MB capt_MB user_MB check
printf '%s\n' "${rows[@]}"
echo
printf '%s\n' "${results[@]}"
