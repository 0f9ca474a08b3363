//! Entering a user namespace as an ordinary user: the user becomes root inside it and its
//! subordinate ids are mapped above, by the setuid `newuidmap`/`newgidmap`, as podman,
//! buildah and rootlesskit do.
//!
//! bud itself unshares, so it stays one process and signals reach it as before. The maps
//! must be written from outside the namespace (a setuid binary whose owner is not mapped
//! loses its setuid bit), so the two helpers are started first and told to go once the
//! namespace exists. Must run before any thread starts: a threaded process cannot unshare
//! its user namespace.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use super::subids::{self, SubIdRange};

/// Why bud could not enter a user namespace; each names what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum UsernsError {
    #[error(
        "user {user} has no subordinate {kind}s in {file}: add a range, for example \
         `usermod --add-subuids 100000-165535 --add-subgids 100000-165535 {user}` (as root)"
    )]
    NoSubordinateIds {
        user: String,
        kind: &'static str,
        file: &'static str,
    },
    #[error("{tool} is not installed: install it with `apt-get install uidmap` (as root)")]
    NoMapTool { tool: &'static str },
    #[error(
        "this kernel does not let an ordinary user create a user namespace ({errno}): \
         check `sysctl user.max_user_namespaces` and `kernel.unprivileged_userns_clone`, \
         or AppArmor's `kernel.apparmor_restrict_unprivileged_userns`"
    )]
    Denied { errno: rustix::io::Errno },
    #[error("{tool} failed: {message}")]
    MapFailed { tool: &'static str, message: String },
    #[error("starting {tool}")]
    Spawn {
        tool: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("bud did not enter a user namespace for this command")]
    NotEntered,
    #[error("making a mount namespace in the user namespace")]
    MountNamespace(#[source] rustix::io::Errno),
}

/// The maps a user namespace was entered with: the user is 0, its subordinate ids follow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdMaps {
    pub uid: u32,
    pub gid: u32,
    pub uids: Vec<SubIdRange>,
    pub gids: Vec<SubIdRange>,
}

impl IdMaps {
    /// The subordinate ranges of the calling user, or which file lacks them.
    pub fn for_current_user() -> Result<Self, UsernsError> {
        let uid = rustix::process::getuid().as_raw();
        let gid = rustix::process::getgid().as_raw();
        let name = user_name(uid);
        let user = name.clone().unwrap_or_else(|| uid.to_string());
        let uids = subids::ranges(Path::new("/etc/subuid"), name.as_deref(), uid);
        if uids.is_empty() {
            return Err(UsernsError::NoSubordinateIds {
                user,
                kind: "uid",
                file: "/etc/subuid",
            });
        }
        let gids = subids::ranges(Path::new("/etc/subgid"), name.as_deref(), uid);
        if gids.is_empty() {
            return Err(UsernsError::NoSubordinateIds {
                user,
                kind: "gid",
                file: "/etc/subgid",
            });
        }
        Ok(Self {
            uid,
            gid,
            uids,
            gids,
        })
    }

    /// How many ids, 0 included, the namespace maps.
    pub fn uid_count(&self) -> u64 {
        1 + self.uids.iter().map(|r| u64::from(r.count)).sum::<u64>()
    }

    pub fn gid_count(&self) -> u64 {
        1 + self.gids.iter().map(|r| u64::from(r.count)).sum::<u64>()
    }
}

/// `newuidmap`'s arguments after the pid: `0 ID 1`, then each range stacked above.
fn map_args(id: u32, ranges: &[SubIdRange]) -> Vec<String> {
    let mut args = vec!["0".to_string(), id.to_string(), "1".to_string()];
    let mut next: u64 = 1;
    for range in ranges {
        args.extend([
            next.to_string(),
            range.start.to_string(),
            range.count.to_string(),
        ]);
        next += u64::from(range.count);
    }
    args
}

