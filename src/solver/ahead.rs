//! Bringing in ahead. A step that misses the cache makes every step that depends on it miss
//! too: the solver keys a step on its inputs' keys, and an imported cache's record of a step
//! hangs from its inputs' records. So once a step runs, whatever an imported cache holds
//! for the steps below it will be needed, for certain: each such input is brought in as soon
//! as it is solved, beside the steps still running above, instead of when its reader starts.
//! (A result the state root lost while keeping its readers' could make this wasted work,
//! never a wrong result: what is brought in is what the cache holds for that key.)

use std::collections::HashMap;

use tokio_util::sync::CancellationToken;

use super::graph::Graph;

/// For each vertex of one solve, whether it is sure to run yet.
pub(super) struct Ahead {
    /// Cancelled (as a one-shot signal) once the vertex is sure to run.
    sure: HashMap<String, CancellationToken>,
    /// The vertices that read each vertex's outputs.
    readers: HashMap<String, Vec<String>>,
}

impl Ahead {
    pub(super) fn new(graph: &Graph) -> Self {
        let mut readers: HashMap<String, Vec<String>> = HashMap::new();
        for v in graph.vertices.values() {
            for input in &v.op.inputs {
                readers
                    .entry(input.digest.clone())
                    .or_default()
                    .push(v.digest.clone());
            }
        }
        let sure = graph
            .vertices
            .keys()
            .map(|d| (d.clone(), CancellationToken::new()))
            .collect();
        Ahead { sure, readers }
    }

    /// The step `digest` runs: so will every step that depends on it.
    pub(super) fn runs(&self, digest: &str) {
        let mut next: Vec<&str> = vec![digest];
        while let Some(d) = next.pop() {
            for reader in self.readers.get(d).into_iter().flatten() {
                if let Some(sure) = self.sure.get(reader)
                    && !sure.is_cancelled()
                {
                    sure.cancel();
                    next.push(reader);
                }
            }
        }
    }

    /// Resolves once the step `digest` is sure to run; never, for one that is not.
    pub(super) async fn sure_to_run(&self, digest: &str) {
        match self.sure.get(digest) {
            Some(sure) => sure.cancelled().await,
            None => std::future::pending().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bud_proto::pb;

    fn graph(edges: &[(&str, &[&str])]) -> Graph {
        let vertices = edges
            .iter()
            .map(|(digest, inputs)| {
                let op = pb::Op {
                    inputs: inputs
                        .iter()
                        .map(|i| pb::Input {
                            digest: i.to_string(),
                            index: 0,
                        })
                        .collect(),
                    ..Default::default()
                };
                let vertex = super::super::graph::Vertex {
                    digest: digest.to_string(),
                    bytes: Vec::new(),
                    op,
                    name: digest.to_string(),
                    ignore_cache: false,
                };
                (digest.to_string(), vertex)
            })
            .collect();
        Graph {
            vertices,
            target: None,
        }
    }

    #[test]
    fn a_step_that_runs_makes_every_step_below_it_sure_to_run_and_no_other() {
        // base ← a ← b ← d, c ← d, base ← c; e alone.
        let ahead = Ahead::new(&graph(&[
            ("base", &[]),
            ("a", &["base"]),
            ("b", &["a"]),
            ("c", &["base"]),
            ("d", &["b", "c"]),
            ("e", &[]),
        ]));
        ahead.runs("a");
        let sure = |d: &str| ahead.sure[d].is_cancelled();
        assert!(sure("b") && sure("d"));
        assert!(!sure("a") && !sure("base") && !sure("c") && !sure("e"));
        ahead.runs("c");
        assert!(!sure("base") && !sure("e"));
    }
}
