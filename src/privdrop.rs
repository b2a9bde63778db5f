//! Who the daemon is once its sockets are bound (`[daemon] user`,
//! `group`): the account is looked up at start-up, the lease directory
//! made ready for it, and then the process becomes it for good (all
//! supplementary groups cleared, real, effective and saved ids changed, so
//! no capability is left and none can come back).
//!
//! Everything after the drop (reading the TFTP and HTTP roots, the lease
//! journal, HTTP fetches) runs as that account: a file it cannot read is
//! not served.

use std::fmt;
use std::path::Path;

use nix::unistd::{Gid, Group, Uid, User};

use crate::config::DaemonConfig;

/// The account to become, looked up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    pub user: String,
    pub group: String,
    pub uid: Uid,
    pub gid: Gid,
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ({}), group {} ({})",
            self.user, self.uid, self.group, self.gid
        )
    }
}

/// Looks up `[daemon] user` and `group`. `Ok(None)`: no user configured.
/// Errors are the message for `[daemon] <key>: ...`, with the key.
pub fn resolve(cfg: &DaemonConfig) -> Result<Option<Identity>, (&'static str, String)> {
    let Some(name) = &cfg.user else {
        return Ok(None);
    };
    let user = User::from_name(name)
        .map_err(|e| ("user", format!("cannot look up '{name}': {e}")))?
        .ok_or_else(|| ("user", format!("no such user '{name}'")))?;
    let group = match &cfg.group {
        Some(g) => Group::from_name(g)
            .map_err(|e| ("group", format!("cannot look up '{g}': {e}")))?
            .ok_or_else(|| ("group", format!("no such group '{g}'")))?,
        None => Group::from_gid(user.gid)
            .ok()
            .flatten()
            .unwrap_or_else(|| Group {
                name: user.gid.to_string(),
                passwd: Default::default(),
                gid: user.gid,
                mem: Vec::new(),
            }),
    };
    Ok(Some(Identity {
        user: user.name,
        group: group.name,
        uid: user.uid,
        gid: group.gid,
    }))
}

/// Creates the lease file's directory for `id` when it does not exist yet
/// (owned by it, mode 0750, as systemd's StateDirectory= would), so that
/// the journal can be written and compacted after the drop. An existing
/// directory is left as the administrator made it.
pub fn prepare_state_dir(lease_file: &Path, id: &Identity) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    let Some(dir) = lease_file.parent().filter(|d| !d.as_os_str().is_empty()) else {
        return Ok(());
    };
    if dir.exists() {
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o750)
        .create(dir)?;
    std::os::unix::fs::chown(dir, Some(id.uid.as_raw()), Some(id.gid.as_raw()))
}

/// Becomes `id` for good: no supplementary groups, then the group, then
/// the user (real, effective and saved), and checks that root cannot be
/// had back. Any failure is an error: the caller must not serve.
pub fn drop_to(id: &Identity) -> std::io::Result<()> {
    use nix::unistd::{getgroups, getresgid, getresuid, setgroups, setresgid, setresuid};
    let io = std::io::Error::from;
    setgroups(&[]).map_err(io)?;
    setresgid(id.gid, id.gid, id.gid).map_err(io)?;
    setresuid(id.uid, id.uid, id.uid).map_err(io)?;
    let uids = getresuid().map_err(io)?;
    let gids = getresgid().map_err(io)?;
    let same_uid = [uids.real, uids.effective, uids.saved] == [id.uid; 3];
    let same_gid = [gids.real, gids.effective, gids.saved] == [id.gid; 3];
    let groups_ok = getgroups().map_err(io)?.iter().all(|g| *g == id.gid);
    if !(same_uid && same_gid && groups_ok) {
        return Err(std::io::Error::other(format!(
            "still uid {uids:?} gid {gids:?} after the drop to {id}"
        )));
    }
    if !id.uid.is_root() && setresuid(Uid::from_raw(0), Uid::from_raw(0), Uid::from_raw(0)).is_ok()
    {
        return Err(std::io::Error::other(
            "root could be had back after the drop",
        ));
    }
    // No new privileges either: no setuid program run later (there is
    // none, but a bug is a bug) can give any back.
    nix::sys::prctl::set_no_new_privs().map_err(io)?;
    Ok(())
}

/// Raises the open-file soft limit to the hard one: every TFTP transfer
/// holds a socket and a file, and systemd's default soft limit (1,024)
/// is reached by 512 transfers. Returns the limit now in force.
pub fn raise_nofile() -> std::io::Result<u64> {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).map_err(std::io::Error::from)?;
    if soft < hard && setrlimit(Resource::RLIMIT_NOFILE, hard, hard).is_ok() {
        return Ok(hard);
    }
    Ok(soft)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_root_and_refuses_unknown_names() {
        let none = DaemonConfig::default();
        assert_eq!(resolve(&none), Ok(None));
        let root = DaemonConfig {
            user: Some("root".into()),
            group: None,
        };
        let id = resolve(&root).unwrap().unwrap();
        assert!(id.uid.is_root() && id.gid.as_raw() == 0, "{id}");
        let bad = DaemonConfig {
            user: Some("no-such-user-pybootd".into()),
            group: None,
        };
        assert_eq!(
            resolve(&bad).unwrap_err(),
            ("user", "no such user 'no-such-user-pybootd'".to_string())
        );
        let bad_group = DaemonConfig {
            user: Some("root".into()),
            group: Some("no-such-group-pybootd".into()),
        };
        assert_eq!(resolve(&bad_group).unwrap_err().0, "group");
    }
}
