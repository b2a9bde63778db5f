//! Arbitrary parsed packets -> `dhcp::Engine::decide` never panics, and
//! what it answers emits within the client's size. The input is framed:
//! byte 0 picks a config (plain, PXE with statics and `[mac]`, HTTP ACL,
//! a pool of one), then records of `[time step][answer][len hi][len lo]
//! packet bytes`: every record that parses is decided in turn, on one
//! engine, so the earlier ones populate the lease table and the phases.
//! An HTTP question is answered from the answer byte (granted with or
//! without `Client:`/`File:`, or denied), as the server does.
//!
//! Run (bounded): `cargo +nightly fuzz run dhcp_decide -- -max_total_time=90`
//! from the repository root.
#![no_main]
use std::net::Ipv4Addr;
use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use pybootd::acl::http::HttpAnswer;
use pybootd::config::Config;
use pybootd::dhcp::{Engine, ESSENTIAL};
use pybootd::leases::{LeaseTable, Leases};
use pybootd::netif::ServerNet;
use pybootd::wire::dhcp::Packet;

const CONFIGS: [&str; 4] = [
    "[bootp]\npool_start = 10.9.0.100\npool_count = 8\nallow_simple_dhcp = yes\n\
     lease_file = none\nlease_time = 300\n[bootfile]\ndefault = pxelinux.0\n",
    "[bootp]\npool_start = 10.9.0.100\npool_count = 4\naccess = mac\nlease_file = none\n\
     [bootfile]\n00007 = x.efi\n[mac]\n00-00-00/24 = yes\n52-54-00-00-00-02 = no\n\
     [static_dhcp]\n52-54-00-00-00-05 = 10.9.0.50\n[buggy_clients]\n52-54-00-00-00-03 = yes\n",
    "[bootp]\npool_start = 10.9.0.100\npool_count = 4\naccess = http\nlease_file = none\n\
     [http]\nlocation = 127.0.0.1:9\npxe = /boot\ndhcp = /linux\n\
     [bootfile]\ndefault = pxelinux.0\n",
    "[bootp]\npool_start = 10.9.0.254\npool_count = 1\nallow_simple_dhcp = yes\n\
     lease_file = none\nlease_time = 60\n",
];

fn configs() -> &'static Vec<Arc<Config>> {
    static C: OnceLock<Vec<Arc<Config>>> = OnceLock::new();
    C.get_or_init(|| {
        CONFIGS
            .iter()
            .map(|ini| Arc::new(Config::parse(ini, std::path::Path::new("f.ini")).unwrap()))
            .collect()
    })
}

fn engine(config: &Arc<Config>) -> Engine {
    let net = ServerNet {
        ifname: "lo".into(),
        ifindex: 1,
        ip: Ipv4Addr::new(10, 9, 0, 1),
        netmask: Ipv4Addr::new(255, 255, 255, 0),
    };
    let b = config.bootp.clone().unwrap();
    let table = LeaseTable::new(b.pool_start, b.pool_count, &config.static_dhcp, vec![net.ip]);
    let dns = vec![Ipv4Addr::new(10, 9, 0, 53)];
    Engine::new(config.clone(), b, &net, dns, Leases::new(table)).unwrap()
}

fn answer(byte: u8) -> HttpAnswer {
    match byte % 4 {
        0 => HttpAnswer::Denied("fuzz".into()),
        1 => HttpAnswer::Granted {
            client: None,
            file: None,
        },
        _ => HttpAnswer::Granted {
            client: Some(format!("box{byte}")),
            file: Some(format!("f{byte}.cfg")),
        },
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, mut rest)) = data.split_first() else {
        return;
    };
    let configs = configs();
    let mut e = engine(&configs[usize::from(pick) % configs.len()]);
    let mut now = 1_000_000u64;
    while rest.len() >= 4 {
        let (step, ans) = (rest[0], rest[1]);
        let len = usize::from(u16::from_be_bytes([rest[2], rest[3]])).min(rest.len() - 4);
        let bytes = &rest[4..4 + len];
        rest = &rest[4 + len..];
        // Mostly small steps, sometimes past a lease time.
        now += if step & 0x80 != 0 { u64::from(step) * 10 } else { u64::from(step) };
        let Ok(p) = Packet::parse(bytes) else {
            continue;
        };
        // From the address it names, or from none (as RELEASE's check sees).
        let src = if step & 1 == 0 { p.ciaddr } else { std::net::Ipv4Addr::UNSPECIFIED };
        let mut d = e.decide(&p, now, None, src);
        if d.query().is_some() {
            d = e.decide(&p, now, Some(&answer(ans)), src);
        }
        // The log line is built from the decision too.
        let _ = format!("{} {:?} {:?} {}", d.kind, d.mac, d.ip, d.why());
        if let Some(r) = d.reply() {
            let mut buf = Vec::new();
            r.packet.emit_within(r.max_len, ESSENTIAL, &mut buf);
            Packet::parse(&buf).expect("a reply parses");
        }
        if let Some(ip) = d.ip {
            let _ = (e.leases().holds(ip, now), e.leases().client_file(ip));
        }
    }
});
