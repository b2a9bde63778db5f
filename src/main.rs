//! The `pybootd` binary: parse the command line, load the config, bind
//! every socket, run the services until SIGINT/SIGTERM. Errors print as
//! one `Error: ...` line (the full chain with `-d`) and exit 1.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::Parser;
use tokio::signal::unix::{signal, SignalKind};
use tokio_util::sync::CancellationToken;

use pybootd::cli::Cli;
use pybootd::config::{Config, Dns, Root};
use pybootd::netif::{self, ServerNet};
use pybootd::Sockets;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match real_main(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if cli.debug {
                eprintln!("Error: {e:?}");
            } else {
                eprintln!("Error: {e:#}");
            }
            ExitCode::FAILURE
        }
    }
}

/// The served network, when DHCP runs or TFTP needs an address from it.
fn served_net(config: &Config) -> Result<Option<ServerNet>> {
    let Some(b) = &config.bootp else {
        return Ok(None);
    };
    let addrs = netif::host_addrs().context("cannot list the host's interfaces")?;
    let net = netif::select(&addrs, b.pool_start, b.address, b.netmask).map_err(|m| {
        anyhow::anyhow!("{}: [{}] pool_start: {m}", config.path.display(), b.section)
    })?;
    netif::check_pool(&net, b.pool_start, b.pool_count).map_err(|m| {
        anyhow::anyhow!("{}: [{}] pool_count: {m}", config.path.display(), b.section)
    })?;
    Ok(Some(net))
}

fn real_main(cli: &Cli) -> Result<()> {
    let config = Config::load(&cli.config)?;
    check_services(cli, &config)?;
    let (net, net_note) = find_net(cli, &config)?;
    let tftp_ip = config
        .tftp
        .address
        .or(net.as_ref().map(|n| n.ip))
        .unwrap_or(Ipv4Addr::UNSPECIFIED);
    let http_ip = config
        .httpd
        .as_ref()
        .and_then(|h| h.address)
        .or(net.as_ref().map(|n| n.ip))
        .unwrap_or(Ipv4Addr::UNSPECIFIED);
    let identity = pybootd::privdrop::resolve(&config.daemon)
        .map_err(|(key, m)| anyhow::anyhow!("{}: [daemon] {key}: {m}", config.path.display()))?;
    if cli.check {
        print_check(cli, &config, net.as_ref(), tftp_ip, http_ip);
        match &identity {
            Some(id) => println!("daemon: runs as {id} once its sockets are bound"),
            None => println!("daemon: runs as the user who started it (no [daemon] user)"),
        }
        return Ok(());
    }

    pybootd::logging::init(&config.logger, cli.debug)
        .map_err(|m| anyhow::anyhow!("{}: {m}", config.path.display()))?;
    let sockets = bind_all(cli, &config, net.as_ref(), tftp_ip, http_ip)?;
    if let Some(note) = net_note {
        tracing::info!("no served network, listening on 0.0.0.0 where no address is set: {note}");
    }
    if let Some(n) = &net {
        tracing::debug!(ifname = %n.ifname, ifindex = n.ifindex, ip = %n.ip,
            netmask = %n.netmask, "served network");
    }
    become_service_user(&config, identity.as_ref())?;
    serve(Arc::new(config), net, sockets)
}

/// What the command line asks for must exist in the config.
fn check_services(cli: &Cli, config: &Config) -> Result<()> {
    if cli.http {
        let Some(h) = &config.httpd else {
            anyhow::bail!(
                "{}: -H runs the HTTP file server of the [httpd] section, and there is none",
                config.path.display()
            );
        };
        if !cli.check && !h.root.is_dir() {
            anyhow::bail!(
                "{}: [httpd] root: {} is not a directory",
                config.path.display(),
                h.root.display()
            );
        }
    }
    if cli.dhcp_enabled() && config.bootp.is_none() {
        anyhow::bail!(
            "{}: no [bootp] section: the DHCP service needs pool_start (or run with --tftp)",
            config.path.display()
        );
    }
    Ok(())
}

/// The served network when something needs it, and (TFTP or HTTP without
/// DHCP) why it is unknown, to log once logging is up.
fn find_net(cli: &Cli, config: &Config) -> Result<(Option<ServerNet>, Option<String>)> {
    let needs_net = cli.dhcp_enabled()
        || config.tftp.address.is_none()
        || (cli.http && config.httpd.as_ref().is_some_and(|h| h.address.is_none()));
    if !needs_net {
        return Ok((None, None));
    }
    match served_net(config) {
        Ok(n) => Ok((n, None)),
        // TFTP alone can listen on 0.0.0.0.
        Err(e) if !cli.dhcp_enabled() => Ok((None, Some(format!("{e:#}")))),
        Err(e) => Err(e),
    }
}

