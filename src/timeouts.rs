//! Bounds on every network exchange with a registry or an `ADD` URL, so that a server that
//! accepts a connection and then says nothing fails the build instead of hanging it.
//!
//! Three bounds, as Go's HTTP transport has them in docker, containerd and BuildKit:
//! - `connect`: TCP connect and TLS handshake. 30 s, the dialer timeout of all three.
//! - `response`: from a request sent to the first byte of its answer (Go's
//!   `ResponseHeaderTimeout`). Docker and BuildKit set none and hang on a silent registry;
//!   60 s is generous for a registry finishing an upload.
//! - `idle`: a transfer under way during which no byte moves, either way. containerd's CRI
//!   cancels a pull without progress for 5 minutes (`image_pull_progress_timeout`); bud
//!   retries a stalled layer transfer (`registry::retry`), so it gives up on one attempt
//!   sooner, after 60 s.
//!
//! All three can be set in `bud.toml` (`[network]`).

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::Instant;

use futures_util::Stream;

/// The three bounds of a network exchange (see the module's documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// TCP connect and TLS handshake.
    pub connect: Duration,
    /// From a request sent to the first byte of its answer.
    pub response: Duration,
    /// A transfer under way with no byte moving either way.
    pub idle: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_secs(30),
            response: Duration::from_secs(60),
            idle: Duration::from_secs(60),
        }
    }
}

/// Which bound ran out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expired {
    /// No answer came within `response`.
    NoAnswer(Duration),
    /// A transfer moved no byte for `idle`.
    Stalled(Duration),
}

impl std::fmt::Display for Expired {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Expired::NoAnswer(d) => write!(f, "timed out: no answer within {}", seconds(*d)),
            Expired::Stalled(d) => {
                write!(
                    f,
                    "timed out: the transfer stalled (no data for {})",
                    seconds(*d)
                )
            }
        }
    }
}

fn seconds(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}

impl Timeouts {
    /// Bounds an exchange whose request and answer are small (a manifest, a HEAD, a token):
    /// the whole of it must end within `response`.
    pub async fn answer<T>(&self, exchange: impl Future<Output = T>) -> Result<T, Expired> {
        tokio::time::timeout(self.response, exchange)
            .await
            .map_err(|_| Expired::NoAnswer(self.response))
    }

    /// Bounds the wait for the next piece of a download.
    pub async fn next_piece<T>(&self, piece: impl Future<Output = T>) -> Result<T, Expired> {
        tokio::time::timeout(self.idle, piece)
            .await
            .map_err(|_| Expired::Stalled(self.idle))
    }
}

/// Watches an upload whose body is a stream bud gives to the HTTP client: the body is
/// wrapped with [`Upload::body`], and the upload's future run with [`Upload::run`], which
/// fails once the body has not been read for `idle` while it is being sent, or once no
/// answer came within `response` before it was first read or after it was all read.
#[derive(Clone)]
pub struct Upload {
    timeouts: Timeouts,
    state: Arc<Mutex<UploadState>>,
}

#[derive(Clone, Copy)]
struct UploadState {
    phase: Phase,
    since: Instant,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// The request is being opened: nothing read yet.
    Opening,
    Sending,
    /// All of the body was read: the answer is awaited.
    Sent,
}

impl Upload {
    /// The watch of one upload, bounded by `timeouts`.
    pub fn new(timeouts: Timeouts) -> Upload {
        Upload {
            timeouts,
            state: Arc::new(Mutex::new(UploadState {
                phase: Phase::Opening,
                since: Instant::now(),
            })),
        }
    }

    fn mark(&self, phase: Phase) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        *state = UploadState {
            phase,
            since: Instant::now(),
        };
    }

    /// `body`, with every piece read and its end noted for the watch.
    pub fn body<S: Stream + Unpin>(&self, body: S) -> WatchedBody<S> {
        WatchedBody {
            inner: body,
            upload: self.clone(),
        }
    }

    /// Runs `upload`, failing it when the body or the answer stalls.
    pub async fn run<T>(&self, upload: impl Future<Output = T>) -> Result<T, Expired> {
        let watch = async {
            loop {
                let UploadState { phase, since } =
                    *self.state.lock().unwrap_or_else(PoisonError::into_inner);
                let (limit, expired) = match phase {
                    Phase::Sending => (self.timeouts.idle, Expired::Stalled(self.timeouts.idle)),
                    Phase::Opening | Phase::Sent => (
                        self.timeouts.response,
                        Expired::NoAnswer(self.timeouts.response),
                    ),
                };
                let deadline = since + limit;
                if Instant::now() >= deadline {
                    return expired;
                }
                // Woken at the deadline of the state seen; a later piece moved it on.
                tokio::time::sleep_until(deadline).await;
            }
        };
        tokio::select! {
            done = upload => Ok(done),
            expired = watch => Err(expired),
        }
    }
}

/// An upload's body under an [`Upload`]'s watch.
pub struct WatchedBody<S> {
    inner: S,
    upload: Upload,
}

impl<S: Stream + Unpin> Stream for WatchedBody<S> {
    type Item = S::Item;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<S::Item>> {
        let polled = Pin::new(&mut self.inner).poll_next(cx);
        match &polled {
            Poll::Ready(Some(_)) => self.upload.mark(Phase::Sending),
            Poll::Ready(None) => self.upload.mark(Phase::Sent),
            Poll::Pending => {}
        }
        polled
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;

    fn short() -> Timeouts {
        Timeouts {
            connect: Duration::from_secs(1),
            response: Duration::from_millis(200),
            idle: Duration::from_millis(300),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_answer_expires() {
        let never = std::future::pending::<()>();
        assert_eq!(
            short().answer(never).await,
            Err(Expired::NoAnswer(Duration::from_millis(200)))
        );
        assert_eq!(short().answer(async { 7 }).await, Ok(7));
    }

    #[tokio::test(start_paused = true)]
    async fn an_upload_that_keeps_sending_lives_past_both_bounds() {
        let upload = Upload::new(short());
        let body = upload.body(
            futures_util::stream::iter(0..20)
                .then(|i| async move {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    i
                })
                .boxed(),
        );
        let sent = upload.run(body.collect::<Vec<_>>()).await;
        assert_eq!(sent.map(|v| v.len()), Ok(20));
    }

    #[tokio::test(start_paused = true)]
    async fn a_stalled_body_expires_as_stalled() {
        let upload = Upload::new(short());
        let body = upload.body(
            futures_util::stream::iter([1])
                .chain(futures_util::stream::pending())
                .boxed(),
        );
        let sent = upload.run(body.collect::<Vec<_>>()).await;
        assert_eq!(sent, Err(Expired::Stalled(Duration::from_millis(300))));
    }

    #[tokio::test(start_paused = true)]
    async fn a_missing_answer_after_the_body_expires() {
        let upload = Upload::new(short());
        let mut body = upload.body(futures_util::stream::iter([1, 2]));
        let exchange = async move {
            while body.next().await.is_some() {}
            std::future::pending::<()>().await
        };
        assert_eq!(
            upload.run(exchange).await,
            Err(Expired::NoAnswer(Duration::from_millis(200)))
        );
    }
}
