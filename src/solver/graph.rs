//! A `pb.Definition` decoded into vertices: each op by its digest (sha256 of its exact
//! bytes), its inputs, and its metadata.

use std::collections::HashMap;

use bud_proto::pb;
use prost::Message;
use sha2::{Digest as _, Sha256};

use super::SolveError;

/// One op of the definition.
#[derive(Debug, Clone)]
pub(crate) struct Vertex {
    /// `sha256:` of `bytes`, the name inputs give it.
    pub(crate) digest: String,
    /// The op's bytes as the definition carries them: the base of its cache key.
    pub(crate) bytes: Vec<u8>,
    /// The op, decoded.
    pub(crate) op: pb::Op,
    /// What progress shows (`[2/3] RUN …`), from `llb.customname`.
    pub(crate) name: String,
    /// The op's metadata asks to run it whatever the cache holds (its stage is one
    /// `--no-cache-filter` names).
    pub(crate) ignore_cache: bool,
}

/// The ops of one or several definitions, by digest.
#[derive(Debug)]
pub(crate) struct Graph {
    pub(crate) vertices: HashMap<String, Vertex>,
    /// The definition's result: the terminal op's single input.
    pub(crate) target: Option<pb::Input>,
}

impl Graph {
    pub(crate) fn decode(def: &pb::Definition) -> Result<Self, SolveError> {
        let mut vertices = HashMap::new();
        let mut terminal = None;
        for bytes in &def.def {
            let op = pb::Op::decode(bytes.as_slice())
                .map_err(|e| SolveError::InvalidDefinition(format!("undecodable op: {e}")))?;
            let digest = format!("sha256:{}", hex::encode(Sha256::digest(bytes)));
            if op.op.is_none() {
                // The terminal op only points at the result.
                terminal = Some(op);
                continue;
            }
            let meta = def.metadata.get(&digest);
            let name = meta
                .and_then(|m| m.description.get("llb.customname").cloned())
                .unwrap_or_else(|| default_name(&op));
            vertices.insert(
                digest.clone(),
                Vertex {
                    digest,
                    bytes: bytes.clone(),
                    op,
                    name,
                    ignore_cache: meta.is_some_and(|m| m.ignore_cache),
                },
            );
        }
        let target = match terminal {
            Some(t) => t.inputs.into_iter().next(),
            None if def.def.is_empty() => None,
            None => {
                return Err(SolveError::InvalidDefinition(
                    "the definition has no terminal op".into(),
                ));
            }
        };
        let graph = Self { vertices, target };
        graph.check()?;
        Ok(graph)
    }

    /// Every input must name a vertex of the definition, and the graph must be acyclic
    /// (digests make a cycle impossible to build honestly, but a hostile definition can
    /// still claim one).
    fn check(&self) -> Result<(), SolveError> {
        for v in self.vertices.values() {
            for input in &v.op.inputs {
                if !self.vertices.contains_key(&input.digest) {
                    return Err(SolveError::InvalidDefinition(format!(
                        "op {} refers to unknown input {}",
                        v.digest, input.digest
                    )));
                }
            }
        }
        if let Some(t) = &self.target
            && !self.vertices.contains_key(&t.digest)
        {
            return Err(SolveError::InvalidDefinition(format!(
                "the result refers to unknown op {}",
                t.digest
            )));
        }
        // Kahn's algorithm over input edges.
        let mut pending: HashMap<&str, usize> = self
            .vertices
            .values()
            .map(|v| (v.digest.as_str(), v.op.inputs.len()))
            .collect();
        let mut users: HashMap<&str, Vec<&str>> = HashMap::new();
        for v in self.vertices.values() {
            for i in &v.op.inputs {
                users.entry(i.digest.as_str()).or_default().push(&v.digest);
            }
        }
        let mut ready: Vec<&str> = pending
            .iter()
            .filter(|(_, n)| **n == 0)
            .map(|(d, _)| *d)
            .collect();
        let mut seen = 0;
        while let Some(d) = ready.pop() {
            seen += 1;
            for u in users.get(d).into_iter().flatten() {
                if let Some(n) = pending.get_mut(u) {
                    *n -= 1;
                    if *n == 0 {
                        ready.push(u);
                    }
                }
            }
        }
        if seen != self.vertices.len() {
            return Err(SolveError::InvalidDefinition(
                "the definition has a cycle".into(),
            ));
        }
        Ok(())
    }
}

fn default_name(op: &pb::Op) -> String {
    match &op.op {
        Some(pb::op::Op::Source(s)) => s.identifier.clone(),
        Some(pb::op::Op::Exec(e)) => e
            .meta
            .as_ref()
            .map(|m| m.args.join(" "))
            .unwrap_or_default(),
        Some(pb::op::Op::File(_)) => "file operations".into(),
        Some(pb::op::Op::Merge(_)) => "merge".into(),
        Some(pb::op::Op::Diff(_)) => "diff".into(),
        _ => "op".into(),
    }
}
