//! Real DHCP clients against the real `pybootd -p` binary in network
//! namespaces (root): busybox udhcpc and ISC dhclient get a pool address,
//! renew it, and keep it across a daemon restart; the server namespace has
//! a default route out of another interface, so replies only arrive when
//! 255.255.255.255 leaves through the served one. A `[mac]`-denied client
//! gets nothing; two client namespaces on a bridge get distinct addresses;
//! a relay (giaddr) gets its reply on port 67; udhcpc's ARP check DECLINEs
//! an address in use; iPXE's and EDK2's DISCOVER/REQUEST, broadcast from an
//! interface with no address, get full PXE replies (option 13 included).

mod common;
mod dhcp_support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{need_program, pybootd_bin, require_root, sh, Daemon, Lab, Netns, Scratch};

fn ini(lab_net: u8, dir: &Scratch, extra: &str) -> PathBuf {
    ini_with(lab_net, dir, extra, true)
}

fn ini_with(lab_net: u8, dir: &Scratch, extra: &str, simple: bool) -> PathBuf {
    let text = format!(
        "[bootp]\npool_start = 10.{lab_net}.0.100\npool_count = 20\nallow_simple_dhcp = {simple}\n\
         lease_file = {}/leases.jsonl\n{extra}",
        dir.path.display()
    );
    let text = text.replacen("[bootp]\n", "[logger]\nlevel = debug\n[bootp]\n", 1);
    dir.write("pybootd.ini", text.as_bytes())
}

fn start(ns: &Netns, ini: &Path, dir: &Scratch, tag: &str) -> Daemon {
    let mut cmd = ns.cmd(pybootd_bin());
    cmd.args(["-p", "-c"]).arg(ini);
    let mut d = Daemon::spawn(cmd, dir.path.join(format!("daemon-{tag}.log")));
    d.wait_log("DHCP serving", Duration::from_secs(10));
    d
}

/// A default route out of a decoy interface (a veth pair kept inside the
/// server namespace): a 255.255.255.255 reply that follows the routing
/// table leaves there and the client never hears it.
fn decoy_default_route(ns: &Netns) {
    ns.run(&[
        "ip", "link", "add", "dec0", "type", "veth", "peer", "name", "dec1",
    ]);
    ns.run(&["ip", "link", "set", "dec0", "up"]);
    ns.run(&["ip", "link", "set", "dec1", "up"]);
    ns.run(&["ip", "addr", "add", "192.168.250.1/24", "dev", "dec0"]);
    ns.run(&[
        "ip",
        "route",
        "add",
        "default",
        "via",
        "192.168.250.254",
        "dev",
        "dec0",
    ]);
}

/// A udhcpc script that logs `<event> <ip>` and configures the address
/// (so that a renewal can be unicast).
fn udhcpc_script(dir: &Scratch, tag: &str) -> (PathBuf, PathBuf) {
    let out = dir.path.join(format!("udhcpc-{tag}.out"));
    let script = format!(
        "#!/bin/sh\necho \"$1 $ip\" >> {}\ncase \"$1\" in bound|renew) ip addr replace $ip/$mask dev $interface ;; deconfig) ip addr flush dev $interface ;; esac\nexit 0\n",
        out.display()
    );
    let path = dir.write(&format!("udhcpc-{tag}.sh"), script.as_bytes());
    sh(Command::new("chmod").arg("+x").arg(&path));
    (path, out)
}

/// One udhcpc run that quits after a lease (or after 3 tries): the address.
fn udhcpc_once(ns: &Netns, dir: &Scratch, tag: &str) -> Option<String> {
    need_program("busybox");
    let (script, out) = udhcpc_script(dir, tag);
    let _ = ns
        .cmd("timeout")
        .args([
            "20", "busybox", "udhcpc", "-i", "cli0", "-n", "-q", "-f", "-t", "3", "-T", "1", "-s",
        ])
        .arg(&script)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    let text = std::fs::read_to_string(&out).unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix("bound ").map(str::to_string))
}

