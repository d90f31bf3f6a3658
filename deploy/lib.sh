# deploy/lib.sh: what the check scripts of deploy/ share; sourced, not run.

# free_port: a loopback port nothing listens on now.
free_port() {
  local p
  while :; do
    p=$((20000 + RANDOM % 20000))
    (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }
  done
}
