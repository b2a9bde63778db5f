//! Step one of reading a config: `.ini` text -> sections of (key, value,
//! line), in file order, with Python ConfigParser's rules (the dialect
//! pybootd users' files are written in). rust-ini does the parsing, with
//! quotes and escapes off; this module adds what ConfigParser does and
//! rust-ini does not: indented full-line comments, lowercased keys and
//! section-less keys as an error, and the line of every key for messages.

use ini::{Ini, ParseOption};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawSection {
    /// Lowercased section name.
    pub name: String,
    /// Line of the `[section]` header (1-based).
    pub line: usize,
    /// (lowercased key, trimmed value, line) in file order.
    pub entries: Vec<(String, String, usize)>,
}

impl RawSection {
    pub fn get(&self, key: &str) -> Option<&str> {
        // ConfigParser keeps the last value of a repeated key.
        self.entries
            .iter()
            .rev()
            .find(|(k, _, _)| k == key)
            .map(|(_, v, _)| v.as_str())
    }

    pub fn line_of(&self, key: &str) -> Option<usize> {
        self.entries
            .iter()
            .rev()
            .find(|(k, _, _)| k == key)
            .map(|(_, _, l)| *l)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RawIni {
    pub sections: Vec<RawSection>,
}

impl RawIni {
    pub fn section(&self, name: &str) -> Option<&RawSection> {
        self.sections.iter().find(|s| s.name == name)
    }

    /// Parses `text`; an error is (line, message).
    pub fn parse(text: &str) -> Result<RawIni, (usize, String)> {
        // Full-line comments may be indented in ConfigParser; rust-ini only
        // takes them in column 1. Blank them (keeping line numbers).
        let cleaned: String = text
            .lines()
            .map(|l| {
                let t = l.trim_start();
                if t.starts_with(';') || t.starts_with('#') {
                    ""
                } else {
                    l
                }
            })
            .collect::<Vec<_>>()
            .join("\n");
        let opt = ParseOption {
            enabled_quote: false,
            enabled_escape: false,
            ..ParseOption::default()
        };
        let ini = Ini::load_from_str_opt(&cleaned, opt)
            .map_err(|e| (e.line, format!("syntax error: {}", e.msg)))?;

        // Locate headers and keys by line, the same walk ConfigParser does.
        // (section name, header line, [(key, line)])
        type Located = (String, usize, Vec<(String, usize)>);
        let mut located: Vec<Located> = Vec::new();
        for (i, line) in cleaned.lines().enumerate() {
            let n = i + 1;
            let t = line.trim();
            if t.is_empty() {
                continue;
            }
            if let Some(rest) = t.strip_prefix('[') {
                let name = rest
                    .split(']')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_ascii_lowercase();
                located.push((name, n, Vec::new()));
                continue;
            }
            let Some(pos) = t.find(['=', ':']) else {
                return Err((n, format!("syntax error: '{t}' is not 'key = value'")));
            };
            let key = t[..pos].trim().to_ascii_lowercase();
            match located.last_mut() {
                Some((_, _, keys)) => keys.push((key, n)),
                None => {
                    return Err((n, format!("'{key}' comes before any [section] header")));
                }
            }
        }

        let mut sections: Vec<RawSection> = Vec::new();
        for (name, line, keys) in located {
            if let Some(prev) = sections.iter().find(|s| s.name == name) {
                return Err((
                    line,
                    format!(
                        "section [{name}] appears twice (first at line {})",
                        prev.line
                    ),
                ));
            }
            let mut entries = Vec::with_capacity(keys.len());
            let props = ini
                .iter()
                .filter(|(s, _)| s.is_some_and(|s| s.trim().eq_ignore_ascii_case(&name)))
                .flat_map(|(_, p)| p.iter())
                .collect::<Vec<_>>();
            for (key, kline) in keys {
                let value = props
                    .iter()
                    .rev()
                    .find(|(k, _)| k.trim().eq_ignore_ascii_case(&key))
                    .map(|(_, v)| v.trim().to_string())
                    .unwrap_or_default();
                entries.push((key, value, kline));
            }
            sections.push(RawSection {
                name,
                line,
                entries,
            });
        }
        Ok(RawIni { sections })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configparser_rules() {
        let ini = RawIni::parse(
            "; top comment\n[BootP]\n  # indented comment\nPool_Start = 10.0.0.1\ndns: 1.1.1.1;8.8.8.8\n\n[tftp]\nroot = http://x/y\n",
        )
        .unwrap();
        let b = ini.section("bootp").unwrap();
        assert_eq!(b.get("pool_start"), Some("10.0.0.1"));
        assert_eq!(b.line_of("pool_start"), Some(4));
        assert_eq!(b.get("dns"), Some("1.1.1.1;8.8.8.8"));
        assert_eq!(ini.section("tftp").unwrap().get("root"), Some("http://x/y"));
    }

    #[test]
    fn errors_have_lines() {
        assert_eq!(RawIni::parse("key = v\n").unwrap_err().0, 1);
        assert_eq!(RawIni::parse("[a]\nx = 1\nnonsense\n").unwrap_err().0, 3);
        assert_eq!(RawIni::parse("[a]\n[a]\n").unwrap_err().0, 2);
    }
}
