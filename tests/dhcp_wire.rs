//! `wire::dhcp` on real bytes (busybox udhcpc's and ISC dhclient's
//! captured DISCOVERs, iPXE's and EDK2's rebuilt from their captures),
//! parse/emit round trips, and 10,000 random and mutated datagrams that
//! must never panic.

mod dhcp_support;

use dhcp_support::*;
use pybootd::dhcp::is_pxe;
use pybootd::wire::dhcp::{MessageType, Packet};

#[test]
fn udhcpc_discover_parses_and_re_emits_byte_for_byte() {
    let bytes = unhex(UDHCPC_DISCOVER);
    assert_eq!(bytes.len(), 300);
    let p = Packet::parse(&bytes).unwrap();
    assert_eq!(p.message_type(), Some(MessageType::Discover));
    assert_eq!(p.mac().unwrap().to_string(), "52-31-7B-A0-6D-D4");
    assert_eq!(p.vendor_class().as_deref(), Some("udhcp 1.35.0"));
    assert_eq!(p.max_message_size(), Some(576));
    assert_eq!(p.option(55), Some(&[1u8, 3, 6, 12, 15, 28, 42][..]));
    assert_eq!(
        p.option(61),
        Some(&[1u8, 0x52, 0x31, 0x7b, 0xa0, 0x6d, 0xd4][..])
    );
    assert!(!is_pxe(&p));
    let mut out = Vec::new();
    p.emit(&mut out);
    assert_eq!(out, bytes);
}

#[test]
fn dhclient_discover_parses_and_re_emits_byte_for_byte() {
    let bytes = unhex(DHCLIENT_DISCOVER);
    let p = Packet::parse(&bytes).unwrap();
    assert_eq!(p.message_type(), Some(MessageType::Discover));
    assert_eq!(p.option(12), Some(&b"vm"[..]));
    assert_eq!(p.option(55).unwrap().len(), 13);
    assert_eq!(p.flags, 0);
    let mut out = Vec::new();
    p.emit(&mut out);
    assert_eq!(out, bytes);
}

#[test]
fn firmware_discovers_round_trip() {
    for (p, arch, pxe_file_arch) in [
        (
            ipxe_discover(mac(1), 0xdead_beef),
            0u16,
            "PXEClient:Arch:00000:UNDI:002001",
        ),
        (
            edk2_discover(mac(2), 0x0102_0304),
            7,
            "PXEClient:Arch:00007:UNDI:003000",
        ),
    ] {
        // Emit after 0xa5 garbage: every byte of the message is written.
        let mut buf = vec![0xa5u8; 16];
        p.emit(&mut buf);
        let q = Packet::parse(&buf[16..]).unwrap();
        assert_eq!(q, p);
        assert!(
            buf[16 + 44..16 + 236].iter().all(|b| *b == 0),
            "sname/file zeroed"
        );
        assert!(is_pxe(&q));
        assert_eq!(q.client_arch(), Some(arch));
        assert_eq!(q.vendor_class().as_deref(), Some(pxe_file_arch));
        assert_eq!(
            q.uuid().unwrap().to_string(),
            "00002e8e-3412-bc4a-8def-0000e2e00001"
        );
    }
}

/// A small deterministic PRNG (xorshift64*), so failures reproduce.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[test]
fn ten_thousand_random_and_mutated_packets_never_panic() {
    let mut seeds: Vec<Vec<u8>> = vec![unhex(UDHCPC_DISCOVER), unhex(DHCLIENT_DISCOVER)];
    for p in [ipxe_discover(mac(3), 1), edk2_discover(mac(4), 2)] {
        let mut b = Vec::new();
        p.emit(&mut b);
        seeds.push(b);
    }
    // An overloaded message as a seed too.
    let mut ov = seeds[0].clone();
    ov.truncate(240);
    ov.extend_from_slice(&[53, 1, 1, 52, 1, 3, 255]);
    ov[108..111].copy_from_slice(&[12, 1, b'x']);
    ov[44..47].copy_from_slice(&[15, 1, b'y']);
    seeds.push(ov);

    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let (mut ok, mut err) = (0, 0);
    for i in 0..10_000 {
        let data: Vec<u8> = if i % 4 == 0 {
            // Pure noise, with a cookie half of the time so options are walked.
            let len = rng.below(700);
            let mut d: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            if i % 8 == 0 && d.len() >= 240 {
                d[0] = 1;
                d[2] = 6;
                d[236..240].copy_from_slice(&[99, 130, 83, 99]);
            }
            d
        } else {
            let mut d = seeds[rng.below(seeds.len())].clone();
            for _ in 0..1 + rng.below(8) {
                match rng.below(5) {
                    0 => {
                        let at = rng.below(d.len());
                        d[at] ^= 1 << rng.below(8);
                    }
                    1 => {
                        // Lengths and codes in the options area.
                        let at = 236 + rng.below(d.len().saturating_sub(236).max(1));
                        if at < d.len() {
                            d[at] = rng.next() as u8;
                        }
                    }
                    2 => d.truncate(rng.below(d.len() + 1)),
                    3 => d.extend((0..rng.below(64)).map(|_| rng.next() as u8)),
                    _ => {
                        let at = rng.below(d.len());
                        d[at] = [0, 52, 255, 1, 2, 3][rng.below(6)];
                    }
                }
                if d.is_empty() {
                    break;
                }
            }
            d
        };
        match Packet::parse(&data) {
            Ok(p) => {
                ok += 1;
                let mut out = Vec::new();
                p.emit(&mut out);
                let q = Packet::parse(&out).expect("what we emit parses");
                // Same options (53 moves to the front: compare by code).
                let (mut a, mut b) = (p.options.clone(), q.options.clone());
                a.sort();
                b.sort();
                assert_eq!(a, b, "options survive a round trip");
                let _ = (p.client_arch(), p.uuid(), p.max_message_size(), p.mac());
            }
            Err(e) => {
                err += 1;
                assert!(!e.to_string().is_empty());
            }
        }
    }
    // Both paths were exercised.
    assert!(ok > 1000 && err > 1000, "ok {ok} err {err}");
}
