//! The pybootd `.ini` file, read in two steps: `raw` turns text into
//! sections of (key, value, line) in file order with ConfigParser's rules;
//! this module validates that into a typed [`Config`]. No I/O but reading
//! the file itself; every error names the file, the section and the key.

mod raw;

use std::collections::BTreeMap;
use std::fmt;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::acl::{MacMask, Rule};
use crate::wire::MacAddr;

pub use raw::{RawIni, RawSection};

/// Where the daemon looks for its configuration when `-c` is not given.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/pybootd.ini";
/// Where leases are journaled when `lease_file` is not given.
pub const DEFAULT_LEASE_FILE: &str = "/var/lib/pybootd/leases.jsonl";

/// The message for an `https://` URL: this build has no TLS client.
fn no_tls(url: &str, instead: &str) -> String {
    format!("'{url}': https:// is not supported (this build has no TLS): use {instead}")
}

/// A configuration error: which file, section, key (or line) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: PathBuf,
    pub section: Option<String>,
    pub key: Option<String>,
    pub line: Option<usize>,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        match (&self.section, &self.key) {
            (Some(s), Some(k)) => write!(f, ": [{s}] {k}")?,
            (Some(s), None) => write!(f, ": [{s}]")?,
            _ => {}
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for ConfigError {}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogKind {
    Stderr,
    Stdout,
    File,
    Syslog,
    None,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    Critical,
    Error,
    Warning,
    Info,
    Debug,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoggerConfig {
    pub kind: LogKind,
    pub level: LogLevel,
    pub file: Option<PathBuf>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    None,
    Mac,
    Uuid,
    Http,
}

impl fmt::Display for Access {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Access::None => "none",
            Access::Mac => "mac",
            Access::Uuid => "uuid",
            Access::Http => "http",
        })
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Dns {
    /// The host's `/etc/resolv.conf` name servers, read at start-up.
    Auto,
    List(Vec<Ipv4Addr>),
}

#[derive(Clone, Debug, PartialEq)]
pub struct BootpConfig {
    /// The section's name as the file spells it (`bootp` or `bootpd`), for
    /// errors found after parsing.
    pub section: String,
    pub address: Ipv4Addr,
    /// 0: any free port, chosen by the kernel and logged (tests).
    pub port: u16,
    pub pool_start: Ipv4Addr,
    pub pool_count: u32,
    pub lease_time: u32,
    pub access: Access,
    pub allow_simple_dhcp: bool,
    /// Give BOOTP (no option 53) clients pool addresses; off: only
    /// `[static_dhcp]` MACs get a BOOTP reply. Default false.
    pub bootp_dynamic: bool,
    /// 2011's `boot_file`; `[bootfile] default` takes precedence.
    pub boot_file: Option<String>,
    pub domain: String,
    pub servername: String,
    pub dns: Dns,
    pub gateway: Option<Ipv4Addr>,
    /// Send the router option (3) at all; upstream's sample file carries
    /// `set_gateway = true`. Default true.
    pub set_gateway: bool,
    pub netmask: Option<Ipv4Addr>,
    pub notify: Vec<SocketAddrV4>,
    /// How long to wait for the HTTP ACL server (upstream's place for it;
    /// `[http] timeout` wins when given).
    pub timeout: Duration,
    /// Whether the file set `timeout` here.
    pub timeout_given: bool,
    /// The lease journal; `None` when `lease_file = none`.
    pub lease_file: Option<PathBuf>,
}

#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct BootfileConfig {
    pub default: Option<String>,
    /// RFC 4578 client architecture -> boot file.
    pub by_arch: BTreeMap<u16, String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Root {
    Local(PathBuf),
    /// A URL prefix; the requested name is appended after a `/`.
    Http(String),
}

#[derive(Clone, Debug, PartialEq)]
pub struct TftpConfig {
    /// `None`: the server address found from `pool_start`, else 0.0.0.0.
    pub address: Option<Ipv4Addr>,
    pub port: u16,
    /// Block size used when the client asks for none larger (RFC 1350: 512).
    pub blocksize: u16,
    /// The largest block size granted to a client that asks for more.
    pub max_blocksize: u16,
    /// Seconds before a retransmission.
    pub timeout: Duration,
    /// Retransmissions of one packet before the transfer is abandoned.
    pub retries: u32,
    pub root: Root,
    /// Concurrent transfers; a request beyond them gets ERROR 0 "Server
    /// busy" at once (no waiting queue a flood could fill).
    pub max_transfers: usize,
    /// Concurrent transfers for one source address: one host (or one
    /// forged source) cannot take every slot.
    pub max_per_client: usize,
    /// The largest window (RFC 7440) granted.
    pub max_windowsize: u16,
    /// Uploads (WRQ) land here; `None` refuses every WRQ.
    pub upload_dir: Option<PathBuf>,
    /// The largest upload accepted, in bytes.
    pub upload_max: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpdConfig {
    /// `None`: the server address found from `pool_start`, else 0.0.0.0.
    pub address: Option<Ipv4Addr>,
    pub port: u16,
    pub root: PathBuf,
    pub check_ip: bool,
}

/// `[daemon]`: who the daemon is once its sockets are bound. Names only:
/// they are looked up (and the drop done) when the daemon starts.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DaemonConfig {
    /// `user`: the account to run as; `None`: stay who started it.
    pub user: Option<String>,
    /// `group`: `None` is the user's own group.
    pub group: Option<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct HttpAclConfig {
    /// `http://host:port` (a bare `host:port` gets `http://` in front).
    pub location: String,
    pub pxe: String,
    pub dhcp: String,
    pub always_check: bool,
    pub timeout: Duration,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Filter {
    pub pattern: String,
    pub value: String,
}

/// The whole validated configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// The file it came from, for messages.
    pub path: PathBuf,
    pub logger: LoggerConfig,
    pub daemon: DaemonConfig,
    /// `None` when the file has no `[bootp]`/`[bootpd]` section.
    pub bootp: Option<BootpConfig>,
    pub bootfile: BootfileConfig,
    pub tftp: TftpConfig,
    pub httpd: Option<HttpdConfig>,
    pub filters: Vec<Filter>,
    pub mac_rules: Vec<Rule<6>>,
    pub uuid_rules: Vec<Rule<16>>,
    pub http_acl: Option<HttpAclConfig>,
    pub static_dhcp: Vec<(MacAddr, Ipv4Addr)>,
    pub buggy_clients: Vec<MacMask>,
}

impl Config {
    /// Reads and validates a file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: path.to_path_buf(),
            section: None,
            key: None,
            line: None,
            message: format!("cannot read: {e}"),
        })?;
        Config::parse(&text, path)
    }

    /// Validates `text` (pure); `path` only names the file in errors.
    /// Relative roots stay relative: they resolve against the daemon's
    /// current directory, as upstream.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let raw = RawIni::parse(text).map_err(|(line, message)| ConfigError {
            file: path.to_path_buf(),
            section: None,
            key: None,
            line: Some(line),
            message,
        })?;
        Validator { path, raw: &raw }.run()
    }

    /// The boot file for a client architecture: its `[bootfile]` entry,
    /// else `default`, else 2011's `boot_file`.
    pub fn boot_file_for(&self, arch: Option<u16>) -> Option<&str> {
        arch.and_then(|a| self.bootfile.by_arch.get(&a))
            .or(self.bootfile.default.as_ref())
            .or(self.bootp.as_ref().and_then(|b| b.boot_file.as_ref()))
            .map(String::as_str)
    }
}

