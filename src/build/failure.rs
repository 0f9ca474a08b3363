//! A failed step, reported as buildx reports it: the Dockerfile lines around the instruction
//! it came from, then the error.

use super::inputs::BuildInputs;

/// A failed step, reported as docker build and buildx do: the Dockerfile lines around the
/// instruction, then the error. The step's last output lines are not repeated here: the
/// progress view prints them once the build has ended (`progress::failure_block`).
pub(super) fn step_failure(e: crate::solver::StepError, inputs: &BuildInputs) -> anyhow::Error {
    let mut msg = dockerfile_excerpt(&e.name, inputs).unwrap_or_default();
    // The step's name holds its whole command, which the process error repeats: name it
    // once, as buildx does.
    if matches!(
        e.source.root(),
        crate::solver::SolveError::ProcessFailed { .. }
    ) {
        msg.push_str(&format!("failed to solve: {}", e.source));
    } else {
        msg.push_str(&format!("failed to solve: {}: {}", e.name, e.source));
    }
    anyhow::anyhow!(msg)
}

/// The Dockerfile lines around the instruction a step came from, found by its text: the
/// line starting with the instruction's keyword followed by the first characters of its
/// arguments. Dockerfile text is any UTF-8, so the comparison is by characters, never by
/// byte offsets.
fn dockerfile_excerpt(step_name: &str, inputs: &BuildInputs) -> Option<String> {
    let instruction = step_name.split_once("] ").map(|(_, rest)| rest)?;
    let lines: Vec<&str> = inputs.dockerfile.lines().collect();
    let (keyword, rest) = instruction
        .split_once(char::is_whitespace)
        .unwrap_or((instruction, ""));
    let rest = rest.trim();
    let rest_start = rest
        .char_indices()
        .nth(20)
        .map_or(rest, |(at, _)| &rest[..at]);
    let idx = lines.iter().position(|l| {
        let t = l.trim_start();
        t.get(..keyword.len())
            .is_some_and(|k| k.eq_ignore_ascii_case(keyword))
            && t[keyword.len()..].trim().starts_with(rest_start)
    })?;
    let start = idx.saturating_sub(2);
    let end = (idx + 3).min(lines.len());
    let mut out = format!(
        "{}:{}\n--------------------\n",
        inputs.dockerfile_name,
        idx + 1
    );
    for (i, line) in lines.iter().enumerate().take(end).skip(start) {
        let mark = if i == idx { ">>>" } else { "   " };
        out.push_str(&format!(" {:>3} | {mark} {line}\n", i + 1));
    }
    out.push_str("--------------------\n");
    Some(out)
}
