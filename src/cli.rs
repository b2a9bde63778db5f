//! The command line, pybootd-compatible: `pybootd [-c CONFIG] [-p|-t] [-H] [-d]`.

use std::path::PathBuf;

use clap::Parser;

use crate::config::DEFAULT_CONFIG_PATH;

/// PXE boot server: BOOTP/DHCP/PXE and TFTP in one daemon.
#[derive(Parser, Debug, Clone, PartialEq, Eq)]
#[command(name = "pybootd", version, about, long_about = None)]
pub struct Cli {
    /// Configuration file (pybootd .ini format).
    #[arg(short = 'c', long = "config", value_name = "CONFIG", default_value = DEFAULT_CONFIG_PATH)]
    pub config: PathBuf,

    /// Run the BOOTP/DHCP/PXE server only.
    #[arg(short = 'p', long = "pxe", conflicts_with = "tftp")]
    pub pxe: bool,

    /// Run the TFTP server only.
    #[arg(short = 't', long = "tftp")]
    pub tftp: bool,

    /// Also run the HTTP file server of the [httpd] section.
    #[arg(short = 'H', long = "http")]
    pub http: bool,

    /// Debug logging, and full error chains.
    #[arg(short = 'd', long = "debug")]
    pub debug: bool,

    /// Load and validate the configuration, print what would be served, and
    /// exit: 0 when it is good, 1 when not.
    #[arg(long = "check")]
    pub check: bool,
}

impl Cli {
    /// Whether the BOOTP/DHCP/PXE service runs.
    pub fn dhcp_enabled(&self) -> bool {
        !self.tftp
    }

    /// Whether the TFTP service runs.
    pub fn tftp_enabled(&self) -> bool {
        !self.pxe
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pxe_and_tftp_conflict() {
        let e = Cli::try_parse_from(["pybootd", "-p", "-t"]).unwrap_err();
        assert_eq!(e.kind(), clap::error::ErrorKind::ArgumentConflict);
    }

    #[test]
    fn defaults() {
        let c = Cli::try_parse_from(["pybootd"]).unwrap();
        assert_eq!(c.config, PathBuf::from(DEFAULT_CONFIG_PATH));
        assert!(c.dhcp_enabled() && c.tftp_enabled());
        let c = Cli::try_parse_from(["pybootd", "--tftp", "-c", "x.ini"]).unwrap();
        assert!(!c.dhcp_enabled() && c.tftp_enabled());
    }
}
