//! `--ssh ID=KEYFILE[,KEYFILE...]`: as buildx does, bud holds the keys in an agent of its
//! own, on a socket in a private directory for the length of the build, and forwards that
//! socket like any other agent's.

mod protocol;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::UnixListener;
use tokio::task::JoinHandle;

use protocol::Identity;

#[derive(Debug, thiserror::Error)]
pub(super) enum KeyAgentError {
    #[error("reading {}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: not an OpenSSH private key", path.display())]
    Parse {
        path: PathBuf,
        source: ssh_key::Error,
    },
    #[error("{}: the key is encrypted; load it into an ssh-agent and pass its socket instead", path.display())]
    Encrypted { path: PathBuf },
    #[error("starting the agent for the keys")]
    Socket(#[source] std::io::Error),
}

/// An agent serving keys read from files, until dropped.
pub(super) struct KeyAgent {
    socket: PathBuf,
    task: JoinHandle<()>,
    // Removed with the agent: the socket is never left behind.
    _dir: tempfile::TempDir,
}

impl KeyAgent {
    /// Reads the keys and starts serving them; must run inside a Tokio runtime.
    pub(super) fn start(key_files: &[PathBuf]) -> Result<Self, KeyAgentError> {
        let identities = key_files
            .iter()
            .map(|path| read_key(path))
            .collect::<Result<Vec<_>, _>>()?;
        let dir = tempfile::Builder::new()
            .prefix("bud-ssh-")
            .tempdir()
            .map_err(KeyAgentError::Socket)?;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700))
            .map_err(KeyAgentError::Socket)?;
        let socket = dir.path().join("agent.sock");
        let listener = UnixListener::bind(&socket).map_err(KeyAgentError::Socket)?;
        let identities = Arc::new(identities);
        let task = tokio::spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                tokio::spawn(serve(conn, identities.clone()));
            }
        });
        Ok(Self {
            socket,
            task,
            _dir: dir,
        })
    }

    pub(super) fn socket(&self) -> &Path {
        &self.socket
    }
}

impl Drop for KeyAgent {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn read_key(path: &Path) -> Result<Identity, KeyAgentError> {
    let pem = std::fs::read(path).map_err(|source| KeyAgentError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let parse = |source| KeyAgentError::Parse {
        path: path.to_path_buf(),
        source,
    };
    let key = ssh_key::PrivateKey::from_openssh(&pem).map_err(parse)?;
    if key.is_encrypted() {
        return Err(KeyAgentError::Encrypted {
            path: path.to_path_buf(),
        });
    }
    Identity::new(key).map_err(parse)
}

/// Answers one client's messages until it hangs up or sends one the agent will not read.
async fn serve(mut conn: impl AsyncRead + AsyncWrite + Unpin, identities: Arc<Vec<Identity>>) {
    loop {
        let mut len = [0u8; 4];
        if conn.read_exact(&mut len).await.is_err() {
            return;
        }
        let len = usize::try_from(u32::from_be_bytes(len)).unwrap_or(usize::MAX);
        if len > protocol::MAX_MESSAGE {
            return;
        }
        let mut request = vec![0u8; len];
        if conn.read_exact(&mut request).await.is_err() {
            return;
        }
        let reply = protocol::respond(&identities, &request);
        let framed = protocol::framed(&reply);
        if conn.write_all(&framed).await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ssh_key::rand_core::OsRng;
    use ssh_key::{Algorithm, LineEnding, PrivateKey};
    use tokio::io::duplex;

    fn identities() -> Arc<Vec<Identity>> {
        let key = PrivateKey::random(&mut OsRng, Algorithm::Ed25519).unwrap();
        Arc::new(vec![Identity::new(key).unwrap()])
    }

    async fn read_reply(conn: &mut (impl AsyncRead + Unpin)) -> Vec<u8> {
        let mut len = [0u8; 4];
        conn.read_exact(&mut len).await.unwrap();
        let mut reply = vec![0u8; u32::from_be_bytes(len) as usize];
        conn.read_exact(&mut reply).await.unwrap();
        reply
    }

    #[tokio::test]
    async fn answers_each_message_on_a_connection_in_turn() {
        let (mut client, server) = duplex(4096);
        let served = tokio::spawn(serve(server, identities()));
        for _ in 0..2 {
            client
                .write_all(&[0, 0, 0, 1, protocol::REQUEST_IDENTITIES])
                .await
                .unwrap();
            let reply = read_reply(&mut client).await;
            assert_eq!(reply[..5], [protocol::IDENTITIES_ANSWER, 0, 0, 0, 1]);
        }
        client.write_all(&[0, 0, 0, 1, 99]).await.unwrap();
        assert_eq!(read_reply(&mut client).await, [protocol::FAILURE]);
        drop(client);
        served.await.unwrap();
    }

    #[tokio::test]
    async fn closes_on_oversized_or_truncated_messages() {
        let (mut client, server) = duplex(4096);
        let served = tokio::spawn(serve(server, identities()));
        client.write_all(&u32::MAX.to_be_bytes()).await.unwrap();
        served.await.unwrap();
        let mut rest = Vec::new();
        client.read_to_end(&mut rest).await.unwrap();
        assert!(rest.is_empty());

        let (mut client, server) = duplex(4096);
        let served = tokio::spawn(serve(server, identities()));
        client
            .write_all(&[0, 0, 0, 9, protocol::SIGN_REQUEST])
            .await
            .unwrap();
        client.shutdown().await.unwrap();
        served.await.unwrap();
    }

    #[tokio::test]
    async fn serves_key_files_on_a_private_socket_and_names_bad_files() {
        let dir = tempfile::tempdir().unwrap();
        let key = PrivateKey::random(&mut OsRng, Algorithm::Ed25519).unwrap();
        let good = dir.path().join("id_ed25519");
        std::fs::write(&good, key.to_openssh(LineEnding::LF).unwrap()).unwrap();

        let agent = KeyAgent::start(std::slice::from_ref(&good)).unwrap();
        let private = agent.socket().parent().unwrap().to_path_buf();
        let mode = std::fs::metadata(&private).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        let mut conn = tokio::net::UnixStream::connect(agent.socket())
            .await
            .unwrap();
        conn.write_all(&[0, 0, 0, 1, protocol::REQUEST_IDENTITIES])
            .await
            .unwrap();
        let reply = read_reply(&mut conn).await;
        let blob = key.public_key().to_bytes().unwrap();
        assert_eq!(reply[..5], [protocol::IDENTITIES_ANSWER, 0, 0, 0, 1]);
        assert_eq!(&reply[9..9 + blob.len()], &blob[..]);
        drop(agent);
        assert!(
            !private.exists(),
            "the socket's directory is removed with the agent"
        );

        let missing = dir.path().join("missing");
        let err = KeyAgent::start(&[good.clone(), missing.clone()])
            .err()
            .unwrap();
        assert!(
            err.to_string().contains(&missing.display().to_string()),
            "{err}"
        );

        let garbage = dir.path().join("garbage");
        std::fs::write(&garbage, "not a key").unwrap();
        let err = KeyAgent::start(std::slice::from_ref(&garbage))
            .err()
            .unwrap();
        assert!(
            err.to_string().contains(&garbage.display().to_string()),
            "{err}"
        );
    }
}
