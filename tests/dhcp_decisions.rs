//! DHCP decisions without sockets or clock: every message type, the PXE
//! options, ACLs ([mac], [uuid], [static_dhcp], [buggy_clients], HTTP),
//! the PXE -> OS phases and pool edges, through `dhcp::Engine`.

mod dhcp_support;

use std::net::Ipv4Addr;

use dhcp_support::*;
use pybootd::acl::http::HttpAnswer;
use pybootd::dhcp::{AckState, Answer, Denial, Dest, Engine, NakReason, Phase, Silence};
use pybootd::leases::{AllocError, BindError, LeaseState, Record};
use pybootd::wire::dhcp::{opt, MessageType, Packet};
use pybootd::wire::MacAddr;

const BASE: &str = "[bootp]\npool_start = 10.9.0.100\npool_count = 5\nlease_file = none\n\
                    [bootfile]\ndefault = pxelinux.0\n00007 = grubnetx64.efi\n";

fn engine(extra: &str) -> Engine {
    let ini = format!("{BASE}{extra}");
    engine_for(config(&ini), vec![Ipv4Addr::new(10, 9, 0, 53)])
}

fn engine_simple(extra: &str) -> Engine {
    let ini = BASE.replace(
        "lease_file = none\n",
        "lease_file = none\nallow_simple_dhcp = yes\n",
    );
    engine_for(config(&format!("{ini}{extra}")), vec![])
}

const NOW: u64 = 1_000_000;

/// The source address of a request from a client with no address yet.
const CLIENT: Ipv4Addr = Ipv4Addr::UNSPECIFIED;

fn reply(e: &mut Engine, p: &Packet) -> Packet {
    let d = e.decide(p, NOW, None, CLIENT);
    let r = d.reply().unwrap_or_else(|| panic!("no reply: {}", d.why()));
    r.packet.clone()
}

/// What the reply says (OFFER, ACK in which state, NAK and why).
fn answer(e: &mut Engine, p: &Packet) -> Answer {
    let d = e.decide(p, NOW, None, CLIENT);
    let r = d.reply().unwrap_or_else(|| panic!("no reply: {}", d.why()));
    r.answer.clone()
}

/// Why the engine stays silent (panics on a reply or a question).
fn silent(e: &mut Engine, p: &Packet) -> Silence {
    let d = e.decide(p, NOW, None, CLIENT);
    let s = d
        .silence()
        .unwrap_or_else(|| panic!("not silent: {}", d.why()));
    s.clone()
}

#[test]
fn ipxe_discover_gets_a_full_pxe_offer() {
    let mut e = engine("");
    e.set_file_size("pxelinux.0", Some(42_000));
    let d = e.decide(&ipxe_discover(mac(1), 7), NOW, None, CLIENT);
    let r = d.reply().unwrap().clone();
    assert_eq!(r.dest, Dest::Broadcast);
    assert_eq!(r.answer, Answer::Offer { pxe: true });
    assert!(d.effects.journal.is_empty(), "an offer is not stored");
    let o = r.packet;
    assert_eq!(o.op, 2);
    assert_eq!(o.xid, 7);
    assert_eq!(o.yiaddr, ip(100));
    assert_eq!(o.siaddr, ip(1));
    assert_eq!(o.sname, b"unknown.localdomain");
    assert_eq!(o.file, b"pxelinux.0");
    assert_eq!(msg_type(&o), 2);
    assert_eq!(o.option(opt::SERVER_ID), Some(&ip(1).octets()[..]));
    assert_eq!(o.option(opt::SUBNET_MASK), Some(&[255, 255, 255, 0][..]));
    assert_eq!(o.option(opt::ROUTER), Some(&ip(1).octets()[..]));
    assert_eq!(o.option(opt::DNS), Some(&[10, 9, 0, 53][..]));
    assert_eq!(o.option(opt::LEASE_TIME), Some(&86400u32.to_be_bytes()[..]));
    assert_eq!(o.option(opt::VENDOR_CLASS), Some(&b"PXEClient"[..]));
    assert_eq!(o.option(opt::TFTP_SERVER), Some(&b"10.9.0.1"[..]));
    assert_eq!(o.option(opt::BOOT_FILE), Some(&b"pxelinux.0"[..]));
    assert_eq!(
        o.option(opt::CLIENT_UUID),
        Some(&UUID97[..]),
        "echoed as sent"
    );
    // 42000 bytes = 82.03 blocks -> 83; iPXE never asked for 13.
    assert_eq!(
        o.option(opt::BOOT_FILE_SIZE),
        Some(&83u16.to_be_bytes()[..])
    );
    assert_eq!(o.option(opt::VENDOR_SPECIFIC), Some(&[6u8, 1, 8, 255][..]));
    // On the wire: 53 comes first.
    let mut b = vec![];
    o.emit(&mut b);
    assert_eq!(&b[240..243], &[53, 1, 2]);
    assert_eq!(e.phase(&MacAddr(mac(1))), Phase::Pxe);
}

