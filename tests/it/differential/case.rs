//! A case is a directory under testdata/diff/: a Dockerfile and its context, plus optional
//! files that are not part of the context:
//!
//! - `args`: extra `docker build` arguments, one per line (`#` starts a comment line);
//! - `env`: `KEY=VALUE` lines set in the environment of both builders;
//! - `fails`: present when the build must be rejected (by Docker 28.5, which bud follows);
//!   its text says why;
//! - `base.Dockerfile`: built by Docker (context: the case's) and tagged
//!   `bud-diff-base/<case>` before the case, for cases that need an image of their own
//!   making as a base (ONBUILD);
//! - `docker20-differs`: present when the two references, Docker 20.10 and Docker 28.5, build
//!   the case differently. bud follows the current one, 28.5; the file's `#` lines say what
//!   20.10 does and why, and its one other line says which reference the `--addr docker://`
//!   variant follows: `remote: docker20` when the difference is in the daemon's BuildKit,
//!   which solves that variant's graph (20.10's), `remote: docker28` when it is in what
//!   bud does on the client (the Dockerfile frontend, the context walk), or `remote:
//!   refused` when the graph needs a capability 20.10's BuildKit lacks, so bud must refuse
//!   it there rather than have it ignored;
//! - `setup.sh`: run by `sh` in the copied context to create what git keeps badly
//!   (symlinks, hardlinks, modes, archives), reproducibly.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;

const NOT_CONTEXT: &[&str] = &[
    "args",
    "env",
    "fails",
    "base.Dockerfile",
    "docker20-differs",
    "setup.sh",
];

#[derive(Debug)]
pub struct Case {
    pub name: String,
    pub dir: PathBuf,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    pub fails: bool,
    pub docker20_differs: Option<Docker20Differs>,
}

/// One of the two reference Dockers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reference {
    Docker20,
    Docker28,
}

impl Reference {
    pub fn name(self) -> &'static str {
        match self {
            Reference::Docker20 => "docker 20.10",
            Reference::Docker28 => "docker 28.5",
        }
    }
}

/// A case's `docker20-differs` file.
#[derive(Debug)]
pub struct Docker20Differs {
    /// What Docker 20.10 does differently, and why.
    pub why: String,
    /// The reference the `--addr docker://` variant (bud's graph on Docker 20.10's BuildKit)
    /// follows; `None` when bud must refuse that variant.
    pub remote_follows: Option<Reference>,
}

impl Docker20Differs {
    fn parse(path: &Path) -> io::Result<Option<Self>> {
        let text = match fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let bad = |what: String| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: {what}", path.display()),
            )
        };
        let mut why = Vec::new();
        let mut remote_follows = None;
        for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
            if let Some(comment) = line.strip_prefix('#') {
                why.push(comment.trim());
                continue;
            }
            let follows = match line {
                "remote: docker20" => Some(Reference::Docker20),
                "remote: docker28" => Some(Reference::Docker28),
                "remote: refused" => None,
                other => return Err(bad(format!("unknown line {other:?}"))),
            };
            if remote_follows.replace(follows).is_some() {
                return Err(bad("more than one `remote:` line".into()));
            }
        }
        if why.is_empty() {
            return Err(bad("say in `#` lines what Docker 20.10 does and why".into()));
        }
        let remote_follows = remote_follows.ok_or_else(|| {
            bad(
                "say which reference the remote variant follows (`remote: docker20|docker28|refused`)"
                    .into(),
            )
        })?;
        Ok(Some(Docker20Differs {
            why: why.join(" "),
            remote_follows,
        }))
    }
}

impl Case {
    pub fn load(dir: &Path) -> io::Result<Case> {
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let lines = |file: &str| -> io::Result<Vec<String>> {
            match fs::read_to_string(dir.join(file)) {
                Ok(text) => Ok(text
                    .lines()
                    .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
                    .map(str::to_string)
                    .collect()),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
                Err(e) => Err(e),
            }
        };
        let env = lines("env")?
            .into_iter()
            .map(|l| match l.split_once('=') {
                Some((k, v)) => (k.to_string(), v.to_string()),
                None => (l, String::new()),
            })
            .collect();
        Ok(Case {
            args: lines("args")?,
            env,
            fails: dir.join("fails").exists(),
            docker20_differs: Docker20Differs::parse(&dir.join("docker20-differs"))?,
            dir: dir.to_path_buf(),
            name,
        })
    }

    pub fn base_dockerfile(&self) -> Option<PathBuf> {
        let path = self.dir.join("base.Dockerfile");
        path.exists().then_some(path)
    }

    /// Copies the context into `into` and runs `setup.sh` there.
    pub fn prepare(&self, into: &Path) -> Result<(), String> {
        copy_tree(&self.dir, into, true).map_err(|e| format!("copy context: {e}"))?;
        let setup = self.dir.join("setup.sh");
        if setup.exists() {
            let out = Command::new("sh")
                .arg(&setup)
                .current_dir(into)
                .output()
                .map_err(|e| format!("run setup.sh: {e}"))?;
            if !out.status.success() {
                return Err(format!(
                    "setup.sh failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                ));
            }
        }
        Ok(())
    }
}

fn copy_tree(from: &Path, to: &Path, top: bool) -> io::Result<()> {
    fs::create_dir_all(to)?;
    for entry in fs::read_dir(from)? {
        let entry = entry?;
        let name = entry.file_name();
        if top && NOT_CONTEXT.iter().any(|n| name == *n) {
            continue;
        }
        let target = to.join(&name);
        if entry.file_type()?.is_dir() {
            copy_tree(&entry.path(), &target, false)?;
        } else {
            fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}

/// Every case directory, sorted; `BUD_DIFF_CASES=a,b` narrows them down by name.
pub fn all(root: &Path) -> io::Result<Vec<Case>> {
    let only: Option<Vec<String>> = std::env::var("BUD_DIFF_CASES")
        .ok()
        .map(|v| v.split(',').map(str::to_string).collect());
    let mut dirs: Vec<PathBuf> = fs::read_dir(root)?
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.path())
        .collect();
    dirs.sort();
    dirs.iter()
        .map(|d| Case::load(d))
        .filter(|c| match (c, &only) {
            (Ok(c), Some(only)) => only.contains(&c.name),
            _ => true,
        })
        .collect()
}
