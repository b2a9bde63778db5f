#!/usr/bin/env bash
# benches/run.sh: pybootd against dnsmasq, tftpd-hpa, atftpd and Kea in one
# run, in a two-namespace lab; writes BENCHMARKS.md (see benches/README.md).
#
#   sudo benches/run.sh                 full run (25 min on the shared 2-core box), rewrites BENCHMARKS.md
#                                       (with --sections, --servers, --runs or smaller sizes: only --out DIR)
#   sudo benches/run.sh --smoke         every script with tiny sizes, 1 run; fails on any error
#   options: --sections "ceiling single storm dhcp http startup"
#            --servers "pybootd atftpd tftpd-hpa dnsmasq kea"   --runs N
#            --out DIR (results, logs; default target/bench/<time>)   --no-build
#            --report-only DIR   rewrite the report from DIR/results.tsv
#            --big-mib N (64) --storm-mib N (24) --storms "50 200" --storm-deadline S (120):
#            smaller work for a loaded machine (the report states what was used)
# The whole script is one compound command: bash parses it before running
# it, so editing this file never disturbs a run in progress.
{
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HERE")
# shellcheck source=benches/lib.sh
source "$HERE/lib.sh"
# shellcheck source=benches/servers.sh
source "$HERE/servers.sh"
# shellcheck source=benches/report.sh
source "$HERE/report.sh"

SMOKE=0
# A run with a subset or smaller work reports under its --out directory
# only: BENCHMARKS.md at the top is the full run's.
PARTIAL=0
SECTIONS="ceiling single storm dhcp http startup"
SERVERS="pybootd atftpd tftpd-hpa dnsmasq kea"
RUNS=""
OUT=""
BUILD=1
REPORT_ONLY=""
while [ $# -gt 0 ]; do
  case "$1" in
    --smoke) SMOKE=1 ;;
    --sections) SECTIONS=$2; PARTIAL=1; shift ;;
    --servers) SERVERS=$2; PARTIAL=1; shift ;;
    --runs) RUNS=$2; PARTIAL=1; shift ;;
    --out) OUT=$2; shift ;;
    --no-build) BUILD=0 ;;
    --report-only) REPORT_ONLY=$2; shift ;;
    --big-mib) O_BIG=$2; PARTIAL=1; shift ;;
    --storm-mib) O_STORM=$2; PARTIAL=1; shift ;;
    --storms) O_STORMS=$2; PARTIAL=1; shift ;;
    --storm-deadline) O_DEADLINE=$2; PARTIAL=1; shift ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    *) die "unknown option $1 (see --help)" ;;
  esac
  shift
done
[ "$(id -u)" = 0 ] || die "run as root (network namespaces): sudo $0 $*"
for p in ip taskset jq iperf3 perfdhcp kea-dhcp4 dnsmasq in.tftpd busybox ss pgrep strace; do
  command -v "$p" >/dev/null || [ -x "/usr/sbin/$p" ] || die "$p is not installed (.ci/apt.d/bench.txt lists the packages)"
done
export PATH="$PATH:/usr/sbin:/sbin"

if [ "$SMOKE" = 1 ]; then
  RUNS=${RUNS:-1}
  BIG=$((1 << 20)) STORM_SIZE=$((256 << 10)) SMALL=$((64 << 10))
  STORMS="5 20" STORM_DEADLINE=30 SINGLE_DEADLINE=20
  PING_S=0.3 IPERF_S=1 DHCP_PERIOD=1 DHCP_PROBES=1 DHCP_SMOKE_RATE=100 DHCP_SYNC_N=100
else
  RUNS=${RUNS:-3}
  BIG=$((64 << 20)) STORM_SIZE=$((24 << 20)) SMALL=$((8 << 20))
  STORMS="50 200" STORM_DEADLINE=120 SINGLE_DEADLINE=120
  PING_S=2 IPERF_S=3 DHCP_PERIOD=3 DHCP_PROBES=6 DHCP_SMOKE_RATE=0 DHCP_SYNC_N=1000
