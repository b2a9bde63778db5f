//! TFTP wire format (RFC 1350, options RFC 2347): RRQ/WRQ/DATA/ACK/ERROR/OACK
//! bytes <-> [`Packet`]. Any input parses to `Ok` or `Err`, never a panic.
//!
//! The hot data path does not build `Packet`s: it writes DATA headers with
//! [`write_data_header`] into a reused buffer and reads ACKs with
//! [`parse_ack`], so no block costs an allocation.

use std::fmt;

pub const OP_RRQ: u16 = 1;
pub const OP_WRQ: u16 = 2;
pub const OP_DATA: u16 = 3;
pub const OP_ACK: u16 = 4;
pub const OP_ERROR: u16 = 5;
pub const OP_OACK: u16 = 6;

/// The smallest and largest `blksize` RFC 2348 allows.
pub const MIN_BLKSIZE: u16 = 8;
pub const MAX_BLKSIZE: u16 = 65464;

/// RFC 1350 error codes (and RFC 2347's 8).
pub mod code {
    pub const NOT_DEFINED: u16 = 0;
    pub const FILE_NOT_FOUND: u16 = 1;
    pub const ACCESS_VIOLATION: u16 = 2;
    pub const DISK_FULL: u16 = 3;
    pub const ILLEGAL_OPERATION: u16 = 4;
    pub const UNKNOWN_TID: u16 = 5;
    pub const FILE_EXISTS: u16 = 6;
    pub const NO_SUCH_USER: u16 = 7;
    pub const OPTION_REFUSED: u16 = 8;
}

/// Transfer mode of a request. RFC 1350's `mail` is obsolete and refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Octet,
    Netascii,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Octet => "octet",
            Mode::Netascii => "netascii",
        }
    }
}

/// A read or write request. Option names are lowercased (RFC 2347: they
/// are case-insensitive); values are kept as sent, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    pub filename: String,
    pub mode: Mode,
    pub options: Vec<(String, String)>,
}

impl Request {
    /// The first value of option `name` (lowercase).
    pub fn option(&self, name: &str) -> Option<&str> {
        self.options
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Packet<'a> {
    Rrq(Request),
    Wrq(Request),
    Data { block: u16, data: &'a [u8] },
    Ack { block: u16 },
    Error { code: u16, message: String },
    Oack { options: Vec<(String, String)> },
}

/// Why bytes are not a TFTP packet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ParseError {
    TooShort,
    UnknownOpcode(u16),
    /// A string field without its terminating NUL.
    Unterminated,
    /// A file name or option that is not UTF-8.
    NotUtf8,
    EmptyFilename,
    UnknownMode(String),
    /// An option name without a value.
    OddOptions,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseError::TooShort => f.write_str("packet too short"),
            ParseError::UnknownOpcode(o) => write!(f, "unknown opcode {o}"),
            ParseError::Unterminated => f.write_str("string field not NUL-terminated"),
            ParseError::NotUtf8 => f.write_str("name or option not UTF-8"),
            ParseError::EmptyFilename => f.write_str("empty file name"),
            ParseError::UnknownMode(m) => write!(f, "unsupported mode '{m}'"),
            ParseError::OddOptions => f.write_str("option without a value"),
        }
    }
}

impl std::error::Error for ParseError {}

/// Splits NUL-terminated strings; the last one must be terminated.
fn strings(bytes: &[u8]) -> Result<Vec<&[u8]>, ParseError> {
    if bytes.is_empty() {
        return Ok(Vec::new());
    }
    if bytes.last() != Some(&0) {
        return Err(ParseError::Unterminated);
    }
    Ok(bytes[..bytes.len() - 1].split(|b| *b == 0).collect())
}

fn utf8(b: &[u8]) -> Result<String, ParseError> {
    std::str::from_utf8(b)
        .map(str::to_string)
        .map_err(|_| ParseError::NotUtf8)
}

