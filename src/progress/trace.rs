//! `--trace FILE`: the build's steps as a Chrome trace (the JSON `chrome://tracing` and
//! Perfetto open), one complete event per step, steps that overlapped on separate lanes.
//! It wraps the renderer the user chose and forwards every event to it.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::SystemTime;

use serde_json::json;

use super::{Event, Renderer};

/// Passes every event on to the renderer it wraps and writes the Chrome trace when the
/// build finishes.
pub struct TraceRenderer {
    inner: Box<dyn Renderer>,
    path: PathBuf,
    names: HashMap<String, String>,
    started: HashMap<String, SystemTime>,
    /// (name, start, end, cached) of every finished step.
    spans: Vec<(String, SystemTime, SystemTime, bool)>,
}

impl TraceRenderer {
    /// Wraps `inner`; the trace is written to `path` (replacing it) at the end.
    pub fn new(inner: Box<dyn Renderer>, path: PathBuf) -> Self {
        Self {
            inner,
            path,
            names: HashMap::new(),
            started: HashMap::new(),
            spans: Vec::new(),
        }
    }

    /// The trace document: complete ("X") events in microseconds since the first step, each
    /// on the lowest lane free at its start.
    fn document(&self) -> serde_json::Value {
        let mut spans = self.spans.clone();
        spans.sort_by_key(|s| s.1);
        let origin = spans.first().map_or(SystemTime::UNIX_EPOCH, |s| s.1);
        let micros =
            |t: SystemTime| t.duration_since(origin).unwrap_or_default().as_micros() as u64;
        let mut lanes_free_at: Vec<u64> = Vec::new();
        let mut events = Vec::new();
        for (name, start, end, cached) in spans {
            let (ts, end) = (micros(start), micros(end));
            let lane = match lanes_free_at.iter().position(|free| *free <= ts) {
                Some(l) => l,
                None => {
                    lanes_free_at.push(0);
                    lanes_free_at.len() - 1
                }
            };
            lanes_free_at[lane] = end;
            events.push(json!({
                "name": name,
                "cat": if cached { "cached" } else { "step" },
                "ph": "X",
                "ts": ts,
                "dur": end.saturating_sub(ts),
                "pid": 1,
                "tid": lane + 1,
            }));
        }
        json!({ "traceEvents": events, "displayTimeUnit": "ms" })
    }
}

impl Renderer for TraceRenderer {
    fn event(&mut self, event: &Event) {
        match event {
            Event::Started { vertex, name, at } => {
                self.names.insert(vertex.clone(), name.clone());
                self.started.insert(vertex.clone(), *at);
            }
            Event::Cached { name, at, .. } => {
                self.spans.push((name.clone(), *at, *at, true));
            }
            Event::Completed { vertex, at, .. } => {
                if let Some(start) = self.started.remove(vertex) {
                    let name = self.names.get(vertex).cloned().unwrap_or_default();
                    self.spans.push((name, start, *at, false));
                }
            }
            _ => {}
        }
        self.inner.event(event);
    }

    fn finish(&mut self, ok: bool) {
        self.inner.finish(ok);
        let text = serde_json::to_vec_pretty(&self.document()).unwrap_or_default();
        if let Err(e) = std::fs::write(&self.path, text) {
            crate::report!("warning: writing the trace to {}: {e}", self.path.display());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::progress::QuietRenderer;
    use std::time::Duration;

    fn at(ms: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_millis(ms)
    }

    #[test]
    fn overlapping_steps_get_their_own_lanes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("trace.json");
        let mut r = TraceRenderer::new(Box::new(QuietRenderer), path.clone());
        let start = |v: &str, ms| Event::Started {
            vertex: v.into(),
            name: format!("step {v}"),
            at: at(ms),
        };
        let done = |v: &str, ms| Event::Completed {
            vertex: v.into(),
            at: at(ms),
            error: None,
        };
        for e in [
            start("a", 1000),
            start("b", 1100),
            done("a", 1500),
            start("c", 1600),
            done("b", 1700),
            done("c", 1800),
        ] {
            r.event(&e);
        }
        r.finish(true);
        let doc: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        let events = doc["traceEvents"].as_array().unwrap();
        let lanes: Vec<(String, u64, u64, u64)> = events
            .iter()
            .map(|e| {
                (
                    e["name"].as_str().unwrap().to_string(),
                    e["ts"].as_u64().unwrap(),
                    e["dur"].as_u64().unwrap(),
                    e["tid"].as_u64().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            lanes,
            [
                ("step a".into(), 0, 500_000, 1),
                ("step b".into(), 100_000, 600_000, 2),
                ("step c".into(), 600_000, 200_000, 1),
            ]
        );
    }
}
