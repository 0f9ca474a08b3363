//! `docker-container://NAME`: a buildkitd running in a Docker container, reached the way
//! buildx's docker-container driver reaches it. A Docker exec runs `buildctl dial-stdio` in
//! the container, which connects to the daemon's socket there and relays it over its
//! stdin and stdout; the exec's attached streams are then bud's connection to the daemon.
//!
//! The Docker API is the one `DOCKER_HOST` names (a `unix://` socket), or the default socket.

use std::pin::Pin;
use std::task::{Context, Poll};

use bollard::Docker;
use bollard::container::LogOutput;
use bollard::errors::Error as DockerError;
use bollard::exec::{CreateExecOptions, StartExecOptions, StartExecResults};
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use futures_util::future::BoxFuture;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{mpsc, oneshot};
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::io::StreamReader;

use super::RemoteError;

/// The command buildx runs in the container (BuildKit v0.5 and later ship it).
const DIAL_STDIO: [&str; 2] = ["buildctl", "dial-stdio"];

/// How much of buildctl's output is kept for an error message.
const KEPT_OUTPUT: usize = 4096;

/// The HTTP/2 frame type of SETTINGS, the frame every HTTP/2 server sends first.
const H2_SETTINGS: u8 = 0x4;

/// Resolves once the daemon has answered through the exec, or fails with why it could not
/// (buildctl missing, the daemon not listening): an exec that fails to start still
/// connects, and says so only in what it prints.
pub(crate) type Started = BoxFuture<'static, Result<(), RemoteError>>;

/// Runs `buildctl dial-stdio` in container `name` and returns the connection it relays,
/// and the [`Started`] to await once the HTTP/2 client preface is on its way.
pub(crate) async fn dial(name: &str, addr: &str) -> Result<(ExecStream, Started), RemoteError> {
    let fail = |reason: String| RemoteError::Container {
        addr: addr.to_string(),
        reason,
    };
    let check = |source| RemoteError::ContainerCheck {
        addr: addr.to_string(),
        source: Box::new(source),
    };
    let host = |source| RemoteError::ContainerHost {
        addr: addr.to_string(),
        source: Box::new(source),
    };
    let endpoint = crate::docker_host::endpoint().map_err(host)?;
    let docker = crate::docker_host::connect(&endpoint).map_err(host)?;
    check_running(&docker, name, &endpoint.origin)
        .await
        .map_err(check)?;

    let exec = docker
        .create_exec(
            name,
            CreateExecOptions {
                cmd: Some(DIAL_STDIO.to_vec()),
                attach_stdin: Some(true),
                attach_stdout: Some(true),
                attach_stderr: Some(true),
                // A tty would mangle the bytes and merge stderr into them.
                tty: Some(false),
                ..Default::default()
            },
        )
        .await
        .map_err(|e| check(container_error(name, &endpoint.origin, e)))?;
    let started = docker
        .start_exec(
            &exec.id,
            Some(StartExecOptions {
                detach: false,
                tty: false,
                output_capacity: None,
            }),
        )
        .await
        .map_err(|e| check(ContainerError::Start(e)))?;
    let StartExecResults::Attached { output, input } = started else {
        return Err(fail("Docker started the exec detached".into()));
    };

    let (data_tx, data_rx) = mpsc::channel(16);
    let (started_tx, started_rx) = oneshot::channel();
    let pump = Pump {
        docker,
        exec_id: exec.id,
        addr: addr.to_string(),
        data: data_tx,
        started: Some(started_tx),
        stderr: Kept::default(),
    };
    let task = tokio::spawn(pump.run(output));
    let stream = ExecStream {
        output: StreamReader::new(ReceiverStream::new(data_rx)),
        input,
        pump: task,
    };
    let addr = addr.to_string();
    let started = Box::pin(async move {
        match started_rx.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(reason)) => Err(RemoteError::Container { addr, reason }),
            Err(_) => Err(RemoteError::Container {
                addr,
                reason: "the exec ended before the daemon answered".into(),
            }),
        }
    });
    Ok((stream, started))
}

/// Fails unless container `name` exists and is running: an exec in any other state fails
/// with a less helpful message.
async fn check_running(docker: &Docker, name: &str, origin: &str) -> Result<(), ContainerError> {
    let info = docker
        .inspect_container(name, None)
        .await
        .map_err(|e| container_error(name, origin, e))?;
    let state = info.state.unwrap_or_default();
    if state.running == Some(true) && state.paused != Some(true) {
        return Ok(());
    }
    let status = state
        .status
        .map_or_else(|| "unknown".to_string(), |s| s.to_string());
    Err(ContainerError::NotRunning {
        state: format!("it is {status}"),
        name: name.to_owned(),
    })
}

