//! Connections to the daemon: HTTP/2 gRPC, either directly on a socket (standalone
//! buildkitd, with TLS on TCP if asked), through `buildctl dial-stdio` in a container or a
//! Kubernetes pod, or on
//! a dockerd API connection upgraded with `Upgrade: h2c`.
//!
//! tonic only supplies codegen here: [`GrpcChannel`] is the client transport the generated
//! clients call through, and [`serve_h2`] runs bud's session services on a connection where
//! the daemon is the HTTP/2 client.

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::{CONNECTION, HOST, UPGRADE};
use http::{Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper::client::conn::{http1, http2};
use hyper::upgrade::Upgraded;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpStream, UnixStream};
use tokio::sync::watch;

use super::RemoteError;
use super::addr::Addr;
use super::container::{self, Started};
use super::tls::TlsConnector;

/// The origin the generated clients put in each request's URI: h2 needs a scheme and an
/// authority, and the daemon ignores both.
pub(crate) fn origin() -> Uri {
    Uri::from_static("http://buildkit")
}

/// A socket of either kind.
pub(crate) trait Socket: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Socket for T {}

/// Opens a connection to the daemon, with TLS on TCP when `tls` is given. The [`Started`]
/// is to be awaited once the HTTP/2 client preface is sent: a connection through a
/// container exec is only known to reach the daemon when the daemon answers.
pub(crate) async fn dial(
    addr: &Addr,
    tls: Option<&TlsConnector>,
) -> Result<(Box<dyn Socket>, Started), RemoteError> {
    let connect_err = |source| RemoteError::Connect {
        addr: addr.to_string(),
        source,
    };
    let socket: Box<dyn Socket> = match addr {
        Addr::Docker { socket } | Addr::Unix(socket) => {
            Box::new(UnixStream::connect(socket).await.map_err(connect_err)?)
        }
        Addr::Tcp(hostport) => {
            let stream = TcpStream::connect(hostport.as_str())
                .await
                .map_err(connect_err)?;
            // gRPC messages are small and latency-sensitive (health checks, fsutil REQs).
            stream.set_nodelay(true).map_err(connect_err)?;
            match tls {
                Some(tls) => Box::new(tls.connect(&addr.to_string(), stream).await?),
                None => Box::new(stream),
            }
        }
        Addr::DockerContainer(name) => {
            let (stream, started) = container::dial(name, &addr.to_string()).await?;
            return Ok((Box::new(stream), started));
        }
        Addr::KubePod(pod) => {
            let (stream, started) = super::kube_pod::dial(pod)?;
            return Ok((Box::new(stream), started));
        }
    };
    Ok((socket, container::started()))
}

