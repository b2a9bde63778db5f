# tests/e2e/lab.sh: the netboot lab's building blocks, sourced by run.sh and
# examples/netboot-lab.sh: a network namespace with a bridge (10.77.0.1/24)
# and tap devices (nothing routed out), a pcap of the bridge, the boot
# server (pybootd or dnsmasq), QEMU guests (SeaBIOS + iPXE ROM, or OVMF's
# own PXE client) with their serial console in a file, and a cleanup that
# stops only what the lab started.
# shellcheck shell=bash

LAB_NET=10.77.0
LAB_SERVER=$LAB_NET.1
LAB_POOL_START=100
LAB_POOL_COUNT=50
LAB_PIDS=()
LAB_NS=""
LAB_OUT=""

lab_log() { echo "[e2e $(date +%H:%M:%S)] $*" >&2; }

# lab_init OUTDIR: makes the namespace, the bridge, and sets the cleanup.
lab_init() {
  LAB_OUT=$1
  mkdir -p "$LAB_OUT"
  LAB_NS="pbe2e$$"
  trap lab_cleanup EXIT
  trap 'exit 130' INT TERM
  ip netns add "$LAB_NS"
  lab_ns ip link set lo up
  lab_ns ip link add br0 type bridge
  # No STP/forward delay: the first DHCP packet must not be dropped.
  lab_ns ip link set br0 type bridge forward_delay 0 stp_state 0
  lab_ns ip addr add "$LAB_SERVER/24" dev br0
  lab_ns ip link set br0 up
}

lab_ns() { ip netns exec "$LAB_NS" "$@"; }

# lab_bg NAME CMD...: runs CMD in the namespace in the background, output to
# $LAB_OUT/NAME.log; remembers its pid for the cleanup.
lab_bg() {
  local name=$1
  shift
  ip netns exec "$LAB_NS" "$@" </dev/null >"$LAB_OUT/$name.log" 2>&1 &
  LAB_PIDS+=($!)
  eval "LAB_PID_${name//[^A-Za-z0-9_]/_}=$!"
}

lab_cleanup() {
  local rc=$? pid
  for pid in "${LAB_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  sleep 0.3
  for pid in "${LAB_PIDS[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
  for pid in "${LAB_PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  if [ -n "$LAB_NS" ]; then
    # Anything still inside (a QEMU a wrapper left behind) goes with it.
    for pid in $(ip netns pids "$LAB_NS" 2>/dev/null); do kill -9 "$pid" 2>/dev/null || true; done
    ip netns del "$LAB_NS" 2>/dev/null || true
  fi
  return $rc
}

# lab_pcap: captures everything on the bridge to $LAB_OUT/lab.pcap.
lab_pcap() {
  lab_bg tcpdump tcpdump -i br0 -n -U -s 0 -w "$LAB_OUT/lab.pcap"
  local i
  for i in $(seq 50); do
    grep -q "listening on" "$LAB_OUT/tcpdump.log" 2>/dev/null && return 0
    sleep 0.1
  done
  lab_log "tcpdump did not start: $(cat "$LAB_OUT/tcpdump.log")"
  return 1
}

# lab_ra SECONDS: IPv6 "no router here" advertisements on the bridge, so
# that iPXE does not wait ~15 s for one (tests/e2e/ra.py).
lab_ra() {
  lab_bg ra /usr/bin/python3 "$(dirname "${BASH_SOURCE[0]}")/ra.py" br0 "$1"
}

# lab_accel: "kvm" when a KVM guest boots the probe kernel within seconds,
# else "tcg" (KVM can be present and hang, e.g. nested). Cached per boot.
lab_accel() {
  local root=$1 cache=${E2E_CACHE:-/var/cache/pybootd-e2e} boot f
  if [ -n "${E2E_ACCEL:-}" ]; then echo "$E2E_ACCEL"; return; fi
  boot=$(cat /proc/sys/kernel/random/boot_id 2>/dev/null || echo none)
  f="$cache/accel-$boot"
  if [ -f "$f" ]; then cat "$f"; return; fi
  local acc=tcg
  if [ -r /dev/kvm ] && [ -w /dev/kvm ]; then
    if timeout 10 qemu-system-x86_64 -accel kvm -m 256 -display none -monitor none \
      -serial stdio -no-reboot -net none -kernel "$root/vmlinuz" -initrd "$root/initrd.img" \
      -append "console=ttyS0 quiet e2e_probe" </dev/null 2>/dev/null | grep -q E2E-PROBE-OK; then
      acc=kvm
    fi
  fi
  mkdir -p "$cache" && echo "$acc" >"$f"
  echo "$acc"
}

