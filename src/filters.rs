//! `[filters]` name rewriting (pure): a requested TFTP name matching a glob
//! pattern is served from the rule's value instead. No I/O here: reading an
//! indirection file (`[path]`) is the file layer's job (`crate::files`).
//!
//! Value syntax (documented in the README, "TFTP and filters"):
//! - plain text: the name to serve, e.g. `pxelinux.cfg/* = pxe.cfg`;
//! - `{filename}`: the requested name (the seed's meaning);
//! - `{client_file}`: the boot file the HTTP ACL named for this client
//!   (upstream's `{filename}`); unknown -> the rule is skipped;
//! - `[path]`: read the real name from the file `path` (the seed's meaning);
//! - `<text>`: serve `text` itself as the file's content (upstream's
//!   `[text]`); `\n` in it is a newline.
//!
//! Patterns use the `glob` crate's `Pattern` with the default
//! `MatchOptions` (`*` crosses `/`); a leading `./` is stripped from the
//! request first; rules are tried in file order and the first match wins.

use glob::Pattern;

use crate::config::Filter;

/// What a request is served from after the filters ran.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// A name under the TFTP root.
    Name(String),
    /// Read the real name from this file (under the TFTP root).
    Indirect(String),
    /// Serve these bytes.
    Text(String),
}

/// Per-request facts the variables draw on.
#[derive(Clone, Debug, Default)]
pub struct Vars<'a> {
    /// The file the HTTP ACL named for this client (`File:` line), when the
    /// DHCP side knows it. `None` until it is wired in.
    pub client_file: Option<&'a str>,
}

/// The compiled `[filters]` section.
#[derive(Clone, Debug, Default)]
pub struct Filters {
    rules: Vec<(Pattern, String)>,
}

impl Filters {
    /// Compiles the rules; patterns were validated with the config, a bad
    /// one here is skipped.
    pub fn new(filters: &[Filter]) -> Filters {
        Filters {
            rules: filters
                .iter()
                .filter_map(|f| Some((Pattern::new(&f.pattern).ok()?, f.value.clone())))
                .collect(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The target for `requested`: the first rule that matches and whose
    /// variables are all known, else the name itself (leading `./` gone).
    pub fn apply(&self, requested: &str, vars: &Vars<'_>) -> Target {
        let name = strip_dot_slash(requested);
        for (pattern, value) in &self.rules {
            if !pattern.matches(name) {
                continue;
            }
            if let Some(t) = expand(value, name, vars) {
                return t;
            }
        }
        Target::Name(name.to_string())
    }
}

fn strip_dot_slash(mut s: &str) -> &str {
    while let Some(rest) = s.strip_prefix("./") {
        s = rest;
    }
    s
}

/// Substitutes `{filename}` and `{client_file}`; `None` when a variable is
/// unknown. Unknown `{words}` are left as written.
fn substitute(value: &str, name: &str, vars: &Vars<'_>) -> Option<String> {
    let mut out = String::with_capacity(value.len() + name.len());
    let mut rest = value;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open..];
        let close = after.find('}');
        match close.map(|c| &after[1..c]) {
            Some("filename") => out.push_str(name),
            Some("client_file") => out.push_str(vars.client_file?),
            _ => {
                out.push('{');
                rest = &after[1..];
                continue;
            }
        }
        rest = &after[close.unwrap_or(0) + 1..];
    }
    out.push_str(rest);
    Some(out)
}

fn expand(value: &str, name: &str, vars: &Vars<'_>) -> Option<Target> {
    let v = value.trim();
    if let Some(inner) = v.strip_prefix('<').and_then(|s| s.strip_suffix('>')) {
        let text = substitute(inner, name, vars)?;
        return Some(Target::Text(text.replace("\\n", "\n")));
    }
    if let Some(inner) = v.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
        return Some(Target::Indirect(substitute(inner, name, vars)?));
    }
    Some(Target::Name(substitute(v, name, vars)?))
}

/// The name an indirection file holds: its first non-empty line, trimmed.
pub fn name_from_indirect(content: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(content).ok()?;
    text.lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(rules: &[(&str, &str)]) -> Filters {
        Filters::new(
            &rules
                .iter()
                .map(|(p, v)| Filter {
                    pattern: p.to_string(),
                    value: v.to_string(),
                })
                .collect::<Vec<_>>(),
        )
    }

    #[test]
    fn seed_examples() {
        let fl = f(&[
            ("pxelinux.cfg/*", "pybootd/etc/pxe.cfg"),
            ("startup", "[dir/{filename}.cfg]"),
        ]);
        let v = Vars::default();
        assert_eq!(
            fl.apply("pxelinux.cfg/01-52-54-00-e2-e0-01", &v),
            Target::Name("pybootd/etc/pxe.cfg".into())
        );
        assert_eq!(
            fl.apply("startup", &v),
            Target::Indirect("dir/startup.cfg".into())
        );
        assert_eq!(fl.apply("vmlinuz", &v), Target::Name("vmlinuz".into()));
    }

    #[test]
    fn first_match_wins_and_star_crosses_slash() {
        let fl = f(&[("*.cfg", "a/{filename}"), ("grub/*", "never")]);
        let v = Vars::default();
        assert_eq!(
            fl.apply("./grub/x/grub.cfg", &v),
            Target::Name("a/grub/x/grub.cfg".into())
        );
        assert_eq!(fl.apply("grub/y", &v), Target::Name("never".into()));
        assert_eq!(fl.apply("./k", &v), Target::Name("k".into()));
    }

    #[test]
    fn client_file_and_text() {
        let fl = f(&[
            ("boot", "{client_file}"),
            ("boot", "fallback"),
            ("menu", "<DEFAULT {filename}\\nLABEL x>"),
            ("odd", "{nope}{filename}"),
        ]);
        let none = Vars::default();
        assert_eq!(fl.apply("boot", &none), Target::Name("fallback".into()));
        let some = Vars {
            client_file: Some("ipxe.efi"),
        };
        assert_eq!(fl.apply("boot", &some), Target::Name("ipxe.efi".into()));
        assert_eq!(
            fl.apply("menu", &none),
            Target::Text("DEFAULT menu\nLABEL x".into())
        );
        assert_eq!(fl.apply("odd", &none), Target::Name("{nope}odd".into()));
    }

    #[test]
    fn indirect_content() {
        assert_eq!(
            name_from_indirect(b"\n  real/name.bin \nother\n"),
            Some("real/name.bin".into())
        );
        assert_eq!(name_from_indirect(b"\n \n"), None);
        assert_eq!(name_from_indirect(b"\xff"), None);
    }
}
