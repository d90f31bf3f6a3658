#!/usr/bin/env bash
# Benchmark of moving pictures and of sizes: a still job, the same job with captions, with a
# waveform, and in three sizes at once, each against the single ffmpeg command a user would write
# for it, in one run on the same files.
#
# A 1920x1080 JPEG over 60 s and 600 s of speech-like MP3, through a real `vidgen serve`, at the
# picture's own size (1920x1080; 10 fps still, 25 fps moving) and size=portrait (1080x1920, 30 fps):
#   still       the job without options
#   captioned   captions=@SRT, a cue every 3 s (2.6 s on screen, then 0.4 s without); the user's
#               command: -vf subtitles=SRT, libx264 -tune stillimage at its defaults
#   waveform    waveform=bars; the user's command: showwaves (mode=cline, the band vidgen draws: a
#               fifth of the frame, 3% above the bottom) overlaid on the picture, libx264 at its
#               default preset and -crf 19 (vidgen's), same size and frame rate
# and per audio length once:
#   3 sizes     sizes=landscape,portrait,square: one job, three videos; against the still job at
#               size=landscape (one size), and the tutorial still command (bench/render.sh's, fitted
#               to the size by scale+pad, 30 fps) run once per size, as a user without vidgen would
# vidgen's jobs run in turn, BENCH_RUNS times each, and the median is reported; each user command
# runs once. wall: submit to COMPLETED (the job's updatedAt); cpu: CPU seconds of vidgen's process
# and of the processes it ran for the job (every ffmpeg; the splice and the muxer run in vidgen), or
# of the user's ffmpeg: unlike wall time, it does not depend on what else the machine runs. MiB: the
# largest total resident set of vidgen and its children (or of the user's ffmpeg), sampled every 0.1 s.
# The targets are judged by CPU time (wall time is printed beside it): a captioned job within 1.5x
# of the still job, a waveform job >= 4x faster than the user's waveform command, three sizes within
# 1.3x of one. Every vidgen output is checked with ffprobe (H.264 yuv420p BT.709 at its exact
# width x height, AAC-LC, video and file within one frame of the audio), captions by decoding frames
# around two cue edges (a frame before a cue and one during it must differ).
#
#   bench/moving.sh                 everything (the 600 s user commands take ~5-15 minutes each)
#   BENCH_QUICK=1 bench/moving.sh   skip the 600 s user commands
#   BENCH_USERS=0                   skip every user command (BENCH_SIZES= BENCH_SECONDS=60
#                                   BENCH_USERS=0: three sizes against one, alone, in under a minute)
#   BENCH_RUNS=N                    vidgen runs per job, median reported (default 3)
#   BENCH_SECONDS="60 600"          the audio lengths
#   BENCH_SIZES="original portrait" the sizes of the still, captioned and waveform jobs (empty: none,
#                                   only the three sizes)
#   BENCH_ROOT=DIR                  build vidgen from DIR (default: this checkout)
#   VIDGEN=BIN                      run BIN, built already, instead
#   FFMPEG=... FFPROBE=...          other binaries (default: from PATH)
# A server that refuses sizes (400) or ignores it (no outputs in the status body) skips the three
# sizes rows with a line that says so.
set -euo pipefail

FFMPEG=${FFMPEG:-ffmpeg}
FFPROBE=${FFPROBE:-ffprobe}
RUNS=${BENCH_RUNS:-3}
QUICK=${BENCH_QUICK:-0}
USERS=${BENCH_USERS:-1}
read -ra SECONDS_LIST <<<"${BENCH_SECONDS:-60 600}"
read -ra SIZES <<<"${BENCH_SIZES-original portrait}"
THREE=landscape,portrait,square

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=${BENCH_ROOT:-$(git -C "$here" rev-parse --show-toplevel 2>/dev/null || dirname "$here")}

# say, die, now, sub, div, median, ff, speech, scratch, serve, await_job, json_field, completed_in
source "$here/lib.sh"
scratch
command -v jq >/dev/null 2>&1 || die "needs jq (apt-get install -y jq)"

# --- peak memory and CPU -------------------------------------------------------------------------

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

