//! SIGINT, SIGTERM and SIGHUP, watched on a thread of their own with its own runtime, so that
//! they are seen even when the build's threads are all busy.
//!
//! The first signal cancels the build, which stops its steps (their containers killed and
//! deleted), its transfers and its export, and returns. A second signal, or a build that has
//! not returned within [`GRACE`], ends the process at once, after removing the
//! containers still running. Either way bud exits with 1, as `docker build` does when
//! interrupted (SIGHUP, which the docker CLI does not handle, is treated as SIGTERM).

use std::time::Duration;

use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio_util::sync::CancellationToken;

/// How long a cancelled build has to return before the process exits anyway.
pub const GRACE: Duration = Duration::from_secs(5);

/// Starts watching; `exit_code` is what the process exits with when it stops at once.
pub fn watch(cancel: CancellationToken, exit_code: u8) -> std::io::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    // Registered before the build starts, so that no signal from now on is missed.
    let mut signals = runtime.block_on(async {
        Ok::<_, std::io::Error>([
            (signal(SignalKind::interrupt())?, "interrupted"),
            (signal(SignalKind::terminate())?, "terminated"),
            (signal(SignalKind::hangup())?, "hung up"),
        ])
    })?;
    std::thread::Builder::new()
        .name("bud-signals".into())
        .spawn(move || {
            runtime.block_on(async move {
                let first = next(&mut signals).await;
                crate::report!("{first}: stopping the build");
                cancel.cancel();
                tokio::select! {
                    again = next(&mut signals) => {
                        crate::report!("{again} again: stopping now");
                    }
                    () = tokio::time::sleep(GRACE) => {
                        crate::report!(
                            "the build did not stop within {}s: stopping now",
                            GRACE.as_secs()
                        );
                    }
                }
                crate::executor::remove_live_containers();
                std::process::exit(exit_code.into());
            })
        })?;
    Ok(())
}

/// What the next of the watched signals did, in words.
async fn next(signals: &mut [(Signal, &'static str); 3]) -> &'static str {
    let [(int, a), (term, b), (hup, c)] = signals;
    tokio::select! {
        _ = int.recv() => *a,
        _ = term.recv() => *b,
        _ = hup.recv() => *c,
    }
}
