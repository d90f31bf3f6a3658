# bench/lib.sh: the helpers every bench script shares; sourced, never run.
# shellcheck shell=bash

say() { printf '%s\n' "$*" >&2; }
die() { say "bench: $*"; exit 1; }
now() { printf '%s' "${EPOCHREALTIME/,/.}"; }
sub() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", a - b }'; }
div() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; }
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