fn options(fields: &[&[u8]]) -> Result<Vec<(String, String)>, ParseError> {
    // Some clients pad requests with extra NULs: an odd trailing empty
    // field, or an empty option name, ends the list. Values may be empty
    // (RFC 2090's `multicast` is sent with one).
    let mut fields = fields;
    if fields.len() % 2 != 0 {
        match fields.split_last() {
            Some((&[], rest)) => fields = rest,
            _ => return Err(ParseError::OddOptions),
        }
    }
    let mut out = Vec::with_capacity(fields.len() / 2);
    for kv in fields.chunks_exact(2) {
        if kv[0].is_empty() {
            break;
        }
        out.push((utf8(kv[0])?.to_ascii_lowercase(), utf8(kv[1])?));
    }
    Ok(out)
}

fn request(body: &[u8]) -> Result<Request, ParseError> {
    let fields = strings(body)?;
    if fields.len() < 2 {
        return Err(ParseError::Unterminated);
    }
    let filename = utf8(fields[0])?;
    if filename.is_empty() {
        return Err(ParseError::EmptyFilename);
    }
    let mode_s = utf8(fields[1])?.to_ascii_lowercase();
    let mode = match mode_s.as_str() {
        "octet" => Mode::Octet,
        "netascii" => Mode::Netascii,
        _ => return Err(ParseError::UnknownMode(mode_s)),
    };
    Ok(Request {
        filename,
        mode,
        options: options(&fields[2..])?,
    })
}

