#!/usr/bin/env bash
# examples/netboot-lab.sh: the quickest way to see pybootd boot a machine.
# One command (as root): installs the packages it needs when missing, builds
# the payloads from Debian packages (cached in /var/cache/pybootd-e2e),
# builds pybootd, starts it on examples/pybootd.ini in a private network
# namespace (10.77.0.1/24 on a bridge, nothing routed out) and boots a QEMU
# guest from it with its console on this terminal. The guest's kernel gets
# an address with udhcpc, prints "NETBOOT-OK ip=... fw=..." and powers off.
#
#   sudo examples/netboot-lab.sh            # BIOS: SeaBIOS + iPXE -> pxelinux
#   sudo examples/netboot-lab.sh uefi       # UEFI: OVMF's PXE -> GRUB
#   sudo E2E_SERVER=dnsmasq examples/netboot-lab.sh   # the same lab with dnsmasq
#
# Ctrl-A X stops the guest. The daemon log, the config and a pcap of the
# segment stay in the directory printed at the start.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=tests/e2e/lab.sh
. "$repo/tests/e2e/lab.sh"

fw=${1:-bios}
case $fw in bios | uefi) ;; *) echo "usage: $0 [bios|uefi]" >&2; exit 2 ;; esac
[ "$(id -u)" = 0 ] || { echo "run me as root (network namespace, tap device): sudo $0 $*" >&2; exit 2; }
missing=""
for p in qemu-system-x86_64 tcpdump ip ss dpkg-deb grub-mkimage busybox bc xz python3; do
  command -v "$p" >/dev/null || missing="$missing $p"
done
[ -e /usr/share/OVMF/OVMF_CODE_4M.fd ] || missing="$missing ovmf"
[ -e /usr/lib/ipxe/qemu/efi-e1000.rom ] || missing="$missing ipxe-qemu"
if [ -n "$missing" ]; then
  # A fresh machine: install what the lab needs (the test packages).
  command -v apt-get >/dev/null || { echo "missing:$missing (and no apt-get to install them)" >&2; exit 2; }
  echo "installing the lab's packages (missing:$missing)..."
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q $(sed 's/#.*//' "$repo/.ci/apt.d/tests.txt") >/dev/null ||
    { echo "apt-get install failed; the list is .ci/apt.d/tests.txt" >&2; exit 2; }
fi

server=${E2E_SERVER:-pybootd}
if [ "$server" = pybootd ]; then
  # The daemon runs on examples/pybootd.ini (root and lease_file moved
  # into the lab's directory).
  export LAB_INI=$repo/examples/pybootd.ini
  export PYBOOTD_BIN=${PYBOOTD_BIN:-$repo/target/release/pybootd}
  if [ ! -x "$PYBOOTD_BIN" ]; then
    echo "building pybootd (cargo build --release)..."
    (cd "$repo" && cargo build --release --quiet)
  fi
fi

echo "preparing the payloads (first run: downloads ~75 MB of Debian packages)..."
root=$("$repo/tests/e2e/payloads.sh")
LAB_ACCEL=$(lab_accel "$root")
out=$(mktemp -d /tmp/netboot-lab.XXXX)
lab_init "$out"
lab_pcap
lab_ra 3600
lab_server "$server" "$root"
cat <<EOM

  TFTP root    $root
  server       $server on $LAB_SERVER (namespace $LAB_NS, bridge br0)
  config       $([ "$server" = pybootd ] && echo "$out/pybootd.ini" || echo "(dnsmasq command line)")
  daemon log   $out/server.log
  capture      $out/lab.pcap   (tcpdump -r $out/lab.pcap -vv -n)
  guest        $fw, QEMU $LAB_ACCEL; Ctrl-A X quits

EOM
LAB_FOREGROUND=1 lab_guest lab "$fw" 52:54:00:12:34:56 || true
echo
echo "---- daemon log (last 25 lines; all in $out/server.log)"
tail -n 25 "$out/server.log" || true
echo "logs kept in $out"
