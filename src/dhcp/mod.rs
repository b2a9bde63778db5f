//! BOOTP/DHCP/PXE decisions, pure: a parsed request, the lease table and
//! the time in; a typed [`Decision`] out (`outcome.rs`: a reply, silence
//! with its reason, or a question for the HTTP ACL, plus the effects).
//! `server.rs` owns the socket loop, the store and the HTTP ACL calls;
//! `sizes.rs` finds the boot files' sizes (option 13).
//!
//! One entry point, [`Engine::decide`]. When the HTTP ACL must be asked,
//! it returns [`Outcome::AskHttp`] and the server calls it again with the
//! answer; nothing here waits.

mod outcome;
pub mod server;
mod sizes;

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::Arc;

use crate::acl;
use crate::acl::http::{HttpAnswer, HttpQuery};
use crate::config::{Access, BootpConfig, Config, HttpAclConfig};
use crate::leases::{LeaseState, LeaseTable, Leases, Record};
use crate::netif::ServerNet;
use crate::wire::dhcp::{opt, MessageType, Packet, BOOTREPLY, BOOTREQUEST, FLAG_BROADCAST};
use crate::wire::{MacAddr, Uuid};

pub use outcome::{
    AckState, Answer, Decision, Denial, Dest, Effects, NakReason, Outcome, Reply, Silence,
};

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

