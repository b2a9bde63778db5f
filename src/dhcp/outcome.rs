//! What one DHCP decision is, as data: the outcome (a reply, silence with
//! its reason, or a question for the HTTP ACL) and the effects the server
//! carries out (records to store, the notice, the client's file). The
//! `Display` impls are the log's words (and a NAK's option 56).

use std::fmt;
use std::net::Ipv4Addr;

use crate::acl::http::HttpQuery;
use crate::leases::{AllocError, BindError, Record};
use crate::wire::dhcp::{MessageType, Packet};
use crate::wire::{MacAddr, Uuid};

/// The result of one request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    /// What the request was, for the log (`DISCOVER`, `BOOTP`, ...).
    pub kind: &'static str,
    pub mac: Option<MacAddr>,
    pub xid: u32,
    /// The address the decision is about, for the log.
    pub ip: Option<Ipv4Addr>,
    pub outcome: Outcome,
    pub effects: Effects,
}

impl Decision {
    pub fn reply(&self) -> Option<&Reply> {
        match &self.outcome {
            Outcome::Reply(r) => Some(r),
            _ => None,
        }
    }

    pub fn silence(&self) -> Option<&Silence> {
        match &self.outcome {
            Outcome::Silent(s) => Some(s),
            _ => None,
        }
    }

    pub fn query(&self) -> Option<&HttpQuery> {
        match &self.outcome {
            Outcome::AskHttp(q) => Some(q),
            _ => None,
        }
    }

    /// The log line's message.
    pub fn why(&self) -> String {
        self.outcome.to_string()
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Send this (after `effects.journal` is durable, when it has records).
    Reply(Reply),
    /// Send nothing (the effects still apply: a RELEASE is journaled).
    Silent(Silence),
    /// Ask the HTTP ACL, then decide again with its answer.
    AskHttp(HttpQuery),
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Reply(r) => r.answer.fmt(f),
            Outcome::Silent(s) => s.fmt(f),
            Outcome::AskHttp(_) => f.write_str("asking the HTTP ACL"),
        }
    }
}

/// What the server does besides answering.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Effects {
    /// Records to store; a reply leaves only once they are durable.
    pub journal: Vec<Record>,
    /// `notify` datagram text (sent after the records are durable).
    pub notice: Option<String>,
    /// The HTTP ACL's `File:` of the client just ACKed, by its address
    /// (for the log; TFTP asks `Leases::client_file`).
    pub client_file: Option<(Ipv4Addr, String)>,
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
    /// What the reply says, for the log.
    pub answer: Answer,
}

/// What a reply is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    Offer {
        pxe: bool,
    },
    Ack {
        state: AckState,
        pxe: bool,
    },
    Nak(NakReason),
    /// The ACK to an INFORM: options only, no lease.
    InformAck,
    /// RFC 951 BOOTP reply.
    BootReply,
}

impl fmt::Display for Answer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Answer::Offer { pxe } => write!(f, "OFFER{}", if *pxe { " (PXE)" } else { "" }),
            Answer::Ack { state, pxe } => {
                write!(f, "ACK ({state}{})", if *pxe { ", PXE" } else { "" })
            }
            Answer::Nak(why) => write!(f, "NAK: {why}"),
            Answer::InformAck => f.write_str("ACK to INFORM (options only, no lease)"),
            Answer::BootReply => f.write_str("BOOTREPLY"),
        }
    }
}

/// The client state a REQUEST is ACKed in (RFC 2131 4.3.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AckState {
    Selecting,
    InitReboot,
    Renewing,
    Rebinding,
}

impl fmt::Display for AckState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AckState::Selecting => "selecting",
            AckState::InitReboot => "init-reboot",
            AckState::Renewing => "renewing",
            AckState::Rebinding => "rebinding",
        })
    }
}

/// Why a REQUEST is NAKed (its text is the NAK's option 56).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NakReason {
    /// The lease table refuses the address.
    Bind(BindError),
    /// SELECTING with neither option 50 nor ciaddr.
    NamesNoAddress,
    /// SELECTING another address than the one offered.
    NotOffered {
        requested: Ipv4Addr,
        offered: Ipv4Addr,
    },
    /// INIT-REBOOT, not relayed, for an address off the served network.
    OffNet(Ipv4Addr),
    /// RENEWING/REBINDING an address that is not the client's lease.
    NotTheLease { ip: Ipv4Addr, held: Ipv4Addr },
    /// RENEWING/REBINDING one of our addresses from a client with no
    /// lease at all (it must start over with a DISCOVER).
    NoLease(Ipv4Addr),
}

impl fmt::Display for NakReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NakReason::Bind(e) => e.fmt(f),
            NakReason::NamesNoAddress => f.write_str("REQUEST names no address"),
            NakReason::NotOffered { requested, offered } => {
                write!(f, "{requested} was not offered ({offered} was)")
            }
            NakReason::OffNet(ip) => write!(f, "{ip} is not on this network"),
            NakReason::NotTheLease { ip, held } => {
                write!(f, "{ip} is not this client's lease ({held} is)")
            }
            NakReason::NoLease(ip) => write!(f, "no lease on record for this client ({ip})"),
        }
    }
}

