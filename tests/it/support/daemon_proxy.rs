//! A stand-in for a standalone buildkitd, made from dockerd's embedded BuildKit.
//!
//! dockerd serves BuildKit's Control API (with Control.Session) and the gateway forwarder on
//! `POST /grpc` upgraded to h2c. The proxy accepts connections on a Unix socket, or on TCP
//! with TLS and client certificates, upgrades a fresh `/grpc` connection to dockerd for each,
//! and splices the bytes both ways: bud then talks plain HTTP/2 gRPC exactly as it would to
//! `buildkitd --addr unix://…` or `--addr tcp://…` with TLS.
//!
//! The same proxies can instead relay Docker's plain API (`docker_api_*`), byte for byte, to
//! stand for a daemon on another socket, on `tcp://` or on `tcp://` with TLS.
//!
//! The proxy runs on its own thread and runtime, so a test may block on `bud` meanwhile.
#![allow(dead_code)]

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, UnixListener, UnixStream};
use tokio::sync::oneshot;
use tokio_rustls::rustls;

const DOCKER_SOCKET: &str = "/var/run/docker.sock";

/// A running proxy; dropping it stops accepting and closes the spliced connections.
pub struct DaemonProxy {
    /// The `--addr` (or `DOCKER_HOST`) that reaches the proxy.
    pub addr: String,
    connections: Arc<AtomicUsize>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    _dir: tempfile::TempDir,
}

/// PEM files of a test PKI: a CA, a server certificate for 127.0.0.1 and localhost, and a
/// client certificate, all signed by the CA.
pub struct TestPki {
    pub dir: tempfile::TempDir,
    pub ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
}

impl TestPki {
    pub fn generate() -> Self {
        use rcgen::{
            BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
        };
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, pem: String| {
            let path = dir.path().join(name);
            std::fs::write(&path, pem).unwrap();
            path
        };

        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "bud test CA");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        let issuer = rcgen::Issuer::new(ca_params, ca_key);

        let leaf = |names: Vec<String>, purpose: ExtendedKeyUsagePurpose| {
            let key = KeyPair::generate().unwrap();
            let mut params = CertificateParams::new(names).unwrap();
            params.extended_key_usages = vec![purpose];
            let cert = params.signed_by(&key, &issuer).unwrap();
            (cert.pem(), key.serialize_pem())
        };
        let (server_cert, server_key) = leaf(
            vec!["127.0.0.1".into(), "localhost".into()],
            ExtendedKeyUsagePurpose::ServerAuth,
        );
        let (client_cert, client_key) =
            leaf(vec!["bud".into()], ExtendedKeyUsagePurpose::ClientAuth);

        Self {
            ca: write("ca.pem", ca_cert.pem()),
            server_cert: write("server.pem", server_cert),
            server_key: write("server-key.pem", server_key),
            client_cert: write("client.pem", client_cert),
            client_key: write("client-key.pem", client_key),
            dir,
        }
    }
}

/// What the proxy relays its clients to.
#[derive(Clone)]
enum Backend {
    /// dockerd's BuildKit, through a `/grpc` upgrade per connection.
    Grpc,
    /// The BuildKit of the dockerd at `socket`, the same way, every byte a client sends kept
    /// in `sent` (all connections', in the order they came).
    Recording {
        socket: PathBuf,
        sent: Arc<std::sync::Mutex<Vec<u8>>>,
    },
    /// dockerd's API socket, as it is.
    DockerApi,
}

impl DaemonProxy {
    /// A proxy on a Unix socket in a temporary directory: `unix:///tmp/…/buildkitd.sock`.
    pub fn unix() -> Self {
        Self::on_unix(Backend::Grpc)
    }

    /// A TLS proxy on 127.0.0.1 that requires a client certificate signed by `pki.ca`:
    /// `tcp://127.0.0.1:PORT`.
    pub fn tls(pki: &TestPki) -> Self {
        Self::on_tls(Backend::Grpc, pki)
    }

    /// Docker's API on a Unix socket of a temporary directory.
    pub fn docker_api_unix() -> Self {
        Self::on_unix(Backend::DockerApi)
    }

