#!/usr/bin/env bash
# Benchmark of waveform jobs: the still job, the waveform job (the full encode, -splice-waveforms=false,
# and the default, which splices the band where the picture allows), and the single ffmpeg command a
# user would write for the same
# waveform (showwaves + overlay + libx264 at its defaults, same size and frame rate), for 60 s and
# 600 s of speech-like MP3 over a 1920x1080 JPEG at size=landscape and size=portrait. Every job
# runs through `vidgen render`. Prints, per case, wall and CPU (user+sys) seconds, peak memory (the
# largest resident set of vidgen and its ffmpeg children) and the user's command's time over each
# job's, by CPU (the fair measure on a shared machine) and by wall time.
#
#   bench/waveform.sh                 everything (the 600 s user commands take ~10 CPU-minutes each)
#   BENCH_QUICK=1 bench/waveform.sh   60 s only
#   BENCH_IMAGE=photo.jpg             another picture (default: ffmpeg's testsrc2, a clean picture)
#   FFMPEG=...                        another ffmpeg (default: from PATH)
set -euo pipefail

FFMPEG=${FFMPEG:-ffmpeg}
QUICK=${BENCH_QUICK:-0}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(git -C "$here" rev-parse --show-toplevel 2>/dev/null || dirname "$here")
tmp=$(mktemp -d "${TMPDIR:-/tmp}/vidgen-wbench.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
trap 'exit 130' INT TERM
say() { printf '%s\n' "$*" >&2; }
ff() { "$FFMPEG" -nostdin -hide_banner -v error -y "$@"; }

say "building vidgen from $root"
(cd "$root" && go build -o "$tmp/vidgen" .)
built=$(git -C "$root" describe --always --dirty 2>/dev/null || echo '?')

if [[ -n ${BENCH_IMAGE:-} ]]; then
	ff -i "$BENCH_IMAGE" -vf scale=1920:1080 -frames:v 1 -q:v 2 "$tmp/img.jpg"
else
	ff -f lavfi -i testsrc2=s=1920x1080:r=1 -frames:v 1 -q:v 2 "$tmp/img.jpg"
fi
lengths=(60)
((QUICK)) || lengths+=(600)
for d in "${lengths[@]}"; do
	# Speech-like: band-limited pink noise in syllables and pauses, mono 44.1 kHz, 128k (bench/render.sh's).
	ff -f lavfi -i "anoisesrc=c=pink:r=44100:a=0.5:d=$d:seed=3" \
		-af "volume='0.2+0.8*abs(sin(2*PI*3.3*t))*gt(sin(2*PI*0.4*t),-0.3)':eval=frame,lowpass=f=4000,highpass=f=100" \
		-ac 1 -c:a libmp3lame -b:a 128k "$tmp/$d.mp3"
done

# measure CMD...: runs CMD and prints "wall cpu peakKiB".
measure() {
	/usr/bin/time -f '%e %U %S %M' -o "$tmp/time" "$@" >/dev/null 2>"$tmp/err" || { cat "$tmp/err" >&2; exit 1; }
	awk '{ printf "%.2f %.2f %d", $1, $2 + $3, $4 }' "$tmp/time"
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }

printf '%-16s %-9s %8s %8s %8s %8s %10s\n' case job wall_s cpu_s peak_MiB "user/job" "user/job"
printf '%-16s %-9s %8s %8s %8s %8s %10s\n' "" "" "" "" "" "by CPU" "by wall"
for size in landscape portrait; do
	case $size in
	landscape) w=1920 h=1080 ;;
	portrait) w=1080 h=1920 ;;
	esac
	bh=$((h / 5 / 2 * 2)) by=$(((h - h / 5 / 2 * 2 - h * 3 / 100) / 2 * 2))
	for d in "${lengths[@]}"; do
		a=$tmp/$d.mp3
		say "$size ${d}s"
		declare -A r=()
		r[still]=$(measure "$tmp/vidgen" render -image "$tmp/img.jpg" -audio "$a" -size $size -progress none -o "$tmp/o.mp4")
		r[waveform]=$(measure "$tmp/vidgen" render -splice-waveforms=false -image "$tmp/img.jpg" -audio "$a" -size $size -waveform bars -progress none -o "$tmp/o.mp4")
		r[spliced]=$(measure "$tmp/vidgen" render -image "$tmp/img.jpg" -audio "$a" -size $size -waveform bars -progress none -o "$tmp/o.mp4")
		r[user]=$(measure "$FFMPEG" -nostdin -y -loop 1 -framerate 30 -i "$tmp/img.jpg" -i "$a" -filter_complex \
			"[1:a]showwaves=s=${w}x${bh}:mode=cline:rate=30,format=rgba[wf];[0:v]scale=$w:$h:force_original_aspect_ratio=decrease,pad=$w:$h:-1:-1,setsar=1[bg];[bg][wf]overlay=0:$by:shortest=1,format=yuv420p[v]" \
			-map "[v]" -map 1:a -c:v libx264 -r 30 -c:a aac -b:a 192k -shortest "$tmp/user.mp4")
		read -r uw uc _ <<<"${r[user]}"
		for job in still waveform spliced user; do
			read -r jw jc jm <<<"${r[$job]}"
			printf '%-16s %-9s %8s %8s %8d %8s %10s\n' "$size ${d}s" $job "$jw" "$jc" $((jm / 1024)) \
				"$(ratio "$uc" "$jc")" "$(ratio "$uw" "$jw")"
		done
	done
done
echo "vidgen $built, ffmpeg $("$FFMPEG" -version | awk 'NR == 1 { print $3 }'), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), $(date -u +%F)"
