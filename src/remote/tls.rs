//! TLS to a buildkitd on `tcp://`, with buildctl's settings: the CA that signed the daemon's
//! certificate, an optional client certificate (buildkitd usually requires one), and the name
//! to verify, which defaults to the address's host.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::rustls;

use super::RemoteError;
pub use crate::cli::TlsOptions;

/// A client TLS configuration and the name the daemon's certificate must carry.
#[derive(Clone)]
pub(crate) struct TlsConnector {
    config: Arc<rustls::ClientConfig>,
    server_name: ServerName<'static>,
}

impl std::fmt::Debug for TlsConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsConnector")
            .field("server_name", &self.server_name)
            .finish_non_exhaustive()
    }
}

/// Why TLS could not be set up from certificate and key files (for a buildkitd's `--tls*`
/// flags, and for Docker's `DOCKER_CERT_PATH` or a context's TLS files).
#[derive(Debug, thiserror::Error)]
pub enum TlsFileError {
    /// A PEM file could not be read or parsed.
    #[error("{what} {}", path.display())]
    Pem {
        /// The file's flag or role.
        what: String,
        /// The file.
        path: PathBuf,
        /// The PEM reader's error.
        #[source]
        source: rustls_pki_types::pem::Error,
    },
    /// A certificate file holds no certificate.
    #[error("{what} {}: no PEM certificate in the file", path.display())]
    NoCertificate {
        /// The file's flag or role.
        what: String,
        /// The file.
        path: PathBuf,
    },
    /// rustls refused a certificate or key it was given.
    #[error("{what} {}", path.display())]
    Refused {
        /// The file's flag or role.
        what: String,
        /// The file.
        path: PathBuf,
        /// rustls' reason (boxed: rustls' error is large, and this one is returned often).
        #[source]
        source: Box<rustls::Error>,
    },
    /// rustls has no protocol version the provider supports.
    #[error("TLS protocol versions")]
    Versions(#[source] Box<rustls::Error>),
    /// The name the daemon's certificate must carry is not a DNS name or IP address.
    #[error("server name {0:?}")]
    ServerName(String, #[source] rustls_pki_types::InvalidDnsNameError),
}

/// The files TLS is configured from, once `--tlsdir` is resolved.
struct TlsFiles {
    ca: PathBuf,
    identity: Option<(PathBuf, PathBuf)>,
}

impl TlsOptions {
    /// Whether any TLS setting was given: TLS is used exactly then.
    pub fn is_set(&self) -> bool {
        self.ca_cert.is_some()
            || self.cert.is_some()
            || self.key.is_some()
            || self.dir.is_some()
            || self.server_name.is_some()
    }

    fn files(&self, addr: &str) -> Result<TlsFiles, RemoteError> {
        let bad = |reason: String| RemoteError::Tls {
            addr: addr.to_string(),
            reason,
        };
        if let Some(dir) = &self.dir {
            if self.ca_cert.is_some() || self.cert.is_some() || self.key.is_some() {
                return Err(bad(
                    "--tlsdir and --tlscacert/--tlscert/--tlskey are exclusive".into(),
                ));
            }
            let one_of = |names: [&str; 2]| {
                names
                    .iter()
                    .map(|n| dir.join(n))
                    .find(|p| p.exists())
                    .ok_or_else(|| {
                        bad(format!(
                            "--tlsdir {} has neither {} nor {}",
                            dir.display(),
                            names[0],
                            names[1]
                        ))
                    })
            };
            return Ok(TlsFiles {
                ca: one_of(["ca.pem", "ca.crt"])?,
                identity: Some((
                    one_of(["cert.pem", "tls.crt"])?,
                    one_of(["key.pem", "tls.key"])?,
                )),
            });
        }
        let ca = self.ca_cert.clone().ok_or_else(|| {
            bad("--tlscacert is required: bud verifies the daemon against the given CA only".into())
        })?;
        let identity = match (&self.cert, &self.key) {
            (Some(cert), Some(key)) => Some((cert.clone(), key.clone())),
            (None, None) => None,
            (Some(_), None) => return Err(bad("--tlscert needs --tlskey".into())),
            (None, Some(_)) => return Err(bad("--tlskey needs --tlscert".into())),
        };
        Ok(TlsFiles { ca, identity })
    }

    /// Loads the certificates and key for a connection to `host` (of the address `addr`).
    pub(crate) fn connector(&self, addr: &str, host: &str) -> Result<TlsConnector, RemoteError> {
        let files = self.files(addr)?;
        self.connector_from(&files, host)
            .map_err(|source| RemoteError::TlsFiles {
                addr: addr.to_string(),
                source: Box::new(source),
            })
    }

    fn connector_from(&self, files: &TlsFiles, host: &str) -> Result<TlsConnector, TlsFileError> {
        let mut roots = rustls::RootCertStore::empty();
        for cert in read_certs("--tlscacert", &files.ca)? {
            roots.add(cert).map_err(|source| TlsFileError::Refused {
                what: "--tlscacert".into(),
                path: files.ca.clone(),
                source: Box::new(source),
            })?;
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsFileError::Versions(Box::new(e)))?
            .with_root_certificates(roots);
        let mut config = match &files.identity {
            None => builder.with_no_client_auth(),
            Some((cert, key)) => {
                let chain = read_certs("--tlscert", cert)?;
                let key = read_key("--tlskey", key)?;
                builder
                    .with_client_auth_cert(chain, key)
                    .map_err(|source| TlsFileError::Refused {
                        what: "--tlscert".into(),
                        path: cert.clone(),
                        source: Box::new(source),
                    })?
            }
        };
        // gRPC over TLS is HTTP/2 negotiated by ALPN; grpc-go servers insist on it.
        config.alpn_protocols = vec![b"h2".to_vec()];

        let name = self.server_name.as_deref().unwrap_or(host);
        let server_name = ServerName::try_from(name.to_string())
            .map_err(|e| TlsFileError::ServerName(name.to_owned(), e))?;
        Ok(TlsConnector {
            config: Arc::new(config),
            server_name,
        })
    }
}

impl TlsConnector {
    pub(crate) async fn connect(
        &self,
        addr: &str,
        tcp: TcpStream,
    ) -> Result<tokio_rustls::client::TlsStream<TcpStream>, RemoteError> {
        tokio_rustls::TlsConnector::from(self.config.clone())
            .connect(self.server_name.clone(), tcp)
            .await
            .map_err(|source| RemoteError::Handshake {
                addr: addr.to_string(),
                source,
            })
    }
}

/// The certificates of the PEM file `path`, which `what` (a flag, a role) names in errors.
pub(crate) fn read_certs(
    what: &str,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, TlsFileError> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|source| TlsFileError::Pem {
            what: what.to_owned(),
            path: path.to_owned(),
            source,
        })?;
    if certs.is_empty() {
        return Err(TlsFileError::NoCertificate {
            what: what.to_owned(),
            path: path.to_owned(),
        });
    }
    Ok(certs)
}

/// The private key of the PEM file `path`, which `what` names in errors.
pub(crate) fn read_key(what: &str, path: &Path) -> Result<PrivateKeyDer<'static>, TlsFileError> {
    PrivateKeyDer::from_pem_file(path).map_err(|source| TlsFileError::Pem {
        what: what.to_owned(),
        path: path.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts() -> TlsOptions {
        TlsOptions::default()
    }

    #[test]
    fn nothing_set_means_no_tls() {
        assert!(!opts().is_set());
        let with_ca = TlsOptions {
            ca_cert: Some("/ca.pem".into()),
            ..opts()
        };
        assert!(with_ca.is_set());
    }

    #[test]
    fn incomplete_settings_are_refused_by_name() {
        let no_ca = TlsOptions {
            cert: Some("/c.pem".into()),
            key: Some("/k.pem".into()),
            ..opts()
        };
        let err = no_ca.connector("tcp://h:1", "h").unwrap_err().to_string();
        assert!(
            err.contains("tcp://h:1") && err.contains("--tlscacert"),
            "{err}"
        );

        let no_key = TlsOptions {
            ca_cert: Some("/ca.pem".into()),
            cert: Some("/c.pem".into()),
            ..opts()
        };
        let err = no_key.files("tcp://h:1").err().unwrap().to_string();
        assert!(err.contains("--tlscert needs --tlskey"), "{err}");

        let both = TlsOptions {
            ca_cert: Some("/ca.pem".into()),
            dir: Some("/tls".into()),
            ..opts()
        };
        let err = both.files("tcp://h:1").err().unwrap().to_string();
        assert!(err.contains("exclusive"), "{err}");
    }

    #[test]
    fn tlsdir_accepts_either_naming() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["ca.crt", "cert.pem", "tls.key"] {
            std::fs::write(dir.path().join(name), "").unwrap();
        }
        let files = TlsOptions {
            dir: Some(dir.path().into()),
            ..opts()
        }
        .files("tcp://h:1")
        .ok()
        .unwrap();
        assert_eq!(files.ca, dir.path().join("ca.crt"));
        assert_eq!(
            files.identity,
            Some((dir.path().join("cert.pem"), dir.path().join("tls.key")))
        );

        std::fs::remove_file(dir.path().join("tls.key")).unwrap();
        let err = TlsOptions {
            dir: Some(dir.path().into()),
            ..opts()
        }
        .files("tcp://h:1")
        .err()
        .unwrap()
        .to_string();
        assert!(err.contains("neither key.pem nor tls.key"), "{err}");
    }

    #[test]
    fn a_missing_or_empty_ca_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("ca.pem");
        std::fs::write(&empty, "not pem\n").unwrap();
        for ca in [dir.path().join("absent.pem"), empty] {
            let err = TlsOptions {
                ca_cert: Some(ca.clone()),
                ..opts()
            }
            .connector("tcp://h:1", "h")
            .unwrap_err();
            // The file is named by the cause, which the one printer shows.
            let err = crate::error_chain::error_chain(&err);
            assert!(err.contains(&ca.display().to_string()), "{err}");
        }
    }
}
