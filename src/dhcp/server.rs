//! The DHCP socket loop. (Skeleton: filled by the DHCP issue.)

use std::net::UdpSocket;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::netif::ServerNet;

pub struct DhcpServer {
    _config: Arc<Config>,
    _net: ServerNet,
    _socket: UdpSocket,
}

impl DhcpServer {
    pub fn new(config: Arc<Config>, net: ServerNet, socket: UdpSocket) -> std::io::Result<Self> {
        Ok(DhcpServer {
            _config: config,
            _net: net,
            _socket: socket,
        })
    }

    pub async fn serve(self, shutdown: CancellationToken) -> std::io::Result<()> {
        shutdown.cancelled().await;
        Ok(())
    }
}
