#!/usr/bin/env bash
# deploy/check-scaling.sh (make test-backends, inside scripts/postgres-test.sh and scripts/s3-test.sh):
# runs every command of docs/scaling.md's ```sh blocks against the throwaway PostgreSQL
# (VIDGEN_TEST_POSTGRES) and S3-compatible server (VIDGEN_TEST_S3), with the real nginx.
#
# Each "## " section of the page is run on its own, in order, in a scratch root of its own: its
# /etc and /var/lib go under the root, db.internal and 10.0.0.5 become the test servers, the nodes'
# and the proxy's addresses free loopback ports, sslmode=require sslmode=disable (the test server
# has no TLS), and the database, its user and the bucket get the section's number (vidgen_N, mediaN),
# created first when the section does not create them itself. Every node starts with the bucket's
# VIDGEN_S3_* variables, as its environment file would give them, and VIDGEN_DATABASE_URL when the
# section reads it. The tools in real_tools run as they are; vidgen serve, systemctl and nginx are
# stood in for by the functions below. TestScalingCommandsChecked fails when the page has a command
# this script does not run.
#
# The last section ends with a job submitted through nginx, which goes to one node; that node is
# then stopped, and the video is downloaded through nginx from the other.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/free-port.sh
GO=${GO:-go}
: "${VIDGEN_TEST_POSTGRES:?run under scripts/postgres-test.sh}" "${VIDGEN_TEST_S3:?run under scripts/s3-test.sh}"
command -v nginx >/dev/null 2>&1 || { echo "check-scaling: needs nginx (apt-get install -y nginx)"; exit 1; }
tmp=$(mktemp -d)
pids=$tmp/pids
: > "$pids"
stop_all() { # every node this script started, by the pids it recorded
  local pid
  while read -r pid; do kill -TERM "$pid" 2>/dev/null || true; done < "$pids"
  while read -r pid; do for _ in $(seq 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done; done < "$pids"
  : > "$pids"
}
stop_nginx() { [ ! -s "$tmp/nginx.pid" ] || kill -QUIT "$(cat "$tmp/nginx.pid")" 2>/dev/null || true; }
trap 'rc=$?; stop_nginx; stop_all; rm -rf "$tmp"; exit $rc' EXIT

CGO_ENABLED=0 "$GO" build -o "$tmp/vidgen" .
ffmpeg -v error -f lavfi -i color=c=teal:s=160x90 -frames:v 1 "$tmp/cover.png"
ffmpeg -v error -f lavfi -i sine=f=440:d=1 "$tmp/audio.wav"
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$tmp/key.pem" -out "$tmp/cert.pem" -days 1 \
  -subj /CN=video.example.com -addext subjectAltName=DNS:video.example.com >/dev/null 2>&1

pg_admin=$VIDGEN_TEST_POSTGRES
pgport=$(sed -E 's#^postgres://[^@]*@127\.0\.0\.1:([0-9]+)/.*#\1#' <<<"$pg_admin")
s3=${VIDGEN_TEST_S3#http://}
s3_access=${s3%%:*} s3=${s3#*:}
s3_secret=${s3%%@*} s3=${s3#*@}
s3_host=${s3%%/*}
empty_sha=e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
n1=$(free_port) n2=$(free_port) metrics=$(free_port) proxy=$(free_port)

real_tools="psql createdb curl cat echo export"

# sections: docs/scaling.md's sh blocks, each line prefixed with the number of its "## " section.
sections() {
  awk '/^## / { n++ } /^```sh$/ { on = 1; next } /^```$/ { on = 0 } on { print n "\t" $0 }' docs/scaling.md
}
# localize N: the page's names and addresses for section N in a scratch root (see the top).
localize() {
  sed -E -e "s#(10\.0\.0\.5|db\.internal):5432/vidgen\?#127.0.0.1:$pgport/vidgen_$1?#g" \
    -e "s#-h (10\.0\.0\.5|db\.internal) #-h 127.0.0.1 -p $pgport #g" \
    -e "s#sslmode=require#sslmode=disable#g" \
    -e "s#vidgen:SECRET@#vidgen_$1:SECRET@#g" -e "s#ROLE vidgen #ROLE vidgen_$1 #g" -e "s#-O vidgen vidgen\$#-O vidgen_$1 vidgen_$1#" \
    -e "s#http://10\.0\.0\.5:7070/media\$#http://$s3_host/media$1#" -e "s#http://10\.0\.0\.5:7070#http://$s3_host#g" \
    -e "s#s3://media/#s3://media$1/#g" \
    -e "s#VIDGEN_S3_ACCESS_KEY_ID=KEY#VIDGEN_S3_ACCESS_KEY_ID=$s3_access#g" -e "s#VIDGEN_S3_SECRET_ACCESS_KEY=SECRET#VIDGEN_S3_SECRET_ACCESS_KEY=$s3_secret#g" \
    -e "s#10\.0\.0\.11:8080#127.0.0.1:$n1#g" -e "s#10\.0\.0\.12:8080#127.0.0.1:$n2#g" -e "s#10\.0\.0\.12:9464#127.0.0.1:$metrics#g" \
    -e "s#10\.0\.0\.10/32#127.0.0.1/32#g" \
    -e "s#(^|[ \"'=])/(etc|var/lib)([/ \"']|\$)#\1$root/\2\3#g"
}

# vidgen serve starts a node in the background, as its own machine would run it (its -data made
# its own, an -addr on a free port when it names none), and returns once it answers its health
# check; the section's end stops it. Anything else is the real vidgen.
vidgen() {
  [ "$1" = serve ] || { "$tmp/vidgen" "$@"; return; }
  shift
  local args=() health="" addr="" api=true k=$(($(wc -l < "$pids") + 1))
  while [ $# -gt 0 ]; do
    case $1 in
      -data) mkdir -p -m 0700 "$2.node$k"; args+=(-data "$2.node$k"); shift ;;
      -addr) addr=$2; args+=("$1" "$2"); shift ;;
      -metrics-addr) health="http://$2/health"; args+=("$1" "$2"); shift ;;
      -api=false) api=false; args+=("$1") ;;
      *) args+=("$1") ;;
    esac
    shift
  done
  if [ "$api" = true ]; then
    [ -n "$addr" ] || { addr=127.0.0.1:$(free_port); args+=(-addr "$addr"); }
    health="http://$addr/api/health"
  fi
  start_logged "$tmp/node$k.log" "$health" "$tmp/vidgen" serve "${args[@]}"
}
# start_logged LOG URL CMD...: CMD in the background, its pid recorded; waits until URL answers 200.
start_logged() {
  local log=$1 url=$2; shift 2
  "$@" >"$log" 2>&1 &
  echo $! >> "$pids"
  for _ in $(seq 150); do
    curl -sf "$url" >/dev/null && return 0
    kill -0 "$(tail -1 "$pids")" 2>/dev/null || { echo "vidgen did not start:"; cat "$log"; return 1; }
    sleep 0.2
  done
  echo "vidgen did not answer $url in 30 s:"; cat "$log"; return 1
}

# The unit of docs/deploy.md on this machine: its Environment= lines, then its environment file.
box_pid="" box_key="" box_job="" box_port=""
box_start() {
  local env
  box_port=$(free_port)
  mkdir -p -m 0700 "$root/var/lib/vidgen"
  mapfile -t env < <({ echo "VIDGEN_DATA=$root/var/lib/vidgen"; echo "VIDGEN_ADDR=127.0.0.1:$box_port"
    [ ! -f "$root/etc/vidgen/vidgen.env" ] || grep -v '^#' "$root/etc/vidgen/vidgen.env" | grep .; })
  box_port=$(printf '%s\n' "${env[@]}" | sed -n 's/^VIDGEN_ADDR=127.0.0.1://p' | tail -1)
  start_logged "$tmp/box.log" "http://127.0.0.1:$box_port/api/health" env "${env[@]}" "$tmp/vidgen" serve
  box_pid=$(tail -1 "$pids")
}
box_stop() {
  [ -n "$box_pid" ] || return 0
  kill -TERM "$box_pid"
  for _ in $(seq 150); do kill -0 "$box_pid" 2>/dev/null || break; sleep 0.2; done
  ! kill -0 "$box_pid" 2>/dev/null || { echo "vidgen did not stop on SIGTERM"; return 1; }
  box_pid=""
}
# submit BASE KEY [CURL ARGS]: a job of the test's picture and sound; prints its id.
submit() {
  curl -sf "${@:3}" -H "X-API-Key: $2" -F image=@"$tmp/cover.png" -F audio=@"$tmp/audio.wav" "$1/api/jobs" | jq -er .jobId
}
# completed BASE KEY ID [CURL ARGS]: waits for the job to end COMPLETED; prints its status body.
completed() {
  local body status
  for _ in $(seq 300); do
    body=$(curl -sf "${@:4}" -H "X-API-Key: $2" "$1/api/status/$3") || { echo "GET /api/status/$3 failed" >&2; return 1; }
    status=$(jq -r .status <<<"$body")
    case $status in
      COMPLETED) echo "$body"; return 0 ;;
      FAILED|CANCELLED) echo "job $3 ended $status: $body" >&2; return 1 ;;
    esac
    sleep 0.2
  done
  echo "job $3 did not complete in 60 s: $body" >&2; return 1
}
# downloads URL FILE [CURL ARGS]: the video is an MP4 of about a second.
downloads() {
  curl -sf "${@:3}" -o "$2" "$1" || { echo "GET $1 failed" >&2; return 1; }
  local d; d=$(ffprobe -v error -show_entries format=duration -of csv=p=0 "$2")
  awk -v d="$d" 'BEGIN { exit !(d > 0.5 && d < 3) }' || { echo "$1: a video of $d s, want about 1 s" >&2; return 1; }
}

systemctl() {
  case "$*" in
    "stop vidgen") # a single box that has run: a key and a video made on SQLite and disk, then stopped
      if [ -z "$box_key" ]; then
        box_start
        box_key=$("$tmp/vidgen" keys create -name check -json -data "$root/var/lib/vidgen" | jq -er .apiKey)
        box_job=$(submit "http://127.0.0.1:$box_port" "$box_key")
        completed "http://127.0.0.1:$box_port" "$box_key" "$box_job" >/dev/null
      fi
      box_stop ;;
    "start vidgen"|"restart vidgen") # and, after a move, the box's key and video still work
      box_stop
      box_start
      if [ -n "$box_job" ]; then
        local body
        body=$(completed "http://127.0.0.1:$box_port" "$box_key" "$box_job")
        downloads "$(jq -r .outputVideo <<<"$body")" "$tmp/moved.mp4"
        curl -sf "http://127.0.0.1:$box_port/api/health" | jq -e --arg s "$want_store" --arg f "$want_files" '.store == $s and .files == $f' >/dev/null ||
          { echo "after the move /health says $(curl -s "http://127.0.0.1:$box_port/api/health"), want store $want_store, files $want_files"; return 1; }
        echo "check-scaling: after the move job $box_job still downloads with its key, on store $want_store, files $want_files"
      fi ;;
    "reload nginx") # the checked site, in the real nginx on loopback
      command nginx -c "$tmp/nginx.conf" -g "pid $tmp/nginx.pid;"
      for _ in $(seq 50); do [ -s "$tmp/nginx.pid" ] && break; sleep 0.1; done ;;
    *) echo "systemctl $*: not a command docs/scaling.md has"; return 1 ;;
  esac
}
# nginx -t: the page's site, on a free loopback port with a throw-away certificate; it also says
# which node answered (X-Upstream), for the check at the end.
nginx() {
  [ "$*" = -t ] || { echo "nginx $*: not checked"; return 1; }
  awk '/^```nginx$/ { on = 1; next } /^```$/ { on = 0 } on' docs/scaling.md |
    sed -e "s#/etc/letsencrypt/live/video.example.com/fullchain.pem#$tmp/cert.pem#" \
      -e "s#/etc/letsencrypt/live/video.example.com/privkey.pem#$tmp/key.pem#" | localize "$section" |
    sed -E -e "s#listen 443 ssl http2;#listen 127.0.0.1:$proxy ssl http2;#" -e '/listen \[::\]:443/d' \
      -e 's#^(\tserver_name video.example.com;)$#\1\n\tadd_header X-Upstream $upstream_addr always;#' > "$tmp/site.conf"
  grep -q "listen 127.0.0.1:$proxy ssl" "$tmp/site.conf" && grep -q 'add_header X-Upstream' "$tmp/site.conf" ||
    { echo "the nginx block of docs/scaling.md changed: update deploy/check-scaling.sh"; return 1; }
  # As TestE2EProxyUploads runs it: as root its workers run as root too, to reach the 0700 scratch
  # folder, and its temporary files go there, so that it runs as any user.
  { [ "$(id -u)" != 0 ] || echo 'user root root;'
    printf 'error_log stderr;\nevents {}\nhttp {\n  access_log off;\n'
    for t in client_body proxy fastcgi uwsgi scgi; do echo "  ${t}_temp_path $tmp/nginx-$t;"; done
    printf '  include %s/site.conf;\n}\n' "$tmp"; } > "$tmp/nginx.conf"
  command nginx -t -q -c "$tmp/nginx.conf" -g "pid $tmp/nginx.pid;"
}

lines=0
for section in $(sections | cut -f1 | uniq); do
  root=$tmp/s$section
  mkdir -p "$root/etc/vidgen" "$root/var/lib"
  sections | awk -F'\t' -v n="$section" '$1 == n { sub(/^[^\t]*\t/, ""); print }' | localize "$section" > "$tmp/s$section.sh"
  lines=$((lines + $(grep -cv '^\s*\(#\|$\)' "$tmp/s$section.sh")))
  grep -q 'CREATE ROLE' "$tmp/s$section.sh" || psql -q "$pg_admin" -c "CREATE ROLE vidgen_$section LOGIN PASSWORD 'SECRET'"
  grep -q '^createdb ' "$tmp/s$section.sh" || createdb -h 127.0.0.1 -p "$pgport" -U postgres -O "vidgen_$section" "vidgen_$section"
  grep -q -- '-X PUT' "$tmp/s$section.sh" ||
    curl -sf --aws-sigv4 aws:amz:us-east-1:s3 --user "$s3_access:$s3_secret" -H "x-amz-content-sha256: $empty_sha" -X PUT "http://$s3_host/media$section" >/dev/null
  db_url="postgres://vidgen_$section:SECRET@127.0.0.1:$pgport/vidgen_$section?sslmode=disable"
  want_store=$(grep -q VIDGEN_DATABASE_URL= "$tmp/s$section.sh" && echo postgres || echo sqlite)
  want_files=$(grep -q VIDGEN_FILES= "$tmp/s$section.sh" && echo s3 || echo disk)
  box_key="" box_job=""
  # In the background, so that set -e holds in the page's commands (it does not in a tested command).
  (
    export VIDGEN_S3_ACCESS_KEY_ID=$s3_access VIDGEN_S3_SECRET_ACCESS_KEY=$s3_secret VIDGEN_S3_ENDPOINT=http://$s3_host \
      VIDGEN_S3_PATH_STYLE=true VIDGEN_METRICS_ADDR=off
    if grep -q '\$VIDGEN_DATABASE_URL' "$tmp/s$section.sh"; then export VIDGEN_DATABASE_URL=$db_url; fi
    set -euo pipefail
    source "$tmp/s$section.sh"
    if grep -q '^upstream vidgen' "$tmp/site.conf" 2>/dev/null && [ -s "$tmp/nginx.pid" ]; then
      # Through the proxy: a job submitted to one node, its video downloaded from the other.
      via=(--resolve "video.example.com:$proxy:127.0.0.1" --cacert "$tmp/cert.pem")
      base=https://video.example.com:$proxy
      key=$("$tmp/vidgen" keys create -name proxy -json -database "$db_url" | jq -er .apiKey)
      job=$(submit "$base" "$key" "${via[@]}" -D "$tmp/submit.headers")
      took=$(sed -n 's/^[Xx]-[Uu]pstream: \([^\r]*\).*/\1/p' "$tmp/submit.headers")
      [ "$took" = "127.0.0.1:$n1" ] || [ "$took" = "127.0.0.1:$n2" ] || { echo "the submission went to '$took', not to a node"; exit 1; }
      body=$(completed "$base" "$key" "$job" "${via[@]}")
      # Stop the node that took it; nginx passes the download over to the other.
      for pid in $(cat "$pids"); do
        if tr '\0' ' ' < "/proc/$pid/cmdline" | grep -q -- "-addr $took" || tr '\0' '\n' < "/proc/$pid/environ" | grep -qx "VIDGEN_ADDR=$took"; then
          kill -TERM "$pid"; for _ in $(seq 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
        fi
      done
      ! curl -sf "http://$took/api/health" >/dev/null || { echo "the node at $took still answers"; exit 1; }
      video=$(jq -r .outputVideo <<<"$body")
      [[ $video == https://video.example.com/* ]] || { echo "outputVideo $video is not on the public URL"; exit 1; }
      downloads "${video/video.example.com/video.example.com:$proxy}" "$tmp/proxied.mp4" "${via[@]}" -D "$tmp/download.headers"
      # $upstream_addr lists every node nginx tried: the stopped one first, at times; the last answered.
      tried=$(sed -n 's/^[Xx]-[Uu]pstream: \([^\r]*\).*/\1/p' "$tmp/download.headers") from=${tried##*, }
      [ -n "$from" ] && [ "$from" != "$took" ] || { echo "the download came from '$from', want the other node than $took"; exit 1; }
      echo "check-scaling: job $job submitted through nginx to $took, downloaded through nginx from $from (tried $tried)"
    fi
  ) > "$tmp/s$section.out" 2>&1 &
  wait $! || { cat "$tmp/s$section.out"; for l in "$tmp"/node*.log "$tmp/box.log"; do [ -f "$l" ] && { echo "== $l"; tail -20 "$l"; }; done; echo "docs/scaling.md: a command of section $section failed (above)"; exit 1; }
  grep '^check-scaling:' "$tmp/s$section.out" || true
  stop_nginx; stop_all
done
grep -q '^check-scaling: job' "$tmp"/s*.out || { echo "docs/scaling.md: no job went through the proxy"; exit 1; }
echo "docs/scaling.md: $lines command lines run against PostgreSQL, the bucket and nginx"
