#!/usr/bin/env bash
# tests/e2e/run.sh VARIANT: boots real PXE firmware in QEMU from a netboot
# server inside a private network namespace, and passes only when every
# guest that should boot prints "NETBOOT-OK ip=<pool address> fw=<its fw>"
# on its serial console (and a denied guest gets neither a boot nor a reply).
#
# Variants: bios, uefi, http_root, four, deny, tftp_only.
# Environment:
#   E2E_SERVER   pybootd (default) or dnsmasq (to validate the harness)
#   PYBOOTD_BIN  the pybootd binary (default: target/release/pybootd)
#   E2E_OUT      where logs go (default: a new /tmp/pybootd-e2e-VARIANT.XXXX)
#   E2E_TIMEOUT  hard limit in seconds for the guests (default 240)
#   E2E_KEEP=1   keep the logs and pcap also when the variant passes
#   E2E_ACCEL    kvm or tcg (default: probed, cached per boot)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
# shellcheck source=tests/e2e/lab.sh
. "$here/lab.sh"

variant=${1:?usage: run.sh bios|uefi|http_root|four|deny|tftp_only}
server=${E2E_SERVER:-pybootd}
timeout_s=${E2E_TIMEOUT:-240}
export PYBOOTD_BIN=${PYBOOTD_BIN:-$repo/target/release/pybootd}
[ "$(id -u)" = 0 ] || { echo "run.sh needs root (network namespaces, tap devices)" >&2; exit 2; }
for p in qemu-system-x86_64 tcpdump ip ss dpkg-deb apt-get grub-mkimage busybox; do
  command -v "$p" >/dev/null || { echo "missing program: $p (see .ci/apt.d/tests.txt)" >&2; exit 2; }
done
if [ "$server" = pybootd ] && [ ! -x "$PYBOOTD_BIN" ]; then
  echo "no pybootd binary at $PYBOOTD_BIN (cargo build --release)" >&2
  exit 2
fi

t0=$(date +%s.%N)
root=$("$here/payloads.sh")
LAB_ACCEL=$(lab_accel "$root")
out=${E2E_OUT:-$(mktemp -d "/tmp/pybootd-e2e-$variant.XXXX")}

# Guests: "name fw mac expect", expect = boot | deny.
guests=()
kind=$server
access=""
tftp_root=$root
case $variant in
  bios) guests=("g1 bios 52:54:00:e2:e0:01 boot") ;;
  uefi) guests=("g2 uefi 52:54:00:e2:e0:02 boot") ;;
  http_root)
    guests=("g3 bios 52:54:00:e2:e0:03 boot" "g4 uefi 52:54:00:e2:e0:04 boot")
    [ "$server" = pybootd ] && tftp_root="http://$LAB_SERVER:8080/"
    ;;
  four)
    guests=("g11 bios 52:54:00:e2:e0:11 boot" "g12 bios 52:54:00:e2:e0:12 boot"
      "g13 uefi 52:54:00:e2:e0:13 boot" "g14 uefi 52:54:00:e2:e0:14 boot")
    ;;
  tftp_only)
    # An existing DHCP server (dnsmasq, DHCP only) beside pybootd --tftp.
    guests=("g5 bios 52:54:00:e2:e0:05 boot" "g6 uefi 52:54:00:e2:e0:06 boot")
    [ "$server" = pybootd ] && kind=split
    ;;
  deny)
    guests=("g21 bios 52:54:00:e2:e0:21 boot" "g66 bios 52:54:00:e2:e0:66 deny")
    access=$'52-54-00-E2-E0-21 = yes\n52-54-00-E2-E0-66 = no'
    ;;
  *) echo "unknown variant $variant" >&2; exit 2 ;;
esac