/// Why the BuildKit container cannot be dialled through Docker.
#[derive(Debug, thiserror::Error)]
pub enum ContainerError {
    /// Docker has no container of that name.
    #[error("no such container")]
    Missing,
    /// The container exists but is stopped or paused.
    #[error("the container is not running ({state}); start it with `docker start {name}`")]
    NotRunning {
        /// Its state, or Docker's words about it.
        state: String,
        /// The container.
        name: String,
    },
    /// Docker's own message (its answer is text).
    #[error("{0}")]
    Refused(String),
    /// Docker could not be asked.
    #[error("cannot reach Docker at {origin}")]
    Unreachable {
        /// Which Docker: `DOCKER_HOST=…`, a context, the default socket.
        origin: String,
        /// The request's failure.
        #[source]
        source: DockerError,
    },
    /// Docker did not start `buildctl dial-stdio` in the container.
    #[error("starting `buildctl dial-stdio`")]
    Start(#[source] DockerError),
}

/// Docker's answer about container `name`, worded for the common cases; `origin` says which
/// Docker was asked.
fn container_error(name: &str, origin: &str, e: DockerError) -> ContainerError {
    match e {
        DockerError::DockerResponseServerError {
            status_code: 404, ..
        } => ContainerError::Missing,
        DockerError::DockerResponseServerError {
            status_code: 409,
            message,
        } => ContainerError::NotRunning {
            state: message,
            name: name.to_owned(),
        },
        DockerError::DockerResponseServerError { message, .. } => ContainerError::Refused(message),
        source => ContainerError::Unreachable {
            origin: origin.to_owned(),
            source,
        },
    }
}

/// The exec's attached streams as one byte stream: reads come from buildctl's stdout
/// (demultiplexed from stderr by [`Pump`]), writes go to its stdin.
pub(crate) struct ExecStream {
    output: StreamReader<ReceiverStream<std::io::Result<Bytes>>, Bytes>,
    input: Pin<Box<dyn AsyncWrite + Send>>,
    pump: tokio::task::JoinHandle<()>,
}

impl Drop for ExecStream {
    fn drop(&mut self) {
        // The pump owns the read half of Docker's connection: ending it closes the
        // connection, so Docker closes buildctl's stdin and buildctl exits.
        self.pump.abort();
    }
}

impl AsyncRead for ExecStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.output).poll_read(cx, buf)
    }
}

impl AsyncWrite for ExecStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.input.as_mut().poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.input.as_mut().poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.input.as_mut().poll_shutdown(cx)
    }
}

/// The tail of what buildctl printed, for error messages.
#[derive(Default)]
struct Kept(BytesMut);

impl Kept {
    fn push(&mut self, bytes: &[u8]) {
        let room = KEPT_OUTPUT.saturating_sub(self.0.len());
        self.0.extend_from_slice(&bytes[..bytes.len().min(room)]);
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0).trim().to_string()
    }
}

/// What buildctl's stdout has shown so far.
enum Stdout {
    /// Nothing conclusive yet: the first bytes are held back until they show whether they
    /// are the daemon's HTTP/2 SETTINGS frame or Docker's words on why the exec failed.
    Head(BytesMut),
    /// The daemon answered: everything goes to the reader.
    Daemon,
    /// Something else answered; what it printed, for the error.
    NotDaemon(Kept),
}

/// Moves the exec's output to [`ExecStream`]'s reader and logs buildctl's stderr.
struct Pump {
    docker: Docker,
    exec_id: String,
    addr: String,
    data: mpsc::Sender<std::io::Result<Bytes>>,
    /// Said once: whether the first bytes on stdout are the daemon's.
    started: Option<oneshot::Sender<Result<(), String>>>,
    stderr: Kept,
}

impl Pump {
    async fn run<S>(mut self, mut output: S)
    where
        S: futures_util::Stream<Item = Result<LogOutput, DockerError>> + Unpin,
    {
        let mut stdout = Stdout::Head(BytesMut::new());
        while let Some(item) = output.next().await {
            let bytes = match item {
                Ok(LogOutput::StdOut { message } | LogOutput::Console { message }) => message,
                Ok(LogOutput::StdErr { message }) => {
                    let text = String::from_utf8_lossy(&message);
                    for line in text.lines().filter(|l| !l.trim().is_empty()) {
                        tracing::debug!("{} buildctl: {line}", self.addr);
                    }
                    self.stderr.push(&message);
                    continue;
                }
                Ok(LogOutput::StdIn { .. }) => continue,
                Err(e) => {
                    let reason = format!("reading from the exec: {e}");
                    self.say_started(Err(reason.clone()));
                    let _ = self.data.send(Err(std::io::Error::other(reason))).await;
                    return;
                }
            };
            match &mut stdout {
                Stdout::Daemon => {
                    if self.data.send(Ok(bytes)).await.is_err() {
                        return;
                    }
                }
                // Kept for the error once the exec ends, which it does after such words.
                Stdout::NotDaemon(text) => text.push(&bytes),
                Stdout::Head(head) => {
                    head.extend_from_slice(&bytes);
                    // The type of an HTTP/2 frame is the fourth byte of its header.
                    if head.len() < 4 {
                        continue;
                    }
                    if head[3] != H2_SETTINGS {
                        let mut text = Kept::default();
                        text.push(head);
                        stdout = Stdout::NotDaemon(text);
                        continue;
                    }
                    let head = head.split().freeze();
                    stdout = Stdout::Daemon;
                    self.say_started(Ok(()));
                    if self.data.send(Ok(head)).await.is_err() {
                        return;
                    }
                }
            }
        }
        let text = match stdout {
            Stdout::Head(head) => {
                let mut text = Kept::default();
                text.push(&head);
                text
            }
            Stdout::Daemon => Kept::default(),
            Stdout::NotDaemon(text) => text,
        };
        self.finish(text).await;
    }

