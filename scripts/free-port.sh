# scripts/free-port.sh: free_port for the test and check scripts; sourced, not run.

# free_port prints a loopback port nothing listens on now, taken below the kernel's range of
# ephemeral ports: a port inside it may be the local end of any outgoing connection (a test's
# client of Postgres or the bucket), and a server then started on it fails with "address already
# in use" although nothing listened there when it was picked.
free_port() {
  local lo=32768 _hi p
  read -r lo _hi 2>/dev/null </proc/sys/net/ipv4/ip_local_port_range || true
  [ "$lo" -gt 12000 ] 2>/dev/null || lo=32768
  while :; do
    p=$((10000 + RANDOM % (lo - 10000)))
    (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }
  done
}