/// Enters a new user namespace with `maps`, then a mount namespace of its own whose mounts
/// do not propagate back.
pub fn enter(maps: &IdMaps) -> Result<(), UsernsError> {
    let newuidmap = map_tool("newuidmap")?;
    let newgidmap = map_tool("newgidmap")?;
    let pid = std::process::id().to_string();
    let mut uid_helper = MapHelper::start(
        "newuidmap",
        &newuidmap,
        &pid,
        map_args(maps.uid, &maps.uids),
    )?;
    let mut gid_helper = MapHelper::start(
        "newgidmap",
        &newgidmap,
        &pid,
        map_args(maps.gid, &maps.gids),
    )?;
    // SAFETY: called before any thread exists (main, before the runtime starts); the
    // helpers are processes, not threads.
    if let Err(errno) =
        unsafe { rustix::thread::unshare_unsafe(rustix::thread::UnshareFlags::NEWUSER) }
    {
        // The helpers see their stdin close and exit without mapping anything.
        uid_helper.abandon();
        gid_helper.abandon();
        return Err(UsernsError::Denied { errno });
    }
    uid_helper.go()?;
    gid_helper.go()?;
    // SAFETY: as above, still single-threaded.
    unsafe { rustix::thread::unshare_unsafe(rustix::thread::UnshareFlags::NEWNS) }
        .map_err(UsernsError::MountNamespace)?;
    rustix::mount::mount_change(
        "/",
        rustix::mount::MountPropagationFlags::REC | rustix::mount::MountPropagationFlags::PRIVATE,
    )
    .map_err(UsernsError::MountNamespace)?;
    Ok(())
}

fn map_tool(tool: &'static str) -> Result<PathBuf, UsernsError> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/bin", "/bin", "/usr/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(tool))
        .find(|candidate| candidate.is_file())
        .ok_or(UsernsError::NoMapTool { tool })
}

/// `newuidmap` or `newgidmap`, started before the namespace exists and waiting for a line
/// on its stdin to run.
struct MapHelper {
    tool: &'static str,
    child: Child,
}

impl MapHelper {
    fn start(
        tool: &'static str,
        binary: &Path,
        pid: &str,
        args: Vec<String>,
    ) -> Result<Self, UsernsError> {
        let child = Command::new("/bin/sh")
            .arg("-c")
            .arg(r#"read -r _ && exec "$@""#)
            .arg("sh")
            .arg(binary)
            .arg(pid)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|source| UsernsError::Spawn { tool, source })?;
        Ok(Self { tool, child })
    }

    /// Lets the helper write its map and waits for it.
    fn go(&mut self) -> Result<(), UsernsError> {
        let tool = self.tool;
        if let Some(mut stdin) = self.child.stdin.take() {
            stdin
                .write_all(b"go\n")
                .map_err(|source| UsernsError::Spawn { tool, source })?;
        }
        let status = self
            .child
            .wait()
            .map_err(|source| UsernsError::Spawn { tool, source })?;
        if status.success() {
            return Ok(());
        }
        let mut message = String::new();
        if let Some(mut stderr) = self.child.stderr.take() {
            let _ = stderr.read_to_string(&mut message);
        }
        let message = message.trim();
        Err(UsernsError::MapFailed {
            tool,
            message: if message.is_empty() {
                format!("exited with {status}")
            } else {
                message.to_string()
            },
        })
    }

    /// Closes the helper's stdin so that it exits unused, and reaps it.
    fn abandon(mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}

/// The login name of `uid` from /etc/passwd, as newuidmap looks it up.
fn user_name(uid: u32) -> Option<String> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|line| {
        let mut fields = line.split(':');
        let name = fields.next()?;
        let id: u32 = fields.nth(1)?.parse().ok()?;
        (id == uid).then(|| name.to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_stacked_above_the_user() {
        let ranges = [
            SubIdRange {
                start: 100000,
                count: 65536,
            },
            SubIdRange {
                start: 300000,
                count: 10,
            },
        ];
        assert_eq!(
            map_args(1001, &ranges),
            [
                "0", "1001", "1", "1", "100000", "65536", "65537", "300000", "10"
            ]
        );
    }
}
