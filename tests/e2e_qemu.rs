//! End-to-end: real PXE firmware in QEMU (SeaBIOS + iPXE, OVMF's own PXE
//! client) boots a Linux kernel from pybootd inside a network namespace.
//! Variants: bios, uefi, http_root, four, deny, tftp_only. Each runs
//! `tests/e2e/run.sh <variant>`, which passes only when every guest prints
//! `NETBOOT-OK ip=<pool address> fw=<bios|uefi>` on its serial console
//! (logs, serial and pcap are kept and printed on failure).

mod common;

use std::process::Command;
use std::sync::Mutex;
use std::time::Instant;

/// One variant at a time: the guests are CPU-heavy (TCG) and the machine
/// has two cores.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn run_variant(variant: &str) {
    let test = format!("e2e_qemu::{variant}");
    if !common::require_root(&test) {
        return;
    }
    let _guard = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    for p in [
        "qemu-system-x86_64",
        "tcpdump",
        "ip",
        "ss",
        "grub-mkimage",
        "busybox",
        "timeout",
    ] {
        common::need_program(p);
    }
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/e2e/run.sh");
    let started = Instant::now();
    // The script bounds its guests itself (E2E_TIMEOUT); `timeout` bounds
    // the rest (the first payload build downloads ~75 MB of packages).
    let out = Command::new("timeout")
        .args(["--kill-after=10", "900", "bash", script, variant])
        .env("PYBOOTD_BIN", common::pybootd_bin())
        .env_remove("E2E_SERVER")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {script}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stderr}{stdout}");
    println!(
        "e2e variant {variant}: {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let pass = format!("variant={variant} server=pybootd");
    assert!(
        out.status.success()
            && stdout
                .lines()
                .any(|l| l.contains(&pass) && l.ends_with("PASS")),
        "e2e variant {variant} failed ({}):\n{stderr}{stdout}",
        out.status
    );
}

/// SeaBIOS + QEMU's iPXE ROM (e1000) -> pxelinux.0 -> Linux -> udhcpc.
#[test]
fn bios() {
    run_variant("bios");
}

/// OVMF's own PXE client (virtio-net, no option ROM) -> GRUB -> Linux.
#[test]
fn uefi() {
    run_variant("uefi");
}

/// The same two firmwares, with `[tftp] root = http://...` proxied from a
/// real HTTP server in the namespace.
#[test]
fn http_root() {
    run_variant("http_root");
}

/// Four guests (two BIOS, two UEFI) at once: each boots, each gets its
/// own address.
#[test]
fn four_at_once() {
    run_variant("four");
}

/// A MAC that `[mac]` denies gets no reply and no boot, while an allowed
/// MAC on the same segment boots.
#[test]
fn mac_denied() {
    run_variant("deny");
}

/// Beside an existing DHCP server (dnsmasq, DHCP only, next-server = the
/// pybootd host): `pybootd --tftp` serves the files, binds no port 67, and
/// a BIOS and a UEFI guest boot.
#[test]
fn tftp_only_beside_dhcp() {
    run_variant("tftp_only");
}
