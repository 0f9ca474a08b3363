//! Who bud runs as, decided once before any thread starts (`main`):
//! - **root**: the embedded solver as it is, in a mount namespace of its own;
//! - **rootless**: an ordinary user with subordinate ids: bud enters a user namespace where
//!   the user is root and the subordinate ids are mapped above ([`userns`]), then works as
//!   root does there; overlayfs keeps its xattrs under `user.` (`userxattr`), and a step's
//!   container is set up as a rootless runtime needs;
//! - **unprivileged**: an ordinary user for whom no user namespace could be made; the
//!   embedded solver cannot run, and the build goes to Docker's BuildKit if a Docker answers
//!   (`build::worker`), with the reason in one line.
//!
//! A rootless entry is [`begin`]: two helper processes (`newuidmap`, `newgidmap`) write the
//! maps while bud, still one thread, reads what it can as the user (`build::prepare`); it
//! is [`Entry::finish`]ed just before the first thread starts. Inside, an image owning files
//! by an id the namespace does not map is refused, naming it ([`unmapped_owner`]); the
//! default state root and `bud.toml` are the user's. `bud debug workers` prints the same
//! decision a build takes.

pub mod subids;
pub mod userns;

use std::sync::OnceLock;

pub use userns::{IdMaps, UsernsError};

/// The privilege bud works with, for the embedded solver and the state root it owns.
#[derive(Debug)]
pub enum Mode {
    /// Run as root: a private mount namespace, nothing else changed.
    Root,
    /// Inside a user namespace mapped by these ranges, as its root.
    Rootless(IdMaps),
    /// Not root, and no user namespace could be entered: why.
    Unprivileged(UsernsError),
}

static MODE: OnceLock<Mode> = OnceLock::new();

/// Sets bud up to own its state root: a private mount namespace for root, a user namespace
/// (with one) for anyone else. Call once, from `main`, before any thread exists.
pub fn enter() -> &'static Mode {
    begin().finish()
}

/// The privilege being taken: [`begin`] starts it, [`Entry::finish`] completes it. In
/// between, bud may do work of its own (reading its inputs, opening its state root) as the
/// user who started it, on its one thread, while the map helpers run.
pub struct Entry {
    step: EntryStep,
}

enum EntryStep {
    /// An earlier entry decided the mode.
    Entered,
    Root,
    /// The user namespace's maps being written.
    Rootless(IdMaps, userns::Entering),
    /// Decided already: no user namespace can be made.
    Unprivileged(UsernsError),
}

/// Starts taking the privilege [`enter`] takes. Call once, from `main`, before any thread
/// exists, and finish it before the first one starts.
pub fn begin() -> Entry {
    let step = if MODE.get().is_some() {
        EntryStep::Entered
    } else if rustix::process::geteuid().is_root() {
        EntryStep::Root
    } else {
        match IdMaps::for_current_user().and_then(|maps| Ok((userns::begin(&maps)?, maps))) {
            Ok((entering, maps)) => EntryStep::Rootless(maps, entering),
            Err(e) => EntryStep::Unprivileged(e),
        }
    };
    Entry { step }
}

impl Entry {
    /// Completes the entry; still before any thread exists.
    pub fn finish(self) -> &'static Mode {
        let mode = match self.step {
            EntryStep::Entered => return mode(),
            EntryStep::Root => {
                private_mounts();
                Mode::Root
            }
            EntryStep::Rootless(maps, entering) => match entering.finish() {
                Ok(()) => Mode::Rootless(maps),
                Err(e) => Mode::Unprivileged(e),
            },
            EntryStep::Unprivileged(e) => Mode::Unprivileged(e),
        };
        MODE.get_or_init(|| mode)
    }
}

/// The mode [`enter`] chose; without it (a library user, a command that needs no state
/// root), what the process is.
pub fn mode() -> &'static Mode {
    static UNENTERED: OnceLock<Mode> = OnceLock::new();
    MODE.get().unwrap_or_else(|| {
        UNENTERED.get_or_init(|| {
            if rustix::process::geteuid().is_root() {
                Mode::Root
            } else {
                Mode::Unprivileged(UsernsError::NotEntered)
            }
        })
    })
}

/// Whether bud runs in a user namespace of its own.
pub fn is_rootless() -> bool {
    matches!(mode(), Mode::Rootless(_))
}

/// Why a file cannot be given `uid`:`gid` here: in a user namespace only the ids it maps
/// exist (`None` when they do, or outside one).
pub fn unmapped_owner(uid: u32, gid: u32) -> Option<String> {
    let Mode::Rootless(maps) = mode() else {
        return None;
    };
    let (uids, gids) = (maps.uid_count(), maps.gid_count());
    let (kind, id, count, file) = if u64::from(uid) >= uids {
        ("uid", uid, uids, "/etc/subuid")
    } else if u64::from(gid) >= gids {
        ("gid", gid, gids, "/etc/subgid")
    } else {
        return None;
    };
    Some(format!(
        "owner {kind} {id}: rootless, bud maps only {kind}s 0 to {} (the user and its \
         subordinate ids); give the user a larger range in {file}",
        count - 1
    ))
}

/// Whether the user who started bud is root: decides the default state root and config
/// (inside the user namespace the user is root too, but its home is still its own).
pub fn invoked_as_root() -> bool {
    matches!(mode(), Mode::Root)
}

/// Gives root's builds a mount namespace of their own, so that every overlay goes away with
/// the process, even when it is killed with SIGKILL.
fn private_mounts() {
    use rustix::mount::{MountPropagationFlags, mount_change};
    use rustix::thread::{UnshareFlags, unshare_unsafe};
    // SAFETY: called from `enter`, before the tokio runtime or any other thread exists, so
    // no thread can observe the namespace change half done.
    let unshared = unsafe { unshare_unsafe(UnshareFlags::NEWNS) };
    if let Err(e) = unshared {
        tracing::debug!("no private mount namespace ({e}); mounts are cleaned up on exit");
        return;
    }
    // Keep bud's mounts from propagating back to the host's namespace.
    if let Err(e) = mount_change(
        "/",
        MountPropagationFlags::REC | MountPropagationFlags::PRIVATE,
    ) {
        tracing::debug!("making / private in bud's mount namespace: {e}");
    }
}
