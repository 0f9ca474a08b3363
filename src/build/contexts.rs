//! `--build-context NAME=VALUE`: what each value is, as buildx tells them apart, and the
//! directories the solver serves as the local sources the frontend names.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context as _, bail};
use bud_frontend::convert::NamedContext;
use bud_frontend::dockerignore::parse_dockerignore;
use bud_frontend::gitref::GitRef;
use bud_frontend::reference::Reference;

use crate::cli::BuildContext;

/// The named contexts for the frontend, and the directories behind the local ones.
#[derive(Debug, Default)]
pub(super) struct NamedContexts {
    pub contexts: BTreeMap<String, NamedContext>,
    /// Local source name → directory.
    pub local_dirs: BTreeMap<String, PathBuf>,
    /// Content store ID → OCI layout directory.
    pub oci_layouts: BTreeMap<String, PathBuf>,
}

impl NamedContexts {
    pub(super) fn read(flags: &[BuildContext]) -> anyhow::Result<Self> {
        let mut out = NamedContexts::default();
        for flag in flags {
            let name = context_name(&flag.name)?;
            let context = classify(&name, &flag.value)
                .with_context(|| format!("--build-context {}={}", flag.name, flag.value))?;
            match &context {
                NamedContext::Local { name: local, .. } => {
                    out.local_dirs
                        .insert(local.clone(), PathBuf::from(&flag.value));
                }
                NamedContext::OciLayout { layout, store, .. } => {
                    out.oci_layouts.insert(store.clone(), PathBuf::from(layout));
                }
                _ => {}
            }
            out.contexts.insert(name, context);
        }
        Ok(out)
    }
}

/// A daemon whose BuildKit worker has no oci-layout source to read an `oci-layout://` context
/// with: BuildKit's own workers have one, moby's classic worker (Docker without the
/// containerd image store) registers none and fails the step with "unknown scheme" although
/// its LLB caps list `source.ocilayout`, so no cap tells it before the build.
#[derive(Debug, thiserror::Error)]
#[error(
    "the daemon's BuildKit worker has no oci-layout source, so it cannot read oci-layout:// \
     build contexts (Docker without the containerd image store has none): use Docker with the \
     containerd image store or a BuildKit daemon, or build without --addr"
)]
pub(super) struct NoOciLayoutSource {
    #[source]
    source: crate::remote::RemoteError,
}

impl NoOciLayoutSource {
    /// `e` explained when it is a worker's missing oci-layout source, else `e` as it was.
    pub(super) fn of(e: crate::remote::RemoteError) -> Result<Self, crate::remote::RemoteError> {
        // BuildKit's source manager says "unknown scheme" (0.10 and later) or "no handler
        // for" (before).
        let missing = |m: &str| {
            m.contains("unknown scheme oci-layout") || m.contains("no handler for oci-layout")
        };
        match &e {
            crate::remote::RemoteError::Build(failure) if missing(&failure.message) => {
                Ok(Self { source: e })
            }
            _ => Err(e),
        }
    }
}

/// The name as the frontend looks it up: the short form of a reference without `:latest`
/// (`docker.io/library/alpine:latest` is `alpine`).
fn context_name(name: &str) -> anyhow::Result<String> {
    let reference = Reference::parse(name)
        .map_err(|e| anyhow::anyhow!("--build-context: invalid context name {name:?}: {e}"))?;
    let familiar = reference.familiar();
    let short = familiar.strip_suffix(":latest").unwrap_or(&familiar);
    if short == "context" || short == "scratch" {
        bail!("--build-context: {short:?} cannot be a named context");
    }
    Ok(short.to_owned())
}

fn classify(name: &str, value: &str) -> anyhow::Result<NamedContext> {
    if let Some(reference) = value.strip_prefix("docker-image://") {
        Reference::parse(reference)
            .map_err(|e| anyhow::anyhow!("invalid image reference {reference:?}: {e}"))?;
        return Ok(NamedContext::Image(reference.to_owned()));
    }
    // Git first: an https URL ending in .git is a repository, as buildx and BuildKit tell.
    if let Some(git) = GitRef::parse(value).map_err(anyhow::Error::msg)? {
        return Ok(NamedContext::Git {
            git,
            source: value.to_owned(),
        });
    }
    if value.starts_with("https://") || value.starts_with("http://") {
        return Ok(NamedContext::Http(value.to_owned()));
    }
    if let Some(spec) = value.strip_prefix("oci-layout://") {
        return oci_layout(name, spec);
    }
    if let Some((scheme, _)) = value.split_once("://") {
        bail!("{scheme}:// contexts are not supported yet");
    }
    // buildx passes `target:` on, and only bake has targets to find: buildx build fails.
    if let Some(target) = value.strip_prefix("target:") {
        bail!(
            "failed to find target {target} for context {name}: a target: context names a \
             target of docker buildx bake, not a stage; use the stage's name in the Dockerfile"
        );
    }
    let md = std::fs::metadata(value).with_context(|| format!("reading {value}"))?;
    if !md.is_dir() {
        bail!("{value} is not a directory");
    }
    // A directory context is filtered by its own .dockerignore, as BuildKit does.
    let ignore = PathBuf::from(value).join(".dockerignore");
    let excludes = match std::fs::read_to_string(&ignore) {
        Ok(text) => parse_dockerignore(&text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e).with_context(|| format!("reading {}", ignore.display())),
    };
    Ok(NamedContext::Local {
        name: name.to_owned(),
        excludes,
    })
}