/// Binds every socket before anything runs (a port in use or a missing
/// privilege is one clear error, not a half-started daemon), ties DHCP's
/// to the served interface, and logs each bound address.
fn bind_all(
    cli: &Cli,
    config: &Config,
    net: Option<&ServerNet>,
    tftp_ip: Ipv4Addr,
    http_ip: Ipv4Addr,
) -> Result<Sockets> {
    let mut sockets = Sockets::default();
    let mut bound = Vec::new();
    if let (true, Some(b)) = (cli.dhcp_enabled(), &config.bootp) {
        let sock = pybootd::bind_udp(SocketAddrV4::new(b.address, b.port)).context("BOOTP/DHCP")?;
        if let (67, Some(n)) = (b.port, net) {
            // Broadcast replies must leave through the served interface.
            match pybootd::bind_device(&sock, &n.ifname) {
                Ok(()) => {
                    tracing::info!(ifname = %n.ifname, "DHCP socket bound to the served interface")
                }
                Err(e) => {
                    tracing::warn!(ifname = %n.ifname, "cannot bind the DHCP socket to its interface ({e}): broadcast replies follow the routing table")
                }
            }
        }
        bound.push(("BOOTP/DHCP", sock.local_addr()?));
        sockets.dhcp = Some(sock);
    }
    if cli.tftp_enabled() {
        let sock =
            pybootd::bind_udp(SocketAddrV4::new(tftp_ip, config.tftp.port)).context("TFTP")?;
        bound.push(("TFTP", sock.local_addr()?));
        sockets.tftp = Some(sock);
    }
    if let (true, Some(h)) = (cli.http, &config.httpd) {
        let listener = pybootd::bind_tcp(SocketAddrV4::new(http_ip, h.port)).context("HTTP")?;
        bound.push(("HTTP", listener.local_addr()?));
        sockets.http = Some(listener);
    }
    // The address the kernel bound (port 0 in the config: any free port),
    // in the message itself so that a script or test can read it back.
    for (service, addr) in bound {
        tracing::info!("{service} listening on {addr}");
    }
    Ok(sockets)
}

/// Runs the services on a runtime sized to the machine until SIGINT or
/// SIGTERM, then gives them the grace period to end.
fn serve(config: Arc<Config>, net: Option<ServerNet>, sockets: Sockets) -> Result<()> {
    // One CPU to run on (a small VM, or pinned with taskset): a
    // current-thread runtime, without the work-stealing scheduler's
    // bookkeeping and cross-thread wake-ups; more: one worker per CPU.
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let one_cpu = cpus == 1;
    let flavor = if one_cpu {
        "current-thread"
    } else {
        "multi-thread"
    };
    tracing::info!(cpus, flavor, "async runtime");
    let rt = if one_cpu {
        tokio::runtime::Builder::new_current_thread()
    } else {
        tokio::runtime::Builder::new_multi_thread()
    }
    .enable_all()
    .build()
    .context("cannot start the async runtime")?;
    let shutdown = CancellationToken::new();
    rt.block_on(async {
        catch_signals(&shutdown)?;
        tracing::info!(pid = std::process::id(), "pybootd running");
        // Bounded stop: once cancelled, services get the grace period (and
        // a second) to end; then whatever still runs is abandoned.
        let deadline = async {
            shutdown.cancelled().await;
            tokio::time::sleep(pybootd::SHUTDOWN_GRACE + std::time::Duration::from_secs(1)).await;
        };
        tokio::select! {
            r = pybootd::run(config, net, sockets, shutdown.clone()) => r.map_err(anyhow::Error::from),
            () = deadline => {
                tracing::warn!("services did not stop within the grace period; abandoning them");
                Ok(())
            }
        }
    })?;
    // Tasks that did not finish in the grace period are dropped here.
    rt.shutdown_timeout(pybootd::SHUTDOWN_GRACE);
    Ok(())
}

/// SIGTERM and SIGINT cancel `shutdown`. Installed before "running" shows,
/// so a signal sent as soon as it does is a graceful stop, not a kill.
fn catch_signals(shutdown: &CancellationToken) -> Result<()> {
    let mut term = signal(SignalKind::terminate()).context("cannot catch SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot catch SIGINT")?;
    let stop = shutdown.clone();
    tokio::spawn(async move {
        let name = tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        };
        tracing::info!(signal = name, "shutting down");
        stop.cancel();
    });
    Ok(())
}

