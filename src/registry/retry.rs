//! Retries of blob transfers, as dockerd retries layer downloads and uploads
//! (`distribution/xfer`): five attempts, waiting 5, 10, 15 then 20 seconds between them, and
//! only after a failure that another attempt may not meet (the network, a timeout, a
//! registry's 5xx or 429). Manifests and authentication are not retried, as in Docker.
//! A cancelled build drops the future, so a wait between attempts never holds it up.

use std::future::Future;
use std::time::Duration;

use oci_client::errors::OciDistributionError;

use super::RegistryError;

const ATTEMPTS: u32 = 5;
const DELAY_STEP: Duration = Duration::from_secs(5);

/// Runs `attempt` until it succeeds, fails for good, or has been tried [`ATTEMPTS`] times.
pub(crate) async fn transfer<T, F, Fut>(what: &str, mut attempt: F) -> Result<T, RegistryError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, RegistryError>>,
{
    let mut failures = 0;
    loop {
        match attempt().await {
            Ok(done) => return Ok(done),
            Err(e) if failures + 1 < ATTEMPTS && is_transient(&e) => {
                failures += 1;
                let delay = DELAY_STEP * failures;
                tracing::warn!(
                    "{what}: {e}; retrying in {}s",
                    delay.as_secs(),
                    e = crate::error_chain::error_chain(&e)
                );
                tokio::time::sleep(delay).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Whether another attempt may succeed where this one failed.
fn is_transient(e: &RegistryError) -> bool {
    match e {
        RegistryError::TimedOut { .. } | RegistryError::DownloadFailed { .. } => true,
        RegistryError::Distribution { source, .. } => match source.as_ref() {
            OciDistributionError::RequestError(e) => e
                .status()
                .is_none_or(|s| s.is_server_error() || s.as_u16() == 429),
            OciDistributionError::ServerError { code, .. } => *code >= 500 || *code == 429,
            OciDistributionError::IoError(_) => true,
            _ => false,
        },
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::timeouts::Expired;

    fn server_error(code: u16) -> RegistryError {
        RegistryError::Distribution {
            action: "pulling a blob of",
            reference: "r".into(),
            source: Box::new(OciDistributionError::ServerError {
                code,
                url: "u".into(),
                message: "m".into(),
            }),
        }
    }

    #[test]
    fn what_is_retried() {
        let timed_out = RegistryError::TimedOut {
            action: "pushing a blob of",
            reference: "r".into(),
            registry: "h".into(),
            expired: Expired::Stalled(Duration::from_secs(1)),
        };
        assert!(is_transient(&timed_out));
        assert!(is_transient(&server_error(503)));
        assert!(is_transient(&server_error(429)));
        assert!(!is_transient(&server_error(400)));
        assert!(!is_transient(&RegistryError::NotFound {
            reference: "r".into()
        }));
        assert!(!is_transient(&RegistryError::Unauthorized {
            registry: "h".into(),
            status: 401,
            action: "pull from",
        }));
    }

    #[tokio::test(start_paused = true)]
    async fn transient_failures_are_retried_with_growing_delays_then_given_up() {
        let started = tokio::time::Instant::now();
        let mut calls = 0;
        let result: Result<(), _> = transfer("blob", || {
            calls += 1;
            async { Err(server_error(502)) }
        })
        .await;
        assert!(result.is_err());
        assert_eq!(calls, ATTEMPTS);
        // 5 + 10 + 15 + 20 seconds of waiting, on the paused clock.
        assert_eq!(started.elapsed(), Duration::from_secs(50));

        let mut calls = 0;
        let result: Result<(), _> = transfer("blob", || {
            calls += 1;
            async { Err(server_error(404)) }
        })
        .await;
        assert!(result.is_err());
        assert_eq!(calls, 1, "a permanent failure is not retried");

        let mut calls = 0;
        let result = transfer("blob", || {
            calls += 1;
            let outcome = if calls < 3 {
                Err(server_error(500))
            } else {
                Ok(calls)
            };
            async move { outcome }
        })
        .await;
        assert_eq!(result.unwrap(), 3);
    }
}