#[test]
fn boot_file_by_arch_and_size_only_when_known() {
    let mut e = engine("");
    let o = reply(&mut e, &edk2_discover(mac(2), 1));
    assert_eq!(o.file, b"grubnetx64.efi");
    assert_eq!(o.option(opt::BOOT_FILE), Some(&b"grubnetx64.efi"[..]));
    assert_eq!(o.option(opt::BOOT_FILE_SIZE), None, "size unknown: no 13");
    // Arch 9 has no entry: the default.
    let mut p = edk2_discover(mac(3), 2);
    p.set_option(93, [0, 9]);
    assert_eq!(reply(&mut e, &p).file, b"pxelinux.0");
    // Arch from the vendor class when 93 is missing.
    let mut p = edk2_discover(mac(4), 3);
    p.remove_option(93);
    assert_eq!(reply(&mut e, &p).file, b"grubnetx64.efi");
    // No entry and no default: silence with a clear reason.
    let ini = "[bootp]\npool_start = 10.9.0.100\nlease_file = none\n[bootfile]\n00007 = x.efi\n";
    let mut e = engine_for(config(ini), vec![]);
    let why = silent(&mut e, &ipxe_discover(mac(5), 4));
    assert_eq!(why, Silence::NoBootFile { arch: Some(0) });
}

#[test]
fn selecting_request_acks_journals_and_notifies() {
    let mut e = engine("");
    let disc = ipxe_discover(mac(1), 9);
    let offered = reply(&mut e, &disc).yiaddr;
    let d = e.decide(&selecting(&disc, offered, ip(1)), NOW, None, CLIENT);
    let a = d.reply().unwrap();
    assert_eq!(msg_type(&a.packet), 5);
    assert_eq!(
        a.answer,
        Answer::Ack {
            state: AckState::Selecting,
            pxe: true
        }
    );
    assert_eq!(a.packet.yiaddr, offered);
    assert_eq!(
        a.packet.option(opt::RENEWAL_TIME),
        Some(&43200u32.to_be_bytes()[..])
    );
    match &d.effects.journal[..] {
        [Record::Lease(l)] => {
            assert_eq!(l.ip, offered);
            assert_eq!(l.expires, NOW + 86400);
        }
        other => panic!("journal {other:?}"),
    }
    assert_eq!(
        d.effects.notice.as_deref(),
        Some("BOOT,00002E8E-3412-BC4A-8DEF-0000E2E00001,52-54-00-00-00-01,10.9.0.100")
    );
    // A wrong address in SELECTING is NAKed.
    let d = e.decide(&selecting(&disc, ip(104), ip(1)), NOW, None, CLIENT);
    let n = d.reply().unwrap().clone();
    assert_eq!(msg_type(&n.packet), 6);
    let why = NakReason::NotOffered {
        requested: ip(104),
        offered,
    };
    assert_eq!(
        n.packet.option(opt::MESSAGE),
        Some(why.to_string().as_bytes())
    );
    assert_eq!(n.answer, Answer::Nak(why));
    assert!(d.effects.journal.is_empty(), "a NAK stores nothing");
    assert_eq!(n.packet.yiaddr, Ipv4Addr::UNSPECIFIED);
    assert!(n.packet.option(opt::MESSAGE).is_some());
    assert_eq!(n.dest, Dest::Broadcast);
}

#[test]
fn request_for_another_server_is_silent_and_forgets_the_offer() {
    let ini = "[bootp]\npool_start = 10.9.0.100\npool_count = 1\nlease_file = none\nallow_simple_dhcp = yes\n";
    let mut e = engine_for(config(ini), vec![]);
    let a = plain_discover(mac(1), 1);
    assert_eq!(reply(&mut e, &a).yiaddr, ip(100));
    let why = silent(&mut e, &selecting(&a, ip(100), Ipv4Addr::new(10, 9, 0, 2)));
    assert_eq!(why, Silence::OtherServer(Ipv4Addr::new(10, 9, 0, 2)));
    let state = e.leases().with(|t| t.get(&MacAddr(mac(1))).unwrap().state);
    assert_eq!(state, LeaseState::Released, "the offer is forgotten");
    assert_eq!(reply(&mut e, &plain_discover(mac(2), 3)).yiaddr, ip(100));
}

