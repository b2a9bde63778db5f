#!/usr/bin/env python3
"""tests/e2e/ra.py IFNAME SECONDS: sends a minimal IPv6 router advertisement
(router lifetime 0, no prefix, M=O=0) to ff02::1 on IFNAME every second.

Only to spare time: iPXE configures IPv4 and IPv6 together and waits ~15 s
for a router advertisement before it loads its boot file; this one tells it
at once that there is no IPv6 router and no DHCPv6. Standard library only.
"""
import socket
import struct
import sys
import time

ifname, seconds = sys.argv[1], float(sys.argv[2])
ifindex = socket.if_nametoindex(ifname)
s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 255)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, ifindex)
# type 134, code 0, checksum (the kernel fills it), cur hop limit 64,
# flags 0, router lifetime 0, reachable time 0, retrans timer 0.
ra = struct.pack("!BBHBBHII", 134, 0, 0, 64, 0, 0, 0, 0)
end = time.monotonic() + seconds
while time.monotonic() < end:
    try:
        s.sendto(ra, ("ff02::1", 0, 0, ifindex))
    except OSError:
        pass  # no link-local address yet (no port up): try again
    time.sleep(1)