fn wait_file(path: &Path, needle: &str, within: Duration) -> String {
    let end = Instant::now() + within;
    loop {
        let t = std::fs::read_to_string(path).unwrap_or_default();
        if t.contains(needle) {
            return t;
        }
        if Instant::now() > end {
            panic!(
                "'{needle}' not in {} after {within:?}:\n{t}",
                path.display()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn set_mac(ns: &Netns, mac: &str) {
    ns.run(&["ip", "link", "set", "cli0", "down"]);
    ns.run(&["ip", "link", "set", "cli0", "address", mac]);
    ns.run(&["ip", "link", "set", "cli0", "up"]);
}

#[test]
fn udhcpc_gets_renews_and_keeps_its_address_across_a_restart() {
    if !require_root("udhcpc_gets_renews_and_keeps_its_address_across_a_restart") {
        return;
    }
    let lab = Lab::new(false);
    decoy_default_route(&lab.server);
    let dir = Scratch::new("dhcpns");
    let ini = ini(lab.net, &dir, "");
    set_mac(&lab.client, "02:00:00:00:aa:01");
    let mut d = start(&lab.server, &ini, &dir, "1");
    let pool_first = format!("10.{}.0.100", lab.net);

    // A long-running udhcpc: bound, then SIGUSR1 makes it renew (unicast
    // REQUEST with ciaddr, RENEWING).
    let (script, out) = udhcpc_script(&dir, "renew");
    let mut c = lab
        .client
        .cmd("busybox")
        .args(["udhcpc", "-i", "cli0", "-f", "-t", "5", "-T", "1", "-s"])
        .arg(&script)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let text = wait_file(&out, "bound ", Duration::from_secs(15));
    assert!(text.contains(&format!("bound {pool_first}")), "{text}");
    sh(Command::new("kill").args(["-USR1", &c.id().to_string()]));
    wait_file(
        &out,
        &format!("renew {pool_first}"),
        Duration::from_secs(10),
    );
    d.wait_log("ACK (renewing)", Duration::from_secs(5));
    let _ = c.kill();
    let _ = c.wait();
    lab.client.run(&["ip", "addr", "flush", "dev", "cli0"]);

    // Restart: another MAC must not get A's address; A gets it back.
    drop(d);
    let d2 = start(&lab.server, &ini, &dir, "2");
    set_mac(&lab.client, "02:00:00:00:aa:02");
    let b = udhcpc_once(&lab.client, &dir, "b").expect("B gets an address");
    assert_ne!(b, pool_first, "A's lease survived the restart");
    lab.client.run(&["ip", "addr", "flush", "dev", "cli0"]);
    set_mac(&lab.client, "02:00:00:00:aa:01");
    let a = udhcpc_once(&lab.client, &dir, "a").expect("A gets an address");
    assert_eq!(a, pool_first, "sticky across the restart");
    let log = d2.log_text();
    assert!(log.contains("02-00-00-00-AA-01"), "{log}");
}

#[test]
fn dhclient_gets_an_address_and_keeps_it_across_a_restart() {
    if !require_root("dhclient_gets_an_address_and_keeps_it_across_a_restart") {
        return;
    }
    need_program("dhclient");
    let lab = Lab::new(false);
    decoy_default_route(&lab.server);
    let dir = Scratch::new("dhcpns");
    let ini = ini(lab.net, &dir, "");
    set_mac(&lab.client, "02:00:00:00:bb:01");
    let d = start(&lab.server, &ini, &dir, "1");
    let out = dir.path.join("dhclient.out");
    let script = dir.write(
        "dhclient.sh",
        format!(
            "#!/bin/sh\necho \"$reason $new_ip_address\" >> {}\nexit 0\n",
            out.display()
        )
        .as_bytes(),
    );
    sh(Command::new("chmod").arg("+x").arg(&script));
    let run = || {
        let o = lab
            .client
            .cmd("timeout")
            .args(["30", "dhclient", "-1", "-v", "-lf"])
            .arg(dir.path.join("dhclient.leases"))
            .arg("-pf")
            .arg(dir.path.join("dhclient.pid"))
            .arg("-sf")
            .arg(&script)
            .arg("cli0")
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stderr).into_owned()
    };
    let first = run();
    let ip = format!("10.{}.0.100", lab.net);
    assert!(first.contains(&format!("DHCPACK of {ip}")), "{first}");
    wait_file(&out, &format!("BOUND {ip}"), Duration::from_secs(2));
    // Restart; a different MAC asks first; dhclient (INIT-REBOOT from its
    // lease file) gets its address confirmed.
    drop(d);
    let mut d2 = start(&lab.server, &ini, &dir, "2");
    set_mac(&lab.client, "02:00:00:00:bb:02");
    let other = udhcpc_once(&lab.client, &dir, "other").expect("another MAC is served");
    assert_ne!(other, ip);
    lab.client.run(&["ip", "addr", "flush", "dev", "cli0"]);
    set_mac(&lab.client, "02:00:00:00:bb:01");
    let second = run();
    assert!(second.contains(&format!("DHCPACK of {ip}")), "{second}");
    wait_file(&out, &format!("REBOOT {ip}"), Duration::from_secs(2));
    d2.wait_log("ACK (init-reboot)", Duration::from_secs(2));
}

#[test]
fn mac_denied_client_gets_nothing() {
    if !require_root("mac_denied_client_gets_nothing") {
        return;
    }
    let lab = Lab::new(false);
    let dir = Scratch::new("dhcpns");
    let ini = ini(
        lab.net,
        &dir,
        "access = mac\n[mac]\n02-00-00-00-CC-01 = no\n02-00-00-00-CC/40 = yes\n",
    );
    let mut d = start(&lab.server, &ini, &dir, "1");
    set_mac(&lab.client, "02:00:00:00:cc:01");
    assert_eq!(udhcpc_once(&lab.client, &dir, "denied"), None);
    d.wait_log(
        "02-00-00-00-CC-01 is denied by [mac]",
        Duration::from_secs(2),
    );
    // The rule list can say yes too: a MAC under the /40 mask is served.
    set_mac(&lab.client, "02:00:00:00:cc:02");
    assert!(udhcpc_once(&lab.client, &dir, "allowed").is_some());
}

#[test]
fn two_client_namespaces_on_a_bridge_get_distinct_addresses() {
    if !require_root("two_client_namespaces_on_a_bridge_get_distinct_addresses") {
        return;
    }
    let lab = Lab::new(false);
    let s = &lab.server;
    // Bridge srv0 and a second veth in the server namespace; the server
    // address moves to the bridge.
    let second = Netns::new("pbc");
    let (a, b) = (common::unique("vc"), common::unique("vd"));
    sh(Command::new("ip").args(["link", "add", &a, "type", "veth", "peer", "name", &b]));
    sh(Command::new("ip").args(["link", "set", &a, "netns", &s.name]));
    sh(Command::new("ip").args(["link", "set", &b, "netns", &second.name]));
    s.run(&["ip", "link", "set", &a, "name", "srv1"]);
    second.run(&["ip", "link", "set", &b, "name", "cli0"]);
    second.run(&["ip", "link", "set", "cli0", "up"]);
    s.run(&["ip", "link", "add", "br0", "type", "bridge"]);
    s.run(&[
        "ip",
        "addr",
        "del",
        &format!("10.{}.0.1/24", lab.net),
        "dev",
        "srv0",
    ]);
    for port in ["srv0", "srv1"] {
        s.run(&["ip", "link", "set", port, "master", "br0"]);
        s.run(&["ip", "link", "set", port, "up"]);
    }
    s.run(&["ip", "link", "set", "br0", "up"]);
    s.run(&[
        "ip",
        "addr",
        "add",
        &format!("10.{}.0.1/24", lab.net),
        "dev",
        "br0",
    ]);
    let dir = Scratch::new("dhcpns");
    let ini = ini(lab.net, &dir, "");
    let mut d = start(s, &ini, &dir, "1");
    d.wait_log("br0", Duration::from_secs(2));
    let (ip1, ip2) = std::thread::scope(|sc| {
        let h1 = sc.spawn(|| udhcpc_once(&lab.client, &dir, "one"));
        let h2 = sc.spawn(|| udhcpc_once(&second, &dir, "two"));
        (h1.join().unwrap(), h2.join().unwrap())
    });
    let (ip1, ip2) = (ip1.expect("first client"), ip2.expect("second client"));
    assert_ne!(ip1, ip2);
    for ip in [&ip1, &ip2] {
        assert!(
            ip.starts_with(&format!("10.{}.0.1", lab.net)),
            "{ip} not in the pool"
        );
    }
}

#[test]
fn relayed_discover_is_answered_to_giaddr_port_67() {
    if !require_root("relayed_discover_is_answered_to_giaddr_port_67") {
        return;
    }
    need_program("python3");
    let lab = Lab::new(true);
    let dir = Scratch::new("dhcpns");
    let ini = ini(lab.net, &dir, "");
    let mut d = start(&lab.server, &ini, &dir, "1");
    // A relay agent at 10.N.0.2 (port 67) forwarding a DISCOVER.
    let relay = format!(
        r#"
import socket, struct, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("{gi}", 67))
s.settimeout(5)
mac = bytes([2, 0, 0, 0, 0xdd, 1])
hdr = struct.pack("!BBBBIHH4s4s4s4s16s64s128s", 1, 1, 6, 1, 0x5eed, 0, 0,
                  bytes(4), bytes(4), bytes(4), socket.inet_aton("{gi}"),
                  mac + bytes(10), bytes(64), bytes(128))
opts = bytes([99, 130, 83, 99, 53, 1, 1, 255])
s.sendto(hdr + opts + bytes(300 - len(hdr) - len(opts)), ("{srv}", 67))
data, addr = s.recvfrom(2048)
xid, = struct.unpack("!I", data[4:8])
print("reply", hex(xid), socket.inet_ntoa(data[16:20]), socket.inet_ntoa(data[24:28]), addr[1])
"#,
        gi = lab.client_ip(),
        srv = lab.server_ip()
    );
    let path = dir.write("relay.py", relay.as_bytes());
    let out = lab.client.cmd("python3").arg(&path).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!(
            "reply 0x5eed 10.{}.0.100 {} 67",
            lab.net,
            lab.client_ip()
        )),
        "stdout: {text}\nstderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    d.wait_log("OFFER", Duration::from_secs(2));
}

#[test]
fn udhcpc_declines_an_address_in_use_and_gets_the_next() {
    if !require_root("udhcpc_declines_an_address_in_use_and_gets_the_next") {
        return;
    }
    let lab = Lab::new(false);
    // Someone already uses the first pool address: the server namespace
    // answers ARP for it.
    let taken = format!("10.{}.0.100", lab.net);
    lab.server
        .run(&["ip", "addr", "add", &format!("{taken}/32"), "dev", "srv0"]);
    let dir = Scratch::new("dhcpns");
    let ini = ini(lab.net, &dir, "");
    let mut d = start(&lab.server, &ini, &dir, "1");
    let (script, out) = udhcpc_script(&dir, "arp");
    let _ = lab
        .client
        .cmd("timeout")
        .args([
            "30", "busybox", "udhcpc", "-i", "cli0", "-n", "-q", "-f", "-a", "-t", "6", "-T", "1",
            "-s",
        ])
        .arg(&script)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    let text = std::fs::read_to_string(&out).unwrap_or_default();
    let bound = text
        .lines()
        .find_map(|l| l.strip_prefix("bound "))
        .unwrap_or_else(|| panic!("no lease: {text}\n{}", d.log_text()));
    assert_ne!(bound, taken, "the declined address is skipped");
    d.wait_log("is in use on the network", Duration::from_secs(2));
    let journal = std::fs::read_to_string(dir.path.join("leases.jsonl")).unwrap();
    assert!(
        journal.contains(&format!("\"ip\":\"{taken}\",\"expires\""))
            && journal.contains("declined"),
        "{journal}"
    );
}

/// Sends each hex datagram from 0.0.0.0:68 to 255.255.255.255:67 out of
/// cli0 (no address, as firmware) and prints each reply as hex.
const PXE_CLIENT: &str = r#"
import binascii, socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, b"cli0")
s.bind(("0.0.0.0", 68))
s.settimeout(5)
for h in sys.argv[1:]:
    s.sendto(binascii.unhexlify(h), ("255.255.255.255", 67))
    data, addr = s.recvfrom(4096)
    print(binascii.hexlify(data).decode(), flush=True)
