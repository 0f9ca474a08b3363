//! The whole output of every step, kept on disk while it runs, and for good when the step
//! fails: buildx cuts a step's log at 1 MiB (docker/buildx#484), which can hide the error.
//! Each build writes into `logs/<build id>/` under the state root; a step that succeeds
//! (or is cancelled) loses its file, a build that keeps none loses its directory. There
//! are no build records to collect the rest with, so the directory is bounded instead:
//! [`bound`] keeps the newest [`KEEP_BUILDS`] builds' logs, none older than [`KEEP_FOR`],
//! and `bud prune` removes them all.

use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use super::{Event, Renderer, failure_block};

/// How many builds' logs are kept.
pub const KEEP_BUILDS: usize = 20;
/// How long a build's logs are kept.
pub const KEEP_FOR: Duration = Duration::from_secs(7 * 24 * 3600);

/// A failed step's kept output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeptLog {
    /// The step's name, as progress shows it.
    pub name: String,
    /// The log file, `logs/<build id>/<step>.log` under the state root.
    pub path: PathBuf,
}

/// The logs a build kept, readable once it has ended.
pub type KeptLogs = Arc<Mutex<Vec<KeptLog>>>;

/// Wraps a renderer, writing each step's output to its own file as it comes.
pub struct StepLogRenderer {
    inner: Box<dyn Renderer>,
    dir: PathBuf,
    names: HashMap<String, String>,
    open: HashMap<String, (File, PathBuf)>,
    /// Steps whose file could not be written: their output is not kept.
    broken: std::collections::HashSet<String>,
    kept: KeptLogs,
}

impl StepLogRenderer {
    /// Logs go to `dir`, created when the first step prints.
    pub fn new(inner: Box<dyn Renderer>, dir: PathBuf) -> (Self, KeptLogs) {
        let kept = KeptLogs::default();
        let renderer = StepLogRenderer {
            inner,
            dir,
            names: HashMap::new(),
            open: HashMap::new(),
            broken: Default::default(),
            kept: kept.clone(),
        };
        (renderer, kept)
    }

    fn append(&mut self, vertex: &str, data: &[u8]) -> std::io::Result<()> {
        if !self.open.contains_key(vertex) {
            std::fs::create_dir_all(&self.dir)?;
            let hex = vertex.strip_prefix("sha256:").unwrap_or(vertex);
            let stem: String = hex
                .chars()
                .filter(char::is_ascii_alphanumeric)
                .take(16)
                .collect();
            let path = self.dir.join(format!("{stem}.log"));
            let file = File::create(&path)?;
            self.open.insert(vertex.to_owned(), (file, path));
        }
        if let Some((file, _)) = self.open.get_mut(vertex) {
            file.write_all(data)?;
        }
        Ok(())
    }
}

impl Renderer for StepLogRenderer {
    fn event(&mut self, event: &Event) {
        match event {
            Event::Started { vertex, name, .. } | Event::Cached { vertex, name, .. } => {
                self.names.insert(vertex.clone(), name.clone());
            }
            Event::Log { vertex, data, .. } if !self.broken.contains(vertex) => {
                if let Err(e) = self.append(vertex, data) {
                    tracing::debug!("keeping the output of {vertex}: {e}");
                    self.broken.insert(vertex.clone());
                    if let Some((_, path)) = self.open.remove(vertex) {
                        let _ = std::fs::remove_file(path);
                    }
                }
            }
            Event::Completed { vertex, error, .. } => {
                if let Some((file, path)) = self.open.remove(vertex) {
                    drop(file);
                    match error {
                        Some(e) if failure_block::shown_for(e) => {
                            let name = self.names.get(vertex).cloned().unwrap_or_default();
                            self.kept
                                .lock()
                                .unwrap_or_else(PoisonError::into_inner)
                                .push(KeptLog { name, path });
                        }
                        _ => {
                            let _ = std::fs::remove_file(path);
                        }
                    }
                }
            }
            _ => {}
        }
        self.inner.event(event);
    }

