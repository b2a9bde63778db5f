//! BOOTP/DHCP wire format (RFC 951, 2131, 2132, 3396): bytes <-> [`Packet`].
//!
//! `Packet::parse` is the one door for untrusted DHCP bytes: any input
//! gives `Ok` or `Err` with a reason, never a panic. Options are kept as
//! raw values in arrival order (unknown codes included); a code sent more
//! than once is concatenated (RFC 3396). Option 52 (overload) pulls more
//! options out of the `file` and `sname` fields. `Packet::emit` writes
//! options in a stable order, 53 first, splits values longer than 255
//! bytes, and pads the message to the 300 bytes BOOTP clients expect.

use std::fmt;
use std::net::Ipv4Addr;

/// RFC 2131's magic cookie, the first four bytes of the options field.
pub const MAGIC_COOKIE: [u8; 4] = [99, 130, 83, 99];
/// Fixed BOOTP header size, up to the options (or BOOTP `vend`) field.
pub const HEADER_LEN: usize = 236;
/// The smallest message BOOTP relays and clients accept (RFC 951: 64-byte
/// vendor area).
pub const MIN_LEN: usize = 300;
/// RFC 2131: every DHCP client accepts messages of 576 bytes (IP datagram).
pub const MIN_MAX_MESSAGE: usize = 576;

pub const BOOTREQUEST: u8 = 1;
pub const BOOTREPLY: u8 = 2;
pub const FLAG_BROADCAST: u16 = 0x8000;

/// Option codes used by the server.
pub mod opt {
    pub const PAD: u8 = 0;
    pub const SUBNET_MASK: u8 = 1;
    pub const ROUTER: u8 = 3;
    pub const DNS: u8 = 6;
    pub const HOST_NAME: u8 = 12;
    pub const BOOT_FILE_SIZE: u8 = 13;
    pub const DOMAIN_NAME: u8 = 15;
    pub const VENDOR_SPECIFIC: u8 = 43;
    pub const REQUESTED_IP: u8 = 50;
    pub const LEASE_TIME: u8 = 51;
    pub const OVERLOAD: u8 = 52;
    pub const MESSAGE_TYPE: u8 = 53;
    pub const SERVER_ID: u8 = 54;
    pub const PARAMETER_LIST: u8 = 55;
    pub const MESSAGE: u8 = 56;
    pub const MAX_MESSAGE_SIZE: u8 = 57;
    pub const RENEWAL_TIME: u8 = 58;
    pub const REBINDING_TIME: u8 = 59;
    pub const VENDOR_CLASS: u8 = 60;
    pub const CLIENT_ID: u8 = 61;
    pub const TFTP_SERVER: u8 = 66;
    pub const BOOT_FILE: u8 = 67;
    pub const USER_CLASS: u8 = 77;
    pub const RELAY_AGENT: u8 = 82;
    pub const CLIENT_ARCH: u8 = 93;
    pub const CLIENT_NDI: u8 = 94;
    pub const CLIENT_UUID: u8 = 97;
    pub const END: u8 = 255;
}

/// DHCP message types (option 53).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MessageType {
    Discover,
    Offer,
    Request,
    Decline,
    Ack,
    Nak,
    Release,
    Inform,
    Other(u8),
}

impl MessageType {
    pub fn from_u8(v: u8) -> MessageType {
        match v {
            1 => MessageType::Discover,
            2 => MessageType::Offer,
            3 => MessageType::Request,
            4 => MessageType::Decline,
            5 => MessageType::Ack,
            6 => MessageType::Nak,
            7 => MessageType::Release,
            8 => MessageType::Inform,
            o => MessageType::Other(o),
        }
    }

    pub fn to_u8(self) -> u8 {
        match self {
            MessageType::Discover => 1,
            MessageType::Offer => 2,
            MessageType::Request => 3,
            MessageType::Decline => 4,
            MessageType::Ack => 5,
            MessageType::Nak => 6,
            MessageType::Release => 7,
            MessageType::Inform => 8,
            MessageType::Other(o) => o,
        }
    }
}

impl MessageType {
    /// The RFC 2131 name, `DISCOVER`, ...; `OTHER` for unknown types.
    pub fn name(self) -> &'static str {
        match self {
            MessageType::Discover => "DISCOVER",
            MessageType::Offer => "OFFER",
            MessageType::Request => "REQUEST",
            MessageType::Decline => "DECLINE",
            MessageType::Ack => "ACK",
            MessageType::Nak => "NAK",
            MessageType::Release => "RELEASE",
            MessageType::Inform => "INFORM",
            MessageType::Other(_) => "OTHER",
        }
    }
}

