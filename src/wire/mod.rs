//! Bytes only: parsers and emitters for the DHCP and TFTP wire formats, and
//! the small value types (MAC addresses, UUIDs) they carry.
//!
//! This module is the one door for untrusted bytes. Every `parse` returns
//! `Ok` or `Err` for any input and never panics; once a packet has parsed,
//! nothing downstream needs to re-check its lengths.

pub mod dhcp;
pub mod tftp;

use std::fmt;
use std::str::FromStr;

/// A 48-bit Ethernet hardware address.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct MacAddr(pub [u8; 6]);

impl fmt::Display for MacAddr {
    /// pybootd's spelling, `AA-BB-CC-DD-EE-FF`, the one used in `[mac]`
    /// keys, the HTTP ACL query and notices.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(
            f,
            "{:02X}-{:02X}-{:02X}-{:02X}-{:02X}-{:02X}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}

impl fmt::Debug for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for MacAddr {
    type Err = String;
    /// Accepts `AA-BB-CC-DD-EE-FF`, `aa:bb:cc:dd:ee:ff` and `aabbccddeeff`.
    fn from_str(s: &str) -> Result<Self, String> {
        let hex: String = s.chars().filter(|c| *c != '-' && *c != ':').collect();
        let seps = s.len() - hex.len();
        if hex.len() != 12 || !(seps == 0 || seps == 5) || !hex.is_ascii() {
            return Err(format!("'{s}' is not a MAC address (AA-BB-CC-DD-EE-FF)"));
        }
        let mut out = [0u8; 6];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = hex_byte(&hex[2 * i..2 * i + 2])
                .ok_or_else(|| format!("'{s}' is not a MAC address (AA-BB-CC-DD-EE-FF)"))?;
        }
        Ok(MacAddr(out))
    }
}

/// A client machine UUID (DHCP option 97, RFC 4578), kept in the byte order
/// it came in (SMBIOS order: the first three fields little-endian, see
/// FIRMWARE.md) and printed the way the firmware and pxelinux print it.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Uuid(pub [u8; 16]);

impl fmt::Display for Uuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, b) in self.0.iter().enumerate() {
            if matches!(i, 4 | 6 | 8 | 10) {
                f.write_str("-")?;
            }
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Uuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for Uuid {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let hex: String = s.chars().filter(|c| *c != '-').collect();
        if hex.len() != 32 || !hex.is_ascii() {
            return Err(format!(
                "'{s}' is not a UUID (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)"
            ));
        }
        let mut out = [0u8; 16];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = hex_byte(&hex[2 * i..2 * i + 2]).ok_or_else(|| {
                format!("'{s}' is not a UUID (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)")
            })?;
        }
        Ok(Uuid(out))
    }
}

/// Two hex digits as a byte. Unlike `u8::from_str_radix`, a sign (`+a`)
/// is not a digit.
pub fn hex_byte(two: &str) -> Option<u8> {
    if two.len() == 2 && two.bytes().all(|b| b.is_ascii_hexdigit()) {
        u8::from_str_radix(two, 16).ok()
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_spellings() {
        let m: MacAddr = "52:54:00:e2:e0:01".parse().unwrap();
        assert_eq!(m.to_string(), "52-54-00-E2-E0-01");
        assert_eq!("52-54-00-E2-E0-01".parse::<MacAddr>().unwrap(), m);
        assert_eq!("525400e2e001".parse::<MacAddr>().unwrap(), m);
        assert!("52-54-00-E2-E0".parse::<MacAddr>().is_err());
        assert!("52-54-00-E2-E0-0G".parse::<MacAddr>().is_err());
        // A sign is not a hex digit (u8::from_str_radix would take "+a").
        assert!("+a-54-00-E2-E0-01".parse::<MacAddr>().is_err());
        assert!("+a5400e2e001".parse::<MacAddr>().is_err());
        assert_eq!(hex_byte("+a"), None);
        assert_eq!(hex_byte("aF"), Some(0xaf));
    }

    #[test]
    fn uuid_round_trip() {
        let u: Uuid = "00002e8e-3412-bc4a-8def-0000e2e00001".parse().unwrap();
        assert_eq!(u.to_string(), "00002e8e-3412-bc4a-8def-0000e2e00001");
        assert!("00002e8e-3412".parse::<Uuid>().is_err());
        assert!("+0002e8e-3412-bc4a-8def-0000e2e00001"
            .parse::<Uuid>()
            .is_err());
    }
}
