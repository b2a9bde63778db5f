#!/usr/bin/env python3
"""tests/e2e/pcap_summary.py PCAP: what each client sent, from a lab pcap.

For every distinct (client MAC, message, option layout) it prints the DHCP
options in wire order (code and value), and every TFTP RRQ with its options,
and the server's replies' option codes. Standard library only.
"""
import struct
import sys

DHCP_TYPES = {1: "DISCOVER", 2: "OFFER", 3: "REQUEST", 4: "DECLINE", 5: "ACK",
              6: "NAK", 7: "RELEASE", 8: "INFORM"}


def packets(path):
    with open(path, "rb") as f:
        data = f.read()
    magic = struct.unpack("<I", data[:4])[0]
    endian = "<" if magic in (0xA1B2C3D4, 0xA1B23C4D) else ">"
    off = 24
    while off + 16 <= len(data):
        _, _, incl, _ = struct.unpack(endian + "IIII", data[off:off + 16])
        off += 16
        yield data[off:off + incl]
        off += incl


def udp(frame):
    if len(frame) < 14 or frame[12:14] != b"\x08\x00":
        return None
    ip = frame[14:]
    ihl = (ip[0] & 15) * 4
    if len(ip) < ihl + 8 or ip[9] != 17:
        return None
    src = ".".join(map(str, ip[12:16]))
    dst = ".".join(map(str, ip[16:20]))
    sport, dport = struct.unpack(">HH", ip[ihl:ihl + 4])
    return src, sport, dst, dport, ip[ihl + 8:]


def fmt_opt(code, val):
    if code in (60, 77, 12, 15, 66, 67) and all(32 <= b < 127 for b in val):
        return f'{code}="{val.decode()}"'
    if code == 55:
        return "55=[" + ",".join(str(b) for b in val) + "]"
    if code in (57, 93) and len(val) == 2:
        return f"{code}={struct.unpack('>H', val)[0]}"
    if code in (50, 54, 1, 3, 6) and len(val) % 4 == 0 and val:
        return f"{code}=" + ",".join(".".join(map(str, val[i:i + 4])) for i in range(0, len(val), 4))
    if code == 53:
        return "53=" + DHCP_TYPES.get(val[0], str(val[0]))
    return f"{code}={val.hex()}"


def dhcp(payload):
    if len(payload) < 240 or payload[236:240] != b"\x63\x82\x53\x63":
        return None
    op = payload[0]
    flags = struct.unpack(">H", payload[10:12])[0]
    mac = ":".join(f"{b:02x}" for b in payload[28:34])
    opts, i = [], 240
    while i < len(payload):
        code = payload[i]
        if code == 255:
            break
        if code == 0:
            i += 1
            continue
        if i + 1 >= len(payload):
            break
        n = payload[i + 1]
        opts.append((code, payload[i + 2:i + 2 + n]))
        i += 2 + n
    return op, flags, mac, opts, payload[108:236].split(b"\0")[0].decode(errors="replace")


def main():
    seen = set()
    for frame in packets(sys.argv[1]):
        u = udp(frame)
        if not u:
            continue
        src, sport, dst, dport, payload = u
        if dport == 67 or sport == 67:
            d = dhcp(payload)
            if not d:
                continue
            op, flags, mac, opts, bootfile = d
            kind = DHCP_TYPES.get(next((v[0] for c, v in opts if c == 53 and v), 0), "BOOTP")
            if op == 1:
                line = f"{mac} {kind} flags=0x{flags:04x}: " + " ".join(fmt_opt(c, v) for c, v in opts)
            else:
                line = (f"  server -> {dst} {kind} for {mac} file={bootfile!r} options "
                        + ",".join(str(c) for c, _ in opts))
            if line not in seen:
                seen.add(line)
                print(line)
        elif sport not in (53, 8080) and dport not in (53, 8080) and len(payload) > 2 \
                and payload[0] == 0 and payload[1] in (5, 6) and sport != 69 and dport != 69:
            # OACK / ERROR from a transfer's own port.
            if payload[1] == 6:
                parts = [p.decode(errors="replace") for p in payload[2:].split(b"\0") if p]
                line = f"  {src} -> {dst} OACK " + " ".join(parts)
            else:
                code = struct.unpack(">H", payload[2:4])[0]
                msg = payload[4:].split(b"\0")[0].decode(errors="replace")
                line = f"  {src} -> {dst} ERROR {code} {msg!r}"
            if line not in seen:
                seen.add(line)
                print(line)
        elif dport == 69 and len(payload) > 2 and payload[1] == 1:
            parts = payload[2:].split(b"\0")
            line = f"{src} RRQ {parts[0].decode(errors='replace')!r} " + " ".join(
                p.decode(errors="replace") for p in parts[1:] if p)
            if line not in seen:
                seen.add(line)
                print(line)


if __name__ == "__main__":
    main()
