# benches/lib.sh: the lab (two network namespaces joined by a veth, MTU
# 1500, server on core 0, load on core 1), server start/stop with CPU and
# peak-RSS accounting, and the results file. Sourced by run.sh.
# shellcheck shell=bash

NS_S="pbbench-s$$"
NS_C="pbbench-c$$"
# A /12 so the DHCP pools hold every client perfdhcp invents.
SIP=10.64.0.1
CIP=10.64.0.2
PREFIX=12
LAB_UP=0
SRV_PID=""
SRV_NAME=""
SRV_LOG=""
SRV_SAMPLER=""
CLK_TCK=$(getconf CLK_TCK)

die() {
  echo "FATAL: $*" >&2
  exit 1
}

log() { echo "[$(date -u +%T)] $*" >&2; }

lab_up() {
  ip netns add "$NS_S"
  ip netns add "$NS_C"
  LAB_UP=1
  ip link add "pbb$$a" type veth peer name "pbb$$b"
  ip link set "pbb$$a" netns "$NS_S"
  ip link set "pbb$$b" netns "$NS_C"
  ip -n "$NS_S" link set "pbb$$a" name srv0
  ip -n "$NS_C" link set "pbb$$b" name cli0
  for ns in "$NS_S" "$NS_C"; do ip -n "$ns" link set lo up; done
  ip -n "$NS_S" link set srv0 mtu 1500 up
  ip -n "$NS_C" link set cli0 mtu 1500 up
  ip -n "$NS_S" addr add "$SIP/$PREFIX" dev srv0
  ip -n "$NS_C" addr add "$CIP/$PREFIX" dev cli0
  # Wait for both ends of the veth to be up (operstate UP).
  for _ in $(seq 50); do
    if ip -n "$NS_S" -br link show srv0 | grep -qw UP && ip -n "$NS_C" -br link show cli0 | grep -qw UP; then
      return 0
    fi
    sleep 0.1
  done
  die "the lab's veth does not come up"
}

lab_down() {
  srv_kill
  if [ "$LAB_UP" = 1 ]; then
    for ns in "$NS_S" "$NS_C"; do
      for p in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$p" 2>/dev/null || true; done
      ip netns del "$ns" 2>/dev/null || true
    done
    LAB_UP=0
  fi
}

# S cmd...: runs in the server namespace on core 0; C: client side, core 1.
# In the background use "${SX[@]}" cmd &: a backgrounded function runs in a
# forked shell, so $! would be that shell's pid, not the server's (ip netns
# exec and taskset exec the command, keeping the pid).
SX=(ip netns exec "$NS_S" taskset -c 0)
S() { "${SX[@]}" "$@"; }
C() { ip netns exec "$NS_C" taskset -c 1 "$@"; }

# Waits until something in the server namespace listens on UDP port $1.
wait_udp() {
  local port=$1 i
  for i in $(seq 500); do
    if ! kill -0 "$SRV_PID" 2>/dev/null; then
      echo "---- $SRV_LOG" >&2
      tail -20 "$SRV_LOG" >&2
      die "$SRV_NAME exited at start"
    fi
    if [ -n "$(ip netns exec "$NS_S" ss -Hlun "sport = :$port" 2>/dev/null)" ]; then
      return 0
    fi
    sleep 0.02
  done
  die "$SRV_NAME does not listen on UDP $port after 10 s (log: $SRV_LOG)"
}