#[test]
fn full_pool_takes_back_the_oldest_offer() {
    // Offers to made-up MACs fill a pool of 5; the next DISCOVER takes
    // the oldest offer back instead of finding nothing for 60 s.
    let mut e = engine_simple("");
    for n in 1..=5u32 {
        let d = e.decide(&plain_discover(mac(n), n), NOW + u64::from(n), None, CLIENT);
        assert_eq!(d.reply().unwrap().packet.yiaddr, ip(99 + n as u8));
    }
    let d = e.decide(&plain_discover(mac(50), 50), NOW + 6, None, CLIENT);
    assert_eq!(
        d.reply().unwrap().packet.yiaddr,
        ip(100),
        "mac 1's, the oldest"
    );
    let d = e.decide(&plain_discover(mac(51), 51), NOW + 7, None, CLIENT);
    assert_eq!(d.reply().unwrap().packet.yiaddr, ip(101), "then mac 2's");
    // mac 1, whose offer was taken back, REQUESTs it anyway: the first
    // REQUEST wins over an offer nobody requested.
    let a = plain_discover(mac(1), 1);
    let d = e.decide(&selecting(&a, ip(100), ip(1)), NOW + 8, None, CLIENT);
    assert_eq!(msg_type(&d.reply().unwrap().packet), 5, "{}", d.why());
    let d = e.decide(
        &selecting(&plain_discover(mac(50), 50), ip(100), ip(1)),
        NOW + 9,
        None,
        CLIENT,
    );
    assert_eq!(
        d.reply().unwrap().answer,
        Answer::Nak(NakReason::Bind(BindError::LeasedToOther(ip(100))))
    );
    // A bound lease is never taken back: bind all five, then nothing.
    let mut e = engine_simple("");
    for n in 1..=5u32 {
        let a = plain_discover(mac(n), n);
        let got = reply(&mut e, &a).yiaddr;
        reply(&mut e, &selecting(&a, got, ip(1)));
    }
    let why = silent(&mut e, &plain_discover(mac(50), 50));
    assert_eq!(why, Silence::NoAddress(AllocError::PoolExhausted));
}