    /// Docker's API on `tcp://127.0.0.1:PORT`, plain HTTP.
    pub fn docker_api_tcp() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (std_listener, addr) = loopback_listener();
        Self::spawn(addr, dir, move |stop, counter| async move {
            let listener = TcpListener::from_std(std_listener).unwrap();
            accept_loop(stop, Backend::DockerApi, counter, || async {
                let (socket, _) = listener.accept().await?;
                Ok(Box::pin(async move { Some(Box::new(socket) as Box<dyn Io>) }) as Pending)
            })
            .await;
        })
    }

    /// Docker's API on `tcp://127.0.0.1:PORT` with TLS, requiring a client certificate
    /// signed by `pki.ca`, as `dockerd --tlsverify` does.
    pub fn docker_api_tls(pki: &TestPki) -> Self {
        Self::on_tls(Backend::DockerApi, pki)
    }

    /// The BuildKit of the dockerd at `docker_host` (`unix://…`) on a Unix socket, keeping
    /// every byte its clients send, to read once they are done.
    pub fn recording(docker_host: &str) -> (Self, Arc<std::sync::Mutex<Vec<u8>>>) {
        let socket = PathBuf::from(docker_host.strip_prefix("unix://").unwrap_or(docker_host));
        let sent = Arc::new(std::sync::Mutex::new(Vec::new()));
        let backend = Backend::Recording {
            socket,
            sent: sent.clone(),
        };
        (Self::on_unix(backend), sent)
    }

    /// Client connections accepted so far.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    fn on_unix(backend: Backend) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("buildkitd.sock");
        let std_listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
        std_listener.set_nonblocking(true).unwrap();
        let addr = format!("unix://{}", socket.display());
        Self::spawn(addr, dir, move |stop, counter| async move {
            let listener = UnixListener::from_std(std_listener).unwrap();
            accept_loop(stop, backend.clone(), counter, || async {
                let (socket, _) = listener.accept().await?;
                Ok(Box::pin(async move { Some(Box::new(socket) as Box<dyn Io>) }) as Pending)
            })
            .await;
        })
    }

    fn on_tls(backend: Backend, pki: &TestPki) -> Self {
        let config = Arc::new(server_tls_config(pki, &backend));
        let dir = tempfile::tempdir().unwrap();
        let (std_listener, addr) = loopback_listener();
        Self::spawn(addr, dir, move |stop, counter| async move {
            let listener = TcpListener::from_std(std_listener).unwrap();
            let acceptor = tokio_rustls::TlsAcceptor::from(config);
            accept_loop(stop, backend.clone(), counter, || async {
                let (tcp, _) = listener.accept().await?;
                let acceptor = acceptor.clone();
                // A failed handshake (the client distrusts us) ends this connection only.
                Ok(Box::pin(async move {
                    let tls = acceptor.accept(tcp).await.ok()?;
                    Some(Box::new(tls) as Box<dyn Io>)
                }) as Pending)
            })
            .await;
        })
    }

    fn spawn<F, Fut>(addr: String, dir: tempfile::TempDir, serve: F) -> Self
    where
        F: FnOnce(oneshot::Receiver<()>, Arc<AtomicUsize>) -> Fut + Send + 'static,
        Fut: Future<Output = ()>,
    {
        let (stop, stopped) = oneshot::channel();
        let connections = Arc::new(AtomicUsize::new(0));
        let counter = connections.clone();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(serve(stopped, counter));
        });
        Self {
            addr,
            connections,
            stop: Some(stop),
            thread: Some(thread),
            _dir: dir,
        }
    }
}

impl Drop for DaemonProxy {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A listener on a free loopback port, ready for tokio, and its `tcp://` address.
fn loopback_listener() -> (std::net::TcpListener, String) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = format!("tcp://{}", listener.local_addr().unwrap());
    (listener, addr)
}

/// A client connection, once accepted (and for TLS, once the handshake is done).
trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// The rest of accepting one connection, done off the accept loop; `None` if it failed.
type Pending = Pin<Box<dyn Future<Output = Option<Box<dyn Io>>> + Send>>;