fi
[ -n "${O_BIG:-}" ] && BIG=$((O_BIG << 20))
[ -n "${O_STORM:-}" ] && STORM_SIZE=$((O_STORM << 20))
[ -n "${O_STORMS:-}" ] && STORMS=$O_STORMS
[ -n "${O_DEADLINE:-}" ] && STORM_DEADLINE=$O_DEADLINE
has() { [[ " $SERVERS " == *" $1 "* ]]; }
SINGLE_CASES="512 1468 max 1468w16 1468w64"
section() { [[ " $SECTIONS " == *" $1 "* ]]; }
TFTP_SERVERS=""
for s in pybootd pybootd-base atftpd tftpd-hpa dnsmasq; do has "$s" && TFTP_SERVERS="$TFTP_SERVERS $s"; done
DHCP_SERVERS=""
for s in pybootd pybootd-base kea dnsmasq; do has "$s" && DHCP_SERVERS="$DHCP_SERVERS $s"; done
servers_of_run() {
  TFTP_SERVERS=""
  for s in pybootd pybootd-base atftpd tftpd-hpa dnsmasq; do has "$s" && TFTP_SERVERS="$TFTP_SERVERS $s"; done
  DHCP_SERVERS=""
  for s in pybootd pybootd-base kea dnsmasq; do has "$s" && DHCP_SERVERS="$DHCP_SERVERS $s"; done
}
if [ -n "$REPORT_ONLY" ]; then
  OUT=$REPORT_ONLY
  # shellcheck source=/dev/null
  source "$OUT/meta.sh"
  servers_of_run
  if [ "$SMOKE" = 1 ]; then report "$OUT/BENCHMARKS.md"; else report "$ROOT/BENCHMARKS.md"; fi
  echo "report rewritten from $OUT/results.tsv"
  exit 0
fi

OUT=${OUT:-$ROOT/target/bench/$(date -u +%Y%m%dT%H%M%S)$([ "$SMOKE" = 1 ] && echo -smoke || true)}
mkdir -p "$OUT/logs"
: >"$OUT/results.tsv"
: >"$OUT/errors"
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
PYBOOTD_REV="$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null)$(git -C "$ROOT" diff --quiet HEAD -- src Cargo.toml 2>/dev/null || echo '+dirty')"
declare -p SMOKE RUNS BIG STORM_SIZE SMALL STORMS STORM_DEADLINE SERVERS SECTIONS LOAD_START PYBOOTD_REV >"$OUT/meta.sh"
# Served files live where every server's user can read them.
DATA=$(mktemp -d /tmp/pybootd-bench.XXXXXX)
chmod 755 "$DATA"
STATE="$DATA.state"
mkdir -p "$STATE"
SEQ=0
T_START=$(date +%s)

