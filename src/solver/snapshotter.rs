//! Which way steps get their writable root: overlay mounts, or copies of their layers.
//!
//! `BUD_SNAPSHOTTER=copy` asks for copies and `=overlay` for overlays. Otherwise overlays
//! are used where they work: overlayfs must be there, and an overlay with its upper
//! directory in the state root's `tmp/` must mount ([`overlay_check::check`]), which it does
//! not when the state root is itself on overlayfs (bud in a container). The test mount's
//! answer is remembered in the state root, per kind of user (root or rootless, and the
//! overlay options used) and kernel release, so that it is made once.

use std::path::PathBuf;

use crate::snapshot::{SnapshotError, overlay, overlay_check};
use crate::state::StateRoot;

/// The decision, and what to tell the user when it is not the expected one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshotter {
    /// Steps run on copies of their layers.
    pub copy_mode: bool,
    /// A one-line note for the build's output when overlays cannot be used.
    pub note: Option<String>,
}

impl Snapshotter {
    /// Decides for builds in `state`, as root (overlay options none).
    pub fn choose(state: &StateRoot) -> Self {
        Self::choose_with(state, &[])
    }

    /// Decides for builds in `state` whose overlays are mounted with `options` (e.g.
    /// `userxattr` in a user namespace).
    pub fn choose_with(state: &StateRoot, options: &[&str]) -> Self {
        match std::env::var("BUD_SNAPSHOTTER").as_deref() {
            Ok("copy") => return Self::copies(None),
            Ok("overlay") => return Self::overlays(),
            _ => {}
        }
        if !overlay::is_supported() {
            return Self::copies(Some(
                "overlayfs is not available: steps run on copies of their layers (slower)"
                    .to_owned(),
            ));
        }
        let memory = Remembered::new(state, options);
        let answer = match memory.read() {
            Some(answer) => answer,
            None => match overlay_check::check(&state.tmp_dir(), options) {
                Ok(()) => memory.write(Ok(())),
                Err(SnapshotError::Mount { source, .. }) => memory.write(Err(source.to_string())),
                // The test could not be set up (a full disk, say): not an answer to keep;
                // the step's own mount will say what is wrong.
                Err(e) => {
                    tracing::debug!(
                        "no overlay test mount: {}",
                        crate::error_chain::error_chain(&e)
                    );
                    Ok(())
                }
            },
        };
        match answer {
            Ok(()) => Self::overlays(),
            Err(why) => Self::copies(Some(format!(
                "overlay mounts do not work in {} ({why}; bud's state root on overlayfs, as \
                 in a container?): steps run on copies of their layers (slower); remembered \
                 in {}",
                state.path().display(),
                memory.path.display()
            ))),
        }
    }

    fn overlays() -> Self {
        Self {
            copy_mode: false,
            note: None,
        }
    }

    fn copies(note: Option<String>) -> Self {
        Self {
            copy_mode: true,
            note,
        }
    }
}

/// A test mount's answer kept in the state root:
/// `overlay-check/<root|rootless>[-<options>]`, holding the kernel release on its first line
/// and `ok` or `failed: <why>` on its second.
struct Remembered {
    path: PathBuf,
    kernel: String,
}

impl Remembered {
    fn new(state: &StateRoot, options: &[&str]) -> Self {
        let mut key = if in_initial_user_namespace() && rustix::process::geteuid().is_root() {
            "root".to_owned()
        } else {
            "rootless".to_owned()
        };
        for option in options {
            key.push('-');
            key.extend(
                option
                    .chars()
                    .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }),
            );
        }
        Self {
            path: state.path().join("overlay-check").join(key),
            kernel: rustix::system::uname()
                .release()
                .to_string_lossy()
                .into_owned(),
        }
    }

    /// The answer for this kernel, if one was kept.
    fn read(&self) -> Option<Result<(), String>> {
        let text = std::fs::read_to_string(&self.path).ok()?;
        let mut lines = text.lines();
        if lines.next()? != self.kernel {
            return None;
        }
        match lines.next()? {
            "ok" => Some(Ok(())),
            other => Some(Err(other.strip_prefix("failed: ")?.to_owned())),
        }
    }

    /// Keeps `answer` (best effort: unkept, the next build tests again) and returns it.
    fn write(&self, answer: Result<(), String>) -> Result<(), String> {
        let line = match &answer {
            Ok(()) => "ok".to_owned(),
            Err(why) => format!("failed: {}", why.replace('\n', " ")),
        };
        let kept = self
            .path
            .parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .and_then(|()| {
                // Written whole, then renamed: a build reading at the same time sees all or none.
                let tmp = self
                    .path
                    .with_extension(format!("{}.tmp", std::process::id()));
                std::fs::write(&tmp, format!("{}\n{line}\n", self.kernel))?;
                std::fs::rename(&tmp, &self.path)
            });
        if let Err(e) = kept {
            tracing::debug!(
                "keeping the overlay test's answer in {}: {e}",
                self.path.display()
            );
        }
        answer
    }
}

/// Whether this process is in the initial user namespace (its uid map is the identity over
/// every id), where root is root on the host too.
fn in_initial_user_namespace() -> bool {
    std::fs::read_to_string("/proc/self/uid_map").is_ok_and(|map| is_identity_map(&map))
}

fn is_identity_map(map: &str) -> bool {
    let fields: Vec<&str> = map.split_whitespace().collect();
    fields == ["0", "0", "4294967295"]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_identity_map_is_the_initial_namespace() {
        assert!(is_identity_map("         0          0 4294967295\n"));
        assert!(!is_identity_map("         0       1000          1\n"));
        assert!(!is_identity_map("0 1000 1\n1 100000 65536\n"));
    }

    #[test]
    fn answers_are_kept_per_kernel() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateRoot::open(dir.path().join("root")).unwrap();
        let memory = Remembered::new(&state, &["userxattr"]);
        assert!(
            memory.path.ends_with("overlay-check/root-userxattr")
                || memory.path.ends_with("overlay-check/rootless-userxattr")
        );
        assert_eq!(memory.read(), None);
        assert_eq!(
            memory.write(Err("Invalid argument".into())),
            Err("Invalid argument".into())
        );
        assert_eq!(memory.read(), Some(Err("Invalid argument".into())));
        let other_kernel = Remembered {
            path: memory.path.clone(),
            kernel: "0.0.0".into(),
        };
        assert_eq!(other_kernel.read(), None);
        memory.write(Ok(())).unwrap();
        assert_eq!(memory.read(), Some(Ok(())));
    }
}