#[test]
fn init_reboot_renewing_rebinding() {
    let mut e = engine_simple("");
    let a = plain_discover(mac(1), 1);
    let got = reply(&mut e, &selecting(&a, ip(100), ip(1)));
    assert_eq!(msg_type(&got), 5);
    // INIT-REBOOT for its own address: ACK.
    assert_eq!(msg_type(&reply(&mut e, &init_reboot(&a, ip(100)))), 5);
    // For another MAC's address: NAK (b has a record: an offer).
    let b = plain_discover(mac(2), 2);
    assert_eq!(reply(&mut e, &b).yiaddr, ip(101));
    assert_eq!(
        answer(&mut e, &init_reboot(&b, ip(100))),
        Answer::Nak(NakReason::Bind(BindError::LeasedToOther(ip(100))))
    );
    // Off this network: NAK.
    let off = Ipv4Addr::new(192, 168, 7, 7);
    let n = answer(&mut e, &init_reboot(&b, off));
    assert_eq!(n, Answer::Nak(NakReason::OffNet(off)));
    // A free pool address, from a client with a record: ACK.
    assert_eq!(msg_type(&reply(&mut e, &init_reboot(&b, ip(103)))), 5);
    // RFC 2131 4.3.2: from a client with no record at all: silence, not
    // a binding (made-up MACs filled the pool that way).
    let c = plain_discover(mac(3), 3);
    let why = silent(&mut e, &init_reboot(&c, ip(104)));
    assert_eq!(why, Silence::UnknownClient(ip(104)));
    // RENEWING/REBINDING from a client with no lease: NAK for one of
    // ours (it starts over), silence for another server's address.
    let n = answer(&mut e, &renewing(&c, ip(104)));
    assert_eq!(n, Answer::Nak(NakReason::NoLease(ip(104))));
    let mut rb = renewing(&c, ip(104));
    rb.flags = 0x8000;
    assert_eq!(
        answer(&mut e, &rb),
        Answer::Nak(NakReason::NoLease(ip(104)))
    );
    let theirs = Ipv4Addr::new(10, 9, 0, 20);
    let why = silent(&mut e, &renewing(&c, theirs));
    assert_eq!(why, Silence::NotOurAddress(theirs));
    let leases = e.leases().with(|t| t.leases().count());
    assert_eq!(leases, 2, "nothing bound for the unknown client");
    // RENEWING: unicast ACK to ciaddr.
    let d = e.decide(&renewing(&a, ip(100)), NOW + 100, None, CLIENT);
    let r = d.reply().unwrap();
    assert_eq!(msg_type(&r.packet), 5);
    assert_eq!(r.dest, Dest::Unicast(ip(100)));
    assert_eq!(r.packet.ciaddr, ip(100));
    let renew = Answer::Ack {
        state: AckState::Renewing,
        pxe: false,
    };
    assert_eq!(r.answer, renew);
    assert_eq!(d.effects.journal.len(), 1, "a renewal is stored");
    // REBINDING (broadcast flag) the same way.
    let mut rb = renewing(&a, ip(100));
    rb.flags = 0x8000;
    let d = e.decide(&rb, NOW + 200, None, CLIENT);
    let rebind = Answer::Ack {
        state: AckState::Rebinding,
        pxe: false,
    };
    assert_eq!(d.reply().unwrap().answer, rebind);
    // Renewing an address that is not its lease: NAK.
    assert_eq!(
        answer(&mut e, &renewing(&a, ip(103))),
        Answer::Nak(NakReason::NotTheLease {
            ip: ip(103),
            held: ip(100)
        })
    );
    // A REQUEST naming nothing: silence.
    let mut bare = with_type(&a, 3);
    bare.remove_option(50);
    assert_eq!(silent(&mut e, &bare), Silence::RequestNamesNothing);
}

#[test]
fn decline_release_inform() {
    let mut e = engine_simple("");
    let a = plain_discover(mac(1), 1);
    assert_eq!(reply(&mut e, &a).yiaddr, ip(100));
    // DECLINE: 100 is in use on the wire; the next DISCOVER gets 101.
    let mut dec = with_type(&a, 4);
    dec.set_option(50, ip(100).octets());
    dec.set_option(54, ip(1).octets());
    let d = e.decide(&dec, NOW, None, CLIENT);
    assert_eq!(d.silence(), Some(&Silence::Declined(ip(100))));
    assert_eq!(
        d.effects.journal,
        vec![Record::Declined {
            ip: ip(100),
            expires: NOW + 86400
        }]
    );
    // The same DECLINE again: this MAC no longer holds it, nothing stored.
    let d = e.decide(&dec, NOW, None, CLIENT);
    assert_eq!(d.silence(), Some(&Silence::DeclineNotHeld(ip(100))));
    assert!(d.effects.journal.is_empty());
    assert_eq!(reply(&mut e, &a).yiaddr, ip(101));
    assert_eq!(reply(&mut e, &plain_discover(mac(2), 5)).yiaddr, ip(102));
    // RELEASE: journaled, notice, sticky for the next ask.
    reply(&mut e, &selecting(&a, ip(101), ip(1)));
    let mut rel = with_type(&a, 7);
    rel.ciaddr = ip(101);
    rel.set_option(54, ip(1).octets());
    let d = e.decide(&rel, NOW + 10, None, ip(101));
    assert_eq!(d.silence(), Some(&Silence::Released));
    assert_eq!(
        d.effects.notice.as_deref(),
        Some("RELEASE,52-54-00-00-00-01,10.9.0.101")
    );
    match &d.effects.journal[..] {
        [Record::Lease(l)] => assert_eq!((l.ip, l.expires), (ip(101), NOW + 10)),
        other => panic!("journal {other:?}"),
    }
    assert_eq!(reply(&mut e, &a).yiaddr, ip(101), "sticky after RELEASE");
    // INFORM: ACK with options, no address, no lease time, to ciaddr.
    let mut inf = with_type(&a, 8);
    inf.ciaddr = ip(77);
    let d = e.decide(&inf, NOW, None, CLIENT);
    let r = d.reply().unwrap().clone();
    assert_eq!(r.answer, Answer::InformAck);
    assert_eq!(msg_type(&r.packet), 5);
    assert_eq!(r.packet.yiaddr, Ipv4Addr::UNSPECIFIED);
    assert_eq!(r.packet.option(opt::LEASE_TIME), None);
    assert_eq!(
        r.packet.option(opt::SUBNET_MASK),
        Some(&[255, 255, 255, 0][..])
    );
    assert_eq!(r.dest, Dest::Unicast(ip(77)));
    assert!(d.effects.journal.is_empty());
}