cleanup() {
  local rc=$?
  set +e
  lab_down
  [ -n "${HTTPD_PID:-}" ] && kill "$HTTPD_PID" 2>/dev/null
  rm -rf "$DATA" "$STATE"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# err MESSAGE: a failure. The smoke run fails on any; a full run reports them.
err() {
  echo "ERROR: $*" | tee -a "$OUT/errors" >&2
}

if [ "$BUILD" = 1 ]; then
  log "building (cargo build --release -p pybootd -p tftpload)"
  (cd "$ROOT" && cargo build --release -q -p pybootd -p tftpload)
fi
TFTPLOAD="$ROOT/target/release/tftpload"
PYBOOTD="$ROOT/target/release/pybootd"
[ -x "$TFTPLOAD" ] || die "$TFTPLOAD missing (cargo build --release -p tftpload)"
if [ -n "$TFTP_SERVERS$DHCP_SERVERS" ] && has pybootd; then
  [ -x "$PYBOOTD" ] || die "$PYBOOTD missing (cargo build --release)"
fi
# pybootd-base: another pybootd binary (PYBOOTD_BASE=path, e.g. a build
# of main before a change) measured in the same run, for before/after.
if has pybootd-base; then
  [ -x "${PYBOOTD_BASE:-}" ] || die "--servers pybootd-base needs PYBOOTD_BASE=/path/to/pybootd"
fi
has atftpd && ensure_atftpd

# Files: random bytes, hashed once.
mkfile() { head -c "$2" /dev/urandom >"$DATA/$1"; chmod 644 "$DATA/$1"; sha256sum "$DATA/$1" | cut -d' ' -f1; }
SHA_BIG=$(mkfile big.bin "$BIG")
SHA_STORM=$(mkfile storm.bin "$STORM_SIZE")
SHA_SMALL=$(mkfile small.bin "$SMALL")
mkfile probe 64 >/dev/null

lab_up
log "lab: $NS_S ($SIP, core 0) <-> $NS_C ($CIP, core 1); out $OUT"

# get SERVER-LABEL ARGS...: one tftpload get in the client namespace; prints its JSON.
tget() {
  local out
  if ! out=$(C "$TFTPLOAD" get --server "$SIP:69" "$@"); then
    err "tftpload get $* failed to run"
    echo '{}'
    return 0
  fi
  echo "$out"
}

# ---------------------------------------------------------------- ceilings
run_ceiling() {
  local run=$1 bs out
  "${SX[@]}" "$TFTPLOAD" echo --bind "$SIP:7000" >"$OUT/logs/echo.log" 2>&1 &
  local echo_pid=$!
  sleep 0.2
  {
    for bs in 512 1468 65464; do
      out=$(C "$TFTPLOAD" pingpong --server "$SIP:7000" --blksize "$bs" --seconds "$PING_S") || err "pingpong $bs"
      rec ceiling pingpong "$bs" "$run" mbps "$(jget "$out" mbps)"
      rec ceiling pingpong "$bs" "$run" rtt_us "$(jget "$out" rtt_us)"
    done
    for len in 1472 65000; do
      "${SX[@]}" iperf3 -s -1 -B "$SIP" -p 5201 >"$OUT/logs/iperf3-s.log" 2>&1 &
      local ip_pid=$!
      for _ in $(seq 100); do
        [ -n "$(ip netns exec "$NS_S" ss -Hltn 'sport = :5201')" ] && break
        sleep 0.05
      done
      out=$(C iperf3 -c "$SIP" -p 5201 -u -b 0 -l "$len" -t "$IPERF_S" -R -J) || err "iperf3 -l $len"
      # In reverse mode the client receives: end.sum is the receiver's goodput.
      rec ceiling iperf3 "$len" "$run" mbps "$(jq -r '.end.sum.bits_per_second / 8e6' <<<"$out")"
      rec ceiling iperf3 "$len" "$run" lost_pct "$(jq -r '.end.sum.lost_percent' <<<"$out")"
      wait "$ip_pid" 2>/dev/null || true
    done
  }
  kill "$echo_pid" 2>/dev/null || true
  wait "$echo_pid" 2>/dev/null || true
}

# ---------------------------------------------------------------- 1. single downloads
case_args() {
  case "$1" in
    512) echo "--blksize 512" ;;
    1468) echo "--blksize 1468" ;;
    max) echo "--blksize 65464" ;;
    1468w16) echo "--blksize 1468 --windowsize 16" ;;
    1468w64) echo "--blksize 1468 --windowsize 64" ;;
  esac
}

run_single() {
  local run=$1 srv c out
  for srv in $TFTP_SERVERS; do
    {
      tftp_start "$srv"
      for c in $SINGLE_CASES; do
        # shellcheck disable=SC2046
        out=$(tget --file big.bin $(case_args "$c") --sha256 "$SHA_BIG" --size "$BIG" --deadline-s "$SINGLE_DEADLINE")
        rec single "$srv" "$c" "$run" mbps "$(jget "$out" mbps)"
        rec single "$srv" "$c" "$run" blksize "$(jget "$out" blksize)"
        rec single "$srv" "$c" "$run" windowsize "$(jget "$out" windowsize)"
        if [ "$(jget "$out" completed)" != 1 ]; then
          err "single $srv $c run $run: $(jget "$out" first_error)"
        fi
        log "single $srv $c run $run: $(jget "$out" mbps) MB/s (blksize $(jget "$out" blksize), windowsize $(jget "$out" windowsize))"
      done
      srv_stop
    }
  done
}