    fn finish(&mut self, ok: bool) {
        for (_, (_, path)) in self.open.drain() {
            let _ = std::fs::remove_file(path);
        }
        // Empty when nothing was kept; a directory with logs stays.
        let _ = std::fs::remove_dir(&self.dir);
        self.inner.finish(ok);
    }
}

/// A new build's directory under `logs`: its start time and process, so names sort by age.
pub fn build_dir(logs: &Path) -> PathBuf {
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    logs.join(format!(
        "{}-{:09}-{}",
        now.as_secs(),
        now.subsec_nanos(),
        std::process::id()
    ))
}

/// Removes the logs of all but the newest [`KEEP_BUILDS`] builds, and any older than
/// [`KEEP_FOR`].
pub fn bound(logs: &Path) {
    let Ok(entries) = std::fs::read_dir(logs) else {
        return;
    };
    let mut builds: Vec<(String, PathBuf, Option<SystemTime>)> = entries
        .flatten()
        .map(|e| {
            let modified = e.metadata().and_then(|m| m.modified()).ok();
            (
                e.file_name().to_string_lossy().into_owned(),
                e.path(),
                modified,
            )
        })
        .collect();
    // Newest first: names start with the build's start time.
    builds.sort_by(|a, b| b.0.cmp(&a.0));
    let now = SystemTime::now();
    for (i, (_, path, modified)) in builds.into_iter().enumerate() {
        let old = modified
            .and_then(|m| now.duration_since(m).ok())
            .is_some_and(|age| age > KEEP_FOR);
        if i >= KEEP_BUILDS || old {
            let _ = std::fs::remove_dir_all(path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::progress::{QuietRenderer, Stream};

    fn log(vertex: &str, data: &[u8]) -> Event {
        Event::Log {
            vertex: vertex.into(),
            stream: Stream::Stdout,
            data: data.to_vec(),
            at: SystemTime::now(),
        }
    }

    fn completed(vertex: &str, error: Option<&str>) -> Event {
        Event::Completed {
            vertex: vertex.into(),
            at: SystemTime::now(),
            error: error.map(str::to_owned),
        }
    }

    #[test]
    fn a_failed_step_keeps_its_whole_output_and_the_others_none() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("b1");
        let (mut r, kept) = StepLogRenderer::new(Box::new(QuietRenderer), dir.clone());
        for (v, name) in [("sha256:aa", "[2/3] RUN ok"), ("sha256:bb", "[3/3] RUN no")] {
            r.event(&Event::Started {
                vertex: v.into(),
                name: name.into(),
                at: SystemTime::now(),
            });
        }
        r.event(&log("sha256:aa", b"fine\n"));
        r.event(&log("sha256:bb", b"first\n"));
        r.event(&log("sha256:bb", b"second\n"));
        r.event(&completed("sha256:aa", None));
        r.event(&completed("sha256:bb", Some("exit code: 1")));
        r.finish(false);
        let kept = kept.lock().unwrap().clone();
        assert_eq!(kept.len(), 1);
        assert_eq!(kept[0].name, "[3/3] RUN no");
        assert_eq!(std::fs::read(&kept[0].path).unwrap(), b"first\nsecond\n");
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
    }

    #[test]
    fn a_build_without_failures_leaves_no_directory() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("b1");
        let (mut r, _) = StepLogRenderer::new(Box::new(QuietRenderer), dir.clone());
        r.event(&log("sha256:aa", b"x"));
        r.event(&completed("sha256:aa", Some("cancelled")));
        r.event(&log("sha256:bb", b"y"));
        r.finish(false);
        assert!(!dir.exists());
    }

    #[test]
    fn only_the_newest_builds_logs_stay() {
        let root = tempfile::tempdir().unwrap();
        for i in 0..KEEP_BUILDS + 3 {
            std::fs::create_dir_all(root.path().join(format!("{:05}-000000000-1", i))).unwrap();
        }
        bound(root.path());
        let mut left: Vec<String> = std::fs::read_dir(root.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left.len(), KEEP_BUILDS);
        assert_eq!(left[0], "00003-000000000-1");
    }
}