/// Once every socket is bound: more open files allowed, then the drop to
/// `[daemon] user` (refusing to serve when it fails), or a warning when
/// root keeps running without one.
fn become_service_user(
    config: &Config,
    identity: Option<&pybootd::privdrop::Identity>,
) -> anyhow::Result<()> {
    use pybootd::privdrop;
    match privdrop::raise_nofile() {
        Ok(n) => tracing::debug!(nofile = n, "open-file limit"),
        Err(e) => tracing::warn!("cannot read the open-file limit: {e}"),
    }
    let Some(id) = identity else {
        if nix::unistd::geteuid().is_root() {
            tracing::warn!("running as root: set [daemon] user (e.g. nobody) to drop it once the sockets are bound");
        }
        return Ok(());
    };
    if let Some(path) = config.bootp.as_ref().and_then(|b| b.lease_file.as_ref()) {
        privdrop::prepare_state_dir(path, id).with_context(|| {
            format!(
                "{}: [daemon] user: cannot prepare the directory of {} for {id}",
                config.path.display(),
                path.display()
            )
        })?;
    }
    privdrop::drop_to(id).with_context(|| {
        format!(
            "{}: [daemon] user: cannot become {id}",
            config.path.display()
        )
    })?;
    tracing::info!(user = %id.user, group = %id.group, "privileges dropped: running as {id}");
    Ok(())
}

/// `--check`: what would be served, for the operator's dry run.
fn print_check(
    cli: &Cli,
    config: &Config,
    net: Option<&ServerNet>,
    tftp_ip: Ipv4Addr,
    http_ip: Ipv4Addr,
) {
    println!("config: {} (valid)", config.path.display());
    if let (true, Some(b), Some(n)) = (cli.dhcp_enabled(), &config.bootp, net) {
        print_check_dhcp(config, b, n);
    }
    if cli.tftp_enabled() {
        print_check_tftp(config, tftp_ip);
    }
    if let (true, Some(h)) = (cli.http, &config.httpd) {
        println!(
            "http: listen {http_ip}:{}, root {}, check_ip {}",
            h.port,
            h.root.display(),
            if h.check_ip && cli.dhcp_enabled() {
                "on (pool and static addresses only)"
            } else {
                "off"
            }
        );
        if !h.root.is_dir() {
            println!(
                "http: warning: root {} is not a directory (yet)",
                h.root.display()
            );
        }
    }
}

/// `--check`'s DHCP lines: where it listens, the pool, the boot files.
fn print_check_dhcp(config: &Config, b: &pybootd::config::BootpConfig, n: &ServerNet) {
    let last = Ipv4Addr::from(u32::from(b.pool_start) + b.pool_count.saturating_sub(1));
    println!(
        "dhcp: listen {}:{} on {} (server {} netmask {})",
        b.address, b.port, n.ifname, n.ip, n.netmask
    );
    println!(
        "dhcp: pool {}..{} ({} addresses), {} static, lease {} s, access {}, simple DHCP {}",
        b.pool_start,
        last,
        b.pool_count,
        config.static_dhcp.len(),
        b.lease_time,
        b.access,
        if b.allow_simple_dhcp {
            "served"
        } else {
            "ignored"
        }
    );
    let dns = match &b.dns {
        Dns::Auto => "auto (resolv.conf)".to_string(),
        Dns::List(l) => l
            .iter()
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join(", "),
    };
    println!("dhcp: gateway {}, dns [{dns}]", b.gateway.unwrap_or(n.ip));
    match &b.lease_file {
        Some(p) => println!("dhcp: leases journaled to {}", p.display()),
        None => println!("dhcp: leases in memory only (lease_file = none)"),
    }
    println!(
        "boot files: default {}",
        config.boot_file_for(None).unwrap_or("(none)")
    );
    for (arch, f) in &config.bootfile.by_arch {
        println!("boot files: arch {arch:05} -> {f}");
    }
}

/// `--check`'s TFTP lines: where it listens, the root, uploads, filters.
fn print_check_tftp(config: &Config, tftp_ip: Ipv4Addr) {
    let t = &config.tftp;
    let root = match &t.root {
        Root::Local(p) => format!("{} (local)", p.display()),
        Root::Http(u) => format!("{u} (HTTP)"),
    };
    println!("tftp: listen {tftp_ip}:{}, root {root}", t.port);
    if let Root::Local(p) = &t.root {
        if !p.is_dir() {
            println!(
                "tftp: warning: root {} is not a directory (yet)",
                p.display()
            );
        }
    }
    match &t.upload_dir {
        Some(d) => println!(
            "tftp: uploads to {} (max {} bytes)",
            d.display(),
            t.upload_max
        ),
        None => println!("tftp: uploads refused (no upload_dir)"),
    }
    println!(
        "tftp: blksize {} (max {}), timeout {:?} x {} retries, {} transfers at once",
        t.blocksize, t.max_blocksize, t.timeout, t.retries, t.max_transfers
    );
    for f in &config.filters {
        println!("tftp: filter {} -> {}", f.pattern, f.value);
    }
}
