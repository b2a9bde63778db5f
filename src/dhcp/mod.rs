//! BOOTP/DHCP/PXE decisions, pure: a parsed request, the lease table and
//! the time in; a reply (or silence, with the reason) out. `server.rs`
//! owns the socket loop, the journal and the HTTP ACL calls.
//!
//! One entry point, [`Engine::decide`]. When the HTTP ACL must be asked,
//! it returns [`Decision::check`] and the server calls it again with the
//! answer; nothing here waits.

pub mod server;

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::Arc;

use crate::acl;
use crate::config::{Access, Config};
use crate::leases::{LeaseTable, Record};
use crate::netif::ServerNet;
use crate::wire::dhcp::{opt, MessageType, Packet, BOOTREPLY, BOOTREQUEST, FLAG_BROADCAST};
use crate::wire::{MacAddr, Uuid};

/// The boot phase of one MAC (upstream's idle -> PXE -> DHCP): the HTTP
/// ACL is asked again when it changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Phase {
    #[default]
    Idle,
    /// The firmware's PXE client (vendor class `PXEClient...`).
    Pxe,
    /// The booted OS's (or any plain) DHCP client.
    Dhcp,
}

/// What the HTTP ACL server said.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HttpAnswer {
    /// 200: served; the body's `Client:` and `File:` lines.
    Granted {
        client: Option<String>,
        file: Option<String>,
    },
    /// 401, any other status, an error or no answer in time.
    Denied(String),
}

/// A query for the HTTP ACL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpQuery {
    pub mac: MacAddr,
    /// `location` + `pxe`/`dhcp` path + `?mac=..&uuid=..&ip=..`.
    pub url: String,
}

/// Where a reply goes (RFC 2131 4.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dest {
    /// The relay agent (`giaddr`), port 67.
    Relay(Ipv4Addr),
    /// The client's address (renewing, INFORM), port 68.
    Unicast(Ipv4Addr),
    /// 255.255.255.255:68 out of the serving interface.
    Broadcast,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    pub packet: Packet,
    pub dest: Dest,
    /// The most the client accepts (option 57 less IP/UDP headers).
    pub max_len: usize,
}

/// The result of one request.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Decision {
    /// What the request was, for the log (`DISCOVER`, `BOOTP`, ...).
    pub kind: &'static str,
    pub mac: Option<MacAddr>,
    pub xid: u32,
    pub ip: Option<Ipv4Addr>,
    /// Why: the log line's message.
    pub why: String,
    pub reply: Option<Reply>,
    /// Journal records; when `reply` is set too, they must be durable
    /// before it leaves.
    pub journal: Vec<Record>,
    /// `notify` datagram text.
    pub notice: Option<String>,
    /// Ask the HTTP ACL, then call `decide` again with its answer.
    pub check: Option<HttpQuery>,
    /// The HTTP ACL's `File:` for the client just ACKed, by its address
    /// (for the log; TFTP asks [`Engine::client_file`] through
    /// `DhcpServer::client_files`).
    pub client_file: Option<(Ipv4Addr, String)>,
}

impl Decision {
    fn silent(mut self, why: impl Into<String>) -> Decision {
        self.why = why.into();
        self.reply = None;
        self
    }
}

/// Per-MAC memory besides the lease.
#[derive(Clone, Debug, Default)]
struct Client {
    phase: Phase,
    uuid: Option<Uuid>,
    /// From the HTTP ACL's `Client:` line (option 12).
    host_name: Option<String>,
    /// From the HTTP ACL's `File:` line.
    file: Option<String>,
}

/// The most MACs remembered for phases (a flood of random MACs must not
/// grow memory without bound); past it the memory is cleared.
const MAX_CLIENTS: usize = 1 << 16;

/// Codes kept when a reply must shrink to the client's option 57.
pub const ESSENTIAL: &[u8] = &[
    opt::MESSAGE_TYPE,
    opt::SERVER_ID,
    opt::LEASE_TIME,
    opt::SUBNET_MASK,
    opt::ROUTER,
    opt::VENDOR_CLASS,
    opt::TFTP_SERVER,
    opt::BOOT_FILE,
    opt::CLIENT_UUID,
    opt::BOOT_FILE_SIZE,
    opt::MESSAGE,
];

