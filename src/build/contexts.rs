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
pub struct NamedContexts {
    pub contexts: BTreeMap<String, NamedContext>,
    /// Local source name → directory.
    pub local_dirs: BTreeMap<String, PathBuf>,
}

impl NamedContexts {
    pub fn read(flags: &[BuildContext]) -> anyhow::Result<Self> {
        let mut out = NamedContexts::default();
        for flag in flags {
            let name = context_name(&flag.name)?;
            let context = classify(&name, &flag.value)
                .with_context(|| format!("--build-context {}={}", flag.name, flag.value))?;
            if let NamedContext::Local { name: local, .. } = &context {
                out.local_dirs
                    .insert(local.clone(), PathBuf::from(&flag.value));
            }
            out.contexts.insert(name, context);
        }
        Ok(out)
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
    if let Some((scheme, _)) = value.split_once("://") {
        bail!("{scheme}:// contexts are not supported yet");
    }
    if value.starts_with("target:") {
        bail!("target: contexts are not supported yet");
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
    fn unsupported_and_invalid_values_are_errors() {
        for (name, value) in [
            ("a", "https://github.com/moby/buildkit.git?bogus=1"),
            ("a", "oci-layout:///tmp/layout"),
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
