#!/usr/bin/env bash
# deploy/check.sh (make check-deploy): checks the files in deploy/ with the tools that will read them.
# - vidgen.service: systemd-analyze verify, which needs the ExecStart binary to exist, so it checks a
#   copy pointing at a fresh build; verify exits 0 on unknown keys and bad values, so any output fails.
# - Type=notify: under a real systemd (root, systemd as init), the build as a transient Type=notify
#   service answers /api/health as soon as systemd-run returns.
# - Caddyfile and nginx.conf: `caddy validate` and `nginx -t` when those are installed (skipped, and
#   said so, when not), nginx with a throw-away certificate in place of Let's Encrypt's.
# - docs/deploy.md: every command of its ```sh blocks, in order, in a scratch root (deploy_commands
#   below): files go under $tmp/root instead of /, the service runs as the page's vidgen user on a
#   free loopback port, and what would change this machine (apt-get, useradd, systemctl, certbot)
#   is checked instead of done. TestDeployCommandsChecked fails when the page has a command this
#   script does not run.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/free-port.sh
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

# deploy_commands: the commands of docs/deploy.md's ```sh blocks, run in order as root in a scratch
# root. Paths under /etc, /var/lib, /usr/local/bin and /backup are moved under $root, 127.0.0.1:8080
# becomes a free port, and these commands stand in for the ones that would change the machine:
# each checks what it can (the tools listed in real_tools run as they are).
real_tools="install sed cp ln rm mkdir umask curl sqlite3 vidgen"
deploy_commands() {
  local root=$tmp/root work=$tmp/checkout journal=$tmp/root/journal port mport unit_path=$tmp/root/etc/systemd/system/vidgen.service
  pidfile=$tmp/vidgen.pid # global: the EXIT trap stops what is left running
  port=$(free_port) mport=$(free_port)
  chmod 0711 "$tmp"
  mkdir -p "$root/etc/systemd/system" "$root/usr/local/bin" "$root/var/lib" "$root/backup" "$work/dist" "$tmp/installed"
  for f in passwd group shadow gshadow; do install -m 0600 /dev/null "$root/etc/$f"; done
  cp /etc/login.defs "$root/etc/"
  cp -r deploy "$work/"
  cp "$tmp/vidgen" "$work/dist/vidgen-check-linux-amd64"
  : > "$journal"

  # account NAME FILE: the id of NAME in the scratch root's passwd or group.
  account() { awk -F: -v n="$1" '$1 == n { print $3; found = 1 } END { exit !found }' "$root/etc/$2"; }
  apt-get() { # install -y PKG...: each package is in the distribution; nothing is installed
    [ "$1 $2" = "install -y" ] || { echo "apt-get $*: only 'install -y PKG...' is checked"; return 1; }
    shift 2
    for p; do
      if command -v "$p" >/dev/null 2>&1 || apt-cache show "$p" >/dev/null 2>&1; then
        echo "apt-get install $p: found"
      elif [ -z "$(ls /var/lib/apt/lists 2>/dev/null | grep _Packages)" ]; then
        echo "apt-get install $p: not checked (no package lists: apt-get update)"
      else
        echo "apt-get install $p: no such package"; return 1
      fi
      case $p in # what the package would create, for the commands that follow
        caddy) mkdir -p "$root/etc/caddy" ;;
        nginx) mkdir -p "$root/etc/nginx/sites-available" "$root/etc/nginx/sites-enabled"
               touch "$root/etc/nginx/sites-available/default"
               ln -sf "$root/etc/nginx/sites-available/default" "$root/etc/nginx/sites-enabled/default" ;;
      esac
    done
  }
  useradd() { command useradd --prefix "$root" "$@"; }
  install() { # -o and -g name the scratch root's accounts; the unit's own paths move into the scratch root
    local a=()
    while [ $# -gt 0 ]; do
      case $1 in
        -o) a+=(-o "$(account "$2" passwd)"); shift 2 ;;
        -g) a+=(-g "$(account "$2" group)"); shift 2 ;;
        *) a+=("$1"); shift ;;
      esac
    done
    command install "${a[@]}" || return
    if [ "${a[-1]}" = "$unit_path" ]; then
      sed -i -E "s#(^|[ \"'=-])/(etc|var/lib|usr/local/bin)([/ \"']|\$)#\1$root/\2\3#g" "$unit_path"
    fi
  }
  editor() { grep -q '^VIDGEN_PUBLIC_URL=' "$1"; }
  start_vidgen() { # as the unit does: its user, data directory and settings, the journal's log format
    local unit=$root/etc/systemd/system/vidgen.service env
    # The unit's Environment= lines, then its EnvironmentFile, which wins.
    mapfile -t env < <({ sed -n 's/^Environment=//p' "$unit"; grep -v '^#' "$root/etc/vidgen/vidgen.env" | grep .; } |
      sed -e "s#^VIDGEN_DATA=/var/lib/#VIDGEN_DATA=$root/var/lib/#" \
        -e "s#127.0.0.1:8080#127.0.0.1:$port#" -e "s#127.0.0.1:9464#127.0.0.1:$mport#")
    grep -q "^VIDGEN_DATA=$root/" <(printf '%s\n' "${env[@]}") || { echo "the unit sets no VIDGEN_DATA"; return 1; }
    (cd "$root/var/lib/vidgen" && exec env -i PATH="$PATH" JOURNAL_STREAM="$(stat -c %d:%i "$journal")" "${env[@]}" \
      setpriv --reuid="$(account vidgen passwd)" --regid="$(account vidgen group)" --clear-groups -- \
      "$root/usr/local/bin/vidgen" serve 2>>"$journal") &
    echo $! > "$pidfile"
    for _ in $(seq 150); do
      curl -sf "http://127.0.0.1:$port/api/health" >/dev/null && return 0
      kill -0 "$(cat "$pidfile")" 2>/dev/null || { echo "vidgen did not start:"; cat "$journal"; return 1; }
      sleep 0.2
    done
    echo "vidgen did not answer /api/health in 30 s"; return 1
  }
  stop_vidgen() {
    [ -s "$pidfile" ] || return 0
    local pid; pid=$(cat "$pidfile")
    kill -TERM "$pid"
    # Not always this shell's child (the page's commands run in a subshell): wait for it to go.
    for _ in $(seq 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    ! kill -0 "$pid" 2>/dev/null || { echo "vidgen did not stop on SIGTERM within 60 s"; return 1; }
    : > "$pidfile"
  }
  systemctl() {
    case "$*" in
      daemon-reload) # the installed unit, pointing at the installed binary, verifies clean
        local out
        cp "$unit_path" "$tmp/installed/vidgen.service" || return 1
        if ! out=$(systemd-analyze verify "$tmp/installed/vidgen.service" 2>&1) || [ -n "$out" ]; then echo "$out"; return 1; fi ;;
      "enable --now vidgen"|"start vidgen") start_vidgen ;;
      "stop vidgen") stop_vidgen ;;
      "restart vidgen") stop_vidgen && start_vidgen ;;
      "reload caddy")
        if command -v caddy >/dev/null 2>&1; then caddy validate --config "$root/etc/caddy/Caddyfile" --adapter caddyfile
        else echo "$root/etc/caddy/Caddyfile: not validated (caddy is not installed)"; fi ;;
      "stop nginx"|"start nginx") ;; # nginx -t checked its configuration
      *) echo "systemctl $*: not a command docs/deploy.md has"; return 1 ;;
    esac
  }
  journalctl() { # -u vidgen -o cat -n N: the service's last lines, each one JSON object
    [ "$1 $2 $3 $4 $5" = "-u vidgen -o cat -n" ] || { echo "journalctl $*: not checked"; return 1; }
    tail -n "$6" "$journal" | tee "$tmp/journal.tail"
    jq -e . "$tmp/journal.tail" >/dev/null || { echo "the journal is not JSON, one object a line"; return 1; }
  }
  certbot() { # certonly --standalone -d DOMAIN: a throw-away certificate where Let's Encrypt's goes
    [ "$1 $2 $3" = "certonly --standalone -d" ] || { echo "certbot $*: not checked"; return 1; }
    mkdir -p "$root/etc/letsencrypt/live/$4"
    openssl req -x509 -newkey rsa:2048 -nodes -keyout "$root/etc/letsencrypt/live/$4/privkey.pem" \
      -out "$root/etc/letsencrypt/live/$4/fullchain.pem" -days 1 -subj "/CN=$4" >/dev/null 2>&1
  }
  nginx() { # -t: the enabled sites, with the scratch root's certificates
    [ "$*" = -t ] || { echo "nginx $*: not checked"; return 1; }
    [ ! -e "$root/etc/nginx/sites-enabled/default" ] || { echo "sites-enabled/default is still there"; return 1; }
    if ! command -v nginx >/dev/null 2>&1; then echo "nginx -t: not validated (nginx is not installed)"; return 0; fi
    sed "s#/etc/letsencrypt/#$root/etc/letsencrypt/#g" "$root/etc/nginx/sites-enabled/vidgen" > "$tmp/site2.conf"
    printf 'pid %s/nginx2.pid;\nerror_log stderr;\nevents {}\nhttp {\n  access_log off;\n  include %s/site2.conf;\n}\n' "$tmp" "$tmp" > "$tmp/nginx2.conf"
    command nginx -t -q -c "$tmp/nginx2.conf"
  }

  awk '/^```sh$/ { on = 1; next } /^```$/ { on = 0 } on' docs/deploy.md |
    sed -E -e "s#(^|[ \"'=])/(etc|var/lib|usr/local/bin|backup)([/ \"']|\$)#\1$root/\2\3#g" \
      -e "s#127\.0\.0\.1:8080#127.0.0.1:$port#g" > "$tmp/deploy.sh"
  trap 'rc=$?; stop_vidgen 2>/dev/null; rm -rf "$tmp"; exit $rc' EXIT
  # In the background, so that set -e holds in the page's commands (it does not in a tested command).
  # vidgen keys finds the scratch root's unit through VIDGEN_UNIT, as a server's at /etc/systemd/system.
  (cd "$work" && PATH="$root/usr/local/bin:$PATH" && export VIDGEN_UNIT=$unit_path && set -euo pipefail && source "$tmp/deploy.sh") > "$tmp/deploy.out" 2>&1 &
  wait $! || { cat "$tmp/deploy.out"; echo "docs/deploy.md: a command failed (above)"; exit 1; }
  stop_vidgen
  # What the page promises of the result.
  [ "$(stat -c %a:%U "$root/var/lib/vidgen")" = "700:$(account vidgen passwd)" ] || [ "$(stat -c %a:%u "$root/var/lib/vidgen")" = "700:$(account vidgen passwd)" ] ||
    { echo "the data directory is $(stat -c %a:%u "$root/var/lib/vidgen"), want 0700 owned by vidgen"; exit 1; }
  # vidgen keys ran as root: everything in the directory is still the service user's.
  if out=$(find "$root/var/lib/vidgen" ! -uid "$(account vidgen passwd)") && [ -n "$out" ]; then
    echo "files in the data directory not owned by vidgen:"; ls -ln $out; exit 1
  fi
  [ "$(stat -c %a "$root/backup/vidgen/vidgen.db")" = 600 ] || { echo "the online backup's database is not 0600"; exit 1; }
  [ "$(sqlite3 "$root/backup/vidgen/vidgen.db" 'PRAGMA integrity_check')" = ok ] || { echo "the online backup's database is damaged"; exit 1; }
  [ -f "$root/backup/vidgen.db" ] || [ -f "$root/backup/vidgen/vidgen.db" ] || { echo "no backup"; exit 1; }
  ! grep -q 'vg_' "$journal" || { echo "an API key was printed to the journal:"; cat "$journal" "$tmp/deploy.out"; exit 1; }
  echo "docs/deploy.md: $(grep -cv '^\s*\(#\|$\)' "$tmp/deploy.sh") command lines run in a scratch root"
}