# lab_guest NAME FW MAC: a tap on the bridge and a QEMU guest booting from
# the network; FW = bios (SeaBIOS + QEMU's iPXE ROM on an e1000) or uefi
# (OVMF's own PXE client on virtio-net: no option ROM). Serial console to
# $LAB_OUT/NAME.serial.
lab_guest() {
  local name=$1 fw=$2 mac=$3 tap n accel
  tap="t$name"
  accel=${LAB_ACCEL:-tcg}
  lab_ns ip tuntap add "$tap" mode tap
  lab_ns ip link set "$tap" master br0 up
  n=$(printf '%s' "$mac" | tr -d ':' | cut -c9-12)
  local serial="file:$LAB_OUT/$name.serial"
  [ "${LAB_FOREGROUND:-0}" = 1 ] && serial=mon:stdio
  local args=(qemu-system-x86_64 -accel "$accel" -name "$name" -display none -monitor none
    -serial "$serial" -no-reboot
    -uuid "8e2e0000-1234-4abc-8def-0000e2e0$n"
    -netdev "tap,id=n0,ifname=$tap,script=no,downscript=no")
  case $fw in
    bios)
      # Debian's qemu loads ipxe-qemu's efi-e1000.rom (iPXE) for an e1000.
      # SeaBIOS's sercon copies the text screen (SeaBIOS, iPXE) to ttyS0.
      printf '\xf8\x03\0\0\0\0\0\0' >"$LAB_OUT/sercon-port"
      args+=(-m 256 -boot n -device "e1000,netdev=n0,mac=$mac"
        -fw_cfg "name=etc/sercon-port,file=$LAB_OUT/sercon-port")
      ;;
    uefi)
      cp /usr/share/OVMF/OVMF_VARS_4M.fd "$LAB_OUT/$name.vars.fd"
      args+=(-m 512
        -drive "if=pflash,format=raw,unit=0,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.fd"
        -drive "if=pflash,format=raw,unit=1,file=$LAB_OUT/$name.vars.fd"
        -device "virtio-net-pci,netdev=n0,mac=$mac,romfile=,bootindex=1")
      ;;
    *) lab_log "unknown firmware $fw"; return 1 ;;
  esac
  lab_log "guest $name: $fw $mac ($accel)"
  if [ "${LAB_FOREGROUND:-0}" = 1 ]; then
    # The console on this terminal (Ctrl-A X quits).
    lab_ns "${args[@]}"
    return 0
  fi
  : >"$LAB_OUT/$name.serial"
  lab_bg "qemu-$name" "${args[@]}"
}

# lab_strip FILE: a serial log without escape sequences and carriage returns.
lab_strip() {
  tr -d '\r' <"$1" | sed 's/\x1b\[[0-9;?]*[A-Za-z]//g; s/\x1bc//g'
}

# lab_marker NAME: the "ip fw" of the guest's NETBOOT-OK line, or nothing.
lab_marker() {
  tr -d '\r' <"$LAB_OUT/$1.serial" 2>/dev/null |
    sed -n 's/.*NETBOOT-OK ip=\([0-9.]*\) fw=\([a-z]*\).*/\1 \2/p' | head -1
}