    /// The exec ended: a clean end of stream if buildctl exited quietly after the daemon
    /// answered, an error saying why otherwise.
    async fn finish(mut self, stdout_text: Kept) {
        let exit_code = match self.docker.inspect_exec(&self.exec_id).await {
            Ok(info) if info.running != Some(true) => info.exit_code,
            _ => None,
        };
        let printed = [stdout_text.text(), self.stderr.text()]
            .into_iter()
            .filter(|t| !t.is_empty())
            .collect::<Vec<_>>()
            .join("; ");
        let answered = self.started.is_none();
        if answered && exit_code.unwrap_or(0) == 0 && printed.is_empty() {
            return;
        }
        let reason = failure_reason(exit_code, &printed, answered);
        self.say_started(Err(reason.clone()));
        let _ = self.data.send(Err(std::io::Error::other(reason))).await;
    }

    fn say_started(&mut self, verdict: Result<(), String>) {
        if let Some(tx) = self.started.take() {
            let _ = tx.send(verdict);
        }
    }
}

/// Why `buildctl dial-stdio` did not, or no longer, relay the daemon.
fn failure_reason(exit_code: Option<i64>, printed: &str, answered: bool) -> String {
    let command = DIAL_STDIO.join(" ");
    // Docker's words and exit codes for a command it could not start; buildctl's own
    // errors (a daemon socket that is not there) mention missing files too.
    let not_found =
        matches!(exit_code, Some(126 | 127)) || printed.contains("executable file not found");
    if !answered && not_found {
        let detail = if printed.is_empty() {
            String::new()
        } else {
            format!(" ({printed})")
        };
        return format!(
            "buildctl is not installed in the container{detail}; the container must run BuildKit v0.5 or later"
        );
    }
    let ended = match exit_code {
        Some(code) => format!("`{command}` in the container exited with code {code}"),
        None => format!("`{command}` in the container ended"),
    };
    let when = if answered {
        ""
    } else {
        " before the daemon answered"
    };
    if printed.is_empty() {
        format!("{ended}{when}")
    } else {
        format!("{ended}{when}: {printed}")
    }
}

/// An already-answered [`Started`], for connections that need no check.
pub(crate) fn started() -> Started {
    Box::pin(std::future::ready(Ok(())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_buildctl_is_named() {
        let docker_words = "OCI runtime exec failed: exec failed: unable to start container process: \
                            exec: \"buildctl\": executable file not found in $PATH: unknown";
        let reason = failure_reason(Some(126), docker_words, false);
        assert!(
            reason.starts_with("buildctl is not installed in the container"),
            "{reason}"
        );
        assert!(reason.contains("executable file not found"), "{reason}");
        assert!(failure_reason(Some(127), "", false).contains("not installed"));
    }

    #[test]
    fn other_failures_carry_buildctl_output() {
        let buildctl_words =
            "dial unix:///run/buildkit/buildkitd.sock: connect: no such file or directory";
        let reason = failure_reason(Some(1), buildctl_words, false);
        assert!(!reason.contains("not installed"), "{reason}");
        assert!(reason.ends_with(buildctl_words), "{reason}");
        let reason = failure_reason(Some(1), "connection refused", false);
        assert_eq!(
            reason,
            "`buildctl dial-stdio` in the container exited with code 1 before the daemon answered: connection refused"
        );
        // After the daemon answered, a 127 is buildctl's own, not a missing binary.
        let reason = failure_reason(Some(127), "", true);
        assert_eq!(
            reason,
            "`buildctl dial-stdio` in the container exited with code 127"
        );
    }

    #[test]
    fn kept_output_is_bounded() {
        let mut kept = Kept::default();
        kept.push(&[b'x'; KEPT_OUTPUT]);
        kept.push(b"more");
        assert_eq!(kept.0.len(), KEPT_OUTPUT);
    }
}
