#!/usr/bin/env bash
# benches/profile.sh: where a TFTP server spends per block, repeatably on a
# noisy machine: system calls per DATA block (strace -c -f) and, for
# pybootd, instructions per block with the top functions (valgrind
# --tool=callgrind). In the same lab as run.sh.
#
#   sudo benches/profile.sh [--servers "pybootd atftpd tftpd-hpa dnsmasq"] [--mib N] [--no-callgrind]
#
# Prints a Markdown summary; raw outputs stay in target/bench/profile-<time>/.
{
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HERE")
# shellcheck source=benches/lib.sh
source "$HERE/lib.sh"
# shellcheck source=benches/servers.sh
source "$HERE/servers.sh"

SERVERS="pybootd atftpd tftpd-hpa dnsmasq"
MIB=8
CALLGRIND=1
while [ $# -gt 0 ]; do
  case "$1" in
    --servers) SERVERS=$2; shift ;;
    --mib) MIB=$2; shift ;;
    --no-callgrind) CALLGRIND=0 ;;
    *) die "unknown option $1" ;;
  esac
  shift
done
[ "$(id -u)" = 0 ] || die "run as root"
OUT=$ROOT/target/bench/profile-$(date -u +%Y%m%dT%H%M%S)
mkdir -p "$OUT/logs"
: >"$OUT/results.tsv"
DATA=$(mktemp -d /tmp/pybootd-bench.XXXXXX)
chmod 755 "$DATA"
STATE="$DATA.state"
mkdir -p "$STATE"
SEQ=0
trap 'set +e; lab_down; rm -rf "$DATA" "$STATE"' EXIT
TFTPLOAD="$ROOT/target/release/tftpload"
PYBOOTD="$ROOT/target/release/pybootd"
[[ " $SERVERS " == *" atftpd "* ]] && ensure_atftpd
SIZE=$((MIB << 20))
head -c "$SIZE" /dev/urandom >"$DATA/big.bin"
chmod 644 "$DATA/big.bin"
SHA=$(sha256sum "$DATA/big.bin" | cut -d' ' -f1)
lab_up

# stop_traced: TERM the traced server (the tracer's child, or the valgrind
# process itself) so that the tool writes its report, then clean up.
stop_traced() {
  pkill -TERM -P "$SRV_PID" 2>/dev/null || true
  kill -TERM "$SRV_PID" 2>/dev/null || true
  local i
  for i in $(seq 200); do kill -0 "$SRV_PID" 2>/dev/null || break; sleep 0.05; done
  srv_kill
}

echo "## Per-block cost, one $MIB MiB download"
echo
echo "| server | case | blocks | syscalls per block (strace -c -f) | top syscalls (calls per block) |"
echo "| --- | --- | --- | --- | --- |"
for srv in $SERVERS; do
  for c in "1468" "1468 16"; do
    set -- $c
    bs=$1 ws=${2:-}
    blocks=$((SIZE / bs + 1))
    server_cmd "$srv" tftp
    st="$OUT/logs/strace-$srv-$bs-${ws:-1}.txt"
    srv_start "$srv" 69 strace -f -qq -c -o "$st" "${CMD[@]}"
    C "$TFTPLOAD" get --server "$SIP:69" --file big.bin --blksize "$bs" ${ws:+--windowsize "$ws"} \
      --sha256 "$SHA" --timeout-ms 3000 --deadline-s 300 >"$OUT/logs/get-$srv-$bs-${ws:-1}.json"
    stop_traced
    total=$(awk '$NF=="total"{print $4}' "$st")
    top=$(awk 'NR>2 && $1 ~ /^[0-9.]+$/ && $NF!="total" {print $4, $NF}' "$st" | sort -rn | head -6 |
      awk -v b="$blocks" '{printf "%s%s %.2f", (NR>1?", ":""), $2, $1/b}' || true)
    echo "| $srv | blksize $bs${ws:+, windowsize $ws} | $blocks | $(awk -v t="$total" -v b="$blocks" 'BEGIN{printf "%.2f", t/b}') | $top |"
  done
done

if [ "$CALLGRIND" = 1 ] && [[ " $SERVERS " == *" pybootd "* ]]; then
  echo
  echo "## pybootd under callgrind: instructions per block"
  echo
  for c in "1468" "1468 16"; do
    set -- $c
    bs=$1 ws=${2:-}
    blocks=$((SIZE / bs + 1))
    server_cmd pybootd tftp
    cg="$OUT/callgrind-$bs-${ws:-1}.out"
    srv_start pybootd 69 valgrind --tool=callgrind "--callgrind-out-file=$cg" "${CMD[@]}"
    C "$TFTPLOAD" get --server "$SIP:69" --file big.bin --blksize "$bs" ${ws:+--windowsize "$ws"} \
      --sha256 "$SHA" --timeout-ms 5000 --deadline-s 600 >"$OUT/logs/cg-get-$bs-${ws:-1}.json"
    stop_traced
    # Idle start-up and shutdown are in the total too (a small share at 8 MiB).
    ir=$(callgrind_annotate "$cg" 2>/dev/null | awk '/PROGRAM TOTALS/{gsub(",","",$1); print $1; exit}' || true)
    echo "### blksize $bs${ws:+, windowsize $ws}: $(awk -v i="$ir" -v b="$blocks" 'BEGIN{printf "%.0f", i/b}') instructions per block ($ir in all, $blocks blocks)"
    echo
    echo '```'
    { callgrind_annotate "$cg" 2>/dev/null | awk '/^-+$/{n++} n>=5' | grep -v '^-' | sed '/^$/d' |
      sed -E 's|/root/.cargo/registry/src/[^/]+/||; s|/rustc/[0-9a-f]+/||; s| \[[^]]*\]$||' | head -25; } || true
    echo '```'
    echo
  done
fi
echo
echo "(raw: $OUT)"
exit 0
}
