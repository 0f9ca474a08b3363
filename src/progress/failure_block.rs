//! The block buildx prints once the build has ended, for each failed step: its name and
//! its last output lines between rules, in the tty and plain views alike (never in rawjson
//! or quiet). A step cancelled because another failed, or by the user, gets none.

use std::collections::VecDeque;

/// How many of a failed step's last output lines the block repeats.
pub(super) const LINES: usize = 10;

/// Whether a step that ended with `error` was cancelled rather than failed: by the user,
/// or because another step failed (bud's solver says `cancelled`, BuildKit's errors end
/// with Go's `context canceled`). buildx shows such a step as CANCELED, without a block.
pub fn cancelled(error: &str) -> bool {
    error == "cancelled" || error.ends_with("context canceled")
}

/// Whether a step that ended with `error` gets a block.
pub(super) fn shown_for(error: &str) -> bool {
    !cancelled(error)
}

/// Keeps the last [`LINES`] lines.
pub(super) fn keep(tail: &mut VecDeque<String>, line: String) {
    tail.push_back(line);
    while tail.len() > LINES {
        tail.pop_front();
    }
}

/// The block for the step `name` whose output ended with `tail`.
pub(super) fn render(name: &str, tail: &VecDeque<String>) -> String {
    let mut text = format!("------\n > {name}:\n");
    for line in tail {
        text.push_str(line);
        text.push('\n');
    }
    text.push_str("------\n");
    text
}