/// "'v' is not <what>", with a hint when an indented line was taken as
/// the continuation of this value (ConfigParser's rule).
fn not_a(v: &str, what: &str) -> String {
    if v.contains('\n') {
        format!(
            "'{}' is not {what}: an indented line continues the value above it; unindent it",
            v.replace('\n', "\\n")
        )
    } else {
        format!("'{v}' is not {what}")
    }
}

/// Parses a ConfigParser boolean.
pub fn parse_bool(v: &str) -> Option<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "on" | "high" | "true" | "enable" | "enabled" | "yes" | "1" | "ok" => Some(true),
        "off" | "low" | "false" | "disable" | "disabled" | "no" | "0" | "ko" => Some(false),
        _ => None,
    }
}

struct Validator<'a> {
    path: &'a Path,
    raw: &'a RawIni,
}

/// One section being read: hands out keys and remembers which were used,
/// so that an unknown key is an error.
struct Section<'a> {
    path: &'a Path,
    raw: &'a RawSection,
    used: Vec<&'static str>,
}

impl<'a> Section<'a> {
    fn err(&self, key: Option<&str>, message: impl Into<String>) -> ConfigError {
        ConfigError {
            file: self.path.to_path_buf(),
            section: Some(self.raw.name.clone()),
            key: key.map(str::to_string),
            line: key.and_then(|k| self.raw.line_of(k)),
            message: message.into(),
        }
    }