impl fmt::Display for MessageType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MessageType::Other(o) => write!(f, "TYPE{o}"),
            m => f.write_str(m.name()),
        }
    }
}

/// Why a datagram is not a BOOTP/DHCP message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ParseError {
    /// Shorter than the fixed header (or the cookie).
    TooShort(usize),
    /// `op` is neither BOOTREQUEST nor BOOTREPLY.
    BadOp(u8),
    /// `hlen` is 0 or more than the 16 bytes of `chaddr`.
    BadHlen(u8),
    /// The options field does not start with the magic cookie.
    NoMagicCookie,
    /// An option's length runs past the end of its field.
    OptionOverrun { code: u8, field: &'static str },
    /// Option 52 holds something other than 1, 2 or 3.
    BadOverload(Vec<u8>),
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseError::TooShort(n) => write!(
                f,
                "{n} bytes is shorter than a BOOTP message ({HEADER_LEN} + cookie)"
            ),
            ParseError::BadOp(o) => write!(f, "op {o} is neither BOOTREQUEST nor BOOTREPLY"),
            ParseError::BadHlen(h) => write!(f, "hlen {h} is not within 1..=16"),
            ParseError::NoMagicCookie => write!(f, "no DHCP magic cookie"),
            ParseError::OptionOverrun { code, field } => {
                write!(f, "option {code} runs past the end of the {field} field")
            }
            ParseError::BadOverload(v) => write!(f, "option 52 (overload) holds {v:?}"),
        }
    }
}

impl std::error::Error for ParseError {}

/// One BOOTP/DHCP message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Packet {
    pub op: u8,
    pub htype: u8,
    pub hlen: u8,
    pub hops: u8,
    pub xid: u32,
    pub secs: u16,
    pub flags: u16,
    pub ciaddr: Ipv4Addr,
    pub yiaddr: Ipv4Addr,
    pub siaddr: Ipv4Addr,
    pub giaddr: Ipv4Addr,
    pub chaddr: [u8; 16],
    /// `sname` up to its first NUL (empty when overloaded with options).
    pub sname: Vec<u8>,
    /// `file` up to its first NUL (empty when overloaded with options).
    pub file: Vec<u8>,
    /// Options in first-arrival order, values concatenated per code.
    /// Pad (0) and End (255) are not kept; 52 is consumed by parse.
    pub options: Vec<(u8, Vec<u8>)>,
}

impl Default for Packet {
    fn default() -> Self {
        Packet {
            op: BOOTREQUEST,
            htype: 1,
            hlen: 6,
            hops: 0,
            xid: 0,
            secs: 0,
            flags: 0,
            ciaddr: Ipv4Addr::UNSPECIFIED,
            yiaddr: Ipv4Addr::UNSPECIFIED,
            siaddr: Ipv4Addr::UNSPECIFIED,
            giaddr: Ipv4Addr::UNSPECIFIED,
            chaddr: [0; 16],
            sname: Vec::new(),
            file: Vec::new(),
            options: Vec::new(),
        }
    }
}

fn ip_at(b: &[u8], at: usize) -> Ipv4Addr {
    Ipv4Addr::new(b[at], b[at + 1], b[at + 2], b[at + 3])
}

fn until_nul(b: &[u8]) -> Vec<u8> {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    b[..end].to_vec()
}

/// Walks one options field, appending to `out`. Returns the overload value
/// when this field held option 52.
fn walk(
    field: &[u8],
    name: &'static str,
    out: &mut Vec<(u8, Vec<u8>)>,
) -> Result<Option<u8>, ParseError> {
    let mut overload = None;
    let mut i = 0;
    while i < field.len() {
        let code = field[i];
        match code {
            opt::PAD => {
                i += 1;
                continue;
            }
            opt::END => break,
            _ => {}
        }
        let Some(&len) = field.get(i + 1) else {
            return Err(ParseError::OptionOverrun { code, field: name });
        };
        let start = i + 2;
        let end = start + usize::from(len);
        if end > field.len() {
            return Err(ParseError::OptionOverrun { code, field: name });
        }
        let value = &field[start..end];
        if code == opt::OVERLOAD {
            match value {
                [v @ 1..=3] => overload = Some(*v),
                _ => return Err(ParseError::BadOverload(value.to_vec())),
            }
        } else if let Some((_, v)) = out.iter_mut().find(|(c, _)| *c == code) {
            // RFC 3396: a code seen again continues the same value.
            v.extend_from_slice(value);
        } else {
            out.push((code, value.to_vec()));
        }
        i = end;
    }
    Ok(overload)
}

