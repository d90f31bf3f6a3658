#!/usr/bin/env bash
# deploy/check.sh (make check-deploy): checks the files in deploy/ with the tools that will read them.
# - vidgen.service: systemd-analyze verify, which needs the ExecStart binary to exist, so it checks a
#   copy pointing at a fresh build; verify exits 0 on unknown keys and bad values, so any output fails.
# - Caddyfile and nginx.conf: `caddy validate` and `nginx -t` when those are installed (skipped, and
#   said so, when not), nginx with a throw-away certificate in place of Let's Encrypt's.
set -euo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

CGO_ENABLED=0 "$GO" build -o "$tmp/vidgen" .
sed "s#^ExecStart=/usr/local/bin/vidgen#ExecStart=$tmp/vidgen#" deploy/vidgen.service > "$tmp/vidgen.service"
grep -q "^ExecStart=$tmp/vidgen serve$" "$tmp/vidgen.service"
if ! out=$(systemd-analyze verify "$tmp/vidgen.service" 2>&1) || [ -n "$out" ]; then
  echo "systemd-analyze verify deploy/vidgen.service:"; echo "$out"; exit 1
fi
echo "deploy/vidgen.service: systemd-analyze verify clean"

if command -v caddy >/dev/null 2>&1; then
  if ! out=$(caddy validate --config deploy/Caddyfile --adapter caddyfile 2>&1); then
    echo "caddy validate deploy/Caddyfile:"; echo "$out"; exit 1
  fi
  echo "deploy/Caddyfile: caddy validate clean"
else
  echo "deploy/Caddyfile: not validated (caddy is not installed)"
fi

if command -v nginx >/dev/null 2>&1 && command -v openssl >/dev/null 2>&1; then
  openssl req -x509 -newkey rsa:2048 -nodes -keyout "$tmp/key.pem" -out "$tmp/cert.pem" -days 1 -subj /CN=video.example.com >/dev/null 2>&1
  sed -e "s#/etc/letsencrypt/live/video.example.com/fullchain.pem#$tmp/cert.pem#" \
      -e "s#/etc/letsencrypt/live/video.example.com/privkey.pem#$tmp/key.pem#" deploy/nginx.conf > "$tmp/site.conf"
  printf 'pid %s/nginx.pid;\nerror_log stderr;\nevents {}\nhttp {\n  access_log off;\n  include %s/site.conf;\n}\n' "$tmp" "$tmp" > "$tmp/nginx.conf"
  if ! out=$(nginx -t -q -c "$tmp/nginx.conf" 2>&1); then
    echo "nginx -t deploy/nginx.conf:"; echo "$out"; exit 1
  fi
  echo "deploy/nginx.conf: nginx -t clean"
else
  echo "deploy/nginx.conf: not validated (nginx or openssl is not installed)"
fi
