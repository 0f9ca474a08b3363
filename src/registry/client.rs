//! One connection to one registry: the scheme Docker would use, the credentials the Docker
//! CLI stored, and the mapping of distribution errors to messages a user can act on.

use std::future::Future;
use std::net::{IpAddr, Ipv6Addr};
use std::path::PathBuf;

use bud_frontend::reference::Reference;
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::errors::{OciDistributionError, OciErrorCode};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, RegistryOperation};

use super::{RegistryError, credentials};
use crate::timeouts::{Expired, Timeouts};

/// Concurrent blob transfers per registry, as Docker's default (3) plus a little.
pub(crate) const TRANSFER_CONCURRENCY: usize = 4;

/// How bud reaches registries.
#[derive(Debug, Clone, Default)]
pub struct RegistryConfig {
    /// Registries (`host[:port]`) reached over plain HTTP, like dockerd's
    /// `insecure-registries`. Loopback registries always are.
    pub insecure_registries: Vec<String>,
    /// The directory holding the Docker CLI's `config.json`; `None` means `$DOCKER_CONFIG`,
    /// else `~/.docker`.
    pub docker_config: Option<PathBuf>,
    /// Bounds on every exchange with a registry.
    pub timeouts: Timeouts,
}

impl RegistryConfig {
    /// Whether `domain` is spoken to over plain HTTP: it is listed as insecure, or it is on
    /// the loopback interface (Docker trusts 127.0.0.0/8 without TLS).
    pub fn uses_plain_http(&self, domain: &str) -> bool {
        self.insecure_registries.iter().any(|r| r == domain) || is_loopback(domain)
    }

    /// This configuration, with `domain` spoken to over plain HTTP when `insecure` (an
    /// output's or a cache's `registry.insecure=true`) asks for it.
    pub fn with_insecure(&self, domain: &str, insecure: bool) -> RegistryConfig {
        let mut config = self.clone();
        if insecure && !self.uses_plain_http(domain) {
            config.insecure_registries.push(domain.to_owned());
        }
        config
    }

    /// A connection to `domain` with the credentials stored for it. Both the credentials and
    /// the HTTP client are made on a blocking thread: making a client reads the system's
    /// root certificates (hundreds of files with `SSL_CERT_DIR`, from disk on a fresh
    /// machine), which would otherwise hold up whatever else the build does meanwhile.
    pub async fn connect(&self, domain: &str) -> Result<RegistryHost, RegistryError> {
        let config_dir = self.docker_config.clone();
        let owned = domain.to_owned();
        let protocol = if self.uses_plain_http(domain) {
            ClientProtocol::Http
        } else {
            ClientProtocol::Https
        };
        let connect_timeout = self.timeouts.connect;
        let (auth, client) = tokio::task::spawn_blocking(move || {
            credentials::lookup(config_dir.as_deref(), &owned)
                .map(|auth| (auth, client(protocol, connect_timeout)))
        })
        .await
        .map_err(|e| RegistryError::Task(e.to_string()))??;
        Ok(RegistryHost {
            domain: domain.to_owned(),
            client,
            auth,
            timeouts: self.timeouts,
        })
    }
}

/// An HTTP client for one registry. Blocking: it loads the system's root certificates.
fn client(protocol: ClientProtocol, connect_timeout: std::time::Duration) -> Client {
    Client::new(ClientConfig {
        protocol,
        // One PUT per blob, streamed from disk: chunked uploads cost a round trip per
        // chunk and some registries handle them badly.
        use_monolithic_push: true,
        max_concurrent_download: TRANSFER_CONCURRENCY,
        max_concurrent_upload: TRANSFER_CONCURRENCY,
        user_agent: concat!("bud/", env!("CARGO_PKG_VERSION")),
        // Only the connection is bounded by the HTTP client: its read timeout would
        // also count the time spent sending an upload's body. The rest is bounded
        // around each exchange (`RegistryHost::exchange`, `timeouts::Upload`).
        connect_timeout: Some(connect_timeout),
        ..ClientConfig::default()
    })
}

/// `localhost`, `127.x.y.z` or `::1`, with or without a port.
fn is_loopback(domain: &str) -> bool {
    let host = if let Some(rest) = domain.strip_prefix('[') {
        rest.split_once(']').map_or(rest, |(host, _)| host)
    } else {
        domain.rsplit_once(':').map_or(domain, |(host, _)| host)
    };
    if host == "localhost" {
        return true;
    }
    match host.parse::<IpAddr>() {
        Ok(ip) => ip.is_loopback(),
        // A bare IPv6 address without brackets or port.
        Err(_) => domain.parse::<Ipv6Addr>().is_ok_and(|ip| ip.is_loopback()),
    }
}

/// A registry to talk to, with its credentials.
#[derive(Clone)]
pub struct RegistryHost {
    pub(crate) domain: String,
    pub(crate) client: Client,
    auth: RegistryAuth,
    pub(crate) timeouts: Timeouts,
}

impl RegistryHost {
    /// The registry's host, `host[:port]`, as references name it.
    pub(crate) fn domain(&self) -> &str {
        &self.domain
    }

    pub(crate) fn auth(&self) -> &RegistryAuth {
        &self.auth
    }

