#!/bin/sh
# forward.sh: let netboot clients on the LAN interface (the one pybootd
# serves) reach the outside through this host's WAN interface, by IPv4
# forwarding and NAT (iptables MASQUERADE); and undo it exactly.
#
# A rewrite of upstream pybootd's forward.sh: it checks its arguments,
# prints every change before making it, adds its rules only once, and
# `off` removes its own rules and restores net.ipv4.ip_forward to the value
# it had before `on` (kept in the rules' comment, so the state lives in the
# network namespace itself and nothing is written to disk). Linux only.
set -eu

TAG=pybootd-forward
PROG=$(basename "$0")

usage() {
    cat <<EOF
Usage: $PROG on -i WAN_IF -j LAN_IF
       $PROG off
       $PROG status

Enable or disable NAT forwarding for netboot clients.
  on       forward traffic from LAN_IF (and its IPv4 subnet) out of WAN_IF
           with masquerading, and set net.ipv4.ip_forward=1
  off      remove the rules 'on' added and restore net.ipv4.ip_forward
  status   show the rules 'on' added, and net.ipv4.ip_forward
Options:
  -i WAN_IF   interface towards the outside (e.g. eth0)
  -j LAN_IF   interface of the netboot network (holds pybootd's pool)
  -h          this help
Needs root and iptables.
EOF
}

die() {
    echo "$PROG: $*" >&2
    exit 1
}

# Prints a command, then runs it.
run() {
    echo "+ $*"
    "$@"
}

[ $# -ge 1 ] || { usage >&2; exit 2; }
MODE=$1
shift
case "$MODE" in
    on | off | status) ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; die "unknown mode '$MODE' (on, off or status)" ;;
esac

WAN_IF=
LAN_IF=
while [ $# -gt 0 ]; do
    case "$1" in
        -i) [ $# -ge 2 ] || die "-i needs an interface name"; WAN_IF=$2; shift 2 ;;
        -j) [ $# -ge 2 ] || die "-j needs an interface name"; LAN_IF=$2; shift 2 ;;
        -h | --help) usage; exit 0 ;;
        *) usage >&2; die "unknown argument '$1'" ;;
    esac
done

if [ "$MODE" != on ] && { [ -n "$WAN_IF" ] || [ -n "$LAN_IF" ]; }; then
    die "'$MODE' takes no interfaces: it finds the rules 'on' added"
fi
[ "$(uname -s)" = Linux ] || die "only Linux is supported"
[ "$(id -u)" -eq 0 ] || die "needs root (sudo $PROG ...)"
command -v iptables >/dev/null 2>&1 || die "iptables is not installed (apt-get install iptables)"

IPFWD=/proc/sys/net/ipv4/ip_forward

# Our rules, as 'iptables -S' prints them: "<table> <rule>" lines.
our_rules() {
    for table in nat filter; do
        iptables -t "$table" -S | grep -E -- "--comment \"?$TAG," | sed "s/^/$table /" || true
    done
}

case "$MODE" in
status)
    rules=$(our_rules)
    if [ -z "$rules" ]; then
        echo "forwarding for netboot clients: off (no $TAG rules)"
    else
        echo "forwarding for netboot clients: on"
        echo "$rules"
    fi
    echo "net.ipv4.ip_forward = $(cat "$IPFWD")"
    ;;

on)
    [ -n "$WAN_IF" ] || die "missing -i WAN_IF"
    [ -n "$LAN_IF" ] || die "missing -j LAN_IF"
    [ "$WAN_IF" != "$LAN_IF" ] || die "WAN and LAN are the same interface ($WAN_IF)"
    for ifc in "$WAN_IF" "$LAN_IF"; do
        case "$ifc" in
            *[!A-Za-z0-9_.@-]*) die "'$ifc' is not an interface name" ;;
        esac
        [ -e "/sys/class/net/$ifc" ] || die "no interface '$ifc' (see: ip link)"
    done
    if [ -n "$(our_rules)" ]; then
        die "already on; run '$PROG off' first ($PROG status shows the rules)"
    fi
    # The LAN's IPv4 subnet: only its traffic is masqueraded.
    subnet=$(ip -o -4 addr show dev "$LAN_IF" | awk '{print $4; exit}')
    [ -n "$subnet" ] || die "$LAN_IF has no IPv4 address (pybootd's pool subnet should be there)"
    before=$(cat "$IPFWD")
    case "$before" in 0 | 1) ;; *) die "unexpected $IPFWD value '$before'" ;; esac
    # No spaces: 'off' re-splits the rule text iptables prints.
    note="$TAG,wan=$WAN_IF,lan=$LAN_IF,ip_forward_before=$before"
    echo "Forwarding $LAN_IF ($subnet) out of $WAN_IF with NAT:"
    run iptables -t nat -A POSTROUTING -s "$subnet" -o "$WAN_IF" -j MASQUERADE -m comment --comment "$note"
    run iptables -A FORWARD -i "$LAN_IF" -o "$WAN_IF" -j ACCEPT -m comment --comment "$note"
    run iptables -A FORWARD -i "$WAN_IF" -o "$LAN_IF" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT -m comment --comment "$note"
    echo "+ echo 1 > $IPFWD (was $before)"
    echo 1 >"$IPFWD"
    echo "Done. Undo with: $PROG off"
    ;;

off)
    rules=$(our_rules)
    if [ -z "$rules" ]; then
        echo "Nothing to undo: no $TAG rules."
        exit 0
    fi
    before=$(echo "$rules" | sed -n 's/.*ip_forward_before=\([01]\).*/\1/p' | head -n 1)
    echo "Removing the $TAG rules:"
    echo "$rules" | while read -r table rule; do
        # 'iptables -S' prints "-A CHAIN spec"; delete with "-D CHAIN spec".
        # The spec is re-split by the shell: the comment holds no spaces,
        # quotes or globs (interface names were checked by 'on').
        spec=$(echo "$rule" | sed 's/^-A /-D /; s/"//g')
        # shellcheck disable=SC2086
        run iptables -t "$table" $spec
    done
    if [ "$before" = 0 ]; then
        echo "+ echo 0 > $IPFWD (its value before 'on')"
        echo 0 >"$IPFWD"
    else
        echo "net.ipv4.ip_forward left at $(cat "$IPFWD") (it was ${before:-unknown} before 'on')"
    fi
    echo "Done."
    ;;
esac