# peak_start PID / peak_stop: sample PID's tree in the background; peak_stop sets peak_mib to the
# peak in MiB (in this shell: the sampler is its child).
peak_start() { rm -f "$tmp/peak" "$tmp/peak.stop"; sample "$1" "$tmp/peak" & sampler=$!; }
peak_stop() { touch "$tmp/peak.stop"; wait "$sampler"; peak_mib=$(awk -v k="$(cat "$tmp/peak")" 'BEGIN { printf "%.0f", k / 1024 }'); }

# cpu_of PID: the CPU seconds (user and system) of PID itself and of the children it has waited
# for, from /proc/PID/stat.
cpu_of() {
	local stat
	stat=$(<"/proc/$1/stat")
	stat=${stat##*) }
	read -ra f <<<"$stat"
	awk -v a="${f[11]}" -v b="${f[12]}" -v c="${f[13]}" -v d="${f[14]}" -v hz="$(getconf CLK_TCK)" \
		'BEGIN { printf "%.2f", (a + b + c + d) / hz }'
}

# --- build and fixtures --------------------------------------------------------------------------

if [[ -n ${VIDGEN:-} ]]; then
	bin=$VIDGEN built="$VIDGEN"
else
	say "building vidgen from $root"
	(cd "$root" && go build -o "$tmp/vidgen" .)
	bin=$tmp/vidgen
	# The commit the binary was built from: the tree may change while the bench runs.
	built=$(git -C "$root" describe --always --dirty 2>/dev/null || echo '?')
fi

say "generating fixtures"
fx=$tmp/fixtures
mkdir -p "$fx"
ff -f lavfi -i testsrc2=s=1920x1080:r=1 -frames:v 1 -q:v 2 "$fx/photo.jpg"
declare -A audio_s
for s in "${SECONDS_LIST[@]}"; do
	speech "$s" "$fx/$s.mp3"
	# Decoded, as the encoder's delay and padding are trimmed: the container's estimate is longer.
	audio_s[$s]=$("$FFMPEG" -nostdin -v error -i "$fx/$s.mp3" -map 0:a:0 -f null -progress pipe:1 - |
		sed -n 's/^out_time_us=//p' | tail -1 | awk '{ printf "%.6f", $1 / 1e6 }')
	awk -v n="$s" 'function t(s) { return sprintf("%02d:%02d:%02d,%03d", s / 3600, s / 60 % 60, s % 60, (s - int(s)) * 1000 + 0.5) }
		BEGIN { for (i = 0; 3 * i < n; i++) printf "%d\n%s --> %s\nCaption number %d, a line of\nordinary length for a podcast\n\n", i + 1, t(3 * i), t(3 * i + 2.6), i + 1 }' >"$fx/$s.srt"
done

# --- runs ----------------------------------------------------------------------------------------

serve "$bin" "$tmp/data"
server_pid=${server_pids[-1]}

# measure_job [-F FIELD...]: submits a job, polls until it ends, keeps its status body in
# $tmp/status.json and prints the seconds from submit to COMPLETED (completed_in, as lib.sh's
# vidgen_run), its CPU seconds and the peak memory in MiB of vidgen and its children during the
# job. Unlike vidgen_run, it does not end the bench on a job the server turns down: a submission
# refused (4xx) prints "refused" and keeps the answer in $tmp/refused.json; one whose status body
# has no outputs while its fields ask for sizes prints "ignored", and the job is cancelled.
measure_job() {
	local t0 resp code id body cpu0
	peak_start "$server_pid"
	cpu0=$(cpu_of "$server_pid")
	t0=$(now)
	resp=$(curl -sS -w '\n%{http_code}' -H "X-API-Key: $api_key" "$@" "$base/api/jobs")
	code=${resp##*$'\n'} resp=${resp%$'\n'*}
	if [[ $code == 4?? ]]; then
		peak_stop
		printf '%s' "$resp" >"$tmp/refused.json"
		printf 'refused'
		return
	fi
	id=$(printf '%s' "$resp" | json_field jobId)
	[[ -n $id ]] || die "submit failed ($code): $resp"
	if [[ $* == *sizes=* ]] && ! curl -fsS -H "X-API-Key: $api_key" "$base/api/status/$id" | jq -e 'has("outputs")' >/dev/null; then
		# 409 when the job has ended already.
		curl -sS -o /dev/null -X DELETE -H "X-API-Key: $api_key" "$base/api/jobs/$id"
		# Wait for its ffmpeg to stop: the next job's CPU time would count it.
		while [[ -n $(cat "/proc/$server_pid/task/"*/children 2>/dev/null) ]]; do sleep 0.2; done
		peak_stop
		printf 'ignored'
		return
	fi
	body=$(await_job "$base" "$api_key" "$id")
	peak_stop
	printf '%s' "$body" >"$tmp/status.json"
	printf '%s %s %s' "$(completed_in "$t0" "$body")" \
		"$(sub "$(cpu_of "$server_pid")" "$cpu0")" "$peak_mib"
}

# user_run ARGS...: runs ffmpeg ARGS (the user's command) and prints its seconds, its CPU seconds
# and its peak memory in MiB.
user_run() {
	local t0 cpu1 cpu0 me=$BASHPID # this function's shell, which waits for the ffmpeg
	cpu0=$(cpu_of "$me")
	t0=$(now)
	"$FFMPEG" -nostdin -v error -y "$@" 2>"$tmp/user.err" &
	local pid=$!
	peak_start "$pid"
	wait "$pid" || { cat "$tmp/user.err" >&2; die "failed: ffmpeg $*"; }
	# Read before the sampler is waited for, which would count its CPU as the user's.
	cpu1=$(cpu_of "$me")
	peak_stop
	printf '%s %s %s' "$(sub "$(now)" "$t0")" "$(sub "$cpu1" "$cpu0")" "$peak_mib"
}

# frame_at VIDEO SECONDS: the grey frame shown at SECONDS, as raw bytes in a file; prints its path.
frame_at() {
	ff -ss "$2" -i "$1" -frames:v 1 -vf format=gray -f rawvideo "$tmp/frame-$2.raw"
	printf '%s' "$tmp/frame-$2.raw"
}

# check VIDEO SECONDS WxH CAPTIONED: "ok" when VIDEO is H.264 yuv420p BT.709 of exactly WxH with
# AAC-LC, and its video stream and the file last SECONDS (the audio's) within one frame; and when
# CAPTIONED its second cue (3.0-5.6 s) comes and goes on time: the frame before its start and the
# one at it differ, and so do the last one before its end and the one at it; else what is wrong.
check() {
	local v=$1 a=$2 wh=$3 captioned=$4 bad=() vs fps vd fd
	vs=$("$FFPROBE" -v error -select_streams v:0 -show_entries stream=codec_name,pix_fmt,color_space,width,height,r_frame_rate,duration \
		-of json "$v" | jq -r '.streams[0] | "\(.codec_name),\(.pix_fmt),\(.color_space),\(.width)x\(.height) \(.r_frame_rate) \(.duration)"')
	read -r vs fps vd <<<"$vs"
	[[ $vs == "h264,yuv420p,bt709,$wh" ]] || bad+=("video:$vs")
	[[ $("$FFPROBE" -v error -select_streams a:0 -show_entries stream=codec_name,profile -of csv=p=0 "$v") == "aac,LC" ]] || bad+=(audio)
	fd=$("$FFPROBE" -v error -show_entries format=duration -of csv=p=0 "$v")
	fps=$(awk -v f="$fps" 'BEGIN { split(f, p, "/"); print p[1] / (p[2] ? p[2] : 1) }')
	within() { awk -v a="$a" -v v="$1" -v f="$fps" 'BEGIN { d = a - v; e = 1 / f + 1e-6; exit !(f > 0 && d <= e && d >= -e) }'; }
	within "$vd" || bad+=("video-duration:$vd/$a")
	within "$fd" || bad+=("duration:$fd/$a")
	if [[ $captioned == 1 ]]; then
		# -ss T decodes from the first frame at or after T: half a frame before a frame's time is that frame.
		at() { frame_at "$v" "$(awk -v t="$1" -v f="$fps" 'BEGIN { printf "%.4f", t - 0.5 / f }')"; }
		edge() { ! cmp -s "$(at "$(awk -v t="$1" -v f="$fps" 'BEGIN { print t - 1 / f }')")" "$(at "$1")"; }
		edge 3 || bad+=("no-caption-from-3s")
		edge 5.6 || bad+=("caption-after-5.6s")
	fi
	if ((${#bad[@]})); then printf '%s' "${bad[*]}"; else printf 'ok'; fi
}

# dims SIZE: the width x height of a video of SIZE made from the 1920x1080 picture.
dims() {
	case $1 in
	original | landscape) echo 1920x1080 ;;
	portrait) echo 1080x1920 ;;
	square) echo 1080x1080 ;;
	*) die "no dimensions for size $1" ;;
	esac
}

# fit WxH: the filter that fits the picture to WxH, as the user's commands do (vidgen blurs the
# borders; a user pads them).
fit() { echo "scale=${1%x*}:${1#*x}:force_original_aspect_ratio=decrease,pad=${1%x*}:${1#*x}:(ow-iw)/2:(oh-ih)/2,setsar=1"; }

# --- cases ---------------------------------------------------------------------------------------

# row CASE JOB "WALL CPU MIB" RATIO_NAME BASE_WALL BASE_CPU CHECK: a line of the table with its
# ratios to the base ("-" without one) under the name RATIO_NAME; CHECK "-" for an output unchecked.
rows=() results=() checks=() videos=0
row() {
	local c=$1 job=$2 w m u rn=$4 bw=$5 bc=$6 ok=$7 rw=- rc=-
	read -r w u m <<<"$3"
	if [[ $rn != - ]]; then rw=$(div "$w" "$bw") rc=$(div "$u" "$bc"); fi
	rows+=("$(printf '%-13s %-15s %8s %8s %6s  %-18s %7s %7s  %s' "$c" "$job" "$w" "$u" "$m" "$rn" "$rw" "$rc" "$ok")")
	[[ $ok == - ]] || checks+=("$c $job: $ok")
}
# target LABEL CPU_RATIO WALL_RATIO PASS_EXPR: a PASS/MISS line, judged by the CPU ratio r.
target() {
	results+=("$(printf '%-5s %s (CPU %sx; wall %sx)' "$(awk -v r="$2" "BEGIN { print ($4 ? \"PASS\" : \"MISS\") }")" "$1" "$2" "$3")")
}
# verify WANT: checks the videos of the last job (its status in $tmp/status.json) against the audio
# of $a seconds; prints "ok" or what is wrong. WANT is WxH (its video, of that size), WxH:captions
# (and its captions' cue edges), or sizes (each video of outputs at its size, in the order asked,
# the first being outputVideo).
verify() {
	local want=$1 st=$tmp/status.json i=0 sz r bad=()
	if [[ $want != sizes ]]; then
		curl -fsS -o "$tmp/out.mp4" "$(jq -r .outputVideo "$st")"
		check "$tmp/out.mp4" "$a" "${want%:*}" "$([[ $want == *:captions ]] && echo 1 || echo 0)"
		return
	fi
	[[ $(jq -r '[.outputs[].size] | join(",")' "$st") == "$THREE" ]] || bad+=("outputs:$(jq -c '[.outputs[].size]' "$st")")
	[[ $(jq -r .outputVideo "$st") == $(jq -r '.outputs[0].video' "$st") ]] || bad+=("outputVideo-not-the-first")
	for sz in $(jq -r '.outputs[].size' "$st"); do
		curl -fsS -o "$tmp/out.mp4" "$(jq -r ".outputs[$i].video" "$st")"
		r=$(check "$tmp/out.mp4" "$a" "$(dims "$sz")" 0)
		[[ $r == ok ]] || bad+=("$sz:$r")
		i=$((i + 1))
	done
	if ((${#bad[@]})); then printf '%s' "${bad[*]}"; else printf 'ok'; fi
}

# job NAME WANT FIELD...: runs the job once, adds its "WALL CPU MIB" to took[NAME] (a line a run)
# and checks its videos (verify WANT), adding what is wrong to bad[NAME]; a job refused or ignored
# (measure_job) sets took[NAME] to that word instead.
declare -A took bad
job() {
	local name=$1 want=$2 r
	shift 2
	say "$c: $name"
	r=$(measure_job "$@")
	if [[ $r == refused || $r == ignored ]]; then
		took[$name]=$r
		return
	fi
	took[$name]+=$r$'\n'
	r=$(verify "$want")
	[[ $r == ok ]] || bad[$name]+="$r "
	if [[ $want == sizes ]]; then videos=$((videos + $(jq '.outputs | length' "$tmp/status.json"))); else videos=$((videos + 1)); fi
}
# medians NAME: the medians of NAME's runs, "WALL CPU MIB".
medians() {
	local col out=()
	for col in 1 2 3; do
		# shellcheck disable=SC2046 # one number a word
		out+=("$(median $(printf '%s' "${took[$1]}" | cut -d' ' -f"$col"))")
	done
	printf '%s' "${out[*]}"
}

skipped=()
for s in "${SECONDS_LIST[@]}"; do
	a=${audio_s[$s]}
	users=1 no_users="BENCH_USERS=0: no user commands"
	if [[ $USERS == 0 ]]; then users=0; fi
	if [[ $QUICK == 1 && $s == 600 ]]; then users=0 no_users="BENCH_QUICK: no 600 s user commands"; fi
	for size in "${SIZES[@]}"; do
		c="${s}s $size"
		wh=$(dims "$size") w=${wh%x*} h=${wh#*x}
		fields=(-F "image=@$fx/photo.jpg" -F "audio=@$fx/$s.mp3" -F "size=$size")
		# The still, captioned and waveform runs alternate, so that each ratio's jobs share the load.
		took=() bad=()
		for ((k = 0; k < RUNS; k++)); do
			job still "$wh" "${fields[@]}"
			job captioned "$wh:captions" "${fields[@]}" -F "captions=@$fx/$s.srt"
			job waveform "$wh" "${fields[@]}" -F waveform=bars
		done
		still=$(medians still) captioned=$(medians captioned) waveform=$(medians waveform)
		read -r sw su _ <<<"$still"
		read -r cw cu _ <<<"$captioned"
		read -r ww wu _ <<<"$waveform"
		row "$c" still "$still" - - - "${bad[still]:-ok}"
		row "$c" captioned "$captioned" captioned/still "$sw" "$su" "${bad[captioned]:-ok}"
		if ((users)); then
			say "$c: the user's subtitles command"
			# At the picture's own size the user fits nothing; vidgen's moving rate there is 25 fps.
			rate=25 fitted=null
			if [[ $size != original ]]; then rate=30 fitted=$(fit "$wh"); fi
			vf="subtitles=$fx/$s.srt"
			if [[ $fitted != null ]]; then vf="$fitted,$vf"; fi
			u=$(user_run -loop 1 -framerate "$rate" -i "$fx/photo.jpg" -i "$fx/$s.mp3" -vf "$vf" \
				-c:v libx264 -tune stillimage -pix_fmt yuv420p -c:a aac -b:a 192k -shortest "$tmp/user.mp4")
			row "$c" "user subtitles" "$u" user/captioned "$cw" "$cu" -
		fi
		row "$c" waveform "$waveform" waveform/still "$sw" "$su" "${bad[waveform]:-ok}"
		if ((users)); then
			say "$c: the user's waveform command"
			# The band vidgen draws (compose.go's waveformBand): a fifth of the height, 3% above the bottom.
			bh=$((h / 5 / 2 * 2)) by=$(((h - h / 5 / 2 * 2 - h * 3 / 100) / 2 * 2))
			u=$(user_run -loop 1 -framerate "$rate" -i "$fx/photo.jpg" -i "$fx/$s.mp3" -filter_complex \
				"[1:a]showwaves=s=${w}x${bh}:mode=cline:rate=$rate,format=rgba[wf];[0:v]$fitted[bg];[bg][wf]overlay=0:$by:shortest=1,format=yuv420p[v]" \
				-map "[v]" -map 1:a -c:v libx264 -crf 19 -r "$rate" -c:a aac -b:a 192k -shortest "$tmp/user.mp4")
			row "$c" "user waveform" "$u" user/waveform "$ww" "$wu" -
			read -r uw uu _ <<<"$u"
			target "$c: waveform >= 4x faster than the user's command" "$(div "$uu" "$wu")" "$(div "$uw" "$ww")" 'r >= 4'
		else
			results+=("SKIP  $c: waveform >= 4x faster than the user's command ($no_users)")
		fi
		target "$c: captioned within 1.5x of the still job" "$(div "$cu" "$su")" "$(div "$cw" "$sw")" 'r <= 1.5'
	done

	# Three sizes from one job, against the still job in one size and the user's command per size.
	c="${s}s 3 sizes"
	fields=(-F "image=@$fx/photo.jpg" -F "audio=@$fx/$s.mp3")
	took=() bad=()
	for ((k = 0; k < RUNS; k++)); do
		job three sizes "${fields[@]}" -F "sizes=$THREE"
		if [[ ${took[three]} == refused || ${took[three]} == ignored ]]; then
			why=
			if [[ ${took[three]} == refused ]]; then why=": $(cat "$tmp/refused.json")"; fi
			skipped+=("$c: the server ${took[three]} sizes=$THREE$why; not measured")
			continue 2
		fi
		job one 1920x1080 "${fields[@]}" -F size=landscape
	done
	one=$(medians one) three=$(medians three)
	read -r ow ou _ <<<"$one"
	read -r tw tu _ <<<"$three"
	row "$c" "still landscape" "$one" - - - "${bad[one]:-ok}"
	row "$c" "3 sizes" "$three" 3sizes/still "$ow" "$ou" "${bad[three]:-ok}"
	target "$c: three sizes within 1.3x of one" "$(div "$tu" "$ou")" "$(div "$tw" "$ow")" 'r <= 1.3'
	if ((users)); then
		uw=0 uu=0 um=0
		for sz in ${THREE//,/ }; do
			say "$c: the user's still command, $sz"
			u=$(user_run -loop 1 -framerate 30 -i "$fx/photo.jpg" -i "$fx/$s.mp3" -vf "$(fit "$(dims "$sz")")" \
				-c:v libx264 -tune stillimage -c:a aac -b:a 192k -pix_fmt yuv420p -shortest "$tmp/user.mp4")
			row "$c" "user $sz" "$u" - - - -
			read -r a1 a2 a3 <<<"$u"
			uw=$(awk -v a="$uw" -v b="$a1" 'BEGIN { printf "%.3f", a + b }') uu=$(awk -v a="$uu" -v b="$a2" 'BEGIN { printf "%.2f", a + b }')
			if ((a3 > um)); then um=$a3; fi
		done
		row "$c" "user x3" "$uw $uu $um" user/3sizes "$tw" "$tu" -
	fi
done

failed=()
for k in "${checks[@]}"; do [[ $k == *': ok' ]] || failed+=("$k"); done

echo
echo "vidgen $built, ffmpeg $("$FFMPEG" -version | awk 'NR == 1 { print $3 }'), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), $(date -u +%F); vidgen: median of $RUNS"
echo "1920x1080 JPEG + speech MP3, $speech_kind (captions: a cue every 3 s); user = the one ffmpeg command for the same video (header of bench/moving.sh)"
echo "wall: submit to COMPLETED; cpu: CPU seconds of the job's processes (vidgen and its ffmpeg) or the user's ffmpeg; MiB: peak resident memory"
echo "ratio: this row over the base (job/still), or the user's command over the job (user/job: how many times faster vidgen is)"
printf '%-13s %-15s %8s %8s %6s  %-18s %7s %7s  %s\n' case job wall_s cpu_s MiB ratio wall_x cpu_x check
printf '%s\n' "${rows[@]}"
echo
printf '%s\n' "${results[@]}"
for k in "${skipped[@]}"; do printf 'SKIP  %s\n' "$k"; done
if ((${#failed[@]})); then
	printf 'MISS  every output checked: %s\n' "${failed[*]}"
elif ((videos == 0)); then
	printf 'SKIP  every output checked: no video made\n'
else
	printf 'PASS  every output checked (%d videos: codec, width x height, duration within one frame, cue edges)\n' "$videos"
fi