#[test]
fn bootp_is_answered_as_bootp_only_with_allow_simple_dhcp() {
    let mut p = plain_discover(mac(1), 1);
    p.options.clear();
    let mut e = engine("");
    assert_eq!(silent(&mut e, &p), Silence::SimpleDhcpOff);
    // RFC 1534 4: a dynamic BOOTP address is only given when configured
    // (`bootp_dynamic`), else only to a [static_dhcp] MAC.
    let mut e = engine_simple("");
    assert_eq!(silent(&mut e, &p), Silence::BootpNotConfigured);
    let mut e = engine_simple("[static_dhcp]\n52-54-00-00-00-01 = 10.9.0.103\n");
    assert_eq!(reply(&mut e, &p).yiaddr, ip(103));
    let ini = BASE.replace(
        "lease_file = none\n",
        "lease_file = none\nallow_simple_dhcp = yes\nbootp_dynamic = yes\n",
    );
    let mut e = engine_for(config(&ini), vec![]);
    let d = e.decide(&p, NOW, None, CLIENT);
    assert_eq!(d.kind, "BOOTP");
    assert_eq!(d.reply().unwrap().answer, Answer::BootReply);
    let r = d.reply().unwrap().packet.clone();
    assert_eq!(r.message_type(), None, "no option 53 in a BOOTP reply");
    assert_eq!(r.yiaddr, ip(100));
    assert_eq!(r.file, b"pxelinux.0");
    assert_eq!(d.effects.journal.len(), 1, "bound at once");
    let mut b = vec![];
    r.emit(&mut b);
    assert_eq!(b.len(), 300);
}

#[test]
fn plain_clients_need_allow_simple_dhcp_unless_they_booted_by_pxe() {
    let mut e = engine("");
    let why = silent(&mut e, &plain_discover(mac(1), 1));
    assert_eq!(why, Silence::SimpleDhcpOff);
    // The same MAC after a PXE boot: its OS is served.
    let pxe = ipxe_discover(mac(2), 2);
    let ipx = reply(&mut e, &pxe).yiaddr;
    reply(&mut e, &selecting(&pxe, ipx, ip(1)));
    let os = plain_discover(mac(2), 3);
    let o = reply(&mut e, &os);
    assert_eq!(o.yiaddr, ipx, "same address for the OS");
    assert_eq!(
        o.option(opt::VENDOR_CLASS),
        None,
        "no PXE options for the OS"
    );
    let d = e.decide(&selecting(&os, ipx, ip(1)), NOW, None, CLIENT);
    assert_eq!(msg_type(&d.reply().unwrap().packet), 5);
    assert_eq!(
        d.effects.notice.as_deref(),
        Some("LEASE,00002E8E-3412-BC4A-8DEF-0000E2E00001,52-54-00-00-00-02,10.9.0.100"),
        "the UUID learnt in the PXE phase"
    );
    assert_eq!(e.phase(&MacAddr(mac(2))), Phase::Dhcp);
}

#[test]
fn mac_acl_masks_and_static() {
    let extra = "[mac]\n52-54-00-00-00/40 = yes\n52-54-00-00-00-02 = no\n52-54-00-00-01-06 = no\n\
                 [static_dhcp]\n52-54-00-00-01-05 = 10.9.0.50\n52-54-00-00-01-06 = 10.9.0.51\n";
    let ini = format!(
        "{}{}",
        BASE.replace("lease_file", "access = mac\nlease_file"),
        extra
    );
    let mut e = engine_for(config(&ini), vec![]);
    assert_eq!(reply(&mut e, &ipxe_discover(mac(1), 1)).yiaddr, ip(100));
    let why = silent(&mut e, &ipxe_discover(mac(2), 2));
    assert_eq!(why, Silence::Acl(Denial::MacDenied(MacAddr(mac(2)))));
    let other = [0x52, 0x55, 0, 0, 0, 1];
    let why = silent(&mut e, &ipxe_discover(other, 3));
    assert_eq!(why, Silence::Acl(Denial::MacNotListed(MacAddr(other))));
    // A [static_dhcp] MAC not in [mac] is allowed, with its address.
    assert_eq!(reply(&mut e, &ipxe_discover(mac(0x105), 4)).yiaddr, ip(50));
    // ...unless [mac] says no.
    let why = silent(&mut e, &ipxe_discover(mac(0x106), 5));
    assert_eq!(why, Silence::Acl(Denial::MacDenied(MacAddr(mac(0x106)))));
}

