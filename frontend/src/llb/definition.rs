use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use bud_proto::pb;
use prost::Message;
use sha2::{Digest, Sha256};

use super::sourcemap::SourceCollector;
use super::state::{State, Vertex};

impl State {
    /// The definition that builds this state.
    ///
    /// Scratch gives an empty definition, as in BuildKit (the daemon rejects
    /// solving it; an empty image needs no solve). Marshaling the same graph
    /// always gives the same bytes.
    pub fn marshal(&self) -> pb::Definition {
        let Some(output) = self.output() else {
            return pb::Definition::default();
        };
        let mut marshaler = Marshaler::default();
        let digest = marshaler.add(&output.vertex);

        let terminal = pb::Op {
            inputs: vec![pb::Input {
                digest,
                index: output.index,
            }],
            ..Default::default()
        };
        let bytes = terminal.encode_to_vec();
        let mut caps: BTreeMap<String, bool> = [pb::caps::CONSTRAINTS, pb::caps::PLATFORM]
            .into_iter()
            .map(|c| (c.to_owned(), true))
            .collect();
        // Honouring these metadata fields is itself a capability.
        for md in marshaler.metadata.values() {
            if md.ignore_cache {
                caps.insert(pb::caps::META_IGNORE_CACHE.to_owned(), true);
            }
            if !md.description.is_empty() {
                caps.insert(pb::caps::META_DESCRIPTION.to_owned(), true);
            }
            if md.export_cache.is_some() {
                caps.insert(pb::caps::META_EXPORT_CACHE.to_owned(), true);
            }
        }
        marshaler.metadata.insert(
            digest_of(&bytes),
            pb::OpMetadata {
                caps,
                ..Default::default()
            },
        );
        marshaler.def.push(bytes);

        pb::Definition {
            def: marshaler.def,
            metadata: marshaler.metadata,
            source: Some(marshaler.sources.into_source()),
        }
    }
}

/// `sha256:<hex>` of `bytes`: how LLB names an op.
pub fn digest_of(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

#[derive(Default)]
struct Marshaler {
    def: Vec<Vec<u8>>,
    metadata: BTreeMap<String, pb::OpMetadata>,
    /// Vertices already walked, by identity, so shared subgraphs are walked once.
    walked: HashSet<*const Vertex>,
    sources: SourceCollector,
}

impl Marshaler {
    /// Writes `vertex` after its inputs and returns its digest.
    fn add(&mut self, vertex: &Arc<Vertex>) -> String {
        if self.walked.insert(Arc::as_ptr(vertex)) {
            for input in &vertex.inputs {
                self.add(&input.vertex);
            }
            self.sources.add(&vertex.digest, &vertex.locations);
            match self.metadata.get_mut(&vertex.digest) {
                // An equal op built separately: written once, with both metadata.
                Some(existing) => merge_metadata(existing, &vertex.metadata),
                None => {
                    self.metadata
                        .insert(vertex.digest.clone(), vertex.metadata.clone());
                    self.def.push(vertex.bytes.clone());
                }
            }
        }
        vertex.digest.clone()
    }
}

fn merge_metadata(into: &mut pb::OpMetadata, from: &pb::OpMetadata) {
    into.ignore_cache |= from.ignore_cache;
    for (k, v) in &from.description {
        into.description.insert(k.clone(), v.clone());
    }
    if from.export_cache.is_some() {
        into.export_cache = from.export_cache;
    }
    for (k, v) in &from.caps {
        into.caps.insert(k.clone(), *v);
    }
    if from.progress_group.is_some() {
        into.progress_group = from.progress_group.clone();
    }
}
