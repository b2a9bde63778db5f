# benches/servers.sh: how each server under test is configured and started
# (pybootd and the anchors), each with its defaults except where a note
# says. Sourced by run.sh; uses lib.sh.
# shellcheck shell=bash

ATFTPD_DIR="$ROOT/target/bench-cache/atftpd"
ATFTPD="$ATFTPD_DIR/usr/sbin/atftpd"

# atftpd conflicts with tftpd-hpa as a package: unpack it into a cache dir.
ensure_atftpd() {
  [ -x "$ATFTPD" ] && return 0
  log "unpacking atftpd (apt-get download + dpkg-deb -x) into $ATFTPD_DIR"
  mkdir -p "$ATFTPD_DIR"
  (cd "$ATFTPD_DIR" && apt-get download -q atftpd >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get download -q atftpd; }) \
    || die "cannot download atftpd"
  dpkg-deb -x "$(ls "$ATFTPD_DIR"/atftpd_*.deb | head -1)" "$ATFTPD_DIR"
  [ -x "$ATFTPD" ] || die "atftpd not found in the package"
}

DHCP_RANGE_START=10.64.1.0
DHCP_RANGE_END=10.79.255.254
DHCP_POOL_COUNT=1000000

# server_cmd NAME MODE: sets CMD (argv) for NAME in MODE tftp|dhcp, writing
# its config (a fresh lease file for DHCP) under $STATE.
server_cmd() {
  local name=$1 mode=$2
  SEQ=$((SEQ + 1))
  LEASES="$STATE/leases-$name-$SEQ"
  case "$name/$mode" in
    pybootd/tftp | pybootd-http/tftp | pybootd-base/tftp)
      local root=$DATA bin=$PYBOOTD
      [ "$name" = pybootd-base ] && bin=$PYBOOTD_BASE
      [ "$name" = pybootd-http ] && root="http://$SIP:8080"
      # The load generator is one host standing in for N clients: no
      # per-host cap (a key older builds, pybootd-base, do not know).
      local per_client="max_per_client = 1024"
      [ "$name" = pybootd-base ] && per_client=""
      cat >"$STATE/pybootd-tftp.ini" <<EOF
[logger]
type = stderr
level = error

[tftp]
address = $SIP
root = $root
max_blocksize = 65464
max_transfers = 1024
$per_client
EOF
      CMD=("$bin" -t -c "$STATE/pybootd-tftp.ini")
      ;;
    pybootd/dhcp | pybootd-base/dhcp)
      local bin=$PYBOOTD
      [ "$name" = pybootd-base ] && bin=$PYBOOTD_BASE
      cat >"$STATE/pybootd-dhcp.ini" <<EOF
[logger]
type = stderr
level = error

[bootp]
pool_start = $DHCP_RANGE_START
pool_count = $DHCP_POOL_COUNT
allow_simple_dhcp = yes
dns = $SIP
lease_file = $LEASES

[bootfile]
default = pxelinux.0
EOF
      CMD=("$bin" -p -c "$STATE/pybootd-dhcp.ini")
      ;;
    atftpd/tftp)
      # --maxthread: its default (100) would refuse half of a 200 storm.
      # --prevent-sas: without it a duplicate ACK resends DATA (Sorcerer's
      # Apprentice); on a loaded machine a storm of 50 then finished none.
      CMD=("$ATFTPD" --daemon --no-fork --logfile /dev/null --bind-address "$SIP" --port 69
        --maxthread 1000 --prevent-sas --user nobody.nogroup "$DATA")
      ;;
    tftpd-hpa/tftp)
      # Debian's defaults (/etc/default/tftpd-hpa): --secure, user tftp (nobody here).
      CMD=(in.tftpd --listen --foreground --address "$SIP:69" --secure --user nobody "$DATA")
      ;;
    dnsmasq/tftp)
      # --tftp-max: its default (50) would refuse 150 of a 200 storm.
      CMD=(dnsmasq -k -C /dev/null --port=0 --enable-tftp "--tftp-root=$DATA" "--listen-address=$SIP"
        --bind-interfaces --tftp-max=1000 --user=root "--pid-file=$STATE/dnsmasq.pid" --log-facility=/dev/null)
      ;;
    dnsmasq/dhcp)
      # --no-ping: no ICMP probe before each offer (its best case);
      # --quiet-dhcp: no log line per packet (pybootd logs errors only here).
      CMD=(dnsmasq -k -C /dev/null --port=0 --interface=srv0 --bind-interfaces
        "--dhcp-range=$DHCP_RANGE_START,$DHCP_RANGE_END,255.240.0.0,24h" "--dhcp-leasefile=$LEASES"
        --dhcp-lease-max=4000000 --dhcp-authoritative --no-ping --quiet-dhcp --user=root
        "--pid-file=$STATE/dnsmasq.pid" --log-facility=/dev/null)
      ;;
    kea/dhcp)
      cat >"$STATE/kea.json" <<EOF
{ "Dhcp4": {
  "interfaces-config": { "interfaces": [ "srv0" ], "dhcp-socket-type": "udp" },
  "lease-database": { "type": "memfile", "persist": true, "name": "$LEASES", "lfc-interval": 0 },
  "valid-lifetime": 86400,
  "subnet4": [ { "id": 1, "subnet": "10.64.0.0/$PREFIX",
                 "pools": [ { "pool": "$DHCP_RANGE_START - $DHCP_RANGE_END" } ],
                 "option-data": [ { "name": "routers", "data": "$SIP" } ] } ],
  "loggers": [ { "name": "kea-dhcp4", "output_options": [ { "output": "stderr" } ], "severity": "WARN" } ]
} }
EOF
      CMD=(env "KEA_PIDFILE_DIR=$STATE" "KEA_LOCKFILE_DIR=$STATE" kea-dhcp4 -c "$STATE/kea.json")
      ;;
    *) die "no $mode server called $name" ;;
  esac
}

tftp_start() {
  server_cmd "$1" tftp
  srv_start "$1" 69 "${CMD[@]}"
}

dhcp_start() {
  server_cmd "$1" dhcp
  srv_start "$1" 67 "${CMD[@]}"
}

# Leases on disk after the last dhcp_start's server stopped.
dhcp_lease_count() {
  [ -f "$LEASES" ] || { echo 0; return; }
  case "$1" in
    kea) tail -n +2 "$LEASES" | cut -d, -f2 | sort -u | wc -l ;;
    dnsmasq) awk '{print $2}' "$LEASES" | sort -u | wc -l ;;
    # Count distinct MACs (aa:bb:.. or AA-BB-..) in pybootd's journal.
    *) grep -oiE '([0-9a-f]{2}[:-]){5}[0-9a-f]{2}' "$LEASES" | tr 'A-F-' 'a-f:' | sort -u | wc -l ;;
  esac
}
