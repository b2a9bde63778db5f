//! `[logger]` -> a tracing subscriber: stderr, stdout, a file, syslog or
//! nothing, at the configured level (`-d` raises it to debug).

use std::io::{IsTerminal, Write};
use std::sync::Mutex;

use tracing::Level;

use crate::config::{LogKind, LogLevel, LoggerConfig};

fn level(l: LogLevel) -> Level {
    match l {
        // tracing has no "critical": error is the closest.
        LogLevel::Critical | LogLevel::Error => Level::ERROR,
        LogLevel::Warning => Level::WARN,
        LogLevel::Info => Level::INFO,
        LogLevel::Debug => Level::DEBUG,
    }
}

/// Sends each formatted line to the local syslog socket (RFC 3164 framing,
/// facility daemon); falls back to stderr when there is no syslog.
struct Syslog {
    sock: Option<std::os::unix::net::UnixDatagram>,
}

impl Write for Syslog {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let line = String::from_utf8_lossy(buf);
        let msg = format!("<30>pybootd[{}]: {}", std::process::id(), line.trim_end());
        match &self.sock {
            Some(s) if s.send(msg.as_bytes()).is_ok() => {}
            _ => std::io::stderr().write_all(buf)?,
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Installs the global subscriber. Returns an error string naming the
/// `[logger] file` when it cannot be opened.
pub fn init(cfg: &LoggerConfig, debug: bool) -> Result<(), String> {
    let lvl = if debug {
        Level::DEBUG
    } else {
        level(cfg.level)
    };
    let builder = tracing_subscriber::fmt()
        .with_max_level(lvl)
        .with_target(false);
    let res = match cfg.kind {
        LogKind::None => return Ok(()),
        // Colours only for a terminal: a log file or journal gets plain text.
        LogKind::Stderr => builder
            .with_ansi(std::io::stderr().is_terminal())
            .with_writer(std::io::stderr)
            .try_init(),
        LogKind::Stdout => builder
            .with_ansi(std::io::stdout().is_terminal())
            .with_writer(std::io::stdout)
            .try_init(),
        LogKind::File => {
            let path = cfg.file.as_ref().ok_or("[logger] file: missing")?;
            let f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|e| format!("[logger] file: cannot open {}: {e}", path.display()))?;
            builder
                .with_ansi(false)
                .with_writer(Mutex::new(f))
                .try_init()
        }
        LogKind::Syslog => {
            let sock = std::os::unix::net::UnixDatagram::unbound()
                .ok()
                .filter(|s| s.connect("/dev/log").is_ok());
            builder
                .with_ansi(false)
                .without_time()
                .with_writer(Mutex::new(Syslog { sock }))
                .try_init()
        }
    };
    res.map_err(|e| format!("cannot install the logger: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syslog_framing() {
        let dir = std::env::temp_dir().join(format!("pybootd-syslog-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("log");
        let _ = std::fs::remove_file(&path);
        let server = std::os::unix::net::UnixDatagram::bind(&path).unwrap();
        let client = std::os::unix::net::UnixDatagram::unbound().unwrap();
        client.connect(&path).unwrap();
        let mut w = Syslog { sock: Some(client) };
        w.write_all(b" INFO TFTP listening addr=10.0.0.1:69\n")
            .unwrap();
        let mut buf = [0u8; 512];
        let n = server.recv(&mut buf).unwrap();
        assert_eq!(
            std::str::from_utf8(&buf[..n]).unwrap(),
            format!(
                "<30>pybootd[{}]:  INFO TFTP listening addr=10.0.0.1:69",
                std::process::id()
            )
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn levels() {
        assert_eq!(level(LogLevel::Critical), Level::ERROR);
        assert_eq!(level(LogLevel::Warning), Level::WARN);
        assert_eq!(level(LogLevel::Debug), Level::DEBUG);
    }
}

/// Text a client sent (a TFTP file name, an HTTP path, a DHCP host name),
/// made safe for one log line: control characters, backslashes and other
/// non-printable characters are escaped (`\n`, `\x1b`, `\u{202e}`), so a
/// name cannot forge a line or drive a terminal; past [`Untrusted::MAX`]
/// characters it is cut, saying how much was left out.
pub struct Untrusted<'a>(pub &'a str);

impl Untrusted<'_> {
    /// The most characters shown.
    pub const MAX: usize = 256;
}

impl std::fmt::Display for Untrusted<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use std::fmt::Write as _;
        for (shown, (i, c)) in self.0.char_indices().enumerate() {
            if shown == Self::MAX {
                return write!(f, "...(+{} bytes)", self.0.len() - i);
            }
            match c {
                '\\' => f.write_str("\\\\")?,
                '\n' => f.write_str("\\n")?,
                '\r' => f.write_str("\\r")?,
                '\t' => f.write_str("\\t")?,
                c if (c as u32) < 0x80 && (c.is_ascii_control()) => {
                    write!(f, "\\x{:02x}", c as u32)?
                }
                c if c.is_control() || is_format_char(c) => write!(f, "\\u{{{:x}}}", c as u32)?,
                c => f.write_char(c)?,
            }
        }
        Ok(())
    }
}

/// Unicode format characters that reorder or hide text (bidi overrides,
/// zero-width joiners, the BOM): shown escaped.
fn is_format_char(c: char) -> bool {
    matches!(c as u32, 0x200b..=0x200f | 0x202a..=0x202e | 0x2060..=0x2069 | 0xfeff)
}

/// A budget of log lines for one kind of repeated warning (a malformed
/// packet, a refused request): at most `per_window` lines per `window`;
/// what is held back is counted and reported on the next line let through.
/// One flood then costs a few lines, not one per packet.
pub struct Throttle {
    per_window: u32,
    window: std::time::Duration,
    state: Mutex<ThrottleState>,
}

struct ThrottleState {
    started: Option<std::time::Instant>,
    logged: u32,
    held: u64,
}

impl Throttle {
    pub const fn new(per_window: u32, window: std::time::Duration) -> Throttle {
        Throttle {
            per_window,
            window,
            state: Mutex::new(ThrottleState {
                started: None,
                logged: 0,
                held: 0,
            }),
        }
    }

    /// Whether a line may be logged at `now`: `Some(n)` with the number of
    /// lines held back since the last one logged, `None` to stay quiet.
    pub fn admit(&self, now: std::time::Instant) -> Option<u64> {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let fresh = s
            .started
            .is_none_or(|t| now.saturating_duration_since(t) >= self.window);
        if fresh {
            s.started = Some(now);
            s.logged = 0;
        }
        if s.logged >= self.per_window {
            s.held += 1;
            return None;
        }
        s.logged += 1;
        Some(std::mem::take(&mut s.held))
    }
}

#[cfg(test)]
mod safety_tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[test]
    fn untrusted_text_cannot_forge_a_line() {
        let shown = Untrusted("a.cfg\n2026-12-04T00:00:00Z INFO forged\x1b[31m\\").to_string();
        assert_eq!(
            shown,
            "a.cfg\\n2026-12-04T00:00:00Z INFO forged\\x1b[31m\\\\"
        );
        assert!(!shown.contains('\n') && !shown.contains('\x1b'));
        assert_eq!(
            Untrusted("x\u{202e}y\u{0085}").to_string(),
            "x\\u{202e}y\\u{85}"
        );
        assert_eq!(
            Untrusted("grub/grub.cfg-01-aa").to_string(),
            "grub/grub.cfg-01-aa"
        );
        let long = "é".repeat(300);
        let cut = Untrusted(&long).to_string();
        assert!(cut.ends_with("...(+88 bytes)"), "{cut}");
        assert_eq!(cut.chars().filter(|c| *c == 'é').count(), Untrusted::MAX);
    }

    #[test]
    fn throttle_counts_what_it_holds_back() {
        let t = Throttle::new(3, Duration::from_secs(10));
        let t0 = Instant::now();
        let admitted: Vec<Option<u64>> = (0..1000).map(|_| t.admit(t0)).collect();
        assert_eq!(admitted.iter().filter(|a| a.is_some()).count(), 3);
        assert_eq!(&admitted[..4], &[Some(0), Some(0), Some(0), None]);
        // Next window: the first line reports the 997 held back.
        assert_eq!(t.admit(t0 + Duration::from_secs(10)), Some(997));
        assert_eq!(t.admit(t0 + Duration::from_secs(11)), Some(0));
    }
}
