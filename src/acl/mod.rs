//! Access control: `[mac]` and `[uuid]` rules with prefix masks, pure (no
//! I/O). The asynchronous HTTP check lives in `http.rs`.

pub mod http;

use std::fmt;

use crate::wire::{MacAddr, Uuid};

/// A bit pattern with a prefix length, as in `AA-BB-CC/24`: the first
/// `prefix` bits of a value must equal those of `bits`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Mask<const N: usize> {
    pub bits: [u8; N],
    pub prefix: u16,
}

impl<const N: usize> Mask<N> {
    pub fn matches(&self, value: &[u8; N]) -> bool {
        let full = usize::from(self.prefix / 8);
        let rest = self.prefix % 8;
        if self.bits[..full] != value[..full] {
            return false;
        }
        if rest == 0 {
            return true;
        }
        let m = 0xffu8 << (8 - rest);
        (self.bits[full] & m) == (value[full] & m)
    }

    /// Parses `HEX[/prefix]` where HEX may be shorter than the full value
    /// when a prefix is given (`AA-BB-CC/24`); separators `-` and `:` are
    /// ignored. `what` names the kind of value in errors.
    pub fn parse(s: &str, what: &str) -> Result<Self, String> {
        let (body, prefix) = match s.split_once('/') {
            Some((b, p)) => {
                let p: u16 = p
                    .trim()
                    .parse()
                    .map_err(|_| format!("'{s}': bad prefix length '{p}'"))?;
                if usize::from(p) > N * 8 {
                    return Err(format!(
                        "'{s}': prefix length {p} is more than {} bits",
                        N * 8
                    ));
                }
                (b.trim(), Some(p))
            }
            None => (s.trim(), None),
        };
        let hex: String = body.chars().filter(|c| *c != '-' && *c != ':').collect();
        if !hex.is_ascii() || hex.len() % 2 != 0 || hex.len() > 2 * N || hex.is_empty() {
            return Err(format!("'{s}' is not a {what}"));
        }
        let mut bits = [0u8; N];
        for (i, byte) in bits.iter_mut().take(hex.len() / 2).enumerate() {
            *byte = crate::wire::hex_byte(&hex[2 * i..2 * i + 2])
                .ok_or_else(|| format!("'{s}' is not a {what}"))?;
        }
        let given = (hex.len() / 2 * 8) as u16;
        let prefix = match prefix {
            Some(p) if p > given => {
                return Err(format!(
                    "'{s}': prefix /{p} is longer than the {given} bits given"
                ))
            }
            Some(p) => p,
            None if given as usize == N * 8 => given,
            None => {
                return Err(format!(
                    "'{s}' is not a {what} (a partial value needs /prefix)"
                ))
            }
        };
        Ok(Mask { bits, prefix })
    }
}

impl<const N: usize> fmt::Display for Mask<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, b) in self.bits.iter().enumerate() {
            if i > 0 {
                f.write_str("-")?;
            }
            write!(f, "{b:02X}")?;
        }
        write!(f, "/{}", self.prefix)
    }
}

pub type MacMask = Mask<6>;
pub type UuidMask = Mask<16>;

impl MacMask {
    pub fn matches_mac(&self, mac: &MacAddr) -> bool {
        self.matches(&mac.0)
    }
}

impl UuidMask {
    pub fn matches_uuid(&self, uuid: &Uuid) -> bool {
        self.matches(&uuid.0)
    }
}

/// One `[mac]` or `[uuid]` entry: a mask and whether it allows or denies.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Rule<const N: usize> {
    pub mask: Mask<N>,
    pub allow: bool,
}

/// The verdict of an ordered rule list for one value: the most specific
/// (longest prefix) matching rule wins; among equal prefixes, the first.
/// `None` when no rule matches.
pub fn verdict<const N: usize>(rules: &[Rule<N>], value: &[u8; N]) -> Option<bool> {
    let mut best: Option<&Rule<N>> = None;
    for r in rules.iter().filter(|r| r.mask.matches(value)) {
        if best.is_none_or(|b| r.mask.prefix > b.mask.prefix) {
            best = Some(r);
        }
    }
    best.map(|r| r.allow)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks() {
        let m = MacMask::parse("AA-BB-CC/24", "MAC").unwrap();
        assert!(m.matches(&[0xaa, 0xbb, 0xcc, 1, 2, 3]));
        assert!(!m.matches(&[0xaa, 0xbb, 0xcd, 1, 2, 3]));
        let m = MacMask::parse("AA-BB-C0/20", "MAC").unwrap();
        assert!(m.matches(&[0xaa, 0xbb, 0xcf, 1, 2, 3]));
        assert!(!m.matches(&[0xaa, 0xbb, 0xd0, 1, 2, 3]));
        assert!(MacMask::parse("AA-BB-CC", "MAC").is_err());
        assert!(MacMask::parse("AA-BB-CC/32", "MAC").is_err());
        assert!(MacMask::parse("AA-BB-CC-DD-EE-FF/49", "MAC").is_err());
        assert_eq!(
            MacMask::parse("aa:bb:cc:dd:ee:ff", "MAC").unwrap().prefix,
            48
        );
    }

    #[test]
    fn most_specific_rule_wins() {
        let rules = vec![
            Rule {
                mask: MacMask::parse("AA-BB-CC/24", "MAC").unwrap(),
                allow: true,
            },
            Rule {
                mask: MacMask::parse("AA-BB-CC-00-00-01", "MAC").unwrap(),
                allow: false,
            },
        ];
        assert_eq!(verdict(&rules, &[0xaa, 0xbb, 0xcc, 0, 0, 1]), Some(false));
        assert_eq!(verdict(&rules, &[0xaa, 0xbb, 0xcc, 0, 0, 2]), Some(true));
        assert_eq!(verdict(&rules, &[0xab, 0xbb, 0xcc, 0, 0, 2]), None);
    }
}
