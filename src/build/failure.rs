//! A failed step, reported as buildx reports it: the Dockerfile lines the step's op came
//! from, then the error.

use bud_frontend::llb::locations_of;
use bud_proto::pb;

/// A failed step, reported as docker build and buildx do: the Dockerfile lines of every
/// location the definition gives the failed op (its source map, as BuildKit attaches them
/// to the error), then the error. The step's last output lines are not repeated here: the
/// progress view prints them once the build has ended (`progress::failure_block`).
pub(super) fn step_failure(
    e: crate::solver::StepError,
    definitions: &[&pb::Definition],
) -> anyhow::Error {
    let mut msg = String::new();
    for source in definitions.iter().filter_map(|d| d.source.as_ref()) {
        for (info, ranges) in locations_of(source, &e.vertex) {
            msg.push_str(&crate::progress::source_excerpt_of(info, ranges));
        }
        if !msg.is_empty() {
            break;
        }
    }
    // The step's name holds its whole command, which the process error repeats: name it
    // once, as buildx does.
    let error = crate::error_chain::error_chain(&e.source);
    if matches!(
        e.source.root(),
        crate::solver::SolveError::ProcessFailed { .. }
    ) {
        msg.push_str(&format!("failed to solve: {error}"));
    } else {
        msg.push_str(&format!("failed to solve: {}: {error}", e.name));
    }
    anyhow::anyhow!(msg)
}
