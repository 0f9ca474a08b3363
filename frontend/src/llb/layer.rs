//! Merge and diff ops: combining and comparing whole filesystems.

use bud_proto::pb::{self, caps};

use super::constraints::Constraints;
use super::state::{Output, State, Vertex};

/// The inputs layered in order, later ones on top. Scratch inputs add
/// nothing and are dropped; with fewer than two left no op is needed.
pub fn merge(inputs: &[State], constraints: &Constraints) -> State {
    let layers: Vec<&State> = inputs.iter().filter(|s| !s.is_scratch()).collect();
    match layers.as_slice() {
        [] => return State::scratch(),
        [only] => return (*only).clone(),
        _ => {}
    }
    // Unlike mounts, a repeated layer is a new input each time: its position
    // in the stack matters.
    let outputs: Vec<Output> = layers.iter().filter_map(|s| s.output().cloned()).collect();
    let merge_inputs = (0..outputs.len() as i64)
        .map(|input| pb::MergeInput { input })
        .collect();
    let op = pb::op::Op::Merge(pb::MergeOp {
        inputs: merge_inputs,
    });
    let vertex = Vertex::new(outputs, op, constraints, &[caps::MERGE_OP], false);
    State::from_output(Output::new(vertex, 0))
}

/// The changes that turn `lower` into `upper`, as a filesystem.
pub fn diff(lower: &State, upper: &State, constraints: &Constraints) -> State {
    // Each side gets its own input even when both are the same state, as in BuildKit.
    let mut outputs = Vec::new();
    let mut index_of = |state: &State| match state.output() {
        Some(output) => {
            outputs.push(output.clone());
            outputs.len() as i64 - 1
        }
        None => -1,
    };
    let lower = index_of(lower);
    let upper = index_of(upper);
    let op = pb::op::Op::Diff(pb::DiffOp {
        lower: Some(pb::LowerDiffInput { input: lower }),
        upper: Some(pb::UpperDiffInput { input: upper }),
    });
    let vertex = Vertex::new(outputs, op, constraints, &[caps::DIFF_OP], false);
    State::from_output(Output::new(vertex, 0))
}
