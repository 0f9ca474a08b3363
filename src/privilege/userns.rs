//! Entering a user namespace as an ordinary user: the user becomes root inside it and its
//! subordinate ids are mapped above, by the setuid `newuidmap`/`newgidmap`, as podman,
//! buildah and rootlesskit do.
//!
//! bud stays one process, so signals reach it as before: a short-lived holder process is
//! made in the new namespace, the two helpers map it from outside (a setuid binary started
//! inside, where its owner is not mapped, loses its setuid bit), both at once, and bud joins
//! it with `setns`, as podman joins the namespace its pause process holds. The entry is paid
//! by every command that enters, so it is kept to about one helper's run: the holder is a
//! clone sharing bud's memory that execs nothing, and the helpers are started straight from
//! bud, with no shell in front of them; and it is split in two ([`begin`], then
//! [`Entering::finish`]) so that bud does work of its own while the helpers run. Must run
//! before any thread starts: a threaded process cannot join a user namespace.

use std::io::Read;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use super::subids::{self, SubIdRange};

/// Why bud could not enter a user namespace; each names what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum UsernsError {
    /// `/etc/subuid` or `/etc/subgid` grants the user no range.
    #[error(
        "user {user} has no subordinate {kind}s in {file}: add a range, for example \
         `usermod --add-subuids 100000-165535 --add-subgids 100000-165535 {user}` (as root)"
    )]
    NoSubordinateIds {
        /// The user's name, or its uid when it has none.
        user: String,
        /// `uid` or `gid`.
        kind: &'static str,
        /// The file that lacks the range.
        file: &'static str,
    },
    /// `newuidmap` or `newgidmap` is not on the system.
    #[error("{tool} is not installed: install it with `apt-get install uidmap` (as root)")]
    NoMapTool {
        /// The missing helper.
        tool: &'static str,
    },
    /// The kernel refused to create the namespace (sysctl, AppArmor).
    #[error(
        "this kernel does not let an ordinary user create a user namespace ({errno}): \
         check `sysctl user.max_user_namespaces` and `kernel.unprivileged_userns_clone`, \
         or AppArmor's `kernel.apparmor_restrict_unprivileged_userns`"
    )]
    Denied {
        /// The clone's error.
        errno: rustix::io::Errno,
    },
    /// A map helper ran and refused (typically ranges it does not accept).
    #[error("{tool} failed: {message}")]
    MapFailed {
        /// `newuidmap` or `newgidmap`.
        tool: &'static str,
        /// What it printed on stderr, or how it ended.
        message: String,
    },
    /// A map helper could not be started.
    #[error("starting {tool}")]
    Spawn {
        /// `newuidmap` or `newgidmap`.
        tool: &'static str,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// The process is not root and never tried to enter (`privilege::enter` was not
    /// called: a library user, a command that owns no state root).
    #[error("bud did not enter a user namespace for this command")]
    NotEntered,
    /// `setns` into the holder's namespace failed.
    #[error("joining the new user namespace ({errno})")]
    Join {
        /// `setns`'s error.
        errno: rustix::io::Errno,
    },
    /// Inside the user namespace, the private mount namespace could not be made.
    #[error("making a mount namespace in the user namespace")]
    MountNamespace(#[source] rustix::io::Errno),
}

/// The maps a user namespace was entered with: the user is 0, its subordinate ids follow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdMaps {
    /// The user's own uid outside, mapped to 0 inside.
    pub uid: u32,
    /// The user's own gid outside, mapped to 0 inside.
    pub gid: u32,
    /// Subordinate uid ranges, mapped from 1 upwards in this order.
    pub uids: Vec<SubIdRange>,
    /// Subordinate gid ranges, mapped from 1 upwards in this order.
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

    /// How many group ids, 0 included, the namespace maps.
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

/// An entry begun by [`begin`]: the holder is in its new user namespace and the two helpers
/// are writing its maps. Dropped unfinished, it waits for the helpers and ends the holder.
pub struct Entering {
    /// Taken by [`Entering::finish`].
    holder: Option<Holder>,
    /// Each taken when waited for.
    uid_helper: Option<Result<MapHelper, UsernsError>>,
    gid_helper: Option<Result<MapHelper, UsernsError>>,
}

/// Starts entering a new user namespace with `maps`: the holder is made and the helpers
/// started, and bud may go on with work of its own while they map it, as long as it starts
/// no thread before [`Entering::finish`].
pub fn begin(maps: &IdMaps) -> Result<Entering, UsernsError> {
    let newuidmap = map_tool("newuidmap")?;
    let newgidmap = map_tool("newgidmap")?;
    let holder = Holder::start()?;
    let pid = holder.pid();
    let uid_helper = MapHelper::start(
        "newuidmap",
        &newuidmap,
        &pid,
        map_args(maps.uid, &maps.uids),
    );
    let gid_helper = MapHelper::start(
        "newgidmap",
        &newgidmap,
        &pid,
        map_args(maps.gid, &maps.gids),
    );
    Ok(Entering {
        holder: Some(holder),
        uid_helper: Some(uid_helper),
        gid_helper: Some(gid_helper),
    })
}

impl Entering {
    /// Joins the (now mapped) namespace, then makes a mount namespace of its own whose
    /// mounts do not propagate back. Must run while bud has one thread only.
    pub fn finish(mut self) -> Result<(), UsernsError> {
        // Both are waited for, whichever failed: no helper outlives the entry.
        let uid_mapped = wait_helper(&mut self.uid_helper);
        let gid_mapped = wait_helper(&mut self.gid_helper);
        uid_mapped?;
        gid_mapped?;
        let Some(mut holder) = self.holder.take() else {
            return Err(UsernsError::NotEntered);
        };
        holder.join()?;
        // The holder has done its work: it exits while bud goes on, and is reaped on a
        // thread of its own once bud may have threads, rather than waited for here.
        holder.release();
        // SAFETY: called before any thread exists (main, before the runtime starts); the
        // holder and the helpers are processes, not threads.
        let unshared =
            unsafe { rustix::thread::unshare_unsafe(rustix::thread::UnshareFlags::NEWNS) }
                .map_err(UsernsError::MountNamespace);
        // Threads are allowed from here on. Should none start, the holder is reaped here, as
        // the closure that owns it is dropped.
        let _ = std::thread::Builder::new()
            .name("userns-holder".into())
            .spawn(move || drop(holder));
        unshared?;
        rustix::mount::mount_change(
            "/",
            rustix::mount::MountPropagationFlags::REC
                | rustix::mount::MountPropagationFlags::PRIVATE,
        )
        .map_err(UsernsError::MountNamespace)?;
        Ok(())
    }
}

impl Drop for Entering {
    /// An entry given up (bud failed before finishing it): the helpers are waited for; the
    /// holder ends when its own field is dropped.
    fn drop(&mut self) {
        let _ = wait_helper(&mut self.uid_helper);
        let _ = wait_helper(&mut self.gid_helper);
    }
}

/// Waits for a helper not waited for yet: how it ended, or why it never started.
fn wait_helper(helper: &mut Option<Result<MapHelper, UsernsError>>) -> Result<(), UsernsError> {
    match helper.take() {
        Some(Ok(helper)) => helper.wait(),
        Some(Err(e)) => Err(e),
        None => Ok(()),
    }
}

/// Enters a new user namespace with `maps`, then a mount namespace of its own whose mounts
/// do not propagate back: [`begin`] and [`Entering::finish`] with nothing in between.
pub fn enter(maps: &IdMaps) -> Result<(), UsernsError> {
    begin(maps)?.finish()
}

fn map_tool(tool: &'static str) -> Result<PathBuf, UsernsError> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/bin", "/bin", "/usr/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(tool))
        .find(|candidate| candidate.is_file())
        .ok_or(UsernsError::NoMapTool { tool })
}

/// A child made straight into a new user namespace (`clone` with `CLONE_NEWUSER`), holding
/// it until bud has joined. It shares bud's memory, so making it copies no page tables, and
/// it execs nothing: it waits on a pipe whose write end only bud holds, so it exits as soon
/// as bud lets go of it, also when bud dies first.
struct Holder {
    pid: rustix::process::Pid,
    /// Closing it ends the holder.
    release: Option<OwnedFd>,
    /// The holder's stack: freed only once the holder is reaped.
    stack: Option<Box<[u8]>>,
}

impl Holder {
    /// Plenty for `hold`'s two system calls.
    const STACK_SIZE: usize = 64 * 1024;

    fn start() -> Result<Self, UsernsError> {
        let (wait, release) =
            rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).map_err(|errno| {
                UsernsError::Spawn {
                    tool: "the user namespace's holder",
                    source: errno.into(),
                }
            })?;
        let mut stack = vec![0u8; Self::STACK_SIZE].into_boxed_slice();
        // The stack grows down from its end, kept 16-byte aligned as every ABI wants.
        let end = stack.as_mut_ptr_range().end;
        let top = end.wrapping_sub(end as usize % 16);
        // The two descriptors travel in the argument itself: the holder reads nothing of
        // bud's memory, which bud goes on changing while the holder runs.
        let fds = hold_arg(wait.as_raw_fd(), release.as_raw_fd());
        // SAFETY: `hold` only makes raw system calls on its own stack (rustix's, which touch
        // neither errno nor any other shared state), and returns, which exits the holder;
        // the stack lives in `Self` until the holder is reaped (`Drop`).
        let pid = unsafe {
            libc::clone(
                hold,
                top.cast(),
                libc::CLONE_VM | libc::CLONE_NEWUSER | libc::SIGCHLD,
                fds,
            )
        };
        if pid < 0 {
            let errno = rustix::io::Errno::from_io_error(&std::io::Error::last_os_error())
                .unwrap_or(rustix::io::Errno::PERM);
            return Err(match errno {
                rustix::io::Errno::NOMEM | rustix::io::Errno::AGAIN => UsernsError::Spawn {
                    tool: "the user namespace's holder",
                    source: errno.into(),
                },
                errno => UsernsError::Denied { errno },
            });
        }
        drop(wait);
        Ok(Self {
            pid: rustix::process::Pid::from_raw(pid).expect("clone returns a positive pid"),
            release: Some(release),
            stack: Some(stack),
        })
    }

    fn pid(&self) -> String {
        self.pid.as_raw_nonzero().to_string()
    }

    /// Moves bud into the holder's (now mapped) user namespace.
    fn join(&self) -> Result<(), UsernsError> {
        let ns = std::fs::File::open(format!("/proc/{}/ns/user", self.pid())).map_err(|e| {
            UsernsError::Join {
                errno: rustix::io::Errno::from_io_error(&e).unwrap_or(rustix::io::Errno::IO),
            }
        })?;
        // Needs bud to be single-threaded still (`enter` runs before any thread exists).
        rustix::thread::move_into_link_name_space(
            std::os::fd::AsFd::as_fd(&ns),
            Some(rustix::thread::LinkNameSpaceType::User),
        )
        .map_err(|errno| UsernsError::Join { errno })
    }
}

