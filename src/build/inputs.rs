//! What a build reads before anything runs: the context directory, the Dockerfile (`-f`,
//! `-f -`, or `PATH/Dockerfile`) and the `.dockerignore` that applies to it.

use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use bud_frontend::convert::MainContext;
use bud_frontend::dockerignore::parse_dockerignore;

use super::remote_context::{LoadedContext, RemoteContext};

/// The context, the Dockerfile and the `.dockerignore` patterns, read once per build.
#[derive(Debug)]
pub struct BuildInputs {
    /// The context directory (a staging directory for a tar on stdin; empty for a URL
    /// context).
    pub context_dir: PathBuf,
    /// The Dockerfile's text, decoded as docker build reads it (empty for a URL context
    /// until [`BuildInputs::loaded`]).
    pub dockerfile: String,
    /// Where the Dockerfile came from, for messages.
    pub dockerfile_name: String,
    /// The `.dockerignore` patterns (`<Dockerfile>.dockerignore` first, else the context's),
    /// as written.
    pub excludes: Vec<String>,
    /// A context given as a URL, until its Dockerfile is read ([`BuildInputs::loaded`]).
    pub remote: Option<RemoteContext>,
    /// The Dockerfile of a URL context came from the client (`-f -`, `-f /absolute/path`)
    /// rather than from the context.
    pub dockerfile_given: bool,
    /// Where the frontend takes the context from: `context_dir`, or the remote source.
    pub main_context: MainContext,
    /// A context read from stdin lives here for the build's duration.
    _staging: Option<tempfile::TempDir>,
}

impl BuildInputs {
    /// The Dockerfile's name as BuildKit gives it in steps, warnings and error excerpts:
    /// its file name only (`Dockerfile` for one read from stdin).
    pub fn dockerfile_file_name(&self) -> &str {
        Path::new(&self.dockerfile_name)
            .file_name()
            .and_then(|f| f.to_str())
            .filter(|_| self.dockerfile_name != "-")
            .unwrap_or("Dockerfile")
    }

    /// Reads the inputs of `bud build CONTEXT [-f FILE]`: a directory, a URL (its Dockerfile
    /// read later unless `-f -` or an absolute `-f` gives it), or `-` for a tar or a
    /// Dockerfile on stdin.
    pub fn read(context: &str, file: Option<&str>) -> anyhow::Result<Self> {
        if context == "-" {
            return Self::from_stdin(file);
        }
        // A directory wins over a URL of the same spelling, as with docker build.
        if !Path::new(context).is_dir()
            && let Some(remote) = RemoteContext::detect(context)?
        {
            return Self::from_remote(remote, file);
        }
        let context_dir = PathBuf::from(context);
        let md = std::fs::metadata(&context_dir)
            .with_context(|| format!("unable to prepare context: path {context:?} not found"))?;
        if !md.is_dir() {
            bail!("unable to prepare context: {context:?} is not a directory");
        }
        let (dockerfile, dockerfile_name, dockerfile_path) = match file {
            Some("-") => {
                let mut bytes = Vec::new();
                std::io::stdin()
                    .read_to_end(&mut bytes)
                    .context("reading the Dockerfile from stdin")?;
                (dockerfile_text(&bytes, "-"), "-".to_string(), None)
            }
            Some(f) => {
                let path = PathBuf::from(f);
                (read_dockerfile(&path)?, f.to_string(), Some(path))
            }
            None => {
                let path = default_dockerfile(&context_dir);
                let name = path.display().to_string();
                (read_dockerfile(&path)?, name, Some(path))
            }
        };
        let excludes = read_dockerignore(&context_dir, dockerfile_path.as_deref())?;
        Ok(Self {
            context_dir,
            dockerfile,
            dockerfile_name,
            excludes,
            remote: None,
            dockerfile_given: false,
            main_context: MainContext::Local,
            _staging: None,
        })
    }

    /// A URL context: the Dockerfile is read once the context is fetched, unless `-f -`
    /// gives it.
    fn from_remote(remote: RemoteContext, file: Option<&str>) -> anyhow::Result<Self> {
        // As buildx: `-f -` and an absolute `-f` are read here; any other `-f` is a path
        // in the fetched context.
        let (dockerfile, dockerfile_name, dockerfile_given) = match file {
            Some("-") => {
                let mut bytes = Vec::new();
                std::io::stdin()
                    .read_to_end(&mut bytes)
                    .context("reading the Dockerfile from stdin")?;
                (dockerfile_text(&bytes, "-"), "-".to_string(), true)
            }
            Some(f) if Path::new(f).is_absolute() => {
                (read_dockerfile(Path::new(f))?, f.to_string(), true)
            }
            _ => (String::new(), remote.url().to_owned(), false),
        };
        Ok(Self {
            context_dir: PathBuf::new(),
            dockerfile,
            dockerfile_name,
            excludes: Vec::new(),
            remote: Some(remote),
            dockerfile_given,
            main_context: MainContext::Local,
            _staging: None,
        })
    }