async fn accept_loop<F, Fut>(
    mut stop: oneshot::Receiver<()>,
    backend: Backend,
    counter: Arc<AtomicUsize>,
    mut accept: F,
) where
    F: FnMut() -> Fut,
    Fut: Future<Output = std::io::Result<Pending>>,
{
    loop {
        let pending = tokio::select! {
            _ = &mut stop => return,
            a = accept() => a,
        };
        let Ok(pending) = pending else { return };
        counter.fetch_add(1, Ordering::SeqCst);
        let backend = backend.clone();
        // Spawned tasks die with the proxy's runtime, when the proxy is dropped.
        tokio::spawn(async move {
            if let Some(io) = pending.await {
                splice_to_docker(io, backend).await;
            }
        });
    }
}

/// Connects `client` to dockerd: to a fresh `/grpc` connection, or to its API as it is.
async fn splice_to_docker<C: AsyncRead + AsyncWrite + Unpin>(mut client: C, backend: Backend) {
    if let Backend::Recording { socket, sent } = &backend {
        let Ok((daemon, early)) = upgrade_grpc(socket).await else {
            return;
        };
        if client.write_all(&early).await.is_err() {
            return;
        }
        let (mut client_read, mut client_write) = tokio::io::split(client);
        let (mut daemon_read, mut daemon_write) = tokio::io::split(daemon);
        let to_daemon = async {
            let mut chunk = [0u8; 16384];
            loop {
                let n = match client_read.read(&mut chunk).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                sent.lock().unwrap().extend_from_slice(&chunk[..n]);
                if daemon_write.write_all(&chunk[..n]).await.is_err() {
                    break;
                }
            }
            let _ = daemon_write.shutdown().await;
        };
        let to_client = async {
            let _ = tokio::io::copy(&mut daemon_read, &mut client_write).await;
            let _ = client_write.shutdown().await;
        };
        tokio::join!(to_daemon, to_client);
        return;
    }
    let mut daemon = match backend {
        Backend::Recording { .. } => return,
        Backend::Grpc => {
            let Ok((daemon, early)) = upgrade_grpc(Path::new(DOCKER_SOCKET)).await else {
                return;
            };
            if client.write_all(&early).await.is_err() {
                return;
            }
            daemon
        }
        Backend::DockerApi => match UnixStream::connect(DOCKER_SOCKET).await {
            Ok(daemon) => daemon,
            Err(_) => return,
        },
    };
    let _ = tokio::io::copy_bidirectional(&mut client, &mut daemon).await;
}

/// `POST /grpc` with `Upgrade: h2c` on dockerd's socket; returns the connection and any
/// bytes dockerd sent after its `101` (its HTTP/2 settings may come in the same read).
async fn upgrade_grpc(socket: &Path) -> std::io::Result<(UnixStream, Vec<u8>)> {
    let mut daemon = UnixStream::connect(socket).await?;
    daemon
        .write_all(
            b"POST /grpc HTTP/1.1\r\nHost: docker\r\nConnection: Upgrade\r\nUpgrade: h2c\r\nContent-Length: 0\r\n\r\n",
        )
        .await?;
    let mut buf = Vec::new();
    let end = loop {
        let mut chunk = [0u8; 4096];
        let n = daemon.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::Error::other("dockerd closed /grpc before 101"));
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    if !buf.starts_with(b"HTTP/1.1 101") {
        return Err(std::io::Error::other(format!(
            "dockerd refused the upgrade: {}",
            String::from_utf8_lossy(&buf[..end])
        )));
    }
    Ok((daemon, buf.split_off(end)))
}

fn server_tls_config(pki: &TestPki, backend: &Backend) -> rustls::ServerConfig {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for ca in CertificateDer::pem_file_iter(&pki.ca).unwrap() {
        roots.add(ca.unwrap()).unwrap();
    }
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()
    .unwrap();
    let certs = CertificateDer::pem_file_iter(&pki.server_cert)
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(&pki.server_key).unwrap();
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs, key)
        .unwrap();
    if let Backend::Grpc = backend {
        config.alpn_protocols = vec![b"h2".to_vec()];
    }
    config
}