# lab_in_pool IP: whether IP is in the lab's pool.
lab_in_pool() {
  local last=${1##*.}
  [ "${1%.*}" = "$LAB_NET" ] && [ "$last" -ge "$LAB_POOL_START" ] &&
    [ "$last" -lt $((LAB_POOL_START + LAB_POOL_COUNT)) ]
}

# lab_pcap_replies MAC: how many DHCP/BOOTP replies (server port 67 -> 68)
# to chaddr MAC the pcap holds; lab_pcap_requests MAC: how many requests.
lab_pcap_count() {
  local mac=${2//:/} dir=$1
  tcpdump -r "$LAB_OUT/lab.pcap" -n \
    "udp $dir port 67 and udp[36:4] = 0x${mac:0:8} and udp[40:2] = 0x${mac:8:4}" 2>/dev/null | wc -l
}
lab_pcap_replies() { lab_pcap_count src "$1"; }
lab_pcap_requests() { lab_pcap_count dst "$1"; }

# lab_write_ini ROOT [ACCESS_SECTION]: the pybootd configuration.
lab_write_ini() {
  local root=$1 extra=${2:-}
  if [ -n "${LAB_INI:-}" ]; then
    # A given config (examples/netboot-lab.sh: examples/pybootd.ini), with
    # its TFTP root and lease journal moved into the lab, and the UEFI boot
    # file named as the payloads name it.
    sed -e "s|^root = .*|root = $root|" \
      -e "s|^lease_file = .*|lease_file = $LAB_OUT/leases.jsonl|" \
      -e 's|grubnetx64\.efi|grubx64net.efi|' "$LAB_INI" >"$LAB_OUT/pybootd.ini"
    return
  fi
  cat >"$LAB_OUT/pybootd.ini" <<EOF
[logger]
type = stderr
level = debug

[bootp]
pool_start = $LAB_NET.$LAB_POOL_START
pool_count = $LAB_POOL_COUNT
lease_time = 3600
lease_file = $LAB_OUT/leases.jsonl
allow_simple_dhcp = yes
servername = pybootd
domain = e2e
$( [ -n "$extra" ] && echo "access = mac")

[bootfile]
default = pxelinux.0
00000 = pxelinux.0
00007 = grubx64net.efi
00009 = grubx64net.efi

[tftp]
root = $root
$extra
EOF
}

# lab_server KIND ROOT [ACCESS]: starts pybootd (KIND=pybootd, binary
# $PYBOOTD_BIN) or dnsmasq on the bridge, serving ROOT (a directory, or for
# pybootd an http:// URL). ACCESS: "[mac]" section lines (pybootd) or
# "allow=MAC deny=MAC" handled for dnsmasq.
lab_server() {
  local kind=$1 root=$2 access=${3:-}
  case $kind in
    pybootd)
      local extra=""
      [ -n "$access" ] && extra=$(printf '\n[mac]\n%s\n' "$access")
      lab_write_ini "$root" "$extra"
      lab_bg server "${PYBOOTD_BIN:?PYBOOTD_BIN: the pybootd binary}" -d -c "$LAB_OUT/pybootd.ini"
      ;;
    split)
      # An existing DHCP server (dnsmasq, DHCP only, next-server = us)
      # beside `pybootd --tftp`.
      lab_write_ini "$root" ""
      lab_bg server "${PYBOOTD_BIN:?PYBOOTD_BIN: the pybootd binary}" --tftp -d -c "$LAB_OUT/pybootd.ini"
      lab_bg dhcp dnsmasq --no-daemon --conf-file=/dev/null --port=0 --user=root \
        --interface=br0 --bind-interfaces --log-dhcp --log-facility=- \
        --dhcp-leasefile="$LAB_OUT/dnsmasq.leases" \
        --dhcp-range="$LAB_NET.$LAB_POOL_START,$LAB_NET.$((LAB_POOL_START + LAB_POOL_COUNT - 1)),255.255.255.0,1h" \
        --dhcp-match=set:efi64,option:client-arch,7 --dhcp-match=set:efi64,option:client-arch,9 \
        --dhcp-boot=tag:efi64,grubx64net.efi,,$LAB_SERVER --dhcp-boot=tag:!efi64,pxelinux.0,,$LAB_SERVER
      ;;
    dnsmasq)
      local deny=()
      local line
      while read -r line; do
        case $line in
          *=*no) deny+=("--dhcp-host=$(echo "${line%%=*}" | tr -d ' ' | tr '-' ':'),ignore") ;;
        esac
      done <<<"$access"
      lab_bg server dnsmasq --no-daemon --conf-file=/dev/null --port=0 --user=root \
        --interface=br0 --bind-interfaces --log-dhcp --log-facility=- \
        --dhcp-leasefile="$LAB_OUT/dnsmasq.leases" \
        --dhcp-range="$LAB_NET.$LAB_POOL_START,$LAB_NET.$((LAB_POOL_START + LAB_POOL_COUNT - 1)),255.255.255.0,1h" \
        --enable-tftp --tftp-root="$root" \
        --dhcp-match=set:efi64,option:client-arch,7 --dhcp-match=set:efi64,option:client-arch,9 \
        --dhcp-boot=tag:efi64,grubx64net.efi --dhcp-boot=tag:!efi64,pxelinux.0 \
        "${deny[@]}"
      ;;
    *) lab_log "unknown server $kind"; return 1 ;;
  esac
  # Wait (bounded) until it listens on 67 and 69.
  local i
  for i in $(seq 100); do
    if lab_ns ss -Hlun 2>/dev/null | grep -q ':67 ' && lab_ns ss -Hlun | grep -q ':69 '; then
      if [ "$kind" = split ] && lab_ns ss -Hlunp | grep ':67 ' | grep -q pybootd; then
        lab_log "pybootd --tftp listens on port 67"
        return 1
      fi
      return 0
    fi
    if ! kill -0 "$LAB_PID_server" 2>/dev/null; then
      lab_log "$kind exited:"; tail -20 "$LAB_OUT/server.log" >&2; return 1
    fi
    sleep 0.1
  done
  lab_log "$kind does not listen on 67 and 69 after 10 s"
  tail -20 "$LAB_OUT/server.log" >&2
  return 1
}
