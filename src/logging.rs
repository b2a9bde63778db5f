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