# ---------------------------------------------------------------- 2. storms
declare -A STORM_SKIP=()
run_storm() {
  local run=$1 srv n out done_
  for srv in $TFTP_SERVERS; do
    for n in $STORMS; do
      [ -n "${STORM_SKIP[$srv-$n]:-}" ] && continue
      {
        tftp_start "$srv"
        out=$(tget --file storm.bin --blksize 1468 --clients "$n" --sha256 "$SHA_STORM" --size "$STORM_SIZE" \
          --deadline-s "$STORM_DEADLINE" --times "$OUT/logs/storm-$srv-$n-$run.tsv")
        srv_stop
        done_=$(jget "$out" completed)
        for k in completed failed p50_s p99_s mbps mbps_all retransmits; do
          rec storm "$srv" "$n" "$run" "$k" "$(jget "$out" "$k")"
        done
        rec storm "$srv" "$n" "$run" cpu_s "$SRV_CPU"
        rec storm "$srv" "$n" "$run" rss_mib "$(awk -v k="$SRV_RSS_KIB" 'BEGIN{printf "%.1f", k/1024}')"
        log "storm $srv x$n run $run: $done_/$n done, p99 $(jget "$out" p99_s) s, $(jget "$out" mbps) MB/s, cpu $SRV_CPU s, rss $SRV_RSS_KIB KiB"
        if [ "$(jget "$out" failed)" != 0 ]; then
          # Failures are a result in a full run (the table shows them).
          [ "$SMOKE" = 1 ] && err "storm $srv x$n: $(jget "$out" failed) failed: $(jget "$out" first_error)"
          if [ "${done_:-0}" = 0 ]; then
            log "storm $srv x$n: none finished in $STORM_DEADLINE s; not repeated"
            rec storm "$srv" "$n" "$run" note "none finished; not repeated"
            STORM_SKIP[$srv-$n]=1
          fi
        fi
      }
    done
  done
}

# ---------------------------------------------------------------- 3. DHCP
# dhcp_probe SERVER RATE: a fresh server (empty lease file), perfdhcp at
# RATE DORA/s for DHCP_PERIOD seconds (RATE 0: as fast as it can); sets
# P_ACKS (ACKs/s achieved) and P_LOSS (% of DORAs without an ACK).
# UDP datagrams dropped for a full receive buffer in namespace $1.
rcvbuf_errors() {
  ip netns exec "$1" cat /proc/net/snmp | awk '/^Udp:/ { if (!h) { for (i = 1; i <= NF; i++) if ($i == "RcvbufErrors") c = i; h = 1 } else print $c }'
}

dhcp_probe() {
  local srv=$1 rate=$2 out disc acks s0 c0
  dhcp_start "$srv"
  local rflag=()
  [ "$rate" != 0 ] && rflag=(-r "$rate")
  s0=$(rcvbuf_errors "$NS_S") c0=$(rcvbuf_errors "$NS_C")
  out=$(C perfdhcp -4 -g single "${rflag[@]}" -R 1000000 -p "$DHCP_PERIOD" -W 300000 -l "$CIP" "$SIP" 2>&1) || true
  P_SDROP=$(( $(rcvbuf_errors "$NS_S") - s0 )) P_CDROP=$(( $(rcvbuf_errors "$NS_C") - c0 ))
  echo "$out" >"$OUT/logs/$SEQ-perfdhcp-$srv-$rate.log"
  srv_stop
  disc=$(awk '/Statistics for: DISCOVER-OFFER/{s=1} s&&/^sent packets:/{print $3; exit}' <<<"$out")
  acks=$(awk '/Statistics for: REQUEST-ACK/{s=1} s&&/^received packets:/{print $3; exit}' <<<"$out")
  P_LEASES=$(dhcp_lease_count "$srv")
  if [ -z "$disc" ] || [ -z "$acks" ] || [ "$disc" = 0 ]; then
    err "perfdhcp against $srv at $rate/s: no statistics (log $OUT/logs/$SEQ-perfdhcp-$srv-$rate.log)"
    P_ACKS=0 P_LOSS=100
    return
  fi
  P_ACKS=$(awk -v a="$acks" -v p="$DHCP_PERIOD" 'BEGIN{printf "%.0f", a/p}')
  P_LOSS=$(awk -v a="$acks" -v d="$disc" 'BEGIN{printf "%.2f", 100*(d-a)/d}')
  log "dhcp $srv at ${rate}/s: $acks ACKs of $disc DISCOVERs ($P_ACKS/s, loss $P_LOSS %), $P_LEASES leases on disk; receive-buffer drops: server $P_SDROP, perfdhcp $P_CDROP"
}

