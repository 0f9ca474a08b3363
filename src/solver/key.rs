//! Cache keys. An op's key covers its own bytes (minus what BuildKit keeps out of the key:
//! proxy variables), its inputs' keys, and, for inputs that are a local context, the content
//! checksum of exactly the paths the op reads from it.

use bud_proto::pb;
use prost::Message;
use sha2::{Digest as _, Sha256};

use crate::fileop::wildcard;

use super::graph::Vertex;
use super::snapshots::Ref;
use super::source::LocalContext;

/// Bumped when the meaning of a key changes, so that old cache entries are not reused.
const KEY_VERSION: &str = "bud-cache-key-v1";

/// A step's cache key and what it was made of, for the next build's explanation of why
/// the step ran (`why.rs`).
pub(super) struct KeyMaterial {
    pub key: String,
    /// sha256 of the op's bytes as the key covers them.
    pub op: String,
    /// Each input's part of the key: its key, or the checksum of what the op reads of a
    /// local context.
    pub inputs: Vec<String>,
}

pub(super) fn cache_key(vertex: &Vertex, inputs: &[Ref], input_keys: &[String]) -> KeyMaterial {
    let op = op_bytes_for_key(vertex);
    let parts: Vec<String> = inputs
        .iter()
        .zip(input_keys)
        .enumerate()
        .map(|(i, (r, key))| match r {
            Ref::Context(ctx) => context_checksum(&vertex.op, i as i64, ctx),
            _ => key.clone(),
        })
        .collect();
    let mut h = Sha256::new();
    h.update(KEY_VERSION);
    h.update(&op);
    for part in &parts {
        h.update([0]);
        h.update(part.as_bytes());
    }
    KeyMaterial {
        key: format!("sha256:{}", hex::encode(h.finalize())),
        op: format!("sha256:{}", hex::encode(Sha256::digest(&op))),
        inputs: parts,
    }
}

/// The paths of a context that an op reads through input `input`: each source or mount
/// selector and whether it may hold wildcards; None when it reads the whole context.
pub(super) fn context_selectors(op: &pb::Op, input: i64) -> Option<Vec<(String, bool)>> {
    let mut selectors = Vec::new();
    let mut whole = false;
    match &op.op {
        Some(pb::op::Op::File(f)) => {
            for a in &f.actions {
                match &a.action {
                    Some(pb::file_action::Action::Copy(c)) if a.secondary_input == input => {
                        selectors.push((c.src.clone(), c.allow_wildcard));
                    }
                    _ if a.input == input => whole = true,
                    _ => {}
                }
            }
        }
        Some(pb::op::Op::Exec(e)) => {
            for m in e.mounts.iter().filter(|m| m.input == input) {
                selectors.push((m.selector.clone(), false));
            }
        }
        _ => whole = true,
    }
    (!whole && !selectors.is_empty()).then_some(selectors)
}

/// A key for the same op run under different conditions.
pub(super) fn salted(key: &str, salt: &str) -> String {
    format!(
        "sha256:{}",
        hex::encode(Sha256::digest(format!("{key}\0{salt}")))
    )
}

/// The key the dependents of a step made to run again see: its own, salted with the
/// snapshots it made, so that they run again too, and hit again once those are cached.
pub(super) fn after_rerun(key: &str, outputs: &[Ref]) -> String {
    let made: Vec<&str> = outputs.iter().filter_map(Ref::snapshot_id).collect();
    salted(key, &format!("rerun:{}", made.join(",")))
}

/// The key under which output `index` of an op is recorded.
pub fn output_key(key: &str, index: usize) -> String {
    format!("{key}/{index}")
}

pub(super) fn output_count(op: &pb::op::Op) -> usize {
    match op {
        pb::op::Op::Exec(e) => e
            .mounts
            .iter()
            .filter(|m| m.output >= 0)
            .map(|m| m.output as usize + 1)
            .max()
            .unwrap_or(0),
        _ => 1,
    }
}

fn op_bytes_for_key(vertex: &Vertex) -> Vec<u8> {
    match &vertex.op.op {
        Some(pb::op::Op::Exec(e)) if e.meta.as_ref().is_some_and(|m| m.proxy_env.is_some()) => {
            let mut op = vertex.op.clone();
            if let Some(pb::op::Op::Exec(e)) = &mut op.op
                && let Some(meta) = &mut e.meta
            {
                meta.proxy_env = None;
            }
            op.encode_to_vec()
        }
        _ => vertex.bytes.clone(),
    }
}

/// What an op reads of a context input: the sources of the copies that take it as their
/// secondary input, or the selectors of the mounts that bind it; the whole context when the
/// op uses it some other way.
fn context_checksum(op: &pb::Op, input: i64, ctx: &LocalContext) -> String {
    let Some(selectors) = context_selectors(op, input) else {
        return ctx.snapshot.checksum("");
    };
    let mut h = Sha256::new();
    for (src, wildcard) in selectors {
        h.update(src.as_bytes());
        h.update([0]);
        let path = src.trim_start_matches('/');
        let sum = if wildcard && wildcard::contains_wildcards(path) {
            ctx.snapshot
                .checksum_matching(|p| wildcard::matches(path, p).unwrap_or(false))
        } else {
            ctx.snapshot.checksum(path)
        };
        h.update(sum.as_bytes());
    }
    format!("sha256:{}", hex::encode(h.finalize()))
}