/// Upgrades `POST path` on dockerd's API socket to h2c and returns the raw connection,
/// including any bytes the daemon sent right after its `101 Switching Protocols`.
pub(crate) async fn docker_upgrade(
    socket: &Path,
    path: &str,
    headers: &[(&'static str, String)],
) -> Result<Upgraded, RemoteError> {
    let addr = format!("docker://unix://{}", socket.display());
    let stream = UnixStream::connect(socket)
        .await
        .map_err(|source| RemoteError::Connect {
            addr: addr.clone(),
            source,
        })?;
    let http_err = |source| RemoteError::Http {
        what: format!("POST {path} on {addr}"),
        source,
    };
    let (mut sender, conn) = http1::handshake(TokioIo::new(stream))
        .await
        .map_err(http_err)?;
    // The connection task must keep running until the upgrade hands the socket over.
    tokio::spawn(conn.with_upgrades());

    let mut req = Request::post(path)
        .header(HOST, "docker")
        .header(CONNECTION, "Upgrade")
        .header(UPGRADE, "h2c");
    for (name, value) in headers {
        // `header` appends: repeated names become separate lines, which the daemon needs.
        req = req.header(*name, value.as_str());
    }
    let req = req
        .body(Empty::<Bytes>::new())
        .map_err(|e| RemoteError::Protocol(format!("building POST {path}: {e}")))?;
    let resp = sender.send_request(req).await.map_err(http_err)?;
    if resp.status() != StatusCode::SWITCHING_PROTOCOLS {
        let status = resp.status();
        let body = resp
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        return Err(RemoteError::Upgrade {
            path: path.to_string(),
            status: status.as_u16(),
            message: docker_error_message(&body),
        });
    }
    hyper::upgrade::on(resp).await.map_err(http_err)
}

/// dockerd answers errors as `{"message": "…"}`; anything else is shown as text.
fn docker_error_message(body: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct Msg {
        message: String,
    }
    serde_json::from_slice::<Msg>(body)
        .map(|m| m.message)
        .unwrap_or_else(|_| String::from_utf8_lossy(body).trim().to_string())
}

/// How long a failed call waits for the connection to say why it ended.
const CLOSE_REASON_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

/// The client side of an HTTP/2 connection, as a tower service the generated gRPC
/// clients call. Cloning shares the connection.
#[derive(Clone)]
pub struct GrpcChannel {
    sender: http2::SendRequest<tonic::body::Body>,
    addr: Arc<str>,
    /// Why the connection ended, once it has: a call failing on a closed connection
    /// reports this (a TLS alert, a reset) rather than "channel closed".
    ended: watch::Receiver<Option<Arc<str>>>,
}

/// Why a call on a [`GrpcChannel`] could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ChannelError {
    /// The HTTP/2 connection had ended before the call was made.
    #[error("the connection to the BuildKit daemon at {addr} ended: {reason}")]
    Closed {
        /// The daemon's address.
        addr: Arc<str>,
        /// What ended it, as the connection task saw it (a TLS alert, a reset), or `closed`.
        reason: Arc<str>,
    },
    /// The call's HTTP/2 request failed.
    #[error("the BuildKit daemon at {addr}")]
    Http {
        /// The daemon's address.
        addr: Arc<str>,
        /// hyper's error.
        #[source]
        source: hyper::Error,
    },
}

impl GrpcChannel {
    /// Performs the HTTP/2 handshake on `io`, a connection to `addr`, and drives the
    /// connection in the background.
    pub(crate) async fn handshake<T>(io: T, addr: &Addr) -> Result<Self, RemoteError>
    where
        T: hyper::rt::Read + hyper::rt::Write + Send + Unpin + 'static,
    {
        let (sender, conn) = http2::Builder::new(TokioExecutor::new())
            // Context transfers and exported files stream through here: larger windows
            // avoid a round trip per 64 KiB.
            .initial_stream_window_size(4 << 20)
            .initial_connection_window_size(8 << 20)
            .handshake(io)
            .await
            .map_err(|source| RemoteError::Http {
                what: format!("HTTP/2 handshake with the BuildKit daemon at {addr}"),
                source,
            })?;
        let (set_ended, ended) = watch::channel(None);
        tokio::spawn(async move {
            let reason = match conn.await {
                Ok(()) => "the daemon closed it".to_string(),
                Err(e) => crate::error_chain::error_chain(&e),
            };
            tracing::debug!("gRPC connection to the daemon ended: {reason}");
            let _ = set_ended.send(Some(reason.into()));
        });
        // Let the connection task send the preface now: dockerd drops an h2c connection
        // whose client stays silent, and the caller may block before its first call.
        tokio::task::yield_now().await;
        Ok(Self {
            sender,
            addr: addr.to_string().into(),
            ended,
        })
    }

    /// The error for a call on a closed connection, once the connection task has said why.
    async fn closed(addr: Arc<str>, mut ended: watch::Receiver<Option<Arc<str>>>) -> ChannelError {
        let reason = match ended.wait_for(Option::is_some).await {
            Ok(reason) => reason.clone().unwrap_or_else(|| "closed".into()),
            Err(_) => "closed".into(),
        };
        ChannelError::Closed { addr, reason }
    }
}

impl tower_service::Service<Request<tonic::body::Body>> for GrpcChannel {
    type Response = Response<Incoming>;
    type Error = ChannelError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        match self.sender.poll_ready(cx) {
            // Only a closed connection is not ready for good; `call` says why it closed.
            Poll::Ready(Err(_)) => Poll::Ready(Ok(())),
            other => other.map_err(|source| ChannelError::Http {
                addr: self.addr.clone(),
                source,
            }),
        }
    }

    fn call(&mut self, req: Request<tonic::body::Body>) -> Self::Future {
        let (addr, ended) = (self.addr.clone(), self.ended.clone());
        if self.sender.is_closed() {
            return Box::pin(async move { Err(Self::closed(addr, ended).await) });
        }
        let mut sender = self.sender.clone();
        Box::pin(async move {
            match sender.send_request(req).await {
                Ok(resp) => Ok(resp),
                Err(_) if sender.is_closed() => Err(Self::closed(addr, ended).await),
                // The connection may be ending for a reason its task has yet to read (a
                // TLS 1.3 server refuses a client certificate only after the client's
                // first request is written): give that reason a moment to arrive.
                Err(source) => {
                    match tokio::time::timeout(CLOSE_REASON_WAIT, Self::closed(addr.clone(), ended))
                        .await
                    {
                        Ok(closed) => Err(closed),
                        Err(_) => Err(ChannelError::Http { addr, source }),
                    }
                }
            }
        })
    }
}

/// Serves `service` over HTTP/2 on `io`, where the daemon is the client, until the daemon
/// closes the connection.
pub(crate) async fn serve_h2<T, S>(io: T, service: S) -> Result<(), hyper::Error>
where
    T: hyper::rt::Read + hyper::rt::Write + Send + Unpin + 'static,
    S: tower_service::Service<
            Request<Incoming>,
            Response = Response<tonic::body::Body>,
            Error = std::convert::Infallible,
        > + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    hyper::server::conn::http2::Builder::new(TokioExecutor::new())
        .initial_stream_window_size(4 << 20)
        .initial_connection_window_size(8 << 20)
        .serve_connection(io, hyper_util::service::TowerToHyperService::new(service))
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_errors_show_their_message() {
        assert_eq!(
            docker_error_message(br#"{"message":"session not supported"}"#),
            "session not supported"
        );
        assert_eq!(docker_error_message(b"page not found\n"), "page not found");
    }
}