impl Packet {
    /// Parses one datagram. Never panics.
    pub fn parse(b: &[u8]) -> Result<Packet, ParseError> {
        if b.len() < HEADER_LEN + 4 {
            return Err(ParseError::TooShort(b.len()));
        }
        let op = b[0];
        if op != BOOTREQUEST && op != BOOTREPLY {
            return Err(ParseError::BadOp(op));
        }
        let hlen = b[2];
        if hlen == 0 || hlen > 16 {
            return Err(ParseError::BadHlen(hlen));
        }
        if b[HEADER_LEN..HEADER_LEN + 4] != MAGIC_COOKIE {
            return Err(ParseError::NoMagicCookie);
        }
        let mut chaddr = [0u8; 16];
        chaddr.copy_from_slice(&b[28..44]);
        let sname_field = &b[44..108];
        let file_field = &b[108..236];
        let mut options = Vec::new();
        let overload = walk(&b[HEADER_LEN + 4..], "options", &mut options)?;
        // RFC 2131 4.1: with overload, `file` is read first, then `sname`.
        let (file_opts, sname_opts) = match overload {
            Some(1) => (true, false),
            Some(2) => (false, true),
            Some(3) => (true, true),
            _ => (false, false),
        };
        if file_opts {
            walk(file_field, "file", &mut options)?;
        }
        if sname_opts {
            walk(sname_field, "sname", &mut options)?;
        }
        Ok(Packet {
            op,
            htype: b[1],
            hlen,
            hops: b[3],
            xid: u32::from_be_bytes([b[4], b[5], b[6], b[7]]),
            secs: u16::from_be_bytes([b[8], b[9]]),
            flags: u16::from_be_bytes([b[10], b[11]]),
            ciaddr: ip_at(b, 12),
            yiaddr: ip_at(b, 16),
            siaddr: ip_at(b, 20),
            giaddr: ip_at(b, 24),
            chaddr,
            sname: if sname_opts {
                Vec::new()
            } else {
                until_nul(sname_field)
            },
            file: if file_opts {
                Vec::new()
            } else {
                until_nul(file_field)
            },
            options,
        })
    }

    /// The value of option `code`, if present.
    pub fn option(&self, code: u8) -> Option<&[u8]> {
        self.options
            .iter()
            .find(|(c, _)| *c == code)
            .map(|(_, v)| v.as_slice())
    }

    /// Sets (or replaces) option `code`, keeping its first position.
    pub fn set_option(&mut self, code: u8, value: impl Into<Vec<u8>>) {
        let value = value.into();
        if let Some((_, v)) = self.options.iter_mut().find(|(c, _)| *c == code) {
            *v = value;
        } else {
            self.options.push((code, value));
        }
    }

    pub fn remove_option(&mut self, code: u8) {
        self.options.retain(|(c, _)| *c != code);
    }

    /// Option 53; `None` for a BOOTP message.
    pub fn message_type(&self) -> Option<MessageType> {
        match self.option(opt::MESSAGE_TYPE) {
            Some([t]) => Some(MessageType::from_u8(*t)),
            _ => None,
        }
    }

    fn option_ip(&self, code: u8) -> Option<Ipv4Addr> {
        match self.option(code) {
            Some([a, b, c, d]) => Some(Ipv4Addr::new(*a, *b, *c, *d)),
            _ => None,
        }
    }

    pub fn requested_ip(&self) -> Option<Ipv4Addr> {
        self.option_ip(opt::REQUESTED_IP)
    }

    pub fn server_id(&self) -> Option<Ipv4Addr> {
        self.option_ip(opt::SERVER_ID)
    }

    /// Option 57, clamped to RFC 2131's floor of 576; `None` when absent
    /// or malformed.
    pub fn max_message_size(&self) -> Option<usize> {
        match self.option(opt::MAX_MESSAGE_SIZE) {
            Some([a, b]) => Some(usize::from(u16::from_be_bytes([*a, *b])).max(MIN_MAX_MESSAGE)),
            _ => None,
        }
    }

    /// The Ethernet MAC in `chaddr`, when the hardware is Ethernet.
    pub fn mac(&self) -> Option<crate::wire::MacAddr> {
        if self.htype == 1 && self.hlen == 6 {
            let mut m = [0u8; 6];
            m.copy_from_slice(&self.chaddr[..6]);
            Some(crate::wire::MacAddr(m))
        } else {
            None
        }
    }

    /// Option 60 as text (lossy).
    pub fn vendor_class(&self) -> Option<String> {
        self.option(opt::VENDOR_CLASS)
            .map(|v| String::from_utf8_lossy(v).into_owned())
    }