#[test]
fn uuid_acl_uses_the_pxe_uuid_in_the_os_phase() {
    let ini = BASE.replace("lease_file", "access = uuid\nlease_file")
        + "[uuid]\n00002e8e-3412-bc4a-8def-0000e2e00001 = yes\n00002e8e-3412-bc4a-8def-000000000000/80 = no\n";
    let mut e = engine_for(config(&ini), vec![]);
    let pxe = ipxe_discover(mac(1), 1);
    let got = reply(&mut e, &pxe).yiaddr;
    reply(&mut e, &selecting(&pxe, got, ip(1)));
    // The OS sends no UUID: the one learnt from option 97 is used.
    assert_eq!(reply(&mut e, &plain_discover(mac(1), 2)).yiaddr, got);
    // Another UUID under the /80 deny mask.
    let mut other = ipxe_discover(mac(2), 3);
    let mut u = UUID97;
    u[16] = 9;
    other.set_option(97, u);
    let why = silent(&mut e, &other);
    assert!(
        matches!(why, Silence::Acl(Denial::UuidDenied(_))),
        "{why:?}"
    );
    // A plain client never seen by PXE: idle, so ignored before the UUID
    // rules are even looked at.
    let why = silent(&mut e, &plain_discover(mac(3), 4));
    assert_eq!(why, Silence::SimpleDhcpOff);
    // With allow_simple_dhcp it reaches them, and has no UUID.
    let ini = ini.replace("access = uuid", "access = uuid\nallow_simple_dhcp = yes");
    let mut e = engine_for(config(&ini), vec![]);
    let why = silent(&mut e, &plain_discover(mac(3), 4));
    assert_eq!(why, Silence::Acl(Denial::NoUuid));
}

#[test]
fn static_addresses_are_never_given_to_others() {
    let extra = "[static_dhcp]\n52-54-00-00-00-09 = 10.9.0.101\n";
    let mut e = engine_simple(extra);
    let got: Vec<Ipv4Addr> = (1..=4)
        .map(|n| reply(&mut e, &plain_discover(mac(n), n)).yiaddr)
        .collect();
    assert_eq!(got, vec![ip(100), ip(102), ip(103), ip(104)]);
    // Pool of 5 minus the static one: the fifth MAC takes back the oldest
    // offer (never the static address).
    assert_eq!(reply(&mut e, &plain_discover(mac(5), 5)).yiaddr, ip(100));
    assert_eq!(reply(&mut e, &plain_discover(mac(9), 9)).yiaddr, ip(101));
    // Another MAC cannot take it by asking.
    let n = answer(&mut e, &init_reboot(&plain_discover(mac(2), 2), ip(101)));
    assert_eq!(
        n,
        Answer::Nak(NakReason::Bind(BindError::ReservedForOther(ip(101))))
    );
}

#[test]
fn full_pool_reuses_the_longest_expired_lease() {
    let ini = "[bootp]\npool_start = 10.9.0.100\npool_count = 2\nlease_time = 100\nlease_file = none\nallow_simple_dhcp = on\n";
    let mut e = engine_for(config(ini), vec![]);
    let (a, b, c) = (
        plain_discover(mac(1), 1),
        plain_discover(mac(2), 2),
        plain_discover(mac(3), 3),
    );
    e.decide(&selecting(&a, ip(100), ip(1)), NOW, None, CLIENT);
    e.decide(&selecting(&b, ip(101), ip(1)), NOW + 50, None, CLIENT);
    assert_eq!(
        e.decide(&c, NOW + 60, None, CLIENT).silence(),
        Some(&Silence::NoAddress(AllocError::PoolExhausted))
    );
    let o = e
        .decide(&c, NOW + 500, None, CLIENT)
        .reply()
        .unwrap()
        .packet
        .clone();
    assert_eq!(o.yiaddr, ip(100), "A's lease expired first");
}

