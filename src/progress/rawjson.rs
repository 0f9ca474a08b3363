//! `--progress=rawjson`: one JSON object per line, shaped like BuildKit's `SolveStatus`
//! (`vertexes`, `statuses`, `logs`, `warnings`), as `buildctl --progress=rawjson` prints it.

use std::collections::HashMap;
use std::io::Write;
use std::time::SystemTime;

use base64::Engine;
use serde_json::{Value, json};

use super::{Event, Renderer, WarningInfo};

/// `--progress=rawjson`: one `SolveStatus` JSON object per event, written to `out`.
pub struct RawJsonRenderer<W: Write + Send> {
    out: W,
    /// Vertex names and start times, repeated in later updates as BuildKit does.
    vertices: HashMap<String, (String, Option<SystemTime>)>,
}

impl<W: Write + Send> RawJsonRenderer<W> {
    /// A renderer writing to `out`.
    pub fn new(out: W) -> Self {
        Self {
            out,
            vertices: HashMap::new(),
        }
    }

    fn write(&mut self, value: Value) {
        // A closed stdout only loses the display; it never fails the build.
        let _ = serde_json::to_writer(&mut self.out, &value);
        let _ = self.out.write_all(b"\n");
    }

    fn vertex(&self, digest: &str) -> (String, Option<SystemTime>) {
        self.vertices.get(digest).cloned().unwrap_or_default()
    }
}

fn timestamp(t: SystemTime) -> String {
    crate::timefmt::rfc3339_of(t)
}

fn b64(data: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(data)
}

/// A `VertexWarning`'s other fields, as BuildKit marshals them (a build check's level is 1).
fn add_warning_info(w: &mut Value, info: &WarningInfo) {
    w["level"] = json!(1);
    if !info.detail.is_empty() {
        let detail: Vec<String> = info.detail.iter().map(|d| b64(d.as_bytes())).collect();
        w["detail"] = json!(detail);
    }
    if !info.url.is_empty() {
        w["url"] = json!(info.url);
    }
    if let Some(src) = &info.source {
        w["sourceInfo"] = json!({
            "filename": src.filename,
            "data": b64(src.data.as_bytes()),
            "language": "Dockerfile",
        });
        let ranges: Vec<Value> = src
            .lines
            .iter()
            .map(|(start, end)| json!({"start": {"line": start}, "end": {"line": end}}))
            .collect();
        w["range"] = json!(ranges);
    }
}

impl<W: Write + Send> Renderer for RawJsonRenderer<W> {
    fn event(&mut self, event: &Event) {
        let value = match event {
            Event::Started { vertex, name, at } => {
                self.vertices
                    .insert(vertex.clone(), (name.clone(), Some(*at)));
                json!({"vertexes": [{"digest": vertex, "name": name, "started": timestamp(*at)}]})
            }
            Event::Cached { vertex, name, at } => {
                self.vertices
                    .insert(vertex.clone(), (name.clone(), Some(*at)));
                json!({"vertexes": [{
                    "digest": vertex, "name": name, "cached": true,
                    "started": timestamp(*at), "completed": timestamp(*at)
                }]})
            }
            // An update of the vertex with one field more than BuildKit's: consumers that
            // do not know it read the update they already had.
            Event::Reason { vertex, reason } => {
                let (name, started) = self.vertex(vertex);
                let mut v = json!({"digest": vertex, "name": name, "reason": reason});
                if let Some(s) = started {
                    v["started"] = json!(timestamp(s));
                }
                json!({ "vertexes": [v] })
            }
            Event::Completed { vertex, at, error } => {
                let (name, started) = self.vertex(vertex);
                let mut v = json!({
                    "digest": vertex, "name": name, "completed": timestamp(*at)
                });
                if let Some(s) = started {
                    v["started"] = json!(timestamp(s));
                }
                if let Some(e) = error {
                    v["error"] = json!(e);
                }
                json!({ "vertexes": [v] })
            }
            Event::Log {
                vertex,
                stream,
                data,
                at,
            } => json!({"logs": [{
                "vertex": vertex, "stream": *stream as u8,
                "data": base64::engine::general_purpose::STANDARD.encode(data),
                "timestamp": timestamp(*at)
            }]}),
            Event::Status {
                vertex,
                id,
                current,
                total,
                done,
                at,
            } => {
                let mut s = json!({
                    "id": id, "vertex": vertex, "current": current, "timestamp": timestamp(*at)
                });
                if let Some(t) = total {
                    s["total"] = json!(t);
                }
                if *done {
                    s["completed"] = json!(timestamp(*at));
                }
                json!({ "statuses": [s] })
            }
            Event::Warning {
                vertex,
                message,
                info,
            } => {
                let mut w = json!({"vertex": vertex, "short": b64(message.as_bytes())});
                if let Some(info) = info {
                    add_warning_info(&mut w, info);
                }
                json!({ "warnings": [w] })
            }
        };
        self.write(value);
    }

    fn finish(&mut self, _ok: bool) {
        let _ = self.out.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::progress::Stream;

    #[test]
    fn one_status_object_per_line() {
        let mut r = RawJsonRenderer::new(Vec::new());
        let at = SystemTime::UNIX_EPOCH;
        r.event(&Event::Started {
            vertex: "sha256:a".into(),
            name: "RUN x".into(),
            at,
        });
        r.event(&Event::Log {
            vertex: "sha256:a".into(),
            stream: Stream::Stderr,
            data: b"oops\n".to_vec(),
            at,
        });
        r.event(&Event::Completed {
            vertex: "sha256:a".into(),
            at,
            error: Some("exit code: 1".into()),
        });
        let out = String::from_utf8(r.out).unwrap();
        let lines: Vec<Value> = out
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0]["vertexes"][0]["name"], "RUN x");
        assert_eq!(lines[1]["logs"][0]["stream"], 2);
        assert_eq!(lines[1]["logs"][0]["data"], "b29wcwo=");
        assert_eq!(lines[2]["vertexes"][0]["error"], "exit code: 1");
        assert_eq!(lines[2]["vertexes"][0]["name"], "RUN x");
    }
}
