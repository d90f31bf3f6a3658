# bench/lib.sh: the helpers every bench script shares; sourced, never run.
# shellcheck shell=bash

say() { printf '%s\n' "$*" >&2; }
die() { say "bench: $*"; exit 1; }
now() { printf '%s' "${EPOCHREALTIME/,/.}"; }
sub() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", a - b }'; }
div() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; }
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

# json_field NAME: the string field NAME of the JSON object on standard input.
json_field() { sed -n "s/.*\"$1\":\"\\([^\"]*\\)\".*/\\1/p"; }

# await_job BASE KEY ID: polls job ID on the server at BASE until it is COMPLETED and prints its
# status body; a job that failed or was cancelled ends the bench. One process a poll (no parsing
# subshells), so polling steals little CPU from the render.
await_job() {
	local base=$1 key=$2 id=$3 body
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