"#;

#[test]
fn ipxe_and_edk2_get_pxe_offers_and_acks_by_broadcast() {
    use dhcp_support::{edk2_discover, ipxe_discover, selecting, UUID97};
    use pybootd::wire::dhcp::{opt, Packet};
    use std::net::Ipv4Addr;
    if !require_root("ipxe_and_edk2_get_pxe_offers_and_acks_by_broadcast") {
        return;
    }
    need_program("python3");
    let lab = Lab::new(false);
    decoy_default_route(&lab.server);
    let dir = Scratch::new("dhcpns");
    dir.write("root/pxelinux.0", &[0u8; 26_000]);
    dir.write("root/efi/grubx64.efi", &[0u8; 1024]);
    let extra = format!(
        "[tftp]\nroot = {}/root\n[bootfile]\ndefault = pxelinux.0\n00007 = efi/grubx64.efi\n",
        dir.path.display()
    );
    // PXE only: plain clients are not served.
    let ini = ini_with(lab.net, &dir, &extra, false);
    let mut d = start(&lab.server, &ini, &dir, "1");
    let script = dir.write("pxe.py", PXE_CLIENT.as_bytes());
    let server = Ipv4Addr::new(10, lab.net, 0, 1);
    let hex = |p: &Packet| {
        let mut b = Vec::new();
        p.emit(&mut b);
        b.iter().map(|x| format!("{x:02x}")).collect::<String>()
    };
    for (n, (disc, file, blocks)) in [
        (
            ipxe_discover([0x52, 0x54, 0, 0xe2, 0xe0, 1], 0x1001),
            "pxelinux.0",
            51u16,
        ),
        (
            edk2_discover([0x52, 0x54, 0, 0xe2, 0xe0, 2], 0x1002),
            "efi/grubx64.efi",
            2,
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let ip = Ipv4Addr::new(10, lab.net, 0, 100 + n as u8);
        let req = selecting(&disc, ip, server);
        let out = lab
            .client
            .cmd("python3")
            .arg(&script)
            .arg(hex(&disc))
            .arg(hex(&req))
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let replies: Vec<Packet> = text
            .lines()
            .map(|l| Packet::parse(&dhcp_support::unhex(l)).unwrap())
            .collect();
        assert_eq!(
            replies.len(),
            2,
            "{text}\n{}\n{}",
            String::from_utf8_lossy(&out.stderr),
            d.log_text()
        );
        for (r, kind) in replies.iter().zip([2u8, 5]) {
            assert_eq!(r.option(opt::MESSAGE_TYPE), Some(&[kind][..]));
            assert_eq!(r.yiaddr, ip);
            assert_eq!(r.siaddr, server);
            assert_eq!(r.file, file.as_bytes());
            assert_eq!(r.option(opt::BOOT_FILE), Some(file.as_bytes()));
            assert_eq!(r.option(opt::VENDOR_CLASS), Some(&b"PXEClient"[..]));
            assert_eq!(
                r.option(opt::TFTP_SERVER),
                Some(server.to_string().as_bytes())
            );
            assert_eq!(r.option(opt::CLIENT_UUID), Some(&UUID97[..]));
            assert_eq!(
                r.option(opt::BOOT_FILE_SIZE),
                Some(&blocks.to_be_bytes()[..])
            );
            assert!(r.option(opt::VENDOR_SPECIFIC).is_some());
        }
    }
    d.wait_log("ACK (selecting, PXE)", Duration::from_secs(1));
}

/// ISC dhclient in its RENEWING state: bound with a 60 s lease, it renews
/// at T1 (30 s) by a REQUEST unicast from its address to the server, and
/// keeps the address (its script sees RENEW with the same address).
#[test]
fn dhclient_renews_its_lease_at_t1() {
    if !require_root("dhclient_renews_its_lease_at_t1") {
        return;
    }
    need_program("dhclient");
    let lab = Lab::new(false);
    let dir = Scratch::new("dhcpns");
    let ini = ini(lab.net, &dir, "lease_time = 60\n");
    set_mac(&lab.client, "02:00:00:00:bb:11");
    let d = start(&lab.server, &ini, &dir, "renew");
    let out = dir.path.join("dhclient.out");
    // The script configures the address, as a real system's does: the
    // renewal is sent from it.
    let script = dir.write(
        "dhclient.sh",
        format!(
            "#!/bin/sh\necho \"$reason $new_ip_address\" >> {}\n\
             case \"$reason\" in BOUND|RENEW|REBOOT) ip addr replace $new_ip_address/24 dev $interface ;; esac\nexit 0\n",
            out.display()
        )
        .as_bytes(),
    );
    sh(Command::new("chmod").arg("+x").arg(&script));
    let mut client = lab
        .client
        .cmd("timeout")
        .args(["70", "dhclient", "-d", "-v", "-lf"])
        .arg(dir.path.join("dhclient.leases"))
        .arg("-pf")
        .arg(dir.path.join("dhclient.pid"))
        .arg("-sf")
        .arg(&script)
        .arg("cli0")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let ip = format!("10.{}.0.100", lab.net);
    let bound = wait_file(&out, &format!("BOUND {ip}"), Duration::from_secs(15));
    assert!(!bound.contains("RENEW"), "{bound}");
    let renewed = wait_file(&out, &format!("RENEW {ip}"), Duration::from_secs(50));
    let _ = client.kill();
    let _ = client.wait();
    assert!(
        renewed
            .lines()
            .all(|l| l.ends_with(&ip) || l.starts_with("PREINIT")),
        "{renewed}"
    );
    let log = d.log_text();
    assert!(
        log.lines()
            .any(|l| l.contains("ACK (renewing)") && l.contains(&ip)),
        "no renewing ACK for {ip} in the daemon log:\n{log}"
    );
}
