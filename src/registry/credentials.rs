//! Registry credentials from the Docker CLI's `config.json`: `auths`, `credHelpers` and
//! `credsStore`, exactly where `docker login` put them.

use std::fs::File;
use std::io::{self, BufReader};
use std::path::{Path, PathBuf};

use docker_credential::{CredentialRetrievalError, DockerCredential};
use oci_client::secrets::RegistryAuth;

use super::RegistryError;

/// The key the Docker CLI files Docker Hub's credentials under.
const DOCKER_HUB_SERVER: &str = "https://index.docker.io/v1/";

/// The directory holding `config.json`: `$DOCKER_CONFIG`, else `~/.docker`.
pub(super) fn default_config_dir() -> Option<PathBuf> {
    std::env::var_os("DOCKER_CONFIG")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| Path::new(&home).join(".docker")))
}

/// The credentials for `domain` (a normalised reference's domain, `docker.io` for Hub).
/// No config file, or nothing configured for the registry, means anonymous access.
///
/// Blocking: it reads a file and may run a credential helper.
pub(super) fn lookup(
    config_dir: Option<&Path>,
    domain: &str,
) -> Result<RegistryAuth, RegistryError> {
    let Some(dir) = config_dir.map(Path::to_owned).or_else(default_config_dir) else {
        return Ok(RegistryAuth::Anonymous);
    };
    let path = dir.join("config.json");
    let file = match File::open(&path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(RegistryAuth::Anonymous),
        Err(e) => return Err(RegistryError::io("reading", &path)(e)),
    };
    let server = server_key(domain);
    match docker_credential::get_credential_from_reader(BufReader::new(file), server) {
        Ok(DockerCredential::UsernamePassword(user, password)) => {
            Ok(RegistryAuth::Basic(user, password))
        }
        Ok(DockerCredential::IdentityToken(_)) => {
            // An identity token is an OAuth2 refresh token, to be exchanged at the token
            // endpoint; oci-client has no such flow, and sending it as a bearer token
            // would be refused.
            tracing::warn!(
                "{domain}: the Docker config holds an identity token, which bud cannot use yet; \
                 trying anonymous access"
            );
            Ok(RegistryAuth::Anonymous)
        }
        Err(CredentialRetrievalError::NoCredentialConfigured) => Ok(RegistryAuth::Anonymous),
        Err(e) => Err(RegistryError::Credentials {
            registry: domain.to_owned(),
            message: format!("{} ({})", e, path.display()),
        }),
    }
}

/// The Docker CLI keys Hub as its v1 URL, every other registry by its host[:port].
fn server_key(domain: &str) -> &str {
    if domain == bud_frontend::reference::DEFAULT_DOMAIN {
        DOCKER_HUB_SERVER
    } else {
        domain
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(dir: &Path, json: &str) {
        std::fs::write(dir.join("config.json"), json).unwrap();
    }

    #[test]
    fn auths_are_found_by_registry_and_hub_by_its_v1_key() {
        let dir = tempfile::tempdir().unwrap();
        // "bud:secret" and "hub:token"
        config(
            dir.path(),
            r#"{"auths":{"127.0.0.1:5001":{"auth":"YnVkOnNlY3JldA=="},
                "https://index.docker.io/v1/":{"auth":"aHViOnRva2Vu"}}}"#,
        );
        let auth = lookup(Some(dir.path()), "127.0.0.1:5001").unwrap();
        assert!(matches!(auth, RegistryAuth::Basic(u, p) if u == "bud" && p == "secret"));
        let hub = lookup(Some(dir.path()), "docker.io").unwrap();
        assert!(matches!(hub, RegistryAuth::Basic(u, p) if u == "hub" && p == "token"));
        let other = lookup(Some(dir.path()), "ghcr.io").unwrap();
        assert!(matches!(other, RegistryAuth::Anonymous));
    }

    #[test]
    fn missing_config_is_anonymous_and_a_failing_helper_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            lookup(Some(dir.path()), "example.com").unwrap(),
            RegistryAuth::Anonymous
        ));
        config(
            dir.path(),
            r#"{"credHelpers":{"example.com":"bud-test-no-such-helper"}}"#,
        );
        let err = lookup(Some(dir.path()), "example.com").unwrap_err();
        assert!(matches!(err, RegistryError::Credentials { .. }), "{err}");
    }
}
