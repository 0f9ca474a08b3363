//! A case is a directory under testdata/diff/: a Dockerfile and its context, plus optional
//! files that are not part of the context:
//!
//! - `args`: extra `docker build` arguments, one per line (`#` starts a comment line);
//! - `env`: `KEY=VALUE` lines set in the environment of both builders;
//! - `fails`: present when the build must be rejected; its text says why;
//! - `base.Dockerfile`: built by Docker (context: the case's) and tagged
//!   `bud-diff-base/<case>` before the case, for cases that need an image of their own
//!   making as a base (ONBUILD);
//! - `reference-only`: paths, one per line, that BuildKit v0.8 leaves in the image and
//!   current BuildKit (which bud follows) does not; the reference must have them and bud
//!   must not, and they are not compared further. Comment lines say which change it was;
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
    "reference-only",
    "setup.sh",
];

#[derive(Debug)]
pub struct Case {
    pub name: String,
    pub dir: PathBuf,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    pub fails: bool,
    pub reference_only: Vec<String>,
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
            reference_only: lines("reference-only")?,
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
