//! moby.sshforward.v1.SSH: `--ssh` agents, forwarded into `RUN --mount=type=ssh`.
//!
//! The daemon listens on a socket inside the step; each connection a process makes there
//! becomes one ForwardAgent stream, with the agent's ID in the `buildkit.ssh.id` metadata.
//! bud opens the agent's socket for it and relays the agent protocol's bytes both ways.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;

use bud_proto::sshforward::ssh_server::Ssh;
use bud_proto::sshforward::{BytesMessage, CheckAgentRequest, CheckAgentResponse};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};

/// The ID a mount without `id=` asks for.
const DEFAULT_ID: &str = "default";
/// The metadata key naming the agent a ForwardAgent stream is for.
const ID_KEY: &str = "buildkit.ssh.id";
const BUFFER: usize = 32 * 1024;

#[derive(Clone, Default)]
pub(crate) struct SshService {
    /// Agent sockets by ID.
    agents: Arc<BTreeMap<String, PathBuf>>,
}

impl SshService {
    pub(crate) fn new(agents: BTreeMap<String, PathBuf>) -> Self {
        Self {
            agents: Arc::new(agents),
        }
    }

    fn agent(&self, id: &str) -> Result<&PathBuf, Status> {
        let id = if id.is_empty() { DEFAULT_ID } else { id };
        // NotFound tells the daemon the ID was not forwarded: an optional mount is skipped.
        self.agents
            .get(id)
            .ok_or_else(|| Status::not_found(format!("no --ssh {id} was given")))
    }
}

type BytesStream = Pin<Box<dyn Stream<Item = Result<BytesMessage, Status>> + Send>>;

#[tonic::async_trait]
impl Ssh for SshService {
    async fn check_agent(
        &self,
        request: Request<CheckAgentRequest>,
    ) -> Result<Response<CheckAgentResponse>, Status> {
        self.agent(&request.into_inner().id)?;
        Ok(Response::new(CheckAgentResponse {}))
    }

    type ForwardAgentStream = BytesStream;

    async fn forward_agent(
        &self,
        request: Request<Streaming<BytesMessage>>,
    ) -> Result<Response<BytesStream>, Status> {
        let id = request
            .metadata()
            .get(ID_KEY)
            .and_then(|v| v.to_str().ok())
            .unwrap_or(DEFAULT_ID)
            .to_string();
        let path = self.agent(&id)?;
        let socket = UnixStream::connect(path).await.map_err(|e| {
            Status::unavailable(format!("--ssh {id}: connecting to {}: {e}", path.display()))
        })?;
        let (mut from_agent, mut to_agent) = socket.into_split();

        let mut inbound = request.into_inner();
        tokio::spawn(async move {
            while let Some(Ok(msg)) = inbound.next().await {
                if to_agent.write_all(&msg.data).await.is_err() {
                    return;
                }
            }
            // The client in the step closed its side: let the agent see the end too.
            let _ = to_agent.shutdown().await;
        });

        let outbound = async_stream(move |tx| async move {
            let mut buf = vec![0u8; BUFFER];
            loop {
                match from_agent.read(&mut buf).await {
                    Ok(0) => return,
                    Ok(n) => {
                        let msg = BytesMessage {
                            data: buf[..n].to_vec(),
                        };
                        if tx.send(Ok(msg)).await.is_err() {
                            return;
                        }
                    }
                    Err(e) => {
                        let _ = tx
                            .send(Err(Status::unavailable(format!("ssh agent: {e}"))))
                            .await;
                        return;
                    }
                }
            }
        });
        Ok(Response::new(outbound))
    }
}

/// A stream fed by `produce`, run as its own task so the response can start at once.
fn async_stream<F, Fut>(produce: F) -> BytesStream
where
    F: FnOnce(tokio::sync::mpsc::Sender<Result<BytesMessage, Status>>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(8);
    tokio::spawn(produce(tx));
    Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn only_given_ids_are_offered() {
        let service = SshService::new(BTreeMap::from([(
            "default".to_string(),
            PathBuf::from("/agent.sock"),
        )]));
        let check =
            |id: &str| service.check_agent(Request::new(CheckAgentRequest { id: id.into() }));
        assert!(check("default").await.is_ok());
        assert!(check("").await.is_ok(), "an empty ID is the default agent");
        let err = check("deploy").await.unwrap_err();
        assert_eq!(err.code(), tonic::Code::NotFound);
        assert!(err.message().contains("--ssh deploy"), "{}", err.message());
    }
}