impl<'a> Packet<'a> {
    pub fn parse(bytes: &'a [u8]) -> Result<Packet<'a>, ParseError> {
        if bytes.len() < 2 {
            return Err(ParseError::TooShort);
        }
        let op = u16::from_be_bytes([bytes[0], bytes[1]]);
        let body = &bytes[2..];
        let num = || {
            if body.len() < 2 {
                Err(ParseError::TooShort)
            } else {
                Ok(u16::from_be_bytes([body[0], body[1]]))
            }
        };
        match op {
            OP_RRQ => Ok(Packet::Rrq(request(body)?)),
            OP_WRQ => Ok(Packet::Wrq(request(body)?)),
            OP_DATA => Ok(Packet::Data {
                block: num()?,
                data: &body[2..],
            }),
            OP_ACK => Ok(Packet::Ack { block: num()? }),
            OP_ERROR => {
                let code = num()?;
                // Be lenient: some stacks omit the final NUL.
                let msg = &body[2..];
                let msg = msg.split(|b| *b == 0).next().unwrap_or(&[]);
                Ok(Packet::Error {
                    code,
                    message: String::from_utf8_lossy(msg).into_owned(),
                })
            }
            OP_OACK => Ok(Packet::Oack {
                options: options(&strings(body)?)?,
            }),
            o => Err(ParseError::UnknownOpcode(o)),
        }
    }

    /// Appends the packet's bytes to `out`.
    pub fn emit(&self, out: &mut Vec<u8>) {
        let put_str = |out: &mut Vec<u8>, s: &str| {
            // A NUL inside a string would end it early on the wire; drop it.
            out.extend(s.bytes().filter(|b| *b != 0));
            out.push(0);
        };
        let put_req = |out: &mut Vec<u8>, op: u16, r: &Request| {
            out.extend_from_slice(&op.to_be_bytes());
            put_str(out, &r.filename);
            put_str(out, r.mode.as_str());
            for (k, v) in &r.options {
                put_str(out, k);
                put_str(out, v);
            }
        };
        match self {
            Packet::Rrq(r) => put_req(out, OP_RRQ, r),
            Packet::Wrq(r) => put_req(out, OP_WRQ, r),
            Packet::Data { block, data } => {
                out.extend_from_slice(&OP_DATA.to_be_bytes());
                out.extend_from_slice(&block.to_be_bytes());
                out.extend_from_slice(data);
            }
            Packet::Ack { block } => {
                out.extend_from_slice(&OP_ACK.to_be_bytes());
                out.extend_from_slice(&block.to_be_bytes());
            }
            Packet::Error { code, message } => {
                out.extend_from_slice(&OP_ERROR.to_be_bytes());
                out.extend_from_slice(&code.to_be_bytes());
                put_str(out, message);
            }
            Packet::Oack { options } => {
                out.extend_from_slice(&OP_OACK.to_be_bytes());
                for (k, v) in options {
                    put_str(out, k);
                    put_str(out, v);
                }
            }
        }
    }
}

/// Writes a DATA header (4 bytes) at the start of `buf` (at least 4 long).
#[inline]
pub fn write_data_header(buf: &mut [u8], block: u16) {
    let b = block.to_be_bytes();
    buf[..4].copy_from_slice(&[0, OP_DATA as u8, b[0], b[1]]);
}

/// The block number of an ACK, without building a `Packet`.
#[inline]
pub fn parse_ack(bytes: &[u8]) -> Option<u16> {
    match bytes {
        [0, 4, hi, lo, ..] => Some(u16::from_be_bytes([*hi, *lo])),
        _ => None,
    }
}

/// An ERROR packet's bytes.
pub fn error_bytes(code: u16, message: &str) -> Vec<u8> {
    let mut v = Vec::with_capacity(5 + message.len());
    Packet::Error {
        code,
        message: message.to_string(),
    }
    .emit(&mut v);
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    // EDK2's size probe, as captured (FIRMWARE.md).
    const EDK2_RRQ: &[u8] =
        b"\x00\x01grubnetx64.efi\x00octet\x00tsize\x000\x00blksize\x001468\x00windowsize\x004\x00";

    #[test]
    fn parses_edk2_rrq() {
        let p = Packet::parse(EDK2_RRQ).unwrap();
        let Packet::Rrq(r) = &p else {
            panic!("not an RRQ: {p:?}")
        };
        assert_eq!(r.filename, "grubnetx64.efi");
        assert_eq!(r.mode, Mode::Octet);
        assert_eq!(r.option("tsize"), Some("0"));
        assert_eq!(r.option("blksize"), Some("1468"));
        assert_eq!(r.option("windowsize"), Some("4"));
        let mut out = vec![];
        p.emit(&mut out);
        assert_eq!(out, EDK2_RRQ);
    }

    #[test]
    fn option_names_case_insensitive_mode_too() {
        let p = Packet::parse(b"\x00\x01/grub/grub.cfg\x00OCTET\x00BLKSIZE\x001024\x00").unwrap();
        let Packet::Rrq(r) = p else { panic!() };
        assert_eq!(r.filename, "/grub/grub.cfg");
        assert_eq!(r.option("blksize"), Some("1024"));
    }

    #[test]
    fn round_trips() {
        let pkts = [
            Packet::Data {
                block: 65535,
                data: b"abc",
            },
            Packet::Ack { block: 7 },
            Packet::Error {
                code: 1,
                message: "File not found".into(),
            },
            Packet::Oack {
                options: vec![
                    ("blksize".into(), "1468".into()),
                    ("tsize".into(), "9".into()),
                ],
            },
            Packet::Wrq(Request {
                filename: "up.bin".into(),
                mode: Mode::Netascii,
                options: vec![],
            }),
        ];
        for p in pkts {
            let mut out = vec![0xa5; 3];
            p.emit(&mut out);
            assert_eq!(&out[..3], &[0xa5; 3]);
            assert_eq!(Packet::parse(&out[3..]).unwrap(), p);
        }
    }

    #[test]
    fn rejects_malformed() {
        assert_eq!(Packet::parse(b""), Err(ParseError::TooShort));
        assert_eq!(Packet::parse(b"\x00"), Err(ParseError::TooShort));
        assert_eq!(
            Packet::parse(b"\x00\x09"),
            Err(ParseError::UnknownOpcode(9))
        );
        assert_eq!(
            Packet::parse(b"\x00\x01a\x00octet"),
            Err(ParseError::Unterminated)
        );
        assert_eq!(
            Packet::parse(b"\x00\x01a\x00"),
            Err(ParseError::Unterminated)
        );
        assert_eq!(
            Packet::parse(b"\x00\x01\x00octet\x00"),
            Err(ParseError::EmptyFilename)
        );
        assert!(matches!(
            Packet::parse(b"\x00\x01a\x00mail\x00"),
            Err(ParseError::UnknownMode(_))
        ));
        assert_eq!(
            Packet::parse(b"\x00\x01a\x00octet\x00blksize\x00"),
            Err(ParseError::OddOptions)
        );
        assert_eq!(Packet::parse(b"\x00\x04\x00"), Err(ParseError::TooShort));
        assert_eq!(
            Packet::parse(b"\x00\x01\xff\x00octet\x00"),
            Err(ParseError::NotUtf8)
        );
    }

    #[test]
    fn fast_path_helpers() {
        let mut b = [0xa5u8; 8];
        write_data_header(&mut b, 0x1234);
        assert_eq!(&b[..4], &[0, 3, 0x12, 0x34]);
        assert_eq!(parse_ack(&[0, 4, 1, 2]), Some(0x0102));
        assert_eq!(parse_ack(&[0, 3, 1, 2]), None);
        assert_eq!(parse_ack(&[0, 4, 1]), None);
        assert_eq!(
            Packet::parse(&error_bytes(8, "x")).unwrap(),
            Packet::Error {
                code: 8,
                message: "x".into()
            }
        );
    }

    /// 10,000 random and mutated packets: parse never panics, and what
    /// parses re-emits to bytes that parse to the same packet and emit
    /// the same bytes again. Every base packet is mutated, and enough
    /// mutants of each still parse for the round trip to be checked on
    /// every kind.
    #[test]
    fn random_and_mutated_never_panic() {
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut rnd = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let bases: [&[u8]; 4] = [
            EDK2_RRQ,
            b"\x00\x04\x00\x01",
            b"\x00\x05\x00\x01nope\x00",
            b"\x00\x06blksize\x00512\x00",
        ];
        // Mutants that parsed, by base; then random bytes that parsed.
        let mut parsed = [0usize; 5];
        for i in 0..10_000 {
            // Odd rounds mutate, each base in turn (i / 2: not i, whose
            // odd values would reach only every other base).
            let from = if i % 2 == 0 { 4 } else { (i / 2) % bases.len() };
            let mut v: Vec<u8> = if from == 4 {
                let n = (rnd() % 64) as usize;
                (0..n).map(|_| rnd() as u8).collect()
            } else {
                let mut v = bases[from].to_vec();
                for _ in 0..1 + rnd() % 4 {
                    match rnd() % 3 {
                        0 if !v.is_empty() => {
                            let at = (rnd() as usize) % v.len();
                            v[at] = rnd() as u8;
                        }
                        1 if !v.is_empty() => {
                            let n = (rnd() as usize) % v.len();
                            v.truncate(n);
                        }
                        _ => v.push(rnd() as u8),
                    }
                }
                v
            };
            if i % 3 == 0 && v.len() >= 2 {
                v[0] = 0;
                v[1] = (rnd() % 7) as u8;
            }
            if let Ok(p) = Packet::parse(&v) {
                parsed[from] += 1;
                let mut out = Vec::new();
                p.emit(&mut out);
                let again = Packet::parse(&out);
                assert_eq!(again.as_ref(), Ok(&p), "{v:x?} re-emitted as {out:x?}");
                let mut twice = Vec::new();
                again.unwrap().emit(&mut twice);
                assert_eq!(twice, out, "emitting is not canonical for {v:x?}");
            }
        }
        for (from, n) in parsed.iter().enumerate().take(4) {
            assert!(*n >= 100, "base {from}: only {n} mutants parsed");
        }
    }
}