    /// The client UUID (option 97: type 0 + 16 bytes, RFC 4578).
    pub fn uuid(&self) -> Option<crate::wire::Uuid> {
        match self.option(opt::CLIENT_UUID) {
            Some(v) if v.len() == 17 && v[0] == 0 => {
                let mut u = [0u8; 16];
                u.copy_from_slice(&v[1..]);
                Some(crate::wire::Uuid(u))
            }
            _ => None,
        }
    }

    /// The client architecture: option 93's first entry, else the
    /// `Arch:NNNNN` field of a `PXEClient` vendor class.
    pub fn client_arch(&self) -> Option<u16> {
        if let Some([a, b, ..]) = self.option(opt::CLIENT_ARCH) {
            return Some(u16::from_be_bytes([*a, *b]));
        }
        let vc = self.vendor_class()?;
        let rest = vc.split("Arch:").nth(1)?;
        let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
        if digits.is_empty() || digits.len() > 5 {
            return None;
        }
        digits.parse().ok()
    }

    /// Emits the message (with the cookie and End), options in a stable
    /// order: 53 first, then the rest in insertion order. Values longer
    /// than 255 bytes are split (RFC 3396). Padded to 300 bytes.
    pub fn emit(&self, buf: &mut Vec<u8>) {
        buf.push(self.op);
        buf.push(self.htype);
        buf.push(self.hlen);
        buf.push(self.hops);
        buf.extend_from_slice(&self.xid.to_be_bytes());
        buf.extend_from_slice(&self.secs.to_be_bytes());
        buf.extend_from_slice(&self.flags.to_be_bytes());
        for ip in [self.ciaddr, self.yiaddr, self.siaddr, self.giaddr] {
            buf.extend_from_slice(&ip.octets());
        }
        buf.extend_from_slice(&self.chaddr);
        let mut field = |src: &[u8], len: usize| {
            let n = src.len().min(len - 1); // keep a NUL terminator
            buf.extend_from_slice(&src[..n]);
            buf.extend(std::iter::repeat_n(0u8, len - n));
        };
        field(&self.sname, 64);
        field(&self.file, 128);
        buf.extend_from_slice(&MAGIC_COOKIE);
        let first = self.options.iter().filter(|(c, _)| *c == opt::MESSAGE_TYPE);
        let rest = self.options.iter().filter(|(c, _)| {
            !matches!(*c, opt::MESSAGE_TYPE | opt::PAD | opt::END | opt::OVERLOAD)
        });
        for (code, value) in first.chain(rest) {
            if value.is_empty() {
                buf.push(*code);
                buf.push(0);
            }
            for chunk in value.chunks(255) {
                buf.push(*code);
                buf.push(chunk.len() as u8);
                buf.extend_from_slice(chunk);
            }
        }
        buf.push(opt::END);
        if buf.len() < MIN_LEN {
            buf.resize(MIN_LEN, 0);
        }
    }

    /// The emitted size of this message.
    pub fn emitted_len(&self) -> usize {
        let mut n = HEADER_LEN + 4 + 1;
        for (c, v) in &self.options {
            if matches!(*c, opt::PAD | opt::END | opt::OVERLOAD) {
                continue;
            }
            n += v.len() + 2 * v.len().div_ceil(255).max(1);
        }
        n.max(MIN_LEN)
    }

