//! Step one of reading a config: `.ini` text -> sections of (key, value,
//! line), in file order, with exactly the rules of Python's
//! `configparser.ConfigParser` (strict, no interpolation), the dialect
//! pybootd users' files are written in. Pure: text in, sections out.
//!
//! This is a line parser of its own rather than rust-ini: rust-ini joins
//! `\`-continued lines, rejects `;` after a value and does not know
//! ConfigParser's indented continuation lines, so the same file would read
//! differently here and in upstream pybootd. tests/config.rs compares this
//! parser with python3's configparser on tricky files.
//!
//! The rules, as `ConfigParser._read` applies them:
//! - a line whose first non-blank character is `;` or `#` is a comment;
//!   there are no inline comments (`dns = a;b` keeps `a;b`);
//! - `[name]` (after trimming; the last `]` closes it, text after it is
//!   ignored) starts a section; names are compared case-insensitively here
//!   (ConfigParser is case-sensitive: a documented leniency);
//! - `key = value` or `key: value`, split at the first `=` or `:`; keys are
//!   lowercased, keys and values trimmed; an empty key is an error;
//! - a line indented deeper than the line of its key continues that key's
//!   value (joined with `\n`); blank lines inside such a value are kept,
//!   trailing ones dropped;
//! - a key before any section, a line with no `=`/`:`, a repeated section
//!   and a repeated key in one section are errors (ConfigParser's strict
//!   mode, the default of Python 3).

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawSection {
    /// Trimmed, lowercased section name.
    pub name: String,
    /// Line of the `[section]` header (1-based).
    pub line: usize,
    /// (lowercased key, value, line of the key) in file order.
    pub entries: Vec<(String, String, usize)>,
}

impl RawSection {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.entries
            .iter()
            .find(|(k, _, _)| k == key)
            .map(|(_, v, _)| v.as_str())
    }

    pub fn line_of(&self, key: &str) -> Option<usize> {
        self.entries
            .iter()
            .find(|(k, _, _)| k == key)
            .map(|(_, _, l)| *l)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RawIni {
    pub sections: Vec<RawSection>,
}

/// Python's `str.strip()` set: Unicode whitespace.
fn indent_of(line: &str) -> usize {
    line.chars().take_while(|c| c.is_whitespace()).count()
}

impl RawIni {
    pub fn section(&self, name: &str) -> Option<&RawSection> {
        self.sections.iter().find(|s| s.name == name)
    }

    /// Parses `text`; an error is (line, message).
    pub fn parse(text: &str) -> Result<RawIni, (usize, String)> {
        let mut sections: Vec<RawSection> = Vec::new();
        // The key whose value a deeper-indented line would continue:
        // (index in the current section's entries).
        let mut cur_key: Option<usize> = None;
        // Indent of the last header or key line.
        let mut indent_level = 0usize;
        // Blank lines seen inside the current value (kept only when more
        // value follows, as ConfigParser's final rstrip drops the rest).
        let mut pending_blank = 0usize;

        for (i, raw_line) in text.split('\n').enumerate() {
            let n = i + 1;
            let line = raw_line.strip_suffix('\r').unwrap_or(raw_line);
            let value = line.trim();
            if value.starts_with(';') || value.starts_with('#') {
                continue;
            }
            if value.is_empty() {
                if cur_key.is_some() {
                    pending_blank += 1;
                }
                continue;
            }
            let cur_indent = indent_of(line);
            if let (Some(k), Some(sec)) = (cur_key, sections.last_mut()) {
                if cur_indent > indent_level {
                    let v = &mut sec.entries[k].1;
                    for _ in 0..=pending_blank {
                        v.push('\n');
                    }
                    // ConfigParser drops a first empty part: `key =` then
                    // an indented line gives "\nline"; keep that.
                    v.push_str(value);
                    pending_blank = 0;
                    continue;
                }
            }
            pending_blank = 0;
            indent_level = cur_indent;
            // A section header: `[` + at least one character + the last `]`.
            if let Some(close) = value
                .rfind(']')
                .filter(|&c| value.starts_with('[') && c > 1)
            {
                let name = value[1..close].trim().to_lowercase();
                if let Some(prev) = sections.iter().find(|s| s.name == name) {
                    return Err((
                        n,
                        format!(
                            "section [{name}] appears twice (first at line {})",
                            prev.line
                        ),
                    ));
                }
                sections.push(RawSection {
                    name,
                    line: n,
                    entries: Vec::new(),
                });
                cur_key = None;
                continue;
            }
            let Some(sec) = sections.last_mut() else {
                return Err((n, format!("'{value}' comes before any [section] header")));
            };
            let Some(pos) = value.find(['=', ':']) else {
                return Err((
                    n,
                    format!("syntax error: '{value}' is neither [section] nor key = value"),
                ));
            };
            let key = value[..pos].trim().to_lowercase();
            if key.is_empty() {
                return Err((n, format!("syntax error: '{value}' has no key")));
            }
            if let Some((_, _, first)) = sec.entries.iter().find(|(k, _, _)| *k == key) {
                return Err((
                    n,
                    format!("[{}] {key} appears twice (first at line {first})", sec.name),
                ));
            }
            sec.entries
                .push((key, value[pos + 1..].trim().to_string(), n));
            cur_key = Some(sec.entries.len() - 1);
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
    fn continuation_lines() {
        let ini = RawIni::parse("[a]\nk = v\n\n  x\n# c\n  y\n\nz:1=2\n").unwrap();
        let a = ini.section("a").unwrap();
        assert_eq!(a.get("k"), Some("v\n\nx\ny"));
        assert_eq!(a.get("z"), Some("1=2"));
    }

    #[test]
    fn errors_have_lines() {
        assert_eq!(RawIni::parse("key = v\n").unwrap_err().0, 1);
        assert_eq!(RawIni::parse("[a]\nx = 1\nnonsense\n").unwrap_err().0, 3);
        assert_eq!(RawIni::parse("[a]\n[a]\n").unwrap_err().0, 2);
        assert_eq!(RawIni::parse("[a]\nx = 1\nX : 2\n").unwrap_err().0, 3);
        assert_eq!(RawIni::parse("[a]\n = 2\n").unwrap_err().0, 2);
    }
}