    /// Obtains a token (or settles on basic auth) for `reference` and the operation; the
    /// client then applies it to every request for that repository.
    pub(crate) async fn authorize(
        &self,
        reference: &oci_client::Reference,
        op: RegistryOperation,
    ) -> Result<(), RegistryError> {
        let action = match op {
            RegistryOperation::Pull => "authenticating to pull",
            RegistryOperation::Push => "authenticating to push",
        };
        self.exchange(
            action,
            &reference.whole(),
            self.client.auth(reference, &self.auth, op),
        )
        .await
        .map(drop)
    }

    /// Runs one exchange with small request and answer, bounded by the response timeout;
    /// its failure named as `action` on `reference`.
    pub(crate) async fn exchange<T>(
        &self,
        action: &'static str,
        reference: &str,
        call: impl Future<Output = Result<T, OciDistributionError>>,
    ) -> Result<T, RegistryError> {
        match self.timeouts.answer(call).await {
            Ok(answer) => answer.map_err(|e| self.error(e, action, reference)),
            Err(expired) => Err(self.timed_out(expired, action, reference)),
        }
    }

    pub(crate) fn timed_out(
        &self,
        expired: Expired,
        action: &'static str,
        reference: &str,
    ) -> RegistryError {
        RegistryError::TimedOut {
            action,
            reference: reference.to_owned(),
            registry: self.domain.clone(),
            expired,
        }
    }

    /// Turns a distribution error into one naming the registry; refusals say to log in.
    pub(crate) fn error(
        &self,
        e: OciDistributionError,
        action: &'static str,
        reference: &str,
    ) -> RegistryError {
        if let Some(status) = refusal_status(&e) {
            return RegistryError::Unauthorized {
                registry: self.domain.clone(),
                status,
                action: if action.contains("push") {
                    "push to"
                } else {
                    "pull from"
                },
            };
        }
        if is_not_found(&e) {
            return RegistryError::NotFound {
                reference: reference.to_owned(),
            };
        }
        RegistryError::Distribution {
            action,
            reference: reference.to_owned(),
            source: Box::new(e),
        }
    }
}

/// The HTTP status of an authentication or authorisation refusal.
fn refusal_status(e: &OciDistributionError) -> Option<u16> {
    match e {
        OciDistributionError::UnauthorizedError { .. }
        | OciDistributionError::AuthenticationFailure(_) => Some(401),
        OciDistributionError::ServerError { code, .. } if *code == 401 || *code == 403 => {
            Some(*code)
        }
        OciDistributionError::RegistryError { envelope, .. } => {
            envelope.errors.iter().find_map(|error| match error.code {
                OciErrorCode::Unauthorized => Some(401),
                OciErrorCode::Denied => Some(403),
                _ => None,
            })
        }
        OciDistributionError::RequestError(e) => e
            .status()
            .map(|s| s.as_u16())
            .filter(|code| *code == 401 || *code == 403),
        _ => None,
    }
}

fn is_not_found(e: &OciDistributionError) -> bool {
    match e {
        OciDistributionError::ServerError { code, .. } => *code == 404,
        OciDistributionError::RegistryError { envelope, .. } => envelope.errors.iter().any(|e| {
            matches!(
                e.code,
                OciErrorCode::ManifestUnknown | OciErrorCode::NameUnknown
            )
        }),
        _ => false,
    }
}

/// The oci-client reference for a normalised one; `digest` wins over the tag, since a
/// digest names exactly one manifest.
pub(crate) fn oci_reference(reference: &Reference) -> oci_client::Reference {
    match (&reference.digest, &reference.tag) {
        (Some(digest), _) => oci_client::Reference::with_digest(
            reference.domain.clone(),
            reference.path.clone(),
            digest.clone(),
        ),
        (None, tag) => oci_client::Reference::with_tag(
            reference.domain.clone(),
            reference.path.clone(),
            tag.clone().unwrap_or_else(|| "latest".to_owned()),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_and_listed_registries_use_plain_http() {
        let config = RegistryConfig {
            insecure_registries: vec!["registry.lan:5000".into()],
            ..RegistryConfig::default()
        };
        for plain in [
            "localhost",
            "localhost:5000",
            "127.0.0.1:5000",
            "127.1.2.3",
            "[::1]:5000",
            "::1",
            "registry.lan:5000",
        ] {
            assert!(config.uses_plain_http(plain), "{plain}");
        }
        for tls in [
            "docker.io",
            "registry.lan",
            "10.0.0.1:5000",
            "localhost.example.com",
            "[::2]:5000",
        ] {
            assert!(!config.uses_plain_http(tls), "{tls}");
        }
    }

    #[test]
    fn registry_insecure_adds_only_its_own_registry() {
        let config = RegistryConfig::default();
        assert!(
            !config
                .with_insecure("registry.lan", false)
                .uses_plain_http("registry.lan")
        );
        let insecure = config.with_insecure("registry.lan", true);
        assert!(insecure.uses_plain_http("registry.lan"));
        assert!(!insecure.uses_plain_http("docker.io"));
        assert!(
            config
                .with_insecure("localhost", true)
                .insecure_registries
                .is_empty()
        );
    }

    #[test]
    fn refusals_are_recognised() {
        let denied: oci_client::errors::OciEnvelope =
            serde_json::from_str(r#"{"errors":[{"code":"DENIED","message":"no"}]}"#).unwrap();
        let e = OciDistributionError::RegistryError {
            envelope: denied,
            url: "u".into(),
        };
        assert_eq!(refusal_status(&e), Some(403));
        let e = OciDistributionError::ServerError {
            code: 500,
            url: "u".into(),
            message: "m".into(),
        };
        assert_eq!(refusal_status(&e), None);
    }
}
