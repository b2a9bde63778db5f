#!/usr/bin/env bash
# tests/e2e/payloads.sh: builds the netboot payloads (a TFTP root) from
# Debian packages only, cached outside the clone and keyed by the package
# versions, and prints the directory of the finished TFTP root.
#
#   BIOS: pxelinux.0 + ldlinux.c32 + pxelinux.cfg/default (QEMU's iPXE ROM
#         chain-loads pxelinux.0)
#   UEFI: grubx64net.efi (grub-mkimage, prefix /grub) + grub/grub.cfg
#   both: vmlinuz (Debian's kernel) + initrd.img (busybox-static and an init
#         that loads the NIC driver, runs udhcpc, prints
#         "NETBOOT-OK ip=<ip> fw=<bios|uefi>" on ttyS0 and powers off)
#
# Environment: E2E_CACHE (default /var/cache/pybootd-e2e).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cache=${E2E_CACHE:-/var/cache/pybootd-e2e}
mkdir -p "$cache/debs"

log() { echo "payloads: $*" >&2; }

# The kernel package linux-image-amd64 depends on (linux-image-6.1.0-N-amd64).
kpkg=$(apt-cache depends linux-image-amd64 2>/dev/null |
  awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
[ -n "$kpkg" ] || { echo "payloads: cannot resolve linux-image-amd64's kernel (apt-get update?)" >&2; exit 1; }
pkgs=("$kpkg" pxelinux syslinux-common grub-efi-amd64-bin busybox-static)

# Cache key: package names and candidate versions, plus this script.
versions=""
for p in "${pkgs[@]}"; do
  v=$(apt-cache policy "$p" | awk '/Candidate:/ {print $2; exit}')
  [ -n "$v" ] && [ "$v" != "(none)" ] || { echo "payloads: no candidate for $p" >&2; exit 1; }
  versions+="$p=$v "
done
key=$( (echo "$versions"; cat "${BASH_SOURCE[0]}") | sha256sum | cut -c1-16)
out="$cache/$key"
# One builder at a time (two test runs may start together).
exec 9>"$cache/.lock"
flock -w 900 9 || { echo "payloads: $cache/.lock is held for 15 min" >&2; exit 1; }
if [ -f "$out/.done" ]; then
  echo "$out/root"
  exit 0
fi
log "building $out ($versions)"

# Download (kept in $cache/debs between keys) and unpack.
(cd "$cache/debs" && apt-get download -q "${pkgs[@]}" >/dev/null 2>&1) ||
  (cd "$cache/debs" && apt-get download "${pkgs[@]}" >&2)
work=$(mktemp -d "$cache/build.XXXXXX")
trap 'rm -rf "$work"' EXIT
deb_of() { # name -> the downloaded .deb of its candidate version
  local v f
  v=$(apt-cache policy "$1" | awk '/Candidate:/ {print $2; exit}')
  for f in "$cache/debs/${1}_${v//:/%3a}_"*.deb; do
    [ -f "$f" ] && { echo "$f"; return; }
  done
  echo "payloads: $1 $v was not downloaded" >&2
  return 1
}
for p in pxelinux syslinux-common grub-efi-amd64-bin busybox-static; do
  dpkg-deb -x "$(deb_of "$p")" "$work/x"
done
# Only the kernel image and the modules the NICs need (a fraction of 70 MB).
mkdir -p "$work/k"
dpkg-deb --fsys-tarfile "$(deb_of "$kpkg")" |
  tar -x -C "$work/k" --wildcards './boot/vmlinuz-*' \
    './lib/modules/*/kernel/drivers/net/*' './lib/modules/*/kernel/drivers/virtio/*' \
    './lib/modules/*/kernel/net/core/*'

root="$work/root"
mkdir -p "$root/pxelinux.cfg" "$root/grub"
cp "$work/x/usr/lib/PXELINUX/pxelinux.0" "$root/"
cp "$work/x/usr/lib/syslinux/modules/bios/ldlinux.c32" "$root/"
cp "$work/k"/boot/vmlinuz-* "$root/vmlinuz"

cat >"$root/pxelinux.cfg/default" <<'EOF'
SERIAL 0 115200
DEFAULT linux
PROMPT 0
TIMEOUT 0
LABEL linux
  KERNEL vmlinuz
  INITRD initrd.img
  APPEND console=ttyS0,115200 quiet e2e_fw=bios
EOF

# GRUB network image: prefix /grub, root = the TFTP server EDK2 booted from.
grub-mkimage -O x86_64-efi -d "$work/x/usr/lib/grub/x86_64-efi" -p /grub \
  -o "$root/grubx64net.efi" \
  normal configfile linux boot echo test tftp net efinet serial terminal gzio \
  part_gpt fat efi_gop all_video
cat >"$root/grub/grub.cfg" <<'EOF'
set timeout=0
set default=0
echo "grub: loading /vmlinuz from $root"
menuentry "netboot-e2e" {
  linux /vmlinuz console=ttyS0,115200 quiet e2e_fw=uefi
  initrd /initrd.img
}
EOF

# The initramfs: busybox, the NIC modules in load order, /init.
ird="$work/initrd"
mkdir -p "$ird"/{bin,dev,proc,sys,tmp,mods}
cp "$work/x/bin/busybox" "$ird/bin/busybox"
moddir=$(echo "$work/k"/lib/modules/*)
# Modules to load, dependencies first (read from each .ko's modinfo).
declare -A seen=()
order=()
add_mod() {
  local m=$1 f deps d
  [ -n "${seen[$m]:-}" ] && return
  seen[$m]=1
  f=$(find "$moddir" -name "$m.ko" -o -name "$m.ko.xz" | head -1)
  [ -n "$f" ] || { echo "payloads: module $m not in $kpkg" >&2; exit 1; }
  deps=$(tr '\0' '\n' <"$f" | sed -n 's/^depends=//p' | head -1)
  for d in ${deps//,/ }; do add_mod "${d//-/_}"; done
  case $f in
    *.xz) xz -dc "$f" >"$ird/mods/$m.ko" ;;
    *) cp "$f" "$ird/mods/$m.ko" ;;
  esac
  order+=("$m")
}
for m in e1000 virtio_pci virtio_net; do add_mod "$m"; done
printf '%s\n' "${order[@]}" >"$ird/mods/order"

cat >"$ird/init" <<'EOF'
#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev 2>/dev/null
fw=$(sed -n 's/.*e2e_fw=\([a-z]*\).*/\1/p' /proc/cmdline)
if grep -q e2e_probe /proc/cmdline; then
  echo "E2E-PROBE-OK"
  poweroff -f
fi
for m in $(cat /mods/order); do insmod /mods/$m.ko 2>/dev/null; done
i=0
while [ ! -e /sys/class/net/eth0 ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i+1)); done
ip link set lo up
ip link set eth0 up
echo "e2e: eth0 $(cat /sys/class/net/eth0/address 2>/dev/null), running udhcpc"
cat >/tmp/dhcp.sh <<'EOS'
#!/bin/sh
case "$1" in
  bound|renew)
    ip addr add "$ip/${mask:-24}" dev "$interface"
    echo "$ip" > /tmp/ip ;;
esac
EOS
chmod +x /tmp/dhcp.sh
udhcpc -i eth0 -n -q -t 8 -T 2 -s /tmp/dhcp.sh
if [ -s /tmp/ip ]; then
  echo "NETBOOT-OK ip=$(cat /tmp/ip) fw=$fw"
else
  echo "NETBOOT-FAIL no lease fw=$fw"
fi
sync
poweroff -f
EOF
chmod +x "$ird/init"
(cd "$ird" && find . | busybox cpio -o -H newc 2>/dev/null | gzip -9) >"$root/initrd.img"

mkdir -p "$out"
rm -rf "$out/root"
mv "$root" "$out/root"
echo "$versions" >"$out/versions"
touch "$out/.done"
log "done: $(du -sh "$out/root" | cut -f1)"
echo "$out/root"
