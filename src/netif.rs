//! Host interfaces: which one serves the pool. As upstream, the interface
//! whose subnet holds `pool_start` gives the server address and netmask.
//! `host_addrs` lists the interfaces; `select` and `check_pool` are pure.

use std::net::Ipv4Addr;

/// The server's side of the served network.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerNet {
    pub ifname: String,
    /// Interface index (for IP_PKTINFO replies); 0 when unknown.
    pub ifindex: u32,
    pub ip: Ipv4Addr,
    pub netmask: Ipv4Addr,
}

impl ServerNet {
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        let m = u32::from(self.netmask);
        u32::from(self.ip) & m == u32::from(ip) & m
    }

    pub fn broadcast(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.ip) | !u32::from(self.netmask))
    }
}

/// One host IPv4 address, as the interface list gives it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostAddr {
    pub ifname: String,
    /// Interface index; 0 when unknown.
    pub ifindex: u32,
    pub ip: Ipv4Addr,
    pub netmask: Ipv4Addr,
}

/// Lists the host's IPv4 addresses.
pub fn host_addrs() -> std::io::Result<Vec<HostAddr>> {
    Ok(if_addrs::get_if_addrs()?
        .into_iter()
        .filter_map(|i| match i.addr {
            if_addrs::IfAddr::V4(a) => Some(HostAddr {
                ifname: i.name.clone(),
                ifindex: i.index.unwrap_or(0),
                ip: a.ip,
                netmask: a.netmask,
            }),
            _ => None,
        })
        .collect())
}

/// Picks the address whose subnet holds `pool_start` (pure: takes the list).
/// When `address` is a specific address, the interface holding it is chosen
/// instead. `netmask` overrides the detected one.
pub fn select(
    addrs: &[HostAddr],
    pool_start: Ipv4Addr,
    address: Ipv4Addr,
    netmask: Option<Ipv4Addr>,
) -> Result<ServerNet, String> {
    let found = if !address.is_unspecified() {
        addrs.iter().find(|a| a.ip == address)
    } else {
        addrs.iter().find(|a| {
            let m = u32::from(netmask.unwrap_or(a.netmask));
            u32::from(a.ip) & m == u32::from(pool_start) & m
        })
    };
    let Some(a) = found else {
        let have: Vec<String> = addrs
            .iter()
            .map(|a| {
                format!(
                    "{} {}/{}",
                    a.ifname,
                    a.ip,
                    u32::from(a.netmask).count_ones()
                )
            })
            .collect();
        return Err(if address.is_unspecified() {
            format!(
                "unable to detect network configuration: no interface's subnet holds pool_start {pool_start} (host addresses: {})",
                have.join(", ")
            )
        } else {
            format!(
                "no interface holds address {address} (host addresses: {})",
                have.join(", ")
            )
        });
    };
    Ok(ServerNet {
        ifname: a.ifname.clone(),
        ifindex: a.ifindex,
        ip: a.ip,
        netmask: netmask.unwrap_or(a.netmask),
    })
}

/// Checks that the whole pool sits inside the served subnet and holds
/// neither the server's own address, the network address nor the
/// broadcast address (pure).
pub fn check_pool(net: &ServerNet, pool_start: Ipv4Addr, pool_count: u32) -> Result<(), String> {
    if pool_count == 0 {
        return Ok(());
    }
    let first = u32::from(pool_start);
    let last = first.saturating_add(pool_count - 1);
    let mask = u32::from(net.netmask);
    let network = u32::from(net.ip) & mask;
    let bcast = network | !mask;
    let prefix = mask.count_ones();
    let subnet = format!("{}/{prefix}", Ipv4Addr::from(network));
    if first & mask != network || last & mask != network {
        return Err(format!(
            "the pool {pool_start}..{} runs outside {subnet} of {}",
            Ipv4Addr::from(last),
            net.ifname
        ));
    }
    // /31 and /32 have no network or broadcast address to avoid.
    if prefix < 31 && (first == network || last == bcast) {
        return Err(format!(
            "the pool {pool_start}..{} holds the network or broadcast address of {subnet}",
            Ipv4Addr::from(last)
        ));
    }
    let own = u32::from(net.ip);
    if (first..=last).contains(&own) {
        return Err(format!(
            "the pool {pool_start}..{} holds the server's own address {}",
            Ipv4Addr::from(last),
            net.ip
        ));
    }
    Ok(())
}

/// The kernel's index for an interface name, 0 when unknown (reads
/// `/sys/class/net/NAME/ifindex`).
pub fn ifindex(name: &str) -> u32 {
    std::fs::read_to_string(format!("/sys/class/net/{name}/ifindex"))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addrs() -> Vec<HostAddr> {
        vec![
            HostAddr {
                ifname: "lo".into(),
                ifindex: 1,
                ip: Ipv4Addr::new(127, 0, 0, 1),
                netmask: Ipv4Addr::new(255, 0, 0, 0),
            },
            HostAddr {
                ifname: "br0".into(),
                ifindex: 3,
                ip: Ipv4Addr::new(10, 77, 0, 1),
                netmask: Ipv4Addr::new(255, 255, 255, 0),
            },
        ]
    }

    #[test]
    fn pool_start_selects_interface() {
        let n = select(
            &addrs(),
            Ipv4Addr::new(10, 77, 0, 100),
            Ipv4Addr::UNSPECIFIED,
            None,
        )
        .unwrap();
        assert_eq!((n.ifname.as_str(), n.ifindex), ("br0", 3));
        assert_eq!(n.ip, Ipv4Addr::new(10, 77, 0, 1));
        assert_eq!(n.broadcast(), Ipv4Addr::new(10, 77, 0, 255));
        let e = select(
            &addrs(),
            Ipv4Addr::new(10, 78, 0, 100),
            Ipv4Addr::UNSPECIFIED,
            None,
        )
        .unwrap_err();
        assert!(e.contains("pool_start 10.78.0.100"), "{e}");
    }

    #[test]
    fn pool_must_fit_the_subnet() {
        let n = select(
            &addrs(),
            Ipv4Addr::new(10, 77, 0, 100),
            Ipv4Addr::UNSPECIFIED,
            None,
        )
        .unwrap();
        assert_eq!(check_pool(&n, Ipv4Addr::new(10, 77, 0, 100), 50), Ok(()));
        assert_eq!(check_pool(&n, Ipv4Addr::new(10, 77, 0, 2), 253), Ok(()));
        assert!(check_pool(&n, Ipv4Addr::new(10, 77, 0, 200), 100)
            .unwrap_err()
            .contains("runs outside 10.77.0.0/24 of br0"));
        assert!(check_pool(&n, Ipv4Addr::new(10, 77, 0, 2), 254)
            .unwrap_err()
            .contains("broadcast"));
        assert!(check_pool(&n, Ipv4Addr::new(10, 77, 0, 0), 5)
            .unwrap_err()
            .contains("network"));
        assert!(check_pool(&n, Ipv4Addr::new(10, 77, 0, 1), 5)
            .unwrap_err()
            .contains("own address 10.77.0.1"));
        assert_eq!(check_pool(&n, Ipv4Addr::new(10, 77, 0, 1), 0), Ok(()));
    }
}
