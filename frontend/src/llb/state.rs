use std::sync::Arc;

use bud_proto::pb;
use prost::Message;

use super::constraints::Constraints;
use super::definition::digest_of;
use super::sourcemap::SourceLocation;

/// One op of the graph, marshaled when built: its inputs already exist, so
/// their digests, and with them this op's bytes and digest, are known.
#[derive(Debug)]
pub(crate) struct Vertex {
    pub(crate) inputs: Vec<Output>,
    pub(crate) bytes: Vec<u8>,
    pub(crate) digest: String,
    pub(crate) metadata: pb::OpMetadata,
    pub(crate) locations: Vec<SourceLocation>,
}

impl Vertex {
    /// `op` refers to `inputs` by position. `caps` are the capabilities the
    /// op's features need; `platform_specific` says whether the constraints'
    /// platform belongs in the op.
    pub(crate) fn new(
        inputs: Vec<Output>,
        op: pb::op::Op,
        constraints: &Constraints,
        caps: &[&str],
        platform_specific: bool,
    ) -> Arc<Self> {
        let op = pb::Op {
            inputs: inputs.iter().map(Output::to_input).collect(),
            op: Some(op),
            platform: if platform_specific {
                constraints.platform.clone()
            } else {
                None
            },
            constraints: Some(constraints.worker_constraints()),
        };
        let bytes = op.encode_to_vec();
        Arc::new(Vertex {
            inputs,
            digest: digest_of(&bytes),
            bytes,
            metadata: constraints.metadata(caps),
            locations: constraints.locations.clone(),
        })
    }
}

/// Output `index` of an op.
#[derive(Clone, Debug)]
pub struct Output {
    pub(crate) vertex: Arc<Vertex>,
    pub(crate) index: i64,
}

impl Output {
    pub(crate) fn new(vertex: Arc<Vertex>, index: i64) -> Self {
        Output { vertex, index }
    }

    /// The digest of the op this is an output of.
    pub fn digest(&self) -> &str {
        &self.vertex.digest
    }

    /// Which output of the op (an exec has one per read-write mount after the root).
    pub fn index(&self) -> i64 {
        self.index
    }

    /// Whether both are the same output of equal ops (equal bytes).
    pub fn same_as(&self, other: &Output) -> bool {
        self.index == other.index && self.vertex.digest == other.vertex.digest
    }

    pub(crate) fn to_input(&self) -> pb::Input {
        pb::Input {
            digest: self.vertex.digest.clone(),
            index: self.index,
        }
    }
}

/// A filesystem: an op's output, or scratch (empty).
#[derive(Clone, Debug, Default)]
pub struct State {
    output: Option<Output>,
}

impl State {
    /// The empty filesystem.
    pub fn scratch() -> Self {
        State { output: None }
    }

    /// Whether this is the empty filesystem (no op made it).
    pub fn is_scratch(&self) -> bool {
        self.output.is_none()
    }

    /// The op output this state is; `None` for scratch.
    pub fn output(&self) -> Option<&Output> {
        self.output.as_ref()
    }

    pub(crate) fn from_output(output: Output) -> Self {
        State {
            output: Some(output),
        }
    }
}

impl From<Output> for State {
    fn from(output: Output) -> Self {
        State::from_output(output)
    }
}

/// Collects an op's inputs, giving one position to each distinct output, as
/// BuildKit does when several mounts or actions read the same state.
#[derive(Default)]
pub(crate) struct InputList {
    outputs: Vec<Output>,
}

impl InputList {
    /// The position of `state` among the inputs, or -1 for scratch.
    pub(crate) fn add(&mut self, state: &State) -> i64 {
        let Some(output) = state.output() else {
            return -1;
        };
        let index = match self.outputs.iter().position(|o| o.same_as(output)) {
            Some(i) => i,
            None => {
                self.outputs.push(output.clone());
                self.outputs.len() - 1
            }
        };
        index as i64
    }

    pub(crate) fn len(&self) -> i64 {
        self.outputs.len() as i64
    }

    pub(crate) fn into_outputs(self) -> Vec<Output> {
        self.outputs
    }
}