/// The decision state: settings, leases, per-MAC phases, boot file sizes.
pub struct Engine {
    config: Arc<Config>,
    server_ip: Ipv4Addr,
    netmask: Ipv4Addr,
    router: Ipv4Addr,
    dns: Vec<Ipv4Addr>,
    /// siaddr and option 66: the TFTP server.
    tftp_ip: Ipv4Addr,
    sname: String,
    pub leases: LeaseTable,
    clients: HashMap<MacAddr, Client>,
    file_sizes: HashMap<String, u64>,
}

/// `true` for a firmware PXE client (vendor class `PXEClient...`).
pub fn is_pxe(p: &Packet) -> bool {
    p.option(opt::VENDOR_CLASS)
        .is_some_and(|v| v.starts_with(b"PXEClient"))
}

/// Option 13's value: the size in 512-byte blocks, rounded up.
pub fn size_blocks(size: u64) -> u16 {
    u16::try_from(size.div_ceil(512)).unwrap_or(u16::MAX)
}

impl Engine {
    /// `dns` is the resolved server list (`dns = auto` read by the caller).
    pub fn new(config: Arc<Config>, net: &ServerNet, dns: Vec<Ipv4Addr>) -> Result<Engine, String> {
        let b = config
            .bootp
            .as_ref()
            .ok_or("no [bootp] section: the DHCP service needs pool_start")?;
        let leases = LeaseTable::new(
            b.pool_start,
            b.pool_count,
            &config.static_dhcp,
            vec![net.ip],
        );
        let tftp_ip = config
            .tftp
            .address
            .filter(|a| !a.is_unspecified())
            .unwrap_or(net.ip);
        Ok(Engine {
            server_ip: net.ip,
            netmask: b.netmask.unwrap_or(net.netmask),
            router: b.gateway.unwrap_or(net.ip),
            dns,
            tftp_ip,
            sname: format!("{}.{}", b.servername, b.domain),
            leases,
            clients: HashMap::new(),
            file_sizes: HashMap::new(),
            config,
        })
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn server_ip(&self) -> Ipv4Addr {
        self.server_ip
    }

    /// Records a boot file's size (or forgets it), as the server's
    /// background lookup finds it.
    pub fn set_file_size(&mut self, name: &str, size: Option<u64>) {
        match size {
            Some(s) => self.file_sizes.insert(name.to_string(), s),
            None => self.file_sizes.remove(name),
        };
    }

    pub fn file_size(&self, name: &str) -> Option<u64> {
        self.file_sizes.get(name).copied()
    }

    /// The file the HTTP ACL named for the client holding `ip` (the TFTP
    /// `{client_file}` variable).
    pub fn client_file(&self, ip: Ipv4Addr) -> Option<&str> {
        let mac = self.leases.owner(ip)?;
        self.clients.get(&mac)?.file.as_deref()
    }

    pub fn phase(&self, mac: &MacAddr) -> Phase {
        self.clients.get(mac).map(|c| c.phase).unwrap_or_default()
    }

    fn bootp(&self) -> &crate::config::BootpConfig {
        self.config.bootp.as_ref().expect("checked in Engine::new")
    }

    /// Decides what to do with one request at `now` (unix seconds).
    /// `http` is the HTTP ACL's answer when the previous call asked for it.
    pub fn decide(&mut self, p: &Packet, now: u64, http: Option<&HttpAnswer>) -> Decision {
        let mut d = Decision {
            xid: p.xid,
            ..Decision::default()
        };
        let msg = p.message_type();
        d.kind = msg.map_or("BOOTP", |m| m.name());
        if p.op != BOOTREQUEST {
            return d.silent("not a BOOTREQUEST");
        }
        let Some(mac) = p.mac() else {
            return d.silent(format!(
                "hardware type {} length {} is not Ethernet",
                p.htype, p.hlen
            ));
        };
        d.mac = Some(mac);
        match msg {
            None
            | Some(MessageType::Discover)
            | Some(MessageType::Request)
            | Some(MessageType::Decline)
            | Some(MessageType::Release)
            | Some(MessageType::Inform) => {}
            Some(m) => return d.silent(format!("{m} is not a client message")),
        }
        let pxe = is_pxe(p);
        if self.clients.len() >= MAX_CLIENTS && !self.clients.contains_key(&mac) {
            self.clients.clear();
        }
        let client = self.clients.entry(mac).or_default();
        if pxe {
            if let Some(u) = p.uuid() {
                client.uuid = Some(u);
            }
        }
        let uuid = if pxe { p.uuid() } else { client.uuid };
        let current = client.phase;
        let allow_simple = self.bootp().allow_simple_dhcp;
        let new = if pxe {
            Phase::Pxe
        } else {
            // A MAC with a bound lease was served before (a booted OS
            // renewing after a daemon restart, which forgets phases).
            let known = self
                .leases
                .get(&mac)
                .is_some_and(|l| l.state == crate::leases::LeaseState::Bound);
            match current {
                Phase::Pxe if msg == Some(MessageType::Request) => Phase::Dhcp,
                Phase::Idle if allow_simple || known => Phase::Dhcp,
                other => other,
            }
        };
        if new == Phase::Idle {
            return d.silent("plain DHCP/BOOTP client ignored (allow_simple_dhcp is off)");
        }

        // Local access control.
        if let Err(why) = self.local_acl(&mac, uuid.as_ref()) {
            return d.silent(why);
        }
        let no_reply = matches!(msg, Some(MessageType::Release) | Some(MessageType::Decline));
        // The HTTP ACL, asked on a phase change or always.
        if self.bootp().access == Access::Http && !no_reply {
            let acl = self
                .config
                .http_acl
                .as_ref()
                .expect("validated with access");
            match http {
                None if acl.always_check || current != new => {
                    let ip = if pxe {
                        None
                    } else {
                        self.leases.get(&mac).map(|l| l.ip)
                    };
                    let path = if pxe { &acl.pxe } else { &acl.dhcp };
                    let mut url = format!("{}{}?mac={mac}", acl.location, path);
                    if let Some(u) = uuid {
                        url.push_str(&format!("&uuid={}", u.to_string().to_uppercase()));
                    }
                    if let Some(ip) = ip {
                        url.push_str(&format!("&ip={ip}"));
                    }
                    d.check = Some(HttpQuery { mac, url });
                    return d.silent("asking the HTTP ACL");
                }
                None => {}
                Some(HttpAnswer::Denied(why)) => {
                    if let Some(c) = self.clients.get_mut(&mac) {
                        c.phase = Phase::Idle;
                    }
                    return d.silent(format!("HTTP ACL denied: {why}"));
                }
                Some(HttpAnswer::Granted { client, file }) => {
                    let c = self.clients.entry(mac).or_default();
                    if client.is_some() {
                        c.host_name.clone_from(client);
                    }
                    if file.is_some() {
                        c.file.clone_from(file);
                    }
                }
            }
        }

        // The boot file of a PXE client, by architecture.
        let arch = p.client_arch();
        let boot_file = self.config.boot_file_for(arch).map(str::to_string);
        if pxe && boot_file.is_none() && !no_reply {
            return d.silent(format!(
                "PXE client arch {} has no [bootfile] entry and there is no default",
                arch.map_or("(none)".to_string(), |a| format!("{a:05}"))
            ));
        }
        if !no_reply {
            self.clients.entry(mac).or_default().phase = new;
        }
        let ctx = Ctx {
            mac,
            pxe,
            uuid,
            boot_file,
        };
        match msg {
            Some(MessageType::Discover) => self.discover(d, p, &ctx, now),
            Some(MessageType::Request) => self.request(d, p, &ctx, now),
            Some(MessageType::Decline) => self.decline(d, p, &ctx, now),
            Some(MessageType::Release) => self.release(d, p, &ctx, now),
            Some(MessageType::Inform) => self.inform(d, p, &ctx),
            None => self.bootp_request(d, p, &ctx, now),
            Some(_) => unreachable!("filtered above"),
        }
    }

    /// `[mac]` / `[uuid]` rules, when `access` names them.
    fn local_acl(&self, mac: &MacAddr, uuid: Option<&Uuid>) -> Result<(), String> {
        match self.bootp().access {
            Access::Mac => match acl::verdict(&self.config.mac_rules, &mac.0) {
                Some(true) => Ok(()),
                Some(false) => Err(format!("{mac} is denied by [mac]")),
                None if self.leases.static_for(mac).is_some() => Ok(()),
                None => Err(format!("{mac} is not in [mac]")),
            },
            Access::Uuid => {
                let Some(u) = uuid else {
                    return Err("no UUID known for this client (access = uuid)".into());
                };
                match acl::verdict(&self.config.uuid_rules, &u.0) {
                    Some(true) => Ok(()),
                    Some(false) => Err(format!("UUID {u} is denied by [uuid]")),
                    None => Err(format!("UUID {u} is not in [uuid]")),
                }
            }
            // [mac] denials still hold for [static_dhcp] MACs.
            Access::None | Access::Http => match acl::verdict(&self.config.mac_rules, &mac.0) {
                Some(false) => Err(format!("{mac} is denied by [mac]")),
                _ => Ok(()),
            },
        }
    }

    fn is_buggy(&self, mac: &MacAddr) -> bool {
        self.config.buggy_clients.iter().any(|m| m.matches_mac(mac))
    }

    /// The reply skeleton: BOOTREPLY echoing xid, flags, giaddr, chaddr.
    fn base_reply(&self, p: &Packet, ctx: &Ctx) -> Packet {
        let mut r = Packet {
            op: BOOTREPLY,
            htype: p.htype,
            hlen: p.hlen,
            hops: 0,
            xid: p.xid,
            secs: 0,
            flags: p.flags,
            giaddr: p.giaddr,
            chaddr: p.chaddr,
            siaddr: self.tftp_ip,
            sname: self.sname.clone().into_bytes(),
            ..Packet::default()
        };
        if let Some(f) = &ctx.boot_file {
            r.file = f.clone().into_bytes();
        }
        r
    }

    /// Options common to OFFER/ACK (and BOOTP replies, without 53/54/51).
    fn fill_options(&self, r: &mut Packet, p: &Packet, ctx: &Ctx, kind: Option<u8>, lease: bool) {
        let lease_time = self.bootp().lease_time;
        if let Some(k) = kind {
            r.set_option(opt::MESSAGE_TYPE, [k]);
            r.set_option(opt::SERVER_ID, self.server_ip.octets());
            if lease {
                r.set_option(opt::LEASE_TIME, lease_time.to_be_bytes());
                r.set_option(opt::RENEWAL_TIME, (lease_time / 2).to_be_bytes());
                r.set_option(opt::REBINDING_TIME, (lease_time / 8 * 7).to_be_bytes());
            }
        }
        r.set_option(opt::SUBNET_MASK, self.netmask.octets());
        r.set_option(opt::ROUTER, self.router.octets());
        if !self.dns.is_empty() {
            let v: Vec<u8> = self.dns.iter().flat_map(|i| i.octets()).collect();
            r.set_option(opt::DNS, v);
        }
        if let Some(name) = self
            .clients
            .get(&ctx.mac)
            .and_then(|c| c.host_name.as_ref())
        {
            r.set_option(opt::HOST_NAME, name.as_bytes());
        }
        if ctx.pxe {
            r.set_option(opt::VENDOR_CLASS, &b"PXEClient"[..]);
            r.set_option(opt::TFTP_SERVER, self.tftp_ip.to_string().into_bytes());
            if let Some(f) = &ctx.boot_file {
                r.set_option(opt::BOOT_FILE, f.as_bytes());
                // Sent whether asked or not: iPXE never asks for 13, EDK2
                // does and then skips its tsize probe.
                if let Some(size) = self.file_size(f) {
                    r.set_option(opt::BOOT_FILE_SIZE, size_blocks(size).to_be_bytes());
                }
            }
            if let Some(u) = p.option(opt::CLIENT_UUID) {
                // Echoed as it came (SMBIOS byte order).
                r.set_option(opt::CLIENT_UUID, u);
            }
            // PXE vendor options: discovery control 8 = "boot the file
            // named in this reply", no boot server discovery; then End.
            r.set_option(opt::VENDOR_SPECIFIC, [6u8, 1, 8, 255]);
        }
        if let Some(v) = p.option(opt::RELAY_AGENT) {
            // RFC 3046: echo the relay agent information.
            r.set_option(opt::RELAY_AGENT, v);
        }
    }

    fn reply(&self, r: Packet, p: &Packet, ctx: &Ctx) -> Reply {
        let dest = if !p.giaddr.is_unspecified() {
            Dest::Relay(p.giaddr)
        } else if !p.ciaddr.is_unspecified() && !self.is_buggy(&ctx.mac) {
            Dest::Unicast(p.ciaddr)
        } else {
            Dest::Broadcast
        };
        Reply {
            packet: r,
            dest,
            max_len: p
                .max_message_size()
                .unwrap_or(crate::wire::dhcp::MIN_MAX_MESSAGE)
                - 28,
        }
    }

    fn nak(&self, mut d: Decision, p: &Packet, why: String) -> Decision {
        let mut r = Packet {
            op: BOOTREPLY,
            htype: p.htype,
            hlen: p.hlen,
            xid: p.xid,
            giaddr: p.giaddr,
            chaddr: p.chaddr,
            // RFC 2131 4.3.2: a relayed NAK asks the relay to broadcast.
            flags: if p.giaddr.is_unspecified() {
                p.flags
            } else {
                p.flags | FLAG_BROADCAST
            },
            ..Packet::default()
        };
        r.set_option(opt::MESSAGE_TYPE, [MessageType::Nak.to_u8()]);
        r.set_option(opt::SERVER_ID, self.server_ip.octets());
        r.set_option(opt::MESSAGE, why.as_bytes());
        d.reply = Some(Reply {
            packet: r,
            dest: if p.giaddr.is_unspecified() {
                Dest::Broadcast
            } else {
                Dest::Relay(p.giaddr)
            },
            max_len: crate::wire::dhcp::MIN_MAX_MESSAGE - 28,
        });
        d.why = format!("NAK: {why}");
        d
    }

    fn discover(&mut self, mut d: Decision, p: &Packet, ctx: &Ctx, now: u64) -> Decision {
        let ip = match self.leases.offer(ctx.mac, p.requested_ip(), now) {
            Ok(ip) => ip,
            Err(e) => return d.silent(format!("no offer: {e}")),
        };
        let mut r = self.base_reply(p, ctx);
        r.yiaddr = ip;
        self.fill_options(&mut r, p, ctx, Some(MessageType::Offer.to_u8()), true);
        d.ip = Some(ip);
        d.why = format!("OFFER{}", if ctx.pxe { " (PXE)" } else { "" });
        d.reply = Some(self.reply(r, p, ctx));
        d
    }

    fn ack(
        &mut self,
        mut d: Decision,
        p: &Packet,
        ctx: &Ctx,
        ip: Ipv4Addr,
        now: u64,
        state: &str,
    ) -> Decision {
        let lease_time = self.bootp().lease_time;
        match self.leases.bind(ctx.mac, ip, lease_time, now) {
            Err(why) => {
                d.ip = Some(ip);
                self.nak(d, p, why)
            }
            Ok(lease) => {
                let mut r = self.base_reply(p, ctx);
                r.yiaddr = ip;
                r.ciaddr = p.ciaddr;
                self.fill_options(&mut r, p, ctx, Some(MessageType::Ack.to_u8()), true);
                d.ip = Some(ip);
                d.why = format!("ACK ({state}{})", if ctx.pxe { ", PXE" } else { "" });
                d.journal.push(Record::Lease(lease));
                d.client_file = self
                    .clients
                    .get(&ctx.mac)
                    .and_then(|c| c.file.clone())
                    .map(|f| (ip, f));
                d.notice = Some(match (ctx.pxe, ctx.uuid) {
                    (true, Some(u)) => {
                        format!("BOOT,{},{},{ip}", u.to_string().to_uppercase(), ctx.mac)
                    }
                    (_, Some(u)) => {
                        format!("LEASE,{},{},{ip}", u.to_string().to_uppercase(), ctx.mac)
                    }
                    (_, None) => format!("LEASE,{},{ip}", ctx.mac),
                });
                d.reply = Some(self.reply(r, p, ctx));
                d
            }
        }
    }

    fn request(&mut self, d: Decision, p: &Packet, ctx: &Ctx, now: u64) -> Decision {
        let requested = p.requested_ip();
        if let Some(sid) = p.server_id() {
            // SELECTING.
            if sid != self.server_ip {
                self.leases.forget_offer(ctx.mac, now);
                return d.silent(format!("client chose server {sid}; our offer is forgotten"));
            }
            let Some(ip) = requested.or((!p.ciaddr.is_unspecified()).then_some(p.ciaddr)) else {
                return self.nak(d, p, "REQUEST names no address".into());
            };
            // The client must take what we offered (or hold).
            if let Some(l) = self.leases.get(&ctx.mac) {
                if l.ip != ip && self.leases.available_for(&ctx.mac, l.ip, now) {
                    let (mut d, offered) = (d, l.ip);
                    d.ip = Some(ip);
                    return self.nak(d, p, format!("{ip} was not offered ({offered} was)"));
                }
            }
            return self.ack(d, p, ctx, ip, now, "selecting");
        }
        if p.ciaddr.is_unspecified() {
            // INIT-REBOOT: the client asks for the address it remembers.
            let Some(ip) = requested else {
                return d.silent("REQUEST with no server id, no requested address, no ciaddr");
            };
            let relayed = !p.giaddr.is_unspecified();
            let net_mask = u32::from(self.netmask);
            let on_net = u32::from(ip) & net_mask == u32::from(self.server_ip) & net_mask;
            if !relayed && !on_net {
                let mut d = d;
                d.ip = Some(ip);
                return self.nak(d, p, format!("{ip} is not on this network"));
            }
            return self.ack(d, p, ctx, ip, now, "init-reboot");
        }
        // RENEWING (unicast) or REBINDING (broadcast): ciaddr is the lease.
        let ip = p.ciaddr;
        let state = if p.flags & FLAG_BROADCAST != 0 {
            "rebinding"
        } else {
            "renewing"
        };
        match self.leases.get(&ctx.mac) {
            Some(l) if l.ip != ip && self.leases.static_for(&ctx.mac).is_none() => {
                let (mut d, held) = (d, l.ip);
                d.ip = Some(ip);
                self.nak(d, p, format!("{ip} is not this client's lease ({held} is)"))
            }
            _ => self.ack(d, p, ctx, ip, now, state),
        }
    }

    fn decline(&mut self, mut d: Decision, p: &Packet, ctx: &Ctx, now: u64) -> Decision {
        if p.server_id().is_some_and(|s| s != self.server_ip) {
            return d.silent("DECLINE for another server");
        }
        let Some(ip) = p.requested_ip() else {
            return d.silent("DECLINE names no address (option 50)");
        };
        d.ip = Some(ip);
        let until = now + u64::from(self.bootp().lease_time);
        match self.leases.decline(ctx.mac, ip, until) {
            Some(rec) => {
                d.journal.push(rec);
                d.silent(format!(
                    "{ip} is in use on the network: skipped until the lease time passes"
                ))
            }
            None => d.silent(format!(
                "DECLINE of {ip}, which this MAC does not hold: ignored"
            )),
        }
    }

    fn release(&mut self, mut d: Decision, p: &Packet, ctx: &Ctx, now: u64) -> Decision {
        if p.server_id().is_some_and(|s| s != self.server_ip) {
            return d.silent("RELEASE for another server");
        }
        let ip = p.ciaddr;
        d.ip = Some(ip);
        match self.leases.release(ctx.mac, ip, now) {
            Some(l) => {
                d.journal.push(Record::Lease(l));
                d.notice = Some(match ctx.uuid {
                    Some(u) => format!("RELEASE,{},{},{ip}", u.to_string().to_uppercase(), ctx.mac),
                    None => format!("RELEASE,{},{ip}", ctx.mac),
                });
                d.silent("released (the address stays this MAC's next time)")
            }
            None => d.silent(format!(
                "RELEASE of {ip}, which this MAC does not hold: ignored"
            )),
        }
    }

    fn inform(&mut self, mut d: Decision, p: &Packet, ctx: &Ctx) -> Decision {
        let mut r = self.base_reply(p, ctx);
        r.ciaddr = p.ciaddr;
        self.fill_options(&mut r, p, ctx, Some(MessageType::Ack.to_u8()), false);
        d.ip = Some(p.ciaddr);
        d.why = "ACK to INFORM (options only, no lease)".into();
        d.reply = Some(self.reply(r, p, ctx));
        d
    }

    /// RFC 951 BOOTP: address and boot file in one reply, bound at once.
    fn bootp_request(&mut self, mut d: Decision, p: &Packet, ctx: &Ctx, now: u64) -> Decision {
        let ip = if !p.ciaddr.is_unspecified() {
            p.ciaddr
        } else {
            match self.leases.offer(ctx.mac, None, now) {
                Ok(ip) => ip,
                Err(e) => return d.silent(format!("no address: {e}")),
            }
        };
        let lease_time = self.bootp().lease_time;
        let lease = match self.leases.bind(ctx.mac, ip, lease_time, now) {
            Ok(l) => l,
            Err(why) => return d.silent(format!("BOOTP client cannot have {ip}: {why}")),
        };
        let mut r = self.base_reply(p, ctx);
        r.yiaddr = if p.ciaddr.is_unspecified() {
            ip
        } else {
            Ipv4Addr::UNSPECIFIED
        };
        r.ciaddr = p.ciaddr;
        self.fill_options(&mut r, p, ctx, None, false);
        d.ip = Some(ip);
        d.why = "BOOTREPLY".into();
        d.journal.push(Record::Lease(lease));
        d.notice = Some(format!("LEASE,{},{ip}", ctx.mac));
        d.reply = Some(self.reply(r, p, ctx));
        d
    }
}

struct Ctx {
    mac: MacAddr,
    pxe: bool,
    uuid: Option<Uuid>,
    boot_file: Option<String>,
}