impl Holder {
    /// Lets the holder end (it reads the end of its pipe); [`Drop`] reaps it.
    fn release(&mut self) {
        drop(self.release.take());
    }
}

impl Drop for Holder {
    /// Closes the holder's pipe, so that it exits, and reaps it.
    fn drop(&mut self) {
        drop(self.release.take());
        loop {
            match rustix::process::waitpid(Some(self.pid), rustix::process::WaitOptions::empty()) {
                Err(rustix::io::Errno::INTR) => continue,
                Ok(_) => break,
                // Not reaped: it may still run on its stack, which must then outlive bud.
                Err(_) => {
                    std::mem::forget(self.stack.take());
                    break;
                }
            }
        }
    }
}

/// The holder's argument: its two pipe ends in one word.
fn hold_arg(wait: RawFd, release: RawFd) -> *mut libc::c_void {
    let bits = (u64::from(release as u32) << 32) | u64::from(wait as u32);
    bits as usize as *mut libc::c_void
}

/// The holder's whole life: it drops its copy of the write end, then waits for the read end
/// to reach its end, when bud closes it or dies. Returning exits the holder.
extern "C" fn hold(arg: *mut libc::c_void) -> libc::c_int {
    let bits = arg as usize as u64;
    let (wait, release) = (bits as u32 as RawFd, (bits >> 32) as u32 as RawFd);
    // SAFETY: both are the holder's own copies (the clone has its own descriptor table),
    // open until it closes them or exits; rustix closes with the bare system call (std's
    // `OwnedFd` would go through libc, which may set errno, shared with bud).
    let wait = unsafe {
        rustix::io::close(release);
        BorrowedFd::borrow_raw(wait)
    };
    let mut byte = [0u8; 1];
    while let Err(rustix::io::Errno::INTR) = rustix::io::read(wait, &mut byte[..]) {}
    0
}

/// `newuidmap` or `newgidmap` writing the holder's map, run straight from bud (which is still
/// outside the namespace, so the helper keeps its setuid bit).
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
        let child = Command::new(binary)
            .arg(pid)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|source| UsernsError::Spawn { tool, source })?;
        Ok(Self { tool, child })
    }

    /// Waits for the helper; its stderr says why it failed.
    fn wait(mut self) -> Result<(), UsernsError> {
        let tool = self.tool;
        let mut message = String::new();
        if let Some(mut stderr) = self.child.stderr.take() {
            let _ = stderr.read_to_string(&mut message);
        }
        let status = self
            .child
            .wait()
            .map_err(|source| UsernsError::Spawn { tool, source })?;
        if status.success() {
            return Ok(());
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