#[test]
fn buggy_clients_always_hear_broadcast_and_relays_get_replies() {
    let mut e = engine_simple("[buggy_clients]\n52-54-00-00-00-01 = yes\n");
    let a = plain_discover(mac(1), 1);
    reply(&mut e, &selecting(&a, ip(100), ip(1)));
    let d = e.decide(&renewing(&a, ip(100)), NOW, None, CLIENT);
    assert_eq!(d.reply().unwrap().dest, Dest::Broadcast);
    // Relayed: to giaddr, with option 82 echoed; a relayed NAK asks the
    // relay to broadcast.
    let mut r = plain_discover(mac(2), 2);
    r.giaddr = Ipv4Addr::new(10, 9, 0, 254);
    r.hops = 1;
    r.set_option(82, [1, 3, b'a', b'b', b'c']);
    let d = e.decide(&r, NOW, None, CLIENT);
    let rep = d.reply().unwrap().clone();
    assert_eq!(rep.dest, Dest::Relay(Ipv4Addr::new(10, 9, 0, 254)));
    assert_eq!(rep.packet.giaddr, Ipv4Addr::new(10, 9, 0, 254));
    assert_eq!(rep.packet.hops, 0);
    assert_eq!(rep.packet.option(82), Some(&[1, 3, b'a', b'b', b'c'][..]));
    let n = e
        .decide(&selecting(&r, ip(104), ip(1)), NOW, None, CLIENT)
        .reply()
        .unwrap()
        .clone();
    assert_eq!(msg_type(&n.packet), 6);
    assert_eq!(n.dest, Dest::Relay(Ipv4Addr::new(10, 9, 0, 254)));
    assert_eq!(n.packet.flags & 0x8000, 0x8000);
}

#[test]
fn http_acl_asks_on_phase_changes_and_uses_the_answer() {
    let ini = BASE.replace("lease_file", "access = http\nlease_file")
        + "[http]\nlocation = 127.0.0.1:9\npxe = /boot\ndhcp = /linux\n";
    let mut e = engine_for(config(&ini), vec![]);
    let pxe = ipxe_discover(mac(1), 1);
    let d = e.decide(&pxe, NOW, None, CLIENT);
    let q = d.query().expect("asks the HTTP ACL").clone();
    assert_eq!(
        q.url,
        "http://127.0.0.1:9/boot?mac=52-54-00-00-00-01&uuid=00002E8E-3412-BC4A-8DEF-0000E2E00001"
    );
    let grant = HttpAnswer::Granted {
        client: Some("box1".into()),
        file: Some("box1.cfg".into()),
    };
    let d = e.decide(&pxe, NOW, Some(&grant), CLIENT);
    let o = d.reply().unwrap().packet.clone();
    assert_eq!(o.option(opt::HOST_NAME), Some(&b"box1"[..]));
    // Same phase: no new question, the name stays.
    let d = e.decide(&selecting(&pxe, o.yiaddr, ip(1)), NOW, None, CLIENT);
    assert!(d.query().is_none());
    assert_eq!(
        d.reply().unwrap().packet.option(opt::HOST_NAME),
        Some(&b"box1"[..])
    );
    assert_eq!(
        d.effects.client_file,
        Some((o.yiaddr, "box1.cfg".to_string()))
    );
    let leases = e.leases().clone();
    assert_eq!(leases.client_file(o.yiaddr).as_deref(), Some("box1.cfg"));
    assert!(leases.holds(o.yiaddr, NOW), "the handle sees the ACK");
    // The OS's DISCOVER keeps the PXE phase; its REQUEST moves to DHCP
    // and asks again, on the dhcp path, with the leased ip.
    let os = plain_discover(mac(1), 2);
    assert!(e.decide(&os, NOW, None, CLIENT).query().is_none());
    let d = e.decide(&selecting(&os, o.yiaddr, ip(1)), NOW, None, CLIENT);
    let q = d.query().expect("phase change asks again");
    assert!(
        q.url
            .starts_with("http://127.0.0.1:9/linux?mac=52-54-00-00-00-01&uuid="),
        "{}",
        q.url
    );
    assert!(q.url.ends_with("&ip=10.9.0.100"), "{}", q.url);
    // Denied: silence, back to idle, the next ask asks again.
    let d = e.decide(
        &selecting(&os, o.yiaddr, ip(1)),
        NOW,
        Some(&HttpAnswer::Denied("401".into())),
        CLIENT,
    );
    assert_eq!(d.silence(), Some(&Silence::HttpDenied("401".into())));
    assert!(d.effects.journal.is_empty());
    assert_eq!(e.phase(&MacAddr(mac(1))), Phase::Idle);
    // always_check asks every time.
    let ini2 = ini.replace("dhcp = /linux\n", "dhcp = /linux\nalways_check = yes\n");
    let mut e = engine_for(config(&ini2), vec![]);
    e.decide(&pxe, NOW, Some(&grant), CLIENT);
    assert!(e.decide(&pxe, NOW, None, CLIENT).query().is_some());
}