/// `PATH[:TAG][@DIGEST]`, split as buildx splits it (the first `@`, then the first `:`), the
/// tag (`latest` by default) resolved in the layout's `index.json` when no digest is given.
/// The layout is served under the context's name.
fn oci_layout(name: &str, spec: &str) -> anyhow::Result<NamedContext> {
    let (path, digest) = match spec.split_once('@') {
        Some((path, digest)) => (path, Some(digest)),
        None => (spec, None),
    };
    let (path, tag) = path.split_once(':').unwrap_or((path, "latest"));
    if path.is_empty() {
        bail!("an oci-layout:// context needs the path of a layout directory");
    }
    let dir = std::path::absolute(path).with_context(|| format!("reading {path}"))?;
    let md = std::fs::metadata(&dir).with_context(|| format!("reading {path}"))?;
    if !md.is_dir() {
        bail!("{path} is not an OCI layout directory");
    }
    let digest = match digest {
        Some(digest) => {
            crate::content::Digest::parse(digest)
                .map_err(|e| anyhow::anyhow!("invalid digest {digest:?}: {e}"))?;
            digest.to_owned()
        }
        None => crate::source::oci_layout::OciLayout::new(&dir)
            .resolve_tag(tag)
            .context("the oci-layout reference could not be resolved")?,
    };
    Ok(NamedContext::OciLayout {
        layout: dir.to_string_lossy().into_owned(),
        store: name.to_owned(),
        digest,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flag(name: &str, value: &str) -> BuildContext {
        BuildContext {
            name: name.into(),
            value: value.into(),
        }
    }

    #[test]
    fn values_are_told_apart() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(".dockerignore"), "*.tmp\n").unwrap();
        let dir_value = dir.path().to_str().unwrap();
        let got = NamedContexts::read(&[
            flag("extra", dir_value),
            flag(
                "docker.io/library/base:latest",
                "docker-image://alpine:3.19",
            ),
            flag("data", "https://example.com/data.tar"),
            flag("repo", "git@github.com:moby/buildkit.git#v0.8.0:docs"),
        ])
        .unwrap();
        assert_eq!(
            got.contexts["extra"],
            NamedContext::Local {
                name: "extra".into(),
                excludes: vec!["*.tmp".into()],
            }
        );
        assert_eq!(got.local_dirs["extra"], dir.path());
        assert_eq!(
            got.contexts["base"],
            NamedContext::Image("alpine:3.19".into())
        );
        assert_eq!(
            got.contexts["data"],
            NamedContext::Http("https://example.com/data.tar".into())
        );
        let NamedContext::Git { git, .. } = &got.contexts["repo"] else {
            panic!("{:?}", got.contexts["repo"]);
        };
        assert_eq!(git.remote, "github.com/moby/buildkit.git");
        assert_eq!(git.subdir.as_deref(), Some("docs"));
    }

    #[test]
    fn a_worker_without_an_oci_layout_source_is_explained() {
        let failure = |message: &str| {
            crate::remote::RemoteError::Build(crate::remote::BuildFailure {
                message: message.into(),
                sources: Vec::new(),
                vertex: None,
            })
        };
        let explained = NoOciLayoutSource::of(failure(
            "failed to load cache key: unknown scheme oci-layout: not found",
        ))
        .unwrap();
        let shown = crate::error_chain::error_chain(&explained);
        assert!(shown.starts_with("the daemon's BuildKit worker has no oci-layout source"));
        assert!(
            shown.ends_with("unknown scheme oci-layout: not found"),
            "{shown}"
        );
        assert!(NoOciLayoutSource::of(failure("process \"false\" did not complete")).is_err());
    }

    #[test]
    fn unsupported_and_invalid_values_are_errors() {
        for (name, value) in [
            ("a", "https://github.com/moby/buildkit.git?bogus=1"),
            ("a", "oci-layout:///no/such/layout"),
            ("a", "target:base"),
            ("a", "/no/such/dir"),
            ("a", "docker-image://UPPER"),
            ("Bad", "."),
            ("context", "."),
        ] {
            let err = NamedContexts::read(&[flag(name, value)]);
            assert!(err.is_err(), "{name}={value} should be rejected");
        }
    }
}