    fn get(&mut self, key: &'static str) -> Option<&'a str> {
        self.used.push(key);
        self.raw.get(key)
    }

    /// A key with an alternative spelling; both at once is an error.
    fn either(
        &mut self,
        key: &'static str,
        alias: &'static str,
    ) -> Result<Option<&'a str>, ConfigError> {
        match (self.get(key), self.get(alias)) {
            (Some(_), Some(_)) => Err(self.err(
                Some(alias),
                format!("{alias} is another spelling of {key}; keep one"),
            )),
            (a, b) => Ok(a.or(b)),
        }
    }

    fn string(&mut self, key: &'static str, default: &str) -> String {
        self.get(key).unwrap_or(default).to_string()
    }

    fn parsed<T: std::str::FromStr>(
        &mut self,
        key: &'static str,
        what: &str,
    ) -> Result<Option<T>, ConfigError> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v
                .parse::<T>()
                .map(Some)
                .map_err(|_| self.err(Some(key), not_a(v, what))),
        }
    }

    fn ip(&mut self, key: &'static str) -> Result<Option<Ipv4Addr>, ConfigError> {
        self.parsed(key, "an IPv4 address")
    }

    fn boolean(&mut self, key: &'static str, default: bool) -> Result<bool, ConfigError> {
        match self.get(key) {
            None => Ok(default),
            Some(v) => parse_bool(v).ok_or_else(|| {
                self.err(
                    Some(key),
                    format!("'{v}' is not a boolean (yes/no, on/off, true/false, 1/0)"),
                )
            }),
        }
    }

    fn seconds(&mut self, key: &'static str, default: f64) -> Result<Duration, ConfigError> {
        let v = self
            .parsed::<f64>(key, "a number of seconds")?
            .unwrap_or(default);
        if !(v.is_finite() && v > 0.0 && v <= 3600.0) {
            return Err(self.err(Some(key), format!("{v} seconds is out of range (0, 3600]")));
        }
        Ok(Duration::from_secs_f64(v))
    }

    fn number<T>(&mut self, key: &'static str, default: T, min: T, max: T) -> Result<T, ConfigError>
    where
        T: TryFrom<i128> + Into<i128> + fmt::Display + Copy,
    {
        let Some(v) = self.parsed::<i128>(key, "a whole number")? else {
            return Ok(default);
        };
        if v < min.into() || v > max.into() {
            return Err(self.err(Some(key), format!("{v} is out of range [{min}, {max}]")));
        }
        T::try_from(v).map_err(|_| self.err(Some(key), format!("{v} is out of range")))
    }

    /// Every key not read is unknown: an error naming it.
    fn finish(self) -> Result<(), ConfigError> {
        for (k, _, _) in &self.raw.entries {
            if !self.used.contains(&k.as_str()) {
                let known = self.used.join(", ");
                return Err(self.err(Some(k), format!("unknown key (known keys: {known})")));
            }
        }
        Ok(())
    }
}

