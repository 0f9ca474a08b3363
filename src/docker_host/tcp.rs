//! The Docker API on `tcp://`: plain HTTP, or HTTPS on rustls (the aws-lc-rs provider every
//! TLS connection of bud uses).

use std::sync::Arc;

use bollard::Docker;
use hyper_util::client::legacy::connect::HttpConnector;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use tokio_rustls::rustls::client::danger::{
    HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier,
};
use tokio_rustls::rustls::crypto::{
    CryptoProvider, verify_tls12_signature, verify_tls13_signature,
};
use tokio_rustls::rustls::{
    self, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};

use super::ClientError;
use super::TlsSettings;
use crate::remote::TlsFileError;
use crate::remote::tls::{read_certs, read_key};

pub(super) fn client(
    host: &str,
    port: u16,
    tls: Option<&TlsSettings>,
    timeout: u64,
) -> Result<Docker, ClientError> {
    // An IPv6 literal goes in brackets in a URI.
    let authority = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    let mut http = HttpConnector::new();
    match tls {
        None => super::client_over(http, format!("http://{authority}"), timeout, None)
            .map_err(ClientError::from),
        Some(tls) => {
            // The https connector hands the plain connector https:// URIs.
            http.enforce_http(false);
            let https = hyper_rustls::HttpsConnectorBuilder::new()
                .with_tls_config(tls_config(tls).map_err(ClientError::Tls)?)
                .https_only()
                .enable_http1()
                .wrap_connector(http);
            super::client_over(https, format!("https://{authority}"), timeout, None)
                .map_err(ClientError::from)
        }
    }
}

/// docker's client TLS: the system's roots plus the given CA, a client certificate when
/// there is one, or no verification at all when asked for none.
fn tls_config(tls: &TlsSettings) -> Result<ClientConfig, TlsFileError> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsFileError::Versions(Box::new(e)))?;
    let builder = if tls.verify {
        let mut roots = RootCertStore::empty();
        roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
        if let Some(ca) = &tls.ca {
            for cert in read_certs("CA", ca)? {
                roots.add(cert).map_err(|source| TlsFileError::Refused {
                    what: "CA".into(),
                    path: ca.clone(),
                    source: Box::new(source),
                })?;
            }
        }
        builder.with_root_certificates(roots)
    } else {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
    };
    match &tls.identity {
        None => Ok(builder.with_no_client_auth()),
        Some((cert, key)) => {
            let chain = read_certs("client certificate", cert)?;
            let key = read_key("client key", key)?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|source| TlsFileError::Refused {
                    what: "client certificate".into(),
                    path: cert.clone(),
                    source: Box::new(source),
                })
        }
    }
}

/// Accepts whichever certificate the daemon shows (docker's `DOCKER_TLS` without
/// `DOCKER_TLS_VERIFY`, a context's `SkipTLSVerify`); the handshake's signatures are still
/// checked, so the connection is encrypted to whoever holds that certificate's key.
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