/// Per-MAC memory besides the lease (the HTTP ACL's `File:` lives in the
/// lease table, where `Leases::client_file` finds it by address).
#[derive(Clone, Debug, Default)]
struct Client {
    phase: Phase,
    uuid: Option<Uuid>,
    /// From the HTTP ACL's `Client:` line (option 12).
    host_name: Option<String>,
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

/// The decision state: settings, the leases handle, per-MAC phases, boot
/// file sizes.
pub struct Engine {
    config: Arc<Config>,
    bootp: BootpConfig,
    /// `[http]`, when `access = http`.
    http_acl: Option<HttpAclConfig>,
    server_ip: Ipv4Addr,
    netmask: Ipv4Addr,
    router: Ipv4Addr,
    dns: Vec<Ipv4Addr>,
    /// siaddr and option 66: the TFTP server.
    tftp_ip: Ipv4Addr,
    sname: String,
    leases: Leases,
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

/// What the checks before a message's own handling learnt.
struct Ctx {
    mac: MacAddr,
    pxe: bool,
    uuid: Option<Uuid>,
    boot_file: Option<String>,
}

/// A handler's result: the address it is about, and the outcome.
type Handled = (Option<Ipv4Addr>, Outcome);

/// Why the checks before a message's handling stop it (never a reply).
enum Stop {
    Silent(Silence),
    Ask(HttpQuery),
}

impl From<Stop> for Outcome {
    fn from(s: Stop) -> Outcome {
        match s {
            Stop::Silent(s) => Outcome::Silent(s),
            Stop::Ask(q) => Outcome::AskHttp(q),
        }
    }
}

impl Engine {
    /// `bootp` is the config's `[bootp]` section; `dns` the resolved server
    /// list (`dns = auto` read by the caller); `leases` the shared table.
    pub fn new(
        config: Arc<Config>,
        bootp: BootpConfig,
        net: &ServerNet,
        dns: Vec<Ipv4Addr>,
        leases: Leases,
    ) -> Result<Engine, String> {
        let http_acl = match bootp.access {
            Access::Http => Some(
                config
                    .http_acl
                    .clone()
                    .ok_or("access = http needs an [http] section")?,
            ),
            _ => None,
        };
        let tftp_ip = config
            .tftp
            .address
            .filter(|a| !a.is_unspecified())
            .unwrap_or(net.ip);
        Ok(Engine {
            server_ip: net.ip,
            netmask: bootp.netmask.unwrap_or(net.netmask),
            router: bootp.gateway.unwrap_or(net.ip),
            dns,
            tftp_ip,
            sname: format!("{}.{}", bootp.servername, bootp.domain),
            http_acl,
            bootp,
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

    /// The lease table this engine decides over (shared).
    pub fn leases(&self) -> &Leases {
        &self.leases
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

    pub fn phase(&self, mac: &MacAddr) -> Phase {
        self.clients.get(mac).map(|c| c.phase).unwrap_or_default()
    }

    /// Decides what to do with one request at `now` (unix seconds).
    /// `http` is the HTTP ACL's answer when the previous call asked for it.
    /// `src` is the datagram's source address (a RELEASE must come from
    /// the address it releases). The lease table is locked for the whole
    /// decision (no I/O inside).
    pub fn decide(
        &mut self,
        p: &Packet,
        now: u64,
        http: Option<&HttpAnswer>,
        src: Ipv4Addr,
    ) -> Decision {
        let leases = self.leases.clone();
        leases.with(|t| self.decide_in(t, p, now, http, src))
    }

    fn decide_in(
        &mut self,
        t: &mut LeaseTable,
        p: &Packet,
        now: u64,
        http: Option<&HttpAnswer>,
        src: Ipv4Addr,
    ) -> Decision {
        let msg = p.message_type();
        let mut effects = Effects::default();
        let (ip, outcome) = match self.admit(t, p, msg, http) {
            Err(stop) => (None, stop.into()),
            Ok(ctx) => match msg {
                Some(MessageType::Discover) => self.discover(t, p, &ctx, now),
                Some(MessageType::Request) => self.request(t, p, &ctx, now, &mut effects),
                Some(MessageType::Decline) => self.decline(t, p, &ctx, now, &mut effects),
                Some(MessageType::Release) => self.release(t, p, &ctx, (now, src), &mut effects),
                Some(MessageType::Inform) => self.inform(p, &ctx),
                None => self.bootp_request(t, p, &ctx, now, &mut effects),
                // `admit` lets only client messages through.
                Some(m) => (None, Outcome::Silent(Silence::NotClientMessage(m))),
            },
        };
        Decision {
            kind: msg.map_or("BOOTP", |m| m.name()),
            mac: p.mac(),
            xid: p.xid,
            ip,
            outcome,
            effects,
        }
    }

    /// The checks every message passes before its own handling: a client
    /// message from Ethernet, the phase, the local ACL, the HTTP ACL, a
    /// boot file for a PXE client. `Err` is the outcome when one fails.
    fn admit(
        &mut self,
        t: &mut LeaseTable,
        p: &Packet,
        msg: Option<MessageType>,
        http: Option<&HttpAnswer>,
    ) -> Result<Ctx, Stop> {
        let silent = |s| Err(Stop::Silent(s));
        if p.op != BOOTREQUEST {
            return silent(Silence::NotRequest);
        }
        let Some(mac) = p.mac() else {
            return silent(Silence::NotEthernet {
                htype: p.htype,
                hlen: p.hlen,
            });
        };
        match msg {
            None
            | Some(MessageType::Discover)
            | Some(MessageType::Request)
            | Some(MessageType::Decline)
            | Some(MessageType::Release)
            | Some(MessageType::Inform) => {}
            Some(m) => return silent(Silence::NotClientMessage(m)),
        }
        let pxe = is_pxe(p);
        let (current, new, uuid) = self.phases(t, p, mac, msg, pxe);
        if new == Phase::Idle {
            return silent(Silence::SimpleDhcpOff);
        }
        self.local_acl(t, &mac, uuid.as_ref())
            .map_err(|d| Stop::Silent(Silence::Acl(d)))?;
        let no_reply = matches!(msg, Some(MessageType::Release) | Some(MessageType::Decline));
        if !no_reply {
            self.http_acl(t, mac, pxe, uuid, current != new, http)?;
        }
        // The boot file of a PXE client, by architecture.
        let arch = p.client_arch();
        let boot_file = self.config.boot_file_for(arch).map(str::to_string);
        if pxe && boot_file.is_none() && !no_reply {
            return silent(Silence::NoBootFile { arch });
        }
        if !no_reply {
            self.clients.entry(mac).or_default().phase = new;
        }
        Ok(Ctx {
            mac,
            pxe,
            uuid,
            boot_file,
        })
    }

    /// The MAC's current phase, the one this request moves it to, and its
    /// UUID (sent now by a PXE client, or remembered from its PXE phase).
    fn phases(
        &mut self,
        t: &LeaseTable,
        p: &Packet,
        mac: MacAddr,
        msg: Option<MessageType>,
        pxe: bool,
    ) -> (Phase, Phase, Option<Uuid>) {
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
        let new = if pxe {
            Phase::Pxe
        } else {
            // A MAC with a bound lease was served before (a booted OS
            // renewing after a daemon restart, which forgets phases).
            let known = t.get(&mac).is_some_and(|l| l.state == LeaseState::Bound);
            match current {
                Phase::Pxe if msg == Some(MessageType::Request) => Phase::Dhcp,
                Phase::Idle if self.bootp.allow_simple_dhcp || known => Phase::Dhcp,
                other => other,
            }
        };
        (current, new, uuid)
    }

    /// The HTTP ACL, asked on a phase change or always (`always_check`);
    /// `answer` is its answer when it was asked. `Err` is the outcome:
    /// ask, or silence when it said no.
    fn http_acl(
        &mut self,
        t: &mut LeaseTable,
        mac: MacAddr,
        pxe: bool,
        uuid: Option<Uuid>,
        phase_changes: bool,
        answer: Option<&HttpAnswer>,
    ) -> Result<(), Stop> {
        let Some(acl) = &self.http_acl else {
            return Ok(());
        };
        match answer {
            None if acl.always_check || phase_changes => {
                let ip = if pxe { None } else { t.get(&mac).map(|l| l.ip) };
                let path = if pxe { &acl.pxe } else { &acl.dhcp };
                let mut url = format!("{}{}?mac={mac}", acl.location, path);
                if let Some(u) = uuid {
                    url.push_str(&format!("&uuid={}", u.to_string().to_uppercase()));
                }
                if let Some(ip) = ip {
                    url.push_str(&format!("&ip={ip}"));
                }
                Err(Stop::Ask(HttpQuery { mac, url }))
            }
            None => Ok(()),
            Some(HttpAnswer::Denied(why)) => {
                if let Some(c) = self.clients.get_mut(&mac) {
                    c.phase = Phase::Idle;
                }
                Err(Stop::Silent(Silence::HttpDenied(why.clone())))
            }
            Some(HttpAnswer::Granted { client, file }) => {
                let c = self.clients.entry(mac).or_default();
                if client.is_some() {
                    c.host_name.clone_from(client);
                }
                if let Some(f) = file {
                    t.set_client_file(mac, f.clone());
                }
                Ok(())
            }
        }
    }

    /// `[mac]` / `[uuid]` rules, when `access` names them.
    fn local_acl(&self, t: &LeaseTable, mac: &MacAddr, uuid: Option<&Uuid>) -> Result<(), Denial> {
        match self.bootp.access {
            Access::Mac => match acl::verdict(&self.config.mac_rules, &mac.0) {
                Some(true) => Ok(()),
                Some(false) => Err(Denial::MacDenied(*mac)),
                None if t.static_for(mac).is_some() => Ok(()),
                None => Err(Denial::MacNotListed(*mac)),
            },
            Access::Uuid => {
                let Some(u) = uuid else {
                    return Err(Denial::NoUuid);
                };
                match acl::verdict(&self.config.uuid_rules, &u.0) {
                    Some(true) => Ok(()),
                    Some(false) => Err(Denial::UuidDenied(*u)),
                    None => Err(Denial::UuidNotListed(*u)),
                }
            }
            // [mac] denials still hold for [static_dhcp] MACs.
            Access::None | Access::Http => match acl::verdict(&self.config.mac_rules, &mac.0) {
                Some(false) => Err(Denial::MacDenied(*mac)),
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
        let lease_time = self.bootp.lease_time;
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
            self.fill_pxe_options(r, p, ctx);
        }
        if let Some(v) = p.option(opt::RELAY_AGENT) {
            // RFC 3046: echo the relay agent information.
            r.set_option(opt::RELAY_AGENT, v);
        }
    }

    /// A PXE client's options: 60, 66, 67 (and 13 when the size is
    /// known), 97 echoed, 43.
    fn fill_pxe_options(&self, r: &mut Packet, p: &Packet, ctx: &Ctx) {
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

    fn reply(&self, r: Packet, p: &Packet, ctx: &Ctx, answer: Answer) -> Outcome {
        let dest = if !p.giaddr.is_unspecified() {
            Dest::Relay(p.giaddr)
        } else if !p.ciaddr.is_unspecified() && !self.is_buggy(&ctx.mac) {
            Dest::Unicast(p.ciaddr)
        } else {
            Dest::Broadcast
        };
        Outcome::Reply(Reply {
            packet: r,
            dest,
            max_len: p
                .max_message_size()
                .unwrap_or(crate::wire::dhcp::MIN_MAX_MESSAGE)
                - 28,
            answer,
        })
    }

    fn nak(&self, p: &Packet, why: NakReason) -> Outcome {
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
        r.set_option(opt::MESSAGE, why.to_string().as_bytes());
        Outcome::Reply(Reply {
            packet: r,
            dest: if p.giaddr.is_unspecified() {
                Dest::Broadcast
            } else {
                Dest::Relay(p.giaddr)
            },
            max_len: crate::wire::dhcp::MIN_MAX_MESSAGE - 28,
            answer: Answer::Nak(why),
        })
    }

    fn discover(&mut self, t: &mut LeaseTable, p: &Packet, ctx: &Ctx, now: u64) -> Handled {
        let ip = match t.offer(ctx.mac, p.requested_ip(), now) {
            Ok(ip) => ip,
            Err(e) => return (None, Outcome::Silent(Silence::NoAddress(e))),
        };
        let mut r = self.base_reply(p, ctx);
        r.yiaddr = ip;
        self.fill_options(&mut r, p, ctx, Some(MessageType::Offer.to_u8()), true);
        let offer = Answer::Offer { pxe: ctx.pxe };
        (Some(ip), self.reply(r, p, ctx, offer))
    }

    #[allow(clippy::too_many_arguments)] // the request's parts, passed apart to keep borrows short
    fn ack(
        &mut self,
        t: &mut LeaseTable,
        p: &Packet,
        ctx: &Ctx,
        ip: Ipv4Addr,
        now: u64,
        state: AckState,
        fx: &mut Effects,
    ) -> Handled {
        let lease = match t.bind(ctx.mac, ip, self.bootp.lease_time, now) {
            Ok(lease) => lease,
            Err(why) => return (Some(ip), self.nak(p, NakReason::Bind(why))),
        };
        let mut r = self.base_reply(p, ctx);
        r.yiaddr = ip;
        r.ciaddr = p.ciaddr;
        self.fill_options(&mut r, p, ctx, Some(MessageType::Ack.to_u8()), true);
        fx.journal.push(Record::Lease(lease));
        t.set_client_id(ctx.mac, p.option(opt::CLIENT_ID));
        fx.client_file = t.client_file(ip).map(|f| (ip, f.to_string()));
        fx.notice = Some(match (ctx.pxe, ctx.uuid) {
            (true, Some(u)) => format!("BOOT,{},{},{ip}", u.to_string().to_uppercase(), ctx.mac),
            (_, Some(u)) => format!("LEASE,{},{},{ip}", u.to_string().to_uppercase(), ctx.mac),
            (_, None) => format!("LEASE,{},{ip}", ctx.mac),
        });
        let answer = Answer::Ack {
            state,
            pxe: ctx.pxe,
        };
        (Some(ip), self.reply(r, p, ctx, answer))
    }

    fn request(
        &mut self,
        t: &mut LeaseTable,
        p: &Packet,
        ctx: &Ctx,
        now: u64,
        fx: &mut Effects,
    ) -> Handled {
        let requested = p.requested_ip();
        if let Some(sid) = p.server_id() {
            // SELECTING.
            if sid != self.server_ip {
                t.forget_offer(ctx.mac, now);
                return (None, Outcome::Silent(Silence::OtherServer(sid)));
            }
            let Some(ip) = requested.or((!p.ciaddr.is_unspecified()).then_some(p.ciaddr)) else {
                return (None, self.nak(p, NakReason::NamesNoAddress));
            };
            // The client must take what we offered (or hold).
            if let Some(l) = t.get(&ctx.mac) {
                if l.ip != ip && t.available_for(&ctx.mac, l.ip, now) {
                    let offered = l.ip;
                    let why = NakReason::NotOffered {
                        requested: ip,
                        offered,
                    };
                    return (Some(ip), self.nak(p, why));
                }
            }
            t.take_offered(ctx.mac, ip, now);
            return self.ack(t, p, ctx, ip, now, AckState::Selecting, fx);
        }
        if p.ciaddr.is_unspecified() {
            // INIT-REBOOT: the client asks for the address it remembers.
            let Some(ip) = requested else {
                return (None, Outcome::Silent(Silence::RequestNamesNothing));
            };
            let relayed = !p.giaddr.is_unspecified();
            let net_mask = u32::from(self.netmask);
            let on_net = u32::from(ip) & net_mask == u32::from(self.server_ip) & net_mask;
            if !relayed && !on_net {
                return (Some(ip), self.nak(p, NakReason::OffNet(ip)));
            }
            // RFC 2131 4.3.2: "If the DHCP server has no record of this
            // client, then it MUST remain silent". Binding it instead let
            // made-up MACs take the pool without an offer.
            if !t.knows(&ctx.mac) {
                return (Some(ip), Outcome::Silent(Silence::UnknownClient(ip)));
            }
            return self.ack(t, p, ctx, ip, now, AckState::InitReboot, fx);
        }
        // RENEWING (unicast) or REBINDING (broadcast): ciaddr is the lease.
        let ip = p.ciaddr;
        let state = if p.flags & FLAG_BROADCAST != 0 {
            AckState::Rebinding
        } else {
            AckState::Renewing
        };
        match t.get(&ctx.mac) {
            Some(l) if l.ip != ip && t.static_for(&ctx.mac).is_none() => {
                let held = l.ip;
                (Some(ip), self.nak(p, NakReason::NotTheLease { ip, held }))
            }
            Some(_) => self.ack(t, p, ctx, ip, now, state, fx),
            None if t.static_for(&ctx.mac).is_some() => self.ack(t, p, ctx, ip, now, state, fx),
            // No lease here: one of our addresses is not this client's
            // (NAK: it starts over with a DISCOVER, which asks for the same
            // address in option 50); another server's address is not ours
            // to judge (a REBINDING client may be another server's).
            None if t.manages(ip) => (Some(ip), self.nak(p, NakReason::NoLease(ip))),
            None => (Some(ip), Outcome::Silent(Silence::NotOurAddress(ip))),
        }
    }

    fn decline(
        &mut self,
        t: &mut LeaseTable,
        p: &Packet,
        ctx: &Ctx,
        now: u64,
        fx: &mut Effects,
    ) -> Handled {
        if p.server_id().is_some_and(|s| s != self.server_ip) {
            return (None, Outcome::Silent(Silence::DeclineForOtherServer));
        }
        let Some(ip) = p.requested_ip() else {
            return (None, Outcome::Silent(Silence::DeclineNamesNoAddress));
        };
        if !same_client_id(t, p, &ctx.mac) {
            return (Some(ip), Outcome::Silent(Silence::ClientIdMismatch(ip)));
        }
        let until = now + u64::from(self.bootp.lease_time);
        match t.decline(ctx.mac, ip, until) {
            Some(rec) => {
                fx.journal.push(rec);
                (Some(ip), Outcome::Silent(Silence::Declined(ip)))
            }
            None => (Some(ip), Outcome::Silent(Silence::DeclineNotHeld(ip))),
        }
    }

    fn release(
        &mut self,
        t: &mut LeaseTable,
        p: &Packet,
        ctx: &Ctx,
        (now, src): (u64, Ipv4Addr),
        fx: &mut Effects,
    ) -> Handled {
        if p.server_id().is_some_and(|s| s != self.server_ip) {
            return (None, Outcome::Silent(Silence::ReleaseForOtherServer));
        }
        let ip = p.ciaddr;
        // RFC 2131 4.4.6: the client unicasts its RELEASE from the address
        // it gives up; from anywhere else (not relayed) it is forged.
        if p.giaddr.is_unspecified() && src != ip {
            return (
                Some(ip),
                Outcome::Silent(Silence::ReleaseFromElsewhere { ip, src }),
            );
        }
        if !same_client_id(t, p, &ctx.mac) {
            return (Some(ip), Outcome::Silent(Silence::ClientIdMismatch(ip)));
        }
        match t.release(ctx.mac, ip, now) {
            Some(l) => {
                fx.journal.push(Record::Lease(l));
                fx.notice = Some(match ctx.uuid {
                    Some(u) => format!("RELEASE,{},{},{ip}", u.to_string().to_uppercase(), ctx.mac),
                    None => format!("RELEASE,{},{ip}", ctx.mac),
                });
                (Some(ip), Outcome::Silent(Silence::Released))
            }
            None => (Some(ip), Outcome::Silent(Silence::ReleaseNotHeld(ip))),
        }
    }

    fn inform(&mut self, p: &Packet, ctx: &Ctx) -> Handled {
        let mut r = self.base_reply(p, ctx);
        r.ciaddr = p.ciaddr;
        self.fill_options(&mut r, p, ctx, Some(MessageType::Ack.to_u8()), false);
        (Some(p.ciaddr), self.reply(r, p, ctx, Answer::InformAck))
    }

    /// RFC 951 BOOTP: address and boot file in one reply, bound at once.
    fn bootp_request(
        &mut self,
        t: &mut LeaseTable,
        p: &Packet,
        ctx: &Ctx,
        now: u64,
        fx: &mut Effects,
    ) -> Handled {
        // RFC 1534 section 4: a dynamic BOOTP address is in effect an
        // infinite lease the client is never told about, so (like ISC
        // dhcpd's `dynamic-bootp`) it is given only where configured.
        if !self.bootp.bootp_dynamic && t.static_for(&ctx.mac).is_none() {
            return (None, Outcome::Silent(Silence::BootpNotConfigured));
        }
        let ip = if !p.ciaddr.is_unspecified() {
            p.ciaddr
        } else {
            match t.offer(ctx.mac, None, now) {
                Ok(ip) => ip,
                Err(e) => return (None, Outcome::Silent(Silence::NoAddress(e))),
            }
        };
        let lease = match t.bind(ctx.mac, ip, self.bootp.lease_time, now) {
            Ok(l) => l,
            Err(why) => return (Some(ip), Outcome::Silent(Silence::BootpRefused(why))),
        };
        let mut r = self.base_reply(p, ctx);
        r.yiaddr = if p.ciaddr.is_unspecified() {
            ip
        } else {
            Ipv4Addr::UNSPECIFIED
        };
        r.ciaddr = p.ciaddr;
        self.fill_options(&mut r, p, ctx, None, false);
        fx.journal.push(Record::Lease(lease));
        fx.notice = Some(format!("LEASE,{},{ip}", ctx.mac));
        (Some(ip), self.reply(r, p, ctx, Answer::BootReply))
    }
}

/// Whether a RELEASE/DECLINE carries the client identifier (option 61)
/// the MAC's lease was bound with; a lease bound without one accepts any.
fn same_client_id(t: &LeaseTable, p: &Packet, mac: &MacAddr) -> bool {
    t.client_id(mac)
        .is_none_or(|id| p.option(opt::CLIENT_ID) == Some(id))
}