# dhcp_syncs SERVER: fsync-family system calls per 100 ACKs, counted with
# strace over a fixed, paced exchange (how durable each server's leases are).
dhcp_syncs() {
  local srv=$1 out acks calls n=$DHCP_SYNC_N
  server_cmd "$srv" dhcp
  srv_start "$srv" 67 strace -f -qq -c -o "$OUT/logs/strace-$srv.txt" \
    -e trace=fsync,fdatasync,sync_file_range,msync,syncfs,sync "${CMD[@]}"
  out=$(C perfdhcp -4 -g single -r 500 -n "$n" -R 1000000 -W 300000 -l "$CIP" "$SIP" 2>&1) || true
  echo "$out" >"$OUT/logs/$SEQ-perfdhcp-syncs-$srv.log"
  # TERM the server itself (strace's child) so that strace writes its summary.
  pkill -TERM -P "$SRV_PID" 2>/dev/null || true
  local i
  for i in $(seq 100); do kill -0 "$SRV_PID" 2>/dev/null || break; sleep 0.05; done
  srv_kill
  acks=$(awk '/Statistics for: REQUEST-ACK/{s=1} s&&/^received packets:/{print $3; exit}' <<<"$out")
  calls=$(awk '$NF ~ /^(fsync|fdatasync|sync_file_range|msync|syncfs|sync)$/ {c += $4} END {print c + 0}' \
    "$OUT/logs/strace-$srv.txt" 2>/dev/null || echo 0)
  if [ -z "$acks" ] || [ "$acks" = 0 ]; then
    err "dhcp $srv: no ACK in the durability probe"
    return
  fi
  rec dhcp "$srv" durability 1 syncs_per_100 "$(awk -v c="$calls" -v a="$acks" 'BEGIN{printf "%.1f", 100*c/a}')"
  log "dhcp $srv: $calls fsync-family calls for $acks ACKs"
}

run_dhcp() {
  local run=$1 srv best good r i ok sat
  for srv in $DHCP_SERVERS; do
    [ "$run" = 1 ] && dhcp_syncs "$srv"
    {
      if [ "$SMOKE" = 1 ]; then
        dhcp_probe "$srv" "$DHCP_SMOKE_RATE"
        rec dhcp "$srv" sustained "$run" dora_s "$P_ACKS"
        rec dhcp "$srv" sustained "$run" loss_pct "$P_LOSS"
        rec dhcp "$srv" sustained "$run" leases "$P_LEASES"
        # Speed is not checked (a loaded machine drops packets); working is.
        [ "${P_ACKS:-0}" -gt 0 ] || err "dhcp $srv: no ACK at $DHCP_SMOKE_RATE/s"
        [ "${P_LEASES:-0}" -gt 0 ] || err "dhcp $srv: no lease on disk"
        continue
      fi
      # Saturate once, then search the highest rate with < 1 % lost.
      dhcp_probe "$srv" 0
      sat=$P_ACKS
      rec dhcp "$srv" saturated "$run" dora_s "$sat"
      rec dhcp "$srv" saturated "$run" srv_rcvbuf_drops "$P_SDROP"
      # Start at 80 % of the saturated rate (at least 200/s: a flood can
      # collapse a server far below what it sustains); grow by 1.3x after a
      # good probe, halve the gap to the last good rate after a bad one.
      best=0 good=0 r=$(( sat * 8 / 10 ))
      [ "$r" -lt 200 ] && r=200
      for i in $(seq "$DHCP_PROBES"); do
        dhcp_probe "$srv" "$r"
        ok=$(awk -v l="$P_LOSS" -v a="$P_ACKS" -v r="$r" 'BEGIN{print (l < 1 && a >= 0.9*r) ? 1 : 0}')
        if [ "$ok" = 1 ]; then
          [ "$P_ACKS" -gt "$best" ] && best=$P_ACKS && rec dhcp "$srv" sustained "$run" leases "$P_LEASES"
          good=$r
          r=$(( r * 13 / 10 ))
        elif [ "$good" -gt 0 ]; then
          r=$(( (good + r) / 2 ))
        else
          r=$(( r * 6 / 10 ))
        fi
        [ "$r" -lt 20 ] && break
      done
      rec dhcp "$srv" sustained "$run" dora_s "$best"
    }
  done
}

# ---------------------------------------------------------------- 4. HTTP root
run_http() {
  has pybootd || return 0
  "${SX[@]}" busybox httpd -f -p "$SIP:8080" -h "$DATA" >"$OUT/logs/httpd.log" 2>&1 &
  HTTPD_PID=$!
  sleep 0.3
  local run=$1 c f out
  {
    for c in 1468 1468w16; do
      for f in big small; do
        tftp_start pybootd-http
        local sha=$SHA_BIG size=$BIG
        [ "$f" = small ] && sha=$SHA_SMALL size=$SMALL
        # shellcheck disable=SC2046
        out=$(tget --file "$f.bin" $(case_args "$c") --sha256 "$sha" --size "$size" --deadline-s "$SINGLE_DEADLINE")
        srv_stop
        rec http pybootd "$c-$f" "$run" mbps "$(jget "$out" mbps)"
        rec http pybootd "$c-$f" "$run" rss_mib "$(awk -v k="$SRV_RSS_KIB" 'BEGIN{printf "%.1f", k/1024}')"
        [ "$(jget "$out" completed)" = 1 ] || err "http root $c $f run $run: $(jget "$out" first_error)"
        log "http root $c $f run $run: $(jget "$out" mbps) MB/s, peak RSS $SRV_RSS_KIB KiB"
      done
    done
  }
  kill "$HTTPD_PID" 2>/dev/null || true
  wait "$HTTPD_PID" 2>/dev/null || true
  HTTPD_PID=""
}

