//! Standalone buildkitd has no `/session` endpoint: the session's HTTP/2 connection travels
//! inside a Control.Session stream, as BytesMessages, with the session headers as metadata.

use bud_proto::control::BytesMessage;
use bud_proto::control::control_client::ControlClient;
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio_stream::StreamExt;
use tokio_stream::wrappers::ReceiverStream;

use super::Session;
use crate::remote::RemoteError;
use crate::remote::transport::GrpcChannel;

const BUFFER: usize = 64 * 1024;

/// Starts the tunnel and returns bud's end of it, on which the session is to be served.
/// The tunnel lives as long as the returned stream and the daemon's end do.
pub(crate) fn open_tunnel(
    mut control: ControlClient<GrpcChannel>,
    session: &Session,
) -> Result<DuplexStream, RemoteError> {
    let (ours, theirs) = tokio::io::duplex(BUFFER);
    let (mut from_server, mut to_server) = tokio::io::split(theirs);

    // Bytes bud's HTTP/2 server writes become BytesMessages to the daemon.
    let (tx, rx) = tokio::sync::mpsc::channel::<BytesMessage>(16);
    tokio::spawn(async move {
        let mut buf = vec![0u8; BUFFER];
        loop {
            match from_server.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let msg = BytesMessage {
                        data: buf[..n].to_vec(),
                    };
                    if tx.send(msg).await.is_err() {
                        break;
                    }
                }
            }
        }
    });

    let mut request = tonic::Request::new(ReceiverStream::new(rx));
    for (name, value) in session.headers() {
        let key = tonic::metadata::MetadataKey::from_bytes(name.to_ascii_lowercase().as_bytes())
            .map_err(|e| RemoteError::Protocol(format!("session header {name}: {e}")))?;
        let value = value
            .parse()
            .map_err(|e| RemoteError::Protocol(format!("session header {name}: {e}")))?;
        request.metadata_mut().append(key, value);
    }

    // BytesMessages from the daemon are fed to bud's HTTP/2 server. The call runs in the
    // background: its response headers only come once the daemon starts talking.
    tokio::spawn(async move {
        let mut inbound = match control.session(request).await {
            Ok(resp) => resp.into_inner(),
            Err(status) => {
                tracing::warn!("session tunnel refused: {}", status.message());
                return;
            }
        };
        while let Some(Ok(msg)) = inbound.next().await {
            if to_server.write_all(&msg.data).await.is_err() {
                break;
            }
        }
        let _ = to_server.shutdown().await;
    });
    Ok(ours)
}