# Readiness under a real systemd, when this machine runs one: the fresh build as a transient
# Type=notify service. systemd-run returns when the start job is done, which for Type=notify is
# vidgen's READY=1, so /api/health must answer at once, without a retry; then a stop must end clean.
if [ "$(id -u)" = 0 ] && [ -d /run/systemd/system ]; then
  sdunit=vidgen-check-$$ sdport=$(free_port)
  mkdir -m 0700 "$tmp/sd-data"
  trap 'systemctl stop "$sdunit" 2>/dev/null; rm -rf "$tmp"' EXIT
  systemd-run --quiet --collect --unit "$sdunit" -p Type=notify -p NotifyAccess=main -p TimeoutStartSec=60 \
    "$tmp/vidgen" serve -addr "127.0.0.1:$sdport" -metrics-addr off -data "$tmp/sd-data"
  curl -sf "http://127.0.0.1:$sdport/api/health" >/dev/null ||
    { echo "systemd: $sdunit (Type=notify) started, but /api/health did not answer"; journalctl -u "$sdunit" -o cat -n 20; exit 1; }
  systemctl stop "$sdunit"
  echo "deploy/vidgen.service: Type=notify: READY=1 came once /api/health answered, under systemd"
else
  echo "deploy/vidgen.service: Type=notify not run under systemd (needs root and systemd as init; TestE2ESdNotifyReady checks the protocol)"
fi

if [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null 2>&1 && command -v jq >/dev/null 2>&1 && command -v sqlite3 >/dev/null 2>&1; then
  deploy_commands
else
  echo "docs/deploy.md: commands not run (needs root, setpriv, jq and sqlite3)"
fi