    /// These inputs with the fetched remote context's source and Dockerfile. A remote
    /// context is not filtered by a `.dockerignore`, as BuildKit takes it.
    pub fn loaded(&self, loaded: LoadedContext) -> Self {
        let (dockerfile, dockerfile_name) = match &loaded.dockerfile {
            Some(bytes) => (
                dockerfile_text(bytes, &loaded.dockerfile_name),
                loaded.dockerfile_name,
            ),
            None => (self.dockerfile.clone(), self.dockerfile_name.clone()),
        };
        Self {
            context_dir: self.context_dir.clone(),
            dockerfile,
            dockerfile_name,
            excludes: Vec::new(),
            remote: None,
            dockerfile_given: self.dockerfile_given,
            main_context: loaded.main_context,
            _staging: None,
        }
    }

    /// `bud - < Dockerfile` (no context) or `bud - < context.tar[.gz]`, as docker reads
    /// stdin: an archive is the context, anything else is the Dockerfile.
    fn from_stdin(file: Option<&str>) -> anyhow::Result<Self> {
        if file == Some("-") {
            bail!("-f - and a context of - cannot both read stdin");
        }
        let staging = tempfile::tempdir().context("creating a directory for the stdin context")?;
        let received = staging.path().join("stdin");
        let mut out = std::fs::File::create(&received)?;
        std::io::copy(&mut std::io::stdin().lock(), &mut out).context("reading stdin")?;
        drop(out);
        let context_dir = staging.path().join("context");
        std::fs::create_dir(&context_dir)?;
        if crate::fileop::is_archive(&received) {
            let unpack = crate::fileop::CopyAction {
                src: "/stdin".into(),
                dest: "/context/".into(),
                attempt_unpack_docker_compatibility: true,
                ..Default::default()
            };
            crate::fileop::copy(staging.path(), staging.path(), &unpack)
                .context("unpacking the context archive from stdin")?;
            let mut inputs = Self::read(
                context_dir
                    .to_str()
                    .context("temporary path is not UTF-8")?,
                Some(
                    &context_dir
                        .join(file.unwrap_or("Dockerfile"))
                        .to_string_lossy(),
                ),
            )?;
            inputs._staging = Some(staging);
            return Ok(inputs);
        }
        let bytes = std::fs::read(&received).context("reading the Dockerfile from stdin")?;
        let dockerfile = dockerfile_text(&bytes, "-");
        Ok(Self {
            context_dir,
            dockerfile,
            dockerfile_name: "-".into(),
            excludes: Vec::new(),
            remote: None,
            dockerfile_given: false,
            main_context: MainContext::Local,
            _staging: Some(staging),
        })
    }
}

/// `Dockerfile`, or `dockerfile` when only that exists, as docker/cli looks for it.
fn default_dockerfile(context: &Path) -> PathBuf {
    let upper = context.join("Dockerfile");
    let lower = context.join("dockerfile");
    if !upper.exists() && lower.exists() {
        lower
    } else {
        upper
    }
}

fn read_dockerfile(path: &Path) -> anyhow::Result<String> {
    let bytes = std::fs::read(path).with_context(|| {
        format!(
            "failed to read dockerfile: open {}: no such file or directory",
            path.display()
        )
    })?;
    Ok(dockerfile_text(&bytes, &path.display().to_string()))
}

/// The Dockerfile's text; bytes that are not UTF-8 are read as U+FFFD, as docker build
/// reads them, with a warning naming where.
fn dockerfile_text(bytes: &[u8], name: &str) -> String {
    let decoded = bud_frontend::parser::decode(bytes);
    if let Some(&(line, byte)) = decoded.invalid.first() {
        let more = match decoded.invalid.len() {
            1 => String::new(),
            n => format!(" (and on {} more lines)", n - 1),
        };
        crate::report!(
            "warning: {name}:{line}: byte {byte} is not UTF-8{more}; read as U+FFFD, as docker build does"
        );
    }
    decoded.text
}

/// `<Dockerfile>.dockerignore` beside the Dockerfile wins over the context's `.dockerignore`,
/// as BuildKit reads them.
fn read_dockerignore(context: &Path, dockerfile: Option<&Path>) -> anyhow::Result<Vec<String>> {
    let specific = dockerfile.map(|d| {
        let mut name = d.as_os_str().to_owned();
        name.push(".dockerignore");
        PathBuf::from(name)
    });
    for path in specific.into_iter().chain([context.join(".dockerignore")]) {
        match std::fs::read(&path) {
            Ok(bytes) => return Ok(parse_dockerignore(&String::from_utf8_lossy(&bytes))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        }
    }
    Ok(Vec::new())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dockerfile_specific_ignore_wins() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("Dockerfile"), "FROM scratch\n").unwrap();
        std::fs::write(dir.path().join(".dockerignore"), "a\n").unwrap();
        std::fs::write(dir.path().join("Dockerfile.dockerignore"), "b\n# c\n").unwrap();
        let ctx = dir.path().to_str().unwrap();
        let inputs = BuildInputs::read(ctx, None).unwrap();
        assert_eq!(inputs.excludes, ["b"]);
        std::fs::remove_file(dir.path().join("Dockerfile.dockerignore")).unwrap();
        let inputs = BuildInputs::read(ctx, None).unwrap();
        assert_eq!(inputs.excludes, ["a"]);
    }

    #[test]
    fn missing_things_are_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        let ctx = dir.path().to_str().unwrap();
        let err = BuildInputs::read(ctx, None).unwrap_err().to_string();
        assert!(err.contains("failed to read dockerfile"), "{err}");
        let err = BuildInputs::read("/nonexistent/ctx", None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("not found"), "{err}");
    }
}