# ---------------------------------------------------------------- 5. start-up
run_startup() {
  local run=$1 srv out
  {
    for srv in $TFTP_SERVERS; do
      server_cmd "$srv" tftp
      out=$(C "$TFTPLOAD" startup --server "$SIP:69" --file probe --log "$OUT/logs/startup-$srv.log" \
        -- ip netns exec "$NS_S" taskset -c 0 "${CMD[@]}") || { err "startup $srv tftp"; continue; }
      rec startup "$srv" tftp "$run" first_ms "$(jget "$out" first_answer_ms)"
      rec startup "$srv" tftp "$run" idle_rss_mib "$(jget "$out" idle_rss_kib | awk '{printf "%.1f", $1/1024}')"
      log "startup $srv tftp: $(jget "$out" first_answer_ms) ms, idle RSS $(jget "$out" idle_rss_kib) KiB"
    done
    for srv in $DHCP_SERVERS; do
      server_cmd "$srv" dhcp
      out=$(C "$TFTPLOAD" startup --dhcp --bind "$CIP" --server "$SIP:67" --log "$OUT/logs/startup-$srv-dhcp.log" \
        -- ip netns exec "$NS_S" taskset -c 0 "${CMD[@]}") || { err "startup $srv dhcp"; continue; }
      rec startup "$srv" dhcp "$run" first_ms "$(jget "$out" first_answer_ms)"
      rec startup "$srv" dhcp "$run" idle_rss_mib "$(jget "$out" idle_rss_kib | awk '{printf "%.1f", $1/1024}')"
      log "startup $srv dhcp: $(jget "$out" first_answer_ms) ms, idle RSS $(jget "$out" idle_rss_kib) KiB"
    done
  }
}

# Run-major order: run 1 of every section and server, then run 2, ...: a
# burst of noise from the shared machine then spreads over all servers.
for run in $(seq "$RUNS"); do
  for s in ceiling single storm dhcp http startup; do
    if section "$s"; then
      log "== $s, run $run of $RUNS"
      "run_$s" "$run"
    fi
  done
done

ELAPSED=$(( $(date +%s) - T_START ))
LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)
echo "ELAPSED=$ELAPSED LOAD_END='$LOAD_END'" >>"$OUT/meta.sh"
if [ "$SMOKE" = 1 ]; then
  report "$OUT/BENCHMARKS.md"
  # Every section asked for must have produced figures.
  for s in $SECTIONS; do
    [ "$s" = http ] && ! has pybootd && continue
    grep -q "^$s	" "$OUT/results.tsv" || err "section $s produced no figure"
  done
  if [ -s "$OUT/errors" ]; then
    echo "SMOKE FAILED ($(wc -l <"$OUT/errors") errors, ${ELAPSED}s): see above and $OUT" >&2
    exit 1
  fi
  echo "smoke OK in ${ELAPSED}s: $OUT/BENCHMARKS.md"
elif [ "$PARTIAL" = 1 ]; then
  report "$OUT/BENCHMARKS.md"
  echo "partial run (options given): report in $OUT/BENCHMARKS.md, the top-level BENCHMARKS.md is left alone (${ELAPSED}s)"
  [ -s "$OUT/errors" ] && echo "with $(wc -l <"$OUT/errors") errors: $OUT/errors" >&2
  exit 0
else
  report "$ROOT/BENCHMARKS.md"
  cp "$ROOT/BENCHMARKS.md" "$OUT/"
  echo "BENCHMARKS.md written in ${ELAPSED}s (raw figures: $OUT/results.tsv)"
  [ -s "$OUT/errors" ] && echo "with $(wc -l <"$OUT/errors") errors: $OUT/errors" >&2
  exit 0
fi
}