# srv_start NAME PORT cmd...: starts a server (no fork: its pid stays
# $SRV_PID through ip-netns-exec and taskset, which exec) and waits for it.
srv_start() {
  SRV_NAME=$1
  local port=$2
  shift 2
  SEQ=$((SEQ + 1))
  SRV_LOG="$OUT/logs/$SEQ-$SRV_NAME.log"
  "${SX[@]}" "$@" >"$SRV_LOG" 2>&1 &
  SRV_PID=$!
  wait_udp "$port"
  # Forking servers (tftpd-hpa, which does not wait for its children, so
  # their CPU never reaches its cutime): sample the process tree every
  # 0.5 s, keeping the peak summed PSS and every child's last CPU ticks.
  rm -f "$OUT/tree_pss" "$OUT/tree_ticks"
  (
    set +e +o pipefail
    peak=0
    declare -A ticks=()
    while kill -0 "$SRV_PID" 2>/dev/null; do
      kids=$(pgrep -P "$SRV_PID" 2>/dev/null | tr '\n' ' ')
      files=()
      for p in $SRV_PID $kids; do files+=("/proc/$p/smaps_rollup"); done
      sum=$(awk '/^Pss:/{s += $2} END {print s + 0}' "${files[@]}" 2>/dev/null || echo 0)
      if [ "${sum:-0}" -gt "$peak" ]; then peak=$sum; echo "$peak" >"$OUT/tree_pss"; fi
      if [ -n "$kids" ]; then
        files=()
        for p in $kids; do files+=("/proc/$p/stat"); done
        while read -r f v; do ticks[$f]=$v; done < <(awk '{print FILENAME, $14 + $15}' "${files[@]}" 2>/dev/null || true)
        t=0
        for v in "${ticks[@]}"; do t=$((t + v)); done
        echo "$t" >"$OUT/tree_ticks"
      fi
      sleep 0.5
    done
  ) &
  SRV_SAMPLER=$!
}

# srv_stop: stops the server; sets SRV_CPU (user+sys seconds, reaped
# children included) and SRV_RSS_KIB (VmHWM, or the process tree's peak PSS
# when that is larger: forking servers).
srv_stop() {
  SRV_CPU=""
  SRV_RSS_KIB=""
  [ -n "$SRV_PID" ] || return 0
  if [ -r "/proc/$SRV_PID/stat" ]; then
    # The server, its reaped children, and its live children (a forking
    # server's transfers still running at the deadline).
    local p stats=("/proc/$SRV_PID/stat")
    for p in $(pgrep -P "$SRV_PID" 2>/dev/null); do stats+=("/proc/$p/stat"); done
    SRV_CPU=$(cat "${stats[@]}" 2>/dev/null | sed 's/.*) //' | awk -v t="$CLK_TCK" '{s += $12+$13+$14+$15} END {printf "%.2f", s/t}')
    SRV_RSS_KIB=$(awk '/^VmHWM:/{print $2}' "/proc/$SRV_PID/status")
  fi
  # Children's CPU as sampled, when more than the kernel accounted.
  if [ -f "$OUT/tree_ticks" ] && [ -n "$SRV_CPU" ]; then
    SRV_CPU=$(awk -v own="$SRV_CPU" -v k="$(cat "$OUT/tree_ticks")" -v t="$CLK_TCK" -v m="$(sed 's/.*) //' "/proc/$SRV_PID/stat" 2>/dev/null | awk '{print $12+$13}')" \
      'BEGIN { s = (m + k) / t; printf "%.2f", (s > own) ? s : own }')
  fi
  local tree=0
  [ -f "$OUT/tree_pss" ] && tree=$(cat "$OUT/tree_pss")
  tree=${tree:-0}
  if [ -n "$SRV_RSS_KIB" ] && [ "$tree" -gt "$SRV_RSS_KIB" ]; then SRV_RSS_KIB=$tree; fi
  srv_kill
}

srv_kill() {
  [ -n "$SRV_PID" ] || return 0
  # Children of forking servers (tftpd-hpa transfers) go too; other
  # processes of the namespace (the HTTP server of the http section) stay.
  local kids
  kids=$(pgrep -P "$SRV_PID" 2>/dev/null || true)
  kill -TERM "$SRV_PID" 2>/dev/null || true
  local i
  for i in $(seq 50); do
    kill -0 "$SRV_PID" 2>/dev/null || break
    sleep 0.05
  done
  kill -KILL "$SRV_PID" 2>/dev/null || true
  wait "$SRV_PID" 2>/dev/null || true
  for p in $kids; do kill -9 "$p" 2>/dev/null || true; done
  if [ -n "$SRV_SAMPLER" ]; then
    kill "$SRV_SAMPLER" 2>/dev/null || true
    wait "$SRV_SAMPLER" 2>/dev/null || true
  fi
  SRV_PID=""
  SRV_SAMPLER=""
}

# rec SECTION SERVER CASE RUN METRIC VALUE: one measurement.
rec() {
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$@" >>"$OUT/results.tsv"
}

# jget JSON KEY: one field of tftpload's JSON line.
jget() { jq -r ".$2 // empty" <<<"$1"; }