#[test]
fn not_requests_and_not_ethernet_are_dropped() {
    let mut e = engine_simple("");
    let mut p = plain_discover(mac(1), 1);
    p.op = 2;
    assert_eq!(silent(&mut e, &p), Silence::NotRequest);
    let mut p = plain_discover(mac(1), 1);
    p.htype = 6;
    assert_eq!(
        silent(&mut e, &p),
        Silence::NotEthernet { htype: 6, hlen: 6 }
    );
    let p = with_type(&plain_discover(mac(1), 1), 2);
    assert_eq!(
        silent(&mut e, &p),
        Silence::NotClientMessage(MessageType::Offer)
    );
}

#[test]
fn a_booted_os_renewing_after_a_restart_is_still_served() {
    // PXE boot, OS lease, then a "restart": a new engine fed the journal.
    let mut e = engine("");
    let pxe = ipxe_discover(mac(1), 1);
    let got = reply(&mut e, &pxe).yiaddr;
    let d = e.decide(&selecting(&pxe, got, ip(1)), NOW, None, CLIENT);
    let mut fresh = engine("");
    for r in &d.effects.journal {
        fresh.leases().with(|t| t.apply(r));
    }
    // allow_simple_dhcp is off, yet the known MAC's OS renews.
    let r = fresh.decide(
        &renewing(&plain_discover(mac(1), 2), got),
        NOW + 10,
        None,
        CLIENT,
    );
    assert_eq!(msg_type(&r.reply().expect("served").packet), 5);
    // An unknown plain client is still ignored.
    let why = silent(&mut fresh, &plain_discover(mac(2), 3));
    assert_eq!(why, Silence::SimpleDhcpOff);
}

#[test]
fn forged_release_and_decline_are_ignored() {
    let mut e = engine_simple("");
    let mut a = plain_discover(mac(1), 1);
    a.set_option(opt::CLIENT_ID, &b"\x01owner"[..]);
    reply(&mut e, &selecting(&a, ip(100), ip(1)));
    let mut rel = with_type(&a, 7);
    rel.ciaddr = ip(100);
    rel.set_option(54, ip(1).octets());
    // From another address, not relayed: ignored, the lease stays.
    let d = e.decide(&rel, NOW, None, ip(150));
    let why = Silence::ReleaseFromElsewhere {
        ip: ip(100),
        src: ip(150),
    };
    assert_eq!(d.silence(), Some(&why));
    assert!(d.effects.journal.is_empty());
    // From the address, but without the lease's client identifier.
    let mut no_id = rel.clone();
    no_id.remove_option(opt::CLIENT_ID);
    let d = e.decide(&no_id, NOW, None, ip(100));
    assert_eq!(d.silence(), Some(&Silence::ClientIdMismatch(ip(100))));
    let mut dec = with_type(&no_id, 4);
    dec.ciaddr = Ipv4Addr::UNSPECIFIED;
    dec.set_option(50, ip(100).octets());
    let d = e.decide(&dec, NOW, None, CLIENT);
    assert_eq!(d.silence(), Some(&Silence::ClientIdMismatch(ip(100))));
    let held = e.leases().with(|t| t.holds(ip(100), NOW));
    assert!(held, "the owner still holds its lease");
    // Through a relay (giaddr set), the source is the relay's.
    let mut relayed = rel.clone();
    relayed.giaddr = ip(2);
    let d = e.decide(&relayed, NOW, None, ip(2));
    assert_eq!(d.silence(), Some(&Silence::Released));
    // The owner's own RELEASE works.
    reply(&mut e, &selecting(&a, ip(100), ip(1)));
    let d = e.decide(&rel, NOW, None, ip(100));
    assert_eq!(d.silence(), Some(&Silence::Released));
    assert_eq!(d.effects.journal.len(), 1);
}