    /// Emits within `max` bytes (the client's option 57 less the IP and
    /// UDP headers): options not in `keep` are dropped from the end until
    /// the message fits. Returns the codes dropped.
    pub fn emit_within(&self, max: usize, keep: &[u8], buf: &mut Vec<u8>) -> Vec<u8> {
        if self.emitted_len() <= max {
            self.emit(buf);
            return Vec::new();
        }
        let mut p = self.clone();
        let mut dropped = Vec::new();
        while p.emitted_len() > max {
            let Some(pos) = p.options.iter().rposition(|(c, _)| !keep.contains(c)) else {
                break;
            };
            dropped.push(p.options.remove(pos).0);
        }
        p.emit(buf);
        dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Vec<u8> {
        let mut p = Packet {
            xid: 0x1234_5678,
            ..Packet::default()
        };
        p.chaddr[..6].copy_from_slice(&[0x52, 0x54, 0, 0xe2, 0xe0, 1]);
        p.set_option(opt::MESSAGE_TYPE, [1]);
        let mut b = Vec::new();
        p.emit(&mut b);
        b
    }

    #[test]
    fn round_trip_and_padding() {
        let b = base();
        assert_eq!(b.len(), MIN_LEN);
        let p = Packet::parse(&b).unwrap();
        assert_eq!(p.xid, 0x1234_5678);
        assert_eq!(p.message_type(), Some(MessageType::Discover));
        assert_eq!(p.mac().unwrap().to_string(), "52-54-00-E2-E0-01");
        let mut again = Vec::new();
        p.emit(&mut again);
        assert_eq!(again, b);
    }

    #[test]
    fn errors_have_reasons() {
        let b = base();
        assert_eq!(Packet::parse(&b[..239]), Err(ParseError::TooShort(239)));
        let mut bad = b.clone();
        bad[0] = 3;
        assert_eq!(Packet::parse(&bad), Err(ParseError::BadOp(3)));
        let mut bad = b.clone();
        bad[2] = 17;
        assert_eq!(Packet::parse(&bad), Err(ParseError::BadHlen(17)));
        let mut bad = b.clone();
        bad[236] = 0;
        assert_eq!(Packet::parse(&bad), Err(ParseError::NoMagicCookie));
        // Option 53 claiming 200 bytes in a 300-byte message.
        let mut bad = b[..243].to_vec();
        bad[241] = 200;
        assert!(matches!(
            Packet::parse(&bad),
            Err(ParseError::OptionOverrun { code: 53, .. })
        ));
        // A code with no length byte at the very end.
        let mut bad = b[..240].to_vec();
        bad.push(12);
        assert!(matches!(
            Packet::parse(&bad),
            Err(ParseError::OptionOverrun { code: 12, .. })
        ));
    }

    #[test]
    fn overload_reads_file_then_sname() {
        let mut b = base();
        b.truncate(240);
        b.extend_from_slice(&[53, 1, 3, 52, 1, 3, 255]);
        // file (108..236) holds option 12 "abc"; sname (44..108) option 67.
        b[108..113].copy_from_slice(&[12, 3, b'a', b'b', b'c']);
        b[113] = 255;
        b[44..49].copy_from_slice(&[67, 3, b'x', b'y', b'z']);
        b[49] = 255;
        let p = Packet::parse(&b).unwrap();
        assert_eq!(p.option(12), Some(&b"abc"[..]));
        assert_eq!(p.option(67), Some(&b"xyz"[..]));
        assert!(p.file.is_empty() && p.sname.is_empty());
        assert_eq!(p.options[1].0, 12, "file is read before sname");
        // A bad overload value is an error.
        b[245] = 4;
        assert!(matches!(Packet::parse(&b), Err(ParseError::BadOverload(_))));
    }

    #[test]
    fn repeated_codes_concatenate_and_long_values_split() {
        let mut b = base();
        b.truncate(240);
        b.extend_from_slice(&[53, 1, 1, 43, 2, 1, 2, 43, 1, 3, 255]);
        let p = Packet::parse(&b).unwrap();
        assert_eq!(p.option(43), Some(&[1u8, 2, 3][..]));
        let mut q = p.clone();
        q.set_option(43, vec![7u8; 300]);
        let mut out = Vec::new();
        q.emit(&mut out);
        assert_eq!(out.len(), q.emitted_len());
        let r = Packet::parse(&out).unwrap();
        assert_eq!(r.option(43).unwrap().len(), 300);
    }

    #[test]
    fn message_type_first_and_max_size() {
        let mut p = Packet::default();
        p.set_option(opt::SERVER_ID, [10, 0, 0, 1]);
        p.set_option(opt::MESSAGE_TYPE, [2]);
        p.set_option(opt::MAX_MESSAGE_SIZE, 300u16.to_be_bytes());
        let mut out = Vec::new();
        p.emit(&mut out);
        assert_eq!(&out[240..243], &[53, 1, 2]);
        let r = Packet::parse(&out).unwrap();
        assert_eq!(r.max_message_size(), Some(576), "clamped to 576");
        p.set_option(43, vec![1u8; 600]);
        let mut out = Vec::new();
        let dropped = p.emit_within(576 - 28, &[53, 54], &mut out);
        assert!(out.len() <= 576 - 28);
        assert!(dropped.contains(&43));
    }

    #[test]
    fn arch_from_option_or_vendor_class() {
        let mut p = Packet::default();
        p.set_option(opt::VENDOR_CLASS, &b"PXEClient:Arch:00007:UNDI:003000"[..]);
        assert_eq!(p.client_arch(), Some(7));
        p.set_option(opt::CLIENT_ARCH, [0, 9]);
        assert_eq!(p.client_arch(), Some(9));
    }
}