/// Why nothing is sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Silence {
    NotRequest,
    NotEthernet {
        htype: u8,
        hlen: u8,
    },
    /// A server's message type (OFFER, ACK, ...).
    NotClientMessage(MessageType),
    /// A plain client, and `allow_simple_dhcp` is off.
    SimpleDhcpOff,
    /// `[mac]` / `[uuid]` said no.
    Acl(Denial),
    /// The HTTP ACL said no (or did not answer).
    HttpDenied(String),
    /// A PXE client whose architecture has no boot file.
    NoBootFile {
        arch: Option<u16>,
    },
    /// The pool has no address for this client.
    NoAddress(AllocError),
    /// SELECTING another server: our offer is forgotten.
    OtherServer(Ipv4Addr),
    /// A REQUEST naming no server, no address and no ciaddr.
    RequestNamesNothing,
    DeclineForOtherServer,
    DeclineNamesNoAddress,
    /// DECLINE taken: the address is skipped for a lease time.
    Declined(Ipv4Addr),
    DeclineNotHeld(Ipv4Addr),
    ReleaseForOtherServer,
    /// RELEASE taken (the address stays the MAC's next time).
    Released,
    ReleaseNotHeld(Ipv4Addr),
    /// A BOOTP client whose address the table refuses.
    BootpRefused(BindError),
    /// RFC 2131 4.3.2: INIT-REBOOT from a client with no record here.
    UnknownClient(Ipv4Addr),
    /// RENEWING/REBINDING an address this server does not hand out, from
    /// a client with no lease here: another server's client.
    NotOurAddress(Ipv4Addr),
    /// A BOOTP client with no `[static_dhcp]` address and
    /// `bootp_dynamic` off.
    BootpNotConfigured,
    /// RELEASE/DECLINE whose option 61 is not the one the lease was bound
    /// with (or none).
    ClientIdMismatch(Ipv4Addr),
    /// RELEASE of `ip` sent from another address, not through a relay.
    ReleaseFromElsewhere {
        ip: Ipv4Addr,
        src: Ipv4Addr,
    },
}

impl fmt::Display for Silence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Silence::NotRequest => f.write_str("not a BOOTREQUEST"),
            Silence::NotEthernet { htype, hlen } => {
                write!(f, "hardware type {htype} length {hlen} is not Ethernet")
            }
            Silence::NotClientMessage(m) => write!(f, "{m} is not a client message"),
            Silence::SimpleDhcpOff => {
                f.write_str("plain DHCP/BOOTP client ignored (allow_simple_dhcp is off)")
            }
            Silence::Acl(d) => d.fmt(f),
            Silence::HttpDenied(why) => {
                write!(f, "HTTP ACL denied: {}", crate::logging::Untrusted(why))
            }
            Silence::NoBootFile { arch } => write!(
                f,
                "PXE client arch {} has no [bootfile] entry and there is no default",
                arch.map_or("(none)".to_string(), |a| format!("{a:05}"))
            ),
            Silence::NoAddress(e) => write!(f, "no address: {e}"),
            Silence::OtherServer(sid) => {
                write!(f, "client chose server {sid}; our offer is forgotten")
            }
            Silence::RequestNamesNothing => {
                f.write_str("REQUEST with no server id, no requested address, no ciaddr")
            }
            Silence::DeclineForOtherServer => f.write_str("DECLINE for another server"),
            Silence::DeclineNamesNoAddress => f.write_str("DECLINE names no address (option 50)"),
            Silence::Declined(ip) => write!(
                f,
                "{ip} is in use on the network: skipped until the lease time passes"
            ),
            Silence::DeclineNotHeld(ip) => {
                write!(f, "DECLINE of {ip}, which this MAC does not hold: ignored")
            }
            Silence::ReleaseForOtherServer => f.write_str("RELEASE for another server"),
            Silence::Released => f.write_str("released (the address stays this MAC's next time)"),
            Silence::ReleaseNotHeld(ip) => {
                write!(f, "RELEASE of {ip}, which this MAC does not hold: ignored")
            }
            Silence::BootpRefused(e) => write!(f, "BOOTP client cannot have the address: {e}"),
            Silence::UnknownClient(ip) => {
                write!(f, "INIT-REBOOT for {ip} from a client with no record here")
            }
            Silence::NotOurAddress(ip) => {
                write!(f, "renewal of {ip}, not an address of this server")
            }
            Silence::BootpNotConfigured => {
                f.write_str("BOOTP client without a [static_dhcp] address (bootp_dynamic is off)")
            }
            Silence::ClientIdMismatch(ip) => write!(
                f,
                "{ip}: client identifier (option 61) differs from the lease's: ignored"
            ),
            Silence::ReleaseFromElsewhere { ip, src } => {
                write!(
                    f,
                    "RELEASE of {ip} sent from {src}, not through a relay: ignored"
                )
            }
        }
    }
}

/// Why the local access rules refuse a client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Denial {
    /// A `[mac]` rule says no.
    MacDenied(MacAddr),
    /// `access = mac` and no `[mac]` rule (nor `[static_dhcp]`) allows it.
    MacNotListed(MacAddr),
    /// `access = uuid` and the client never sent one.
    NoUuid,
    UuidDenied(Uuid),
    UuidNotListed(Uuid),
}

impl fmt::Display for Denial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Denial::MacDenied(m) => write!(f, "{m} is denied by [mac]"),
            Denial::MacNotListed(m) => write!(f, "{m} is not in [mac]"),
            Denial::NoUuid => f.write_str("no UUID known for this client (access = uuid)"),
            Denial::UuidDenied(u) => write!(f, "UUID {u} is denied by [uuid]"),
            Denial::UuidNotListed(u) => write!(f, "UUID {u} is not in [uuid]"),
        }
    }
}