lab_init "$out"
lab_log "variant $variant, server $server, accel $LAB_ACCEL, logs in $out"
lab_pcap
lab_ra "$timeout_s"
if [[ $tftp_root == http://* ]]; then
  lab_bg http /usr/bin/python3 -m http.server 8080 --bind "$LAB_SERVER" --directory "$root"
  for _ in $(seq 50); do lab_ns ss -Hltn | grep -q ':8080 ' && break; sleep 0.1; done
fi
lab_server "$kind" "$tftp_root" "$access"

for g in "${guests[@]}"; do
  read -r name fw mac _ <<<"$g"
  lab_guest "$name" "$fw" "$mac"
done

# Wait (bounded) until every guest that should boot printed its marker or
# stopped; a denied guest is watched for at least deny_s seconds.
deny_s=30
start=$(date +%s)
while :; do
  now=$(date +%s)
  pending=0
  for g in "${guests[@]}"; do
    read -r name fw mac expect <<<"$g"
    pidvar="LAB_PID_qemu_$name"
    alive=0
    kill -0 "${!pidvar}" 2>/dev/null && alive=1
    if [ "$expect" = boot ]; then
      [ -z "$(lab_marker "$name")" ] && [ $alive = 1 ] && pending=$((pending + 1))
    else
      [ $((now - start)) -lt $deny_s ] && [ $alive = 1 ] && pending=$((pending + 1))
    fi
  done
  [ $pending = 0 ] && break
  if [ $((now - start)) -ge "$timeout_s" ]; then
    lab_log "hard timeout ($timeout_s s)"
    break
  fi
  sleep 1
done
# Let the guests power off by themselves (the pcap gets their last packets).
for _ in $(seq 10); do
  alive=0
  for g in "${guests[@]}"; do
    read -r name _ _ expect <<<"$g"
    pidvar="LAB_PID_qemu_$name"
    # A denied guest never powers off by itself.
    [ "$expect" = boot ] && kill -0 "${!pidvar}" 2>/dev/null && alive=1
  done
  [ $alive = 0 ] && break
  sleep 1
done
sleep 0.5
kill "$LAB_PID_tcpdump" 2>/dev/null || true
wait "$LAB_PID_tcpdump" 2>/dev/null || true

# Verdict.
fail=()
ips=()
for g in "${guests[@]}"; do
  read -r name fw mac expect <<<"$g"
  m=$(lab_marker "$name")
  if [ "$expect" = boot ]; then
    if [ -z "$m" ]; then
      fail+=("$name ($fw $mac): no NETBOOT-OK marker")
      continue
    fi
    read -r ip mfw <<<"$m"
    lab_in_pool "$ip" || fail+=("$name: address $ip is not in the pool")
    [ "$mfw" = "$fw" ] || fail+=("$name: booted as fw=$mfw, expected $fw")
    for other in "${ips[@]}"; do
      [ "$other" = "$ip" ] && fail+=("$name: address $ip was given to another guest too")
    done
    ips+=("$ip")
    lab_log "$name ($fw $mac): NETBOOT-OK ip=$ip"
  else
    [ -n "$m" ] && fail+=("$name ($mac): denied but booted ($m)")
    req=$(lab_pcap_requests "$mac")
    rep=$(lab_pcap_replies "$mac")
    [ "$req" -gt 0 ] || fail+=("$name ($mac): sent no DHCP request at all (guest broken?)")
    [ "$rep" = 0 ] || fail+=("$name ($mac): got $rep DHCP/BOOTP replies")
    lc=$(echo "$mac" | tr 'A-F' 'a-f')
    dash=${lc//:/-}
    if grep -i -E "$lc|$dash" "$out/server.log" 2>/dev/null | grep -q -i 'offer'; then
      fail+=("$name ($mac): the daemon log shows an OFFER for it")
    fi
    lab_log "$name ($mac): denied: $req requests, $rep replies, no marker"
  fi
done

# The HTTP root must really have been the source of the boot files.
if [[ $tftp_root == http://* ]]; then
  for f in /pxelinux.0 /grubx64net.efi /vmlinuz /initrd.img; do
    grep -q "\"GET $f HTTP/[0-9.]*\" 200" "$out/http.log" ||
      fail+=("http_root: the HTTP server never served $f (see $out/http.log)")
  done
fi

secs=$(echo "$(date +%s.%N) - $t0" | bc 2>/dev/null || echo "?")
if [ ${#fail[@]} = 0 ]; then
  echo "E2E-RESULT variant=$variant server=$server accel=$LAB_ACCEL seconds=${secs%.*} PASS"
  if [ "${E2E_KEEP:-0}" = 1 ]; then echo "logs kept in $out"; else rm -rf "$out"; fi
  exit 0
fi
echo "E2E-RESULT variant=$variant server=$server accel=$LAB_ACCEL seconds=${secs%.*} FAIL"
for f in "${fail[@]}"; do echo "  FAIL: $f"; done
echo "---- kept: $out (serial *.serial, daemon server.log, lab.pcap)"
for g in "${guests[@]}"; do
  read -r name _ <<<"$g"
  echo "---- $out/$name.serial (tail)"
  lab_strip "$out/$name.serial" | tail -n 25
done
echo "---- $out/server.log (tail)"
lab_strip "$out/server.log" | tail -n 40 || true
echo "---- $out/lab.pcap (DHCP and TFTP requests, last 40)"
tcpdump -r "$out/lab.pcap" -n 'udp port 67 or udp port 69' 2>/dev/null | tail -n 40 || true
exit 1