impl Validator<'_> {
    fn section(&self, names: &[&str]) -> Result<Option<Section<'_>>, ConfigError> {
        let found: Vec<&RawSection> = names.iter().filter_map(|n| self.raw.section(n)).collect();
        if found.len() > 1 {
            return Err(ConfigError {
                file: self.path.to_path_buf(),
                section: Some(found[1].name.clone()),
                key: None,
                line: Some(found[1].line),
                message: format!(
                    "both [{}] and [{}] are present; keep one",
                    found[0].name, found[1].name
                ),
            });
        }
        Ok(found.first().map(|raw| Section {
            path: self.path,
            raw,
            used: Vec::new(),
        }))
    }

    fn run(self) -> Result<Config, ConfigError> {
        const KNOWN: &[&str] = &[
            "logger",
            "daemon",
            "bootp",
            "bootpd",
            "bootfile",
            "tftp",
            "tftpd",
            "httpd",
            "filters",
            "mac",
            "uuid",
            "http",
            "static_dhcp",
            "buggy_clients",
        ];
        for s in &self.raw.sections {
            if !KNOWN.contains(&s.name.as_str()) {
                return Err(ConfigError {
                    file: self.path.to_path_buf(),
                    section: Some(s.name.clone()),
                    key: None,
                    line: Some(s.line),
                    message: format!("unknown section (known sections: {})", KNOWN.join(", ")),
                });
            }
        }
        let logger = self.logger()?;
        let daemon = self.daemon()?;
        let bootp = self.bootp()?;
        let bootfile = self.bootfile()?;
        let tftp = self.tftp()?;
        let httpd = self.httpd()?;
        let filters: Vec<Filter> = self
            .raw
            .section("filters")
            .map(|s| {
                s.entries
                    .iter()
                    .map(|(k, v, _)| Filter {
                        pattern: k.clone(),
                        value: v.clone(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        for f in &filters {
            if let Err(e) = glob::Pattern::new(&f.pattern) {
                let s = self
                    .raw
                    .section("filters")
                    .expect("filters come from this section");
                return Err(ConfigError {
                    file: self.path.to_path_buf(),
                    section: Some("filters".into()),
                    key: Some(f.pattern.clone()),
                    line: s.line_of(&f.pattern),
                    message: format!("bad glob pattern: {e}"),
                });
            }
        }
        let mac_rules = self.rules::<6>(
            "mac",
            "MAC address or mask (AA-BB-CC-DD-EE-FF, AA-BB-CC/24)",
        )?;
        let uuid_rules = self.rules::<16>("uuid", "UUID or mask")?;
        let mut http_acl = self.http_acl()?;
        // Upstream's files set the HTTP ACL's wait in [bootp] timeout;
        // [http] timeout, when given, wins.
        if let (Some(h), Some(b)) = (http_acl.as_mut(), bootp.as_ref()) {
            let http_has_it = self
                .raw
                .section("http")
                .is_some_and(|s| s.entries.iter().any(|(k, _, _)| k == "timeout"));
            if !http_has_it && b.timeout_given {
                h.timeout = b.timeout;
            }
        }
        let static_dhcp = self.static_dhcp(bootp.as_ref())?;
        let buggy_clients = self.buggy_clients()?;

        if let Some(b) = &bootp {
            let (needed, present) = match b.access {
                Access::None => ("", true),
                Access::Mac => ("mac", self.raw.section("mac").is_some()),
                Access::Uuid => ("uuid", self.raw.section("uuid").is_some()),
                Access::Http => ("http", http_acl.is_some()),
            };
            if !present {
                let s = self.section(&["bootp", "bootpd"])?.expect("bootp exists");
                return Err(s.err(
                    Some("access"),
                    format!("access = {needed} needs a [{needed}] section, and there is none"),
                ));
            }
        }

        Ok(Config {
            path: self.path.to_path_buf(),
            logger,
            daemon,
            bootp,
            bootfile,
            tftp,
            httpd,
            filters,
            mac_rules,
            uuid_rules,
            http_acl,
            static_dhcp,
            buggy_clients,
        })
    }

    fn logger(&self) -> Result<LoggerConfig, ConfigError> {
        let Some(mut s) = self.section(&["logger"])? else {
            return Ok(LoggerConfig {
                kind: LogKind::Stderr,
                level: LogLevel::Info,
                file: None,
            });
        };
        let kind = match s.get("type").map(|v| v.to_ascii_lowercase()) {
            None => LogKind::Stderr,
            Some(v) => match v.as_str() {
                "stderr" => LogKind::Stderr,
                "stdout" => LogKind::Stdout,
                "file" => LogKind::File,
                "syslog" => LogKind::Syslog,
                "none" => LogKind::None,
                _ => {
                    return Err(s.err(
                        Some("type"),
                        format!("'{v}' is not a logger type (stderr, stdout, file, syslog, none)"),
                    ))
                }
            },
        };
        // Upstream maps any other word to warning; so do we.
        let level = match s.get("level").map(|v| v.to_ascii_lowercase()).as_deref() {
            Some("critical") => LogLevel::Critical,
            Some("error") => LogLevel::Error,
            Some("info") | None => LogLevel::Info,
            Some("debug") => LogLevel::Debug,
            Some(_) => LogLevel::Warning,
        };
        let file = s.get("file").map(PathBuf::from);
        if kind == LogKind::File && file.is_none() {
            return Err(s.err(Some("file"), "type = file needs a file = PATH"));
        }
        s.finish()?;
        Ok(LoggerConfig { kind, level, file })
    }

    fn bootp(&self) -> Result<Option<BootpConfig>, ConfigError> {
        let Some(mut s) = self.section(&["bootp", "bootpd"])? else {
            return Ok(None);
        };
        let address = s.ip("address")?.unwrap_or(Ipv4Addr::UNSPECIFIED);
        let port = s.number("port", 67u16, 0, 65535)?;
        let pool_start = s.ip("pool_start")?.ok_or_else(|| {
            s.err(
                Some("pool_start"),
                "missing: the first address to hand out is required",
            )
        })?;
        let pool_count = s.number("pool_count", 10u32, 0, 1 << 24)?;
        if u64::from(u32::from(pool_start)) + u64::from(pool_count) > u64::from(u32::MAX) {
            return Err(s.err(Some("pool_count"), "the pool runs past 255.255.255.255"));
        }
        let lease_time = s.number("lease_time", 86400u32, 60, u32::MAX - 1)?;
        let access = match s
            .get("access")
            .map(|v| v.trim().to_ascii_lowercase())
            .as_deref()
        {
            None | Some("") | Some("none") => Access::None,
            Some("mac") => Access::Mac,
            Some("uuid") => Access::Uuid,
            Some("http") => Access::Http,
            Some(v) => {
                return Err(s.err(
                    Some("access"),
                    format!("'{v}' is not an access type (mac, uuid, http)"),
                ))
            }
        };
        let allow_simple_dhcp = s.boolean("allow_simple_dhcp", false)?;
        let bootp_dynamic = s.boolean("bootp_dynamic", false)?;
        let boot_file = s.get("boot_file").map(str::to_string);
        let domain = s.string("domain", "localdomain");
        // Upstream's own sample spells it `server_name`.
        let servername = s
            .either("servername", "server_name")?
            .unwrap_or("unknown")
            .to_string();
        let dns = match s.get("dns") {
            None => Dns::List(Vec::new()),
            Some(v) if v.trim().eq_ignore_ascii_case("auto") => Dns::Auto,
            Some(v) => {
                let mut list = Vec::new();
                for part in v.split([';', ',']).map(str::trim).filter(|p| !p.is_empty()) {
                    list.push(part.parse().map_err(|_| {
                        s.err(Some("dns"), format!("'{part}' is not an IPv4 address"))
                    })?);
                }
                Dns::List(list)
            }
        };
        let gateway = s.ip("gateway")?;
        let set_gateway = s.boolean("set_gateway", true)?;
        let netmask = s.ip("netmask")?;
        if let Some(m) = netmask {
            let bits = u32::from(m);
            if bits.leading_ones() + bits.trailing_zeros() != 32 || bits == 0 {
                return Err(s.err(
                    Some("netmask"),
                    format!("'{m}' is not a netmask (its one bits must be contiguous, e.g. 255.255.255.0)"),
                ));
            }
        }
        let mut notify = Vec::new();
        if let Some(v) = s.get("notify") {
            for part in v.split(';').map(str::trim).filter(|p| !p.is_empty()) {
                notify.push(part.parse().map_err(|_| {
                    s.err(Some("notify"), format!("'{part}' is not an ip:port target"))
                })?);
            }
        }
        let timeout_given = s.raw.entries.iter().any(|(k, _, _)| k == "timeout");
        let timeout = s.seconds("timeout", 5.0)?;
        let lease_file = match s.get("lease_file").map(str::trim) {
            None => Some(PathBuf::from(DEFAULT_LEASE_FILE)),
            Some(v) if v.eq_ignore_ascii_case("none") || v.is_empty() => None,
            Some(v) => Some(PathBuf::from(v)),
        };
        let section = s.raw.name.clone();
        s.finish()?;
        Ok(Some(BootpConfig {
            section,
            address,
            port,
            pool_start,
            pool_count,
            lease_time,
            access,
            allow_simple_dhcp,
            bootp_dynamic,
            boot_file,
            domain,
            servername,
            dns,
            gateway,
            set_gateway,
            netmask,
            notify,
            timeout,
            timeout_given,
            lease_file,
        }))
    }

    fn bootfile(&self) -> Result<BootfileConfig, ConfigError> {
        let Some(s) = self.section(&["bootfile"])? else {
            return Ok(BootfileConfig::default());
        };
        let mut out = BootfileConfig::default();
        for (k, v, _) in &s.raw.entries {
            if k == "default" {
                if v.is_empty() {
                    return Err(s.err(Some(k), "empty boot file name"));
                }
                out.default = Some(v.clone());
                continue;
            }
            if v.is_empty() {
                return Err(s.err(Some(k), "empty boot file name"));
            }
            let arch: u16 = k.parse().map_err(|_| {
                s.err(Some(k), "not an architecture: use 'default' or a number such as 00000 (BIOS) or 00007 (EFI x86-64)")
            })?;
            out.by_arch.insert(arch, v.clone());
        }
        Ok(out)
    }

    fn tftp(&self) -> Result<TftpConfig, ConfigError> {
        let Some(mut s) = self.section(&["tftp", "tftpd"])? else {
            return Ok(TftpConfig {
                address: None,
                port: 69,
                blocksize: 512,
                max_blocksize: 1468,
                timeout: Duration::from_secs(2),
                retries: 5,
                root: Root::Local(PathBuf::from(".")),
                max_transfers: 512,
                max_per_client: 8,
                max_windowsize: 64,
                upload_dir: None,
                upload_max: 64 << 20,
            });
        };
        let address = s.ip("address")?;
        let port = s.number("port", 69u16, 0, 65535)?;
        let blocksize = s.number("blocksize", 512u16, 8, 65464)?;
        let max_blocksize = match s.parsed::<u16>("max_blocksize", "a whole number")? {
            // An upstream file that raised blocksize keeps working.
            None => blocksize.max(1468),
            Some(_) => s.number("max_blocksize", 1468u16, 8, 65464)?,
        };
        if blocksize > max_blocksize {
            return Err(s.err(
                Some("blocksize"),
                format!("{blocksize} is larger than max_blocksize {max_blocksize}"),
            ));
        }
        let timeout = s.seconds("timeout", 2.0)?;
        let retries = s.number("retries", 5u32, 0, 100)?;
        let root = match s.get("root").map(str::trim) {
            None | Some("") => Root::Local(PathBuf::from(".")),
            Some(v) if v.starts_with("http://") => Root::Http(v.trim_end_matches('/').to_string()),
            // Refused here rather than passing --check and failing every
            // file: this build has no TLS client.
            Some(v) if v.starts_with("https://") => {
                return Err(s.err(
                    Some("root"),
                    no_tls(v, "an http:// URL or a local directory"),
                ))
            }
            Some(v) => Root::Local(PathBuf::from(v)),
        };
        let max_transfers = s.number("max_transfers", 512u32, 1, 1 << 16)? as usize;
        let max_per_client = s.number("max_per_client", 8u32, 1, 1 << 16)? as usize;
        let max_windowsize = s.number("max_windowsize", 64u16, 1, 1024)?;
        let upload_dir = s.get("upload_dir").map(PathBuf::from);
        let upload_max = s.number("upload_max", 64u64 << 20, 0, u64::MAX)?;
        s.finish()?;
        Ok(TftpConfig {
            address,
            port,
            blocksize,
            max_blocksize,
            timeout,
            retries,
            root,
            max_transfers,
            max_per_client,
            max_windowsize,
            upload_dir,
            upload_max,
        })
    }

    fn daemon(&self) -> Result<DaemonConfig, ConfigError> {
        let Some(mut s) = self.section(&["daemon"])? else {
            return Ok(DaemonConfig::default());
        };
        let mut name = |key: &'static str| -> Result<Option<String>, ConfigError> {
            match s.get(key).map(str::trim) {
                None => Ok(None),
                Some("") => Err(s.err(Some(key), "empty: name an account, or remove the key")),
                Some(v) => Ok(Some(v.to_string())),
            }
        };
        let user = name("user")?;
        let group = name("group")?;
        if group.is_some() && user.is_none() {
            return Err(s.err(Some("group"), "group without user: name the user too"));
        }
        s.finish()?;
        Ok(DaemonConfig { user, group })
    }

    fn httpd(&self) -> Result<Option<HttpdConfig>, ConfigError> {
        let Some(mut s) = self.section(&["httpd"])? else {
            return Ok(None);
        };
        let address = s.ip("address")?;
        let port = s.number("port", 80u16, 0, 65535)?;
        let root = PathBuf::from(s.string("root", "."));
        let check_ip = s.boolean("check_ip", true)?;
        s.finish()?;
        Ok(Some(HttpdConfig {
            address,
            port,
            root,
            check_ip,
        }))
    }

    fn http_acl(&self) -> Result<Option<HttpAclConfig>, ConfigError> {
        let Some(mut s) = self.section(&["http"])? else {
            return Ok(None);
        };
        let location = s
            .get("location")
            .ok_or_else(|| {
                s.err(
                    Some("location"),
                    "missing: the ACL server's host:port or URL",
                )
            })?
            .trim()
            .trim_end_matches('/')
            .to_string();
        let location = if location.contains("://") {
            location
        } else {
            format!("http://{location}")
        };
        if location.starts_with("https://") {
            return Err(s.err(Some("location"), no_tls(&location, "an http:// URL")));
        }
        if !location.starts_with("http://") {
            return Err(s.err(
                Some("location"),
                format!("'{location}': only http:// is supported"),
            ));
        }
        let path = |v: String| {
            if v.starts_with('/') {
                v
            } else {
                format!("/{v}")
            }
        };
        let pxe = path(s.string("pxe", "/boot"));
        let dhcp = path(s.string("dhcp", "/linux"));
        let always_check = s.boolean("always_check", false)?;
        let timeout = s.seconds("timeout", 5.0)?;
        s.finish()?;
        Ok(Some(HttpAclConfig {
            location,
            pxe,
            dhcp,
            always_check,
            timeout,
        }))
    }

    fn rules<const N: usize>(&self, name: &str, what: &str) -> Result<Vec<Rule<N>>, ConfigError> {
        let Some(s) = self.section(&[name])? else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for (k, v, _) in &s.raw.entries {
            let mask = crate::acl::Mask::<N>::parse(k, what).map_err(|m| s.err(Some(k), m))?;
            let allow = parse_bool(v).ok_or_else(|| {
                s.err(
                    Some(k),
                    format!("'{v}' is not a boolean (yes/no, on/off, true/false, 1/0)"),
                )
            })?;
            out.push(Rule { mask, allow });
        }
        Ok(out)
    }

    fn static_dhcp(
        &self,
        bootp: Option<&BootpConfig>,
    ) -> Result<Vec<(MacAddr, Ipv4Addr)>, ConfigError> {
        let Some(s) = self.section(&["static_dhcp"])? else {
            return Ok(Vec::new());
        };
        let mut out: Vec<(MacAddr, Ipv4Addr)> = Vec::new();
        for (k, v, _) in &s.raw.entries {
            let mac: MacAddr = k.parse().map_err(|m: String| s.err(Some(k), m))?;
            if out.iter().any(|(m, _)| *m == mac) {
                return Err(s.err(Some(k), format!("{mac} is listed twice")));
            }
            let ip: Ipv4Addr = v
                .parse()
                .map_err(|_| s.err(Some(k), format!("'{v}' is not an IPv4 address")))?;
            if let Some((other, _)) = out.iter().find(|(_, i)| *i == ip) {
                return Err(s.err(Some(k), format!("{ip} is already reserved for {other}")));
            }
            if ip.is_unspecified()
                || ip.is_broadcast()
                || bootp.is_some_and(|b| b.address == ip && !ip.is_unspecified())
            {
                return Err(s.err(Some(k), format!("{ip} cannot be handed out")));
            }
            out.push((mac, ip));
        }
        Ok(out)
    }

    fn buggy_clients(&self) -> Result<Vec<MacMask>, ConfigError> {
        let Some(s) = self.section(&["buggy_clients"])? else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for (k, v, _) in &s.raw.entries {
            let mask = MacMask::parse(k, "MAC address or mask").map_err(|m| s.err(Some(k), m))?;
            match parse_bool(v) {
                Some(true) => out.push(mask),
                Some(false) => {}
                None => return Err(s.err(Some(k), format!("'{v}' is not a boolean"))),
            }
        }
        Ok(out)
    }
}
