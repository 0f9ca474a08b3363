//! docker's context store, read as the docker CLI lays it out in its config directory:
//!
//! ```text
//! config.json                                 {"currentContext": "NAME", ...}
//! contexts/meta/<sha256 of NAME>/meta.json    {"Name": ..., "Endpoints": {"docker": {"Host": ..., "SkipTLSVerify": ...}}}
//! contexts/tls/<sha256 of NAME>/docker/       ca.pem, cert.pem, key.pem (each optional)
//! ```

use std::path::{Path, PathBuf};

use serde::Deserialize;
use sha2::{Digest as _, Sha256};

/// The context that stands for `DOCKER_HOST` or the default socket; it is never stored.
pub(super) const DEFAULT: &str = "default";

/// Why the Docker context the settings choose cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ContextError {
    /// No context of that name is stored.
    #[error(
        "Docker context {name:?} (from {chosen_by}) does not exist: no {}", meta.display()
    )]
    NotFound {
        /// The context.
        name: String,
        /// The setting that chose it: `DOCKER_CONTEXT`, the config's `currentContext`.
        chosen_by: &'static str,
        /// The `meta.json` looked for.
        meta: PathBuf,
    },
    /// Its `meta.json` cannot be read or is not a context's.
    #[error("Docker context {name:?}: {}: {reason}", meta.display())]
    Invalid {
        /// The context.
        name: String,
        /// Its `meta.json`.
        meta: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    #[error(
        "Docker context {name:?} (from {chosen_by}): neither DOCKER_CONFIG nor HOME is set, so \
         docker's config directory is unknown"
    )]
    /// The context's name is known but not where docker keeps contexts.
    NoConfigDir {
        /// The context.
        name: String,
        /// The setting that chose it.
        chosen_by: &'static str,
    },
}

/// A context's Docker endpoint.
#[derive(Debug)]
pub(super) struct StoredEndpoint {
    pub host: Option<String>,
    pub skip_tls_verify: bool,
    pub tls_files: Option<TlsFiles>,
}

/// The TLS files a context keeps; present only when at least one is.
#[derive(Debug)]
pub(super) struct TlsFiles {
    pub ca: Option<PathBuf>,
    pub identity: Option<(PathBuf, PathBuf)>,
}

#[derive(Deserialize)]
struct Config {
    #[serde(rename = "currentContext", default)]
    current_context: Option<String>,
}

#[derive(Deserialize)]
struct Meta {
    #[serde(rename = "Endpoints", default)]
    endpoints: Endpoints,
}

#[derive(Deserialize, Default)]
struct Endpoints {
    docker: Option<DockerEndpoint>,
}

#[derive(Deserialize)]
struct DockerEndpoint {
    #[serde(rename = "Host", default)]
    host: Option<String>,
    #[serde(rename = "SkipTLSVerify", default)]
    skip_tls_verify: bool,
}

/// The config's `currentContext`, if it names one. An unreadable config names none, as
/// docker falls back to the default context when it has no config file.
pub(super) fn current(config_dir: &Path) -> Option<String> {
    let text = std::fs::read(config_dir.join("config.json")).ok()?;
    let config: Config = serde_json::from_slice(&text).ok()?;
    config.current_context.filter(|name| !name.is_empty())
}

pub(super) fn read(
    config_dir: &Path,
    name: &str,
    chosen_by: &'static str,
) -> Result<StoredEndpoint, ContextError> {
    let id = hex::encode(Sha256::digest(name.as_bytes()));
    let meta = config_dir
        .join("contexts")
        .join("meta")
        .join(&id)
        .join("meta.json");
    let text = match std::fs::read(&meta) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(ContextError::NotFound {
                name: name.to_string(),
                chosen_by,
                meta,
            });
        }
        Err(e) => {
            return Err(ContextError::Invalid {
                name: name.to_string(),
                meta,
                reason: e.to_string(),
            });
        }
    };
    let parsed: Meta = serde_json::from_slice(&text).map_err(|e| ContextError::Invalid {
        name: name.to_string(),
        meta: meta.clone(),
        reason: e.to_string(),
    })?;
    let docker = parsed.endpoints.docker;
    let tls_dir = config_dir
        .join("contexts")
        .join("tls")
        .join(&id)
        .join("docker");
    let file = |name: &str| Some(tls_dir.join(name)).filter(|p| p.is_file());
    let (ca, cert, key) = (file("ca.pem"), file("cert.pem"), file("key.pem"));
    let tls_files = (ca.is_some() || cert.is_some() || key.is_some()).then(|| TlsFiles {
        ca,
        identity: cert.zip(key),
    });
    Ok(StoredEndpoint {
        host: docker
            .as_ref()
            .and_then(|d| d.host.clone())
            .filter(|h| !h.is_empty()),
        skip_tls_verify: docker.is_some_and(|d| d.skip_tls_verify),
        tls_files,
    })
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// Stores context `name` as `docker context create` does, with empty TLS `files`.
    pub(crate) fn store(
        config_dir: &Path,
        name: &str,
        host: &str,
        skip_verify: bool,
        files: &[&str],
    ) {
        let id = hex::encode(Sha256::digest(name.as_bytes()));
        let meta_dir = config_dir.join("contexts/meta").join(&id);
        std::fs::create_dir_all(&meta_dir).unwrap();
        let meta = serde_json::json!({
            "Name": name,
            "Metadata": {"Description": "test"},
            "Endpoints": {"docker": {"Host": host, "SkipTLSVerify": skip_verify}},
        });
        std::fs::write(meta_dir.join("meta.json"), meta.to_string()).unwrap();
        if !files.is_empty() {
            let tls_dir = config_dir.join("contexts/tls").join(&id).join("docker");
            std::fs::create_dir_all(&tls_dir).unwrap();
            for file in files {
                std::fs::write(tls_dir.join(file), "").unwrap();
            }
        }
    }

    #[test]
    fn a_context_without_docker_endpoint_or_with_bad_json() {
        let config = tempfile::tempdir().unwrap();
        let id = hex::encode(Sha256::digest(b"k8s"));
        let dir = config.path().join("contexts/meta").join(id);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("meta.json"), r#"{"Name":"k8s","Endpoints":{}}"#).unwrap();
        let stored = read(config.path(), "k8s", "DOCKER_CONTEXT").unwrap();
        assert_eq!(stored.host, None);

        std::fs::write(dir.join("meta.json"), "{").unwrap();
        let err = read(config.path(), "k8s", "DOCKER_CONTEXT").unwrap_err();
        assert!(matches!(err, ContextError::Invalid { .. }), "{err}");
    }

    #[test]
    fn current_context_of_a_config() {
        let config = tempfile::tempdir().unwrap();
        assert_eq!(current(config.path()), None);
        std::fs::write(
            config.path().join("config.json"),
            r#"{"currentContext":""}"#,
        )
        .unwrap();
        assert_eq!(current(config.path()), None);
        std::fs::write(
            config.path().join("config.json"),
            r#"{"currentContext":"ci"}"#,
        )
        .unwrap();
        assert_eq!(current(config.path()).as_deref(), Some("ci"));
    }
}
