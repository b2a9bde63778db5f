//! The TFTP service. (Skeleton: filled by the TFTP issue.)

use std::net::UdpSocket;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::config::Config;

pub struct TftpServer {
    _config: Arc<Config>,
    _socket: UdpSocket,
}

impl TftpServer {
    pub fn new(config: Arc<Config>, socket: UdpSocket) -> std::io::Result<Self> {
        Ok(TftpServer {
            _config: config,
            _socket: socket,
        })
    }

    pub async fn serve(self, shutdown: CancellationToken) -> std::io::Result<()> {
        shutdown.cancelled().await;
        Ok(())
    }
}
