#!/usr/bin/env bash
# Benchmark of a job in several sizes: three still sizes from one job against one size.
#
# A clean 1920x1080 JPEG over 60 s of speech-like MP3 (bench/render.sh's) through a real `vidgen
# serve` with one worker: sizes=landscape,portrait,square against size=landscape, one after the
# other, BENCH_RUNS rounds (default 3). Prints each round, the medians and their ratio, and PASS or
# MISS against the target: three sizes in at most 1.3 times the time of one (the audio, the longest
# step, is encoded once for all three). Every video of the last round is checked with ffprobe.
#
#   BENCH_RUNS=N            rounds, medians reported (default 3)
#   FFMPEG=... FFPROBE=...  other binaries (default: from PATH)
set -euo pipefail

FFMPEG=${FFMPEG:-ffmpeg}
FFPROBE=${FFPROBE:-ffprobe}
RUNS=${BENCH_RUNS:-3}
TARGET=1.3

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(git -C "$here" rev-parse --show-toplevel 2>/dev/null || dirname "$here")

# say, die, now, sub, div, median, ff, speech, scratch, serve, vidgen_run
source "$here/lib.sh"
scratch

say "building vidgen from $root"
(cd "$root" && go build -o "$tmp/vidgen" .)
built=$(git -C "$root" describe --always --dirty 2>/dev/null || echo '?')
fx=$tmp/fixtures
mkdir -p "$fx"
ff -f lavfi -i testsrc2=s=1920x1080:r=1 -frames:v 1 -q:v 2 "$fx/clean.jpg"
speech 60 "$fx/60speech.mp3"
serve "$tmp/vidgen" "$tmp/data"

one=() three=()
for r in $(seq "$RUNS"); do
	t1=$(vidgen_run "$fx/clean.jpg" "$fx/60speech.mp3" "$tmp/one.mp4" size=landscape)
	t3=$(vidgen_run "$fx/clean.jpg" "$fx/60speech.mp3" "$tmp/three.mp4" sizes=landscape,portrait,square)
	one+=("$t1") three+=("$t3")
	say "round $r: one size $t1 s, three sizes $t3 s ($(div "$t3" "$t1")x)"
done

# The last round's three videos: each of its size, H.264 + AAC.
n=0
for want in 1920x1080 1080x1920 1080x1080; do
	n=$((n + 1))
	url=$(grep -o '"video":"[^"]*"' "$tmp/three.mp4.status" | sed -n "${n}s/\"video\":\"\\(.*\\)\"/\\1/p")
	[[ -n $url ]] || die "no output $n in $(cat "$tmp/three.mp4.status")"
	curl -fsS -o "$tmp/check.mp4" "$url"
	got=$("$FFPROBE" -v error -show_entries stream=codec_name,width,height -of csv=p=0 "$tmp/check.mp4" | tr '\n' ' ')
	[[ $got == *"h264,${want/x/,}"* && $got == *aac* ]] || die "output $n: $got, want h264 $want + aac"
done

m1=$(median "${one[@]}") m3=$(median "${three[@]}")
ratio=$(div "$m3" "$m1")
verdict=$(awk -v r="$ratio" -v t="$TARGET" 'BEGIN { print (r <= t) ? "PASS" : "MISS" }')
echo "vidgen $built, $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg); speech: $speech_kind"
echo "1920x1080 JPEG + 60 s speech MP3, $RUNS rounds, medians:"
echo "  one size (landscape):                   $m1 s  (${one[*]})"
echo "  three sizes (landscape,portrait,square): $m3 s  (${three[*]})"
echo "  ratio $ratio, target <= $TARGET: $verdict"
