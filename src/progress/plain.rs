//! BuildKit's plain progress format, line for line:
//!
//! ```text
//! #3 [2/3] RUN echo hi
//! #3 0.231 hi
//! #3 DONE 0.3s
//!
//! #4 [3/3] COPY . /app
//! #4 CACHED
//! ```

use std::collections::{HashMap, VecDeque};
use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::{Event, Renderer, WarningInfo, failure_block, warnings};

struct VertexState {
    number: usize,
    started: Option<SystemTime>,
    /// Bytes of the current output line not yet ended by a newline.
    partial: Vec<u8>,
    name: String,
    /// The last output lines, as printed after the vertex number.
    tail: VecDeque<String>,
    error: Option<String>,
}

/// `--progress=plain`: BuildKit's numbered lines, written to `out` as the events come.
pub struct PlainRenderer<W: Write + Send> {
    out: W,
    vertices: HashMap<String, VertexState>,
    next_number: usize,
    /// The vertex whose lines were printed last: a blank line separates vertices.
    last: Option<String>,
    build_started: SystemTime,
    /// Warnings about a vertex (BuildKit's), summed up at the end as buildx does.
    warnings: Vec<(String, Option<Arc<WarningInfo>>)>,
}

impl<W: Write + Send> PlainRenderer<W> {
    /// A renderer writing to `out`; the build's duration is counted from now.
    pub fn new(out: W) -> Self {
        Self {
            out,
            vertices: HashMap::new(),
            next_number: 1,
            last: None,
            build_started: SystemTime::now(),
            warnings: Vec::new(),
        }
    }

    fn number(&mut self, vertex: &str) -> usize {
        let next = &mut self.next_number;
        self.vertices
            .entry(vertex.to_string())
            .or_insert_with(|| {
                let n = *next;
                *next += 1;
                VertexState {
                    number: n,
                    started: None,
                    partial: Vec::new(),
                    name: String::new(),
                    tail: VecDeque::new(),
                    error: None,
                }
            })
            .number
    }

    /// Writing progress must never fail a build: a closed stderr only loses the display.
    fn line(&mut self, vertex: &str, text: &str) {
        if self.last.as_deref() != Some(vertex) && self.last.is_some() {
            let _ = writeln!(self.out);
        }
        self.last = Some(vertex.to_string());
        let n = self.number(vertex);
        let _ = writeln!(self.out, "#{n} {text}");
    }

    fn elapsed(&self, vertex: &str, at: SystemTime) -> Duration {
        let started = self
            .vertices
            .get(vertex)
            .and_then(|v| v.started)
            .unwrap_or(self.build_started);
        at.duration_since(started).unwrap_or_default()
    }

    fn flush_partial(&mut self, vertex: &str, at: SystemTime) {
        let partial = match self.vertices.get_mut(vertex) {
            Some(v) if !v.partial.is_empty() => std::mem::take(&mut v.partial),
            _ => return,
        };
        let t = self.elapsed(vertex, at).as_secs_f64();
        let text = String::from_utf8_lossy(&partial).into_owned();
        self.log_line(vertex, format!("{t:.3} {text}"));
    }

    /// A line of a step's output: printed, and kept for the failure block.
    fn log_line(&mut self, vertex: &str, text: String) {
        self.line(vertex, &text);
        if let Some(v) = self.vertices.get_mut(vertex) {
            failure_block::keep(&mut v.tail, text);
        }
    }
}

impl<W: Write + Send> Renderer for PlainRenderer<W> {
    fn event(&mut self, event: &Event) {
        match event {
            Event::Started { vertex, name, at } => {
                self.number(vertex);
                if let Some(v) = self.vertices.get_mut(vertex) {
                    v.started = Some(*at);
                    v.name.clone_from(name);
                }
                self.line(vertex, name);
            }
            Event::Cached { vertex, name, .. } => {
                self.line(vertex, name);
                self.line(vertex, "CACHED");
            }
            // bud's own line, shaped like CACHED: the opposite answer, with its reason.
            Event::Reason { vertex, reason } => {
                self.line(vertex, &format!("CACHE MISS: {reason}"));
            }
            Event::Log {
                vertex, data, at, ..
            } => {
                self.number(vertex);
                let t = self.elapsed(vertex, *at).as_secs_f64();
                let mut pending = match self.vertices.get_mut(vertex) {
                    Some(v) => std::mem::take(&mut v.partial),
                    None => Vec::new(),
                };
                pending.extend_from_slice(data);
                let mut rest = pending.as_slice();
                while let Some(i) = rest.iter().position(|b| *b == b'\n') {
                    let text = String::from_utf8_lossy(&rest[..i]).into_owned();
                    self.log_line(vertex, format!("{t:.3} {}", text.trim_end_matches('\r')));
                    rest = &rest[i + 1..];
                }
                if let Some(v) = self.vertices.get_mut(vertex) {
                    v.partial = rest.to_vec();
                }
            }
            Event::Status {
                vertex,
                id,
                current,
                total,
                done,
                ..
            } => {
                let text = match (total, done) {
                    (Some(t), true) => format!("{id} {} / {} done", bytes(*current), bytes(*t)),
                    (Some(t), false) => format!("{id} {} / {}", bytes(*current), bytes(*t)),
                    (None, true) => format!("{id} done"),
                    // A step with no byte count yet shows its name alone, as BuildKit's
                    // printer does ("pushing layers").
                    (None, false) if *current == 0 => id.clone(),
                    (None, false) => format!("{id} {}", bytes(*current)),
                };
                self.line(vertex, &text);
            }
            Event::Completed { vertex, at, error } => {
                self.flush_partial(vertex, *at);
                let t = self.elapsed(vertex, *at).as_secs_f64();
                match error {
                    None => self.line(vertex, &format!("DONE {t:.1}s")),
                    Some(e) if failure_block::cancelled(e) => self.line(vertex, "CANCELED"),
                    Some(e) => self.line(vertex, &format!("ERROR: {e}")),
                }
                if let Some(v) = self.vertices.get_mut(vertex) {
                    v.error.clone_from(error);
                }
            }
            Event::Warning {
                vertex: Some(vertex),
                message,
                info,
            } => {
                self.line(vertex, &format!("WARN: {message}"));
                self.warnings.push((message.clone(), info.clone()));
            }
            Event::Warning { message, .. } => {
                let _ = writeln!(self.out, "WARNING: {message}");
            }
        }
    }

    fn finish(&mut self, _ok: bool) {
        let mut failed: Vec<&VertexState> = self
            .vertices
            .values()
            .filter(|v| v.error.as_deref().is_some_and(failure_block::shown_for))
            .collect();
        failed.sort_by_key(|v| v.number);
        for v in failed {
            let _ = self
                .out
                .write_all(failure_block::render(&v.name, &v.tail).as_bytes());
        }
        let listed: Vec<(String, Option<&WarningInfo>)> = self
            .warnings
            .iter()
            .map(|(m, i)| (m.clone(), i.as_deref()))
            .collect();
        let summary = warnings::summary(&listed, warnings::expanded());
        let _ = self.out.write_all(summary.as_bytes());
        let _ = self.out.flush();
    }
}

/// Sizes as BuildKit and buildx print them: 37B, 1.05kB, 3.20MB (decimal units).
pub(super) fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["kB", "MB", "GB", "TB", "PB"];
    if n < 1000 {
        return format!("{n}B");
    }
    let mut v = n as f64 / 1000.0;
    let mut unit = 0;
    while v >= 1000.0 && unit < UNITS.len() - 1 {
        v /= 1000.0;
        unit += 1;
    }
    format!("{v:.2}{}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::progress::Stream;

    fn at(ms: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_millis(ms)
    }

    #[test]
    fn renders_like_buildkit() {
        let mut r = PlainRenderer::new(Vec::new());
        r.event(&Event::Started {
            vertex: "a".into(),
            name: "[1/2] RUN echo hi".into(),
            at: at(1000),
        });
        r.event(&Event::Log {
            vertex: "a".into(),
            stream: Stream::Stdout,
            data: b"hi\npart".to_vec(),
            at: at(1231),
        });
        r.event(&Event::Completed {
            vertex: "a".into(),
            at: at(1300),
            error: None,
        });
        r.event(&Event::Cached {
            vertex: "b".into(),
            name: "[2/2] COPY . /app".into(),
            at: at(1400),
        });
        r.event(&Event::Started {
            vertex: "c".into(),
            name: "[x] RUN false".into(),
            at: at(2000),
        });
        r.event(&Event::Completed {
            vertex: "c".into(),
            at: at(2500),
            error: Some(
                "process \"/bin/sh -c false\" did not complete successfully: exit code: 1".into(),
            ),
        });
        r.event(&Event::Started {
            vertex: "d".into(),
            name: "[y] RUN sleep 9".into(),
            at: at(2000),
        });
        r.event(&Event::Log {
            vertex: "d".into(),
            stream: Stream::Stdout,
            data: b"zz\n".to_vec(),
            at: at(2100),
        });
        r.event(&Event::Completed {
            vertex: "d".into(),
            at: at(2600),
            error: Some("cancelled".into()),
        });
        r.finish(false);
        let out = String::from_utf8(r.out).unwrap();
        // After the build, the failed step's block; none for the cancelled one.
        assert_eq!(
            out,
            "#1 [1/2] RUN echo hi\n#1 0.231 hi\n#1 0.300 part\n#1 DONE 0.3s\n\n\
             #2 [2/2] COPY . /app\n#2 CACHED\n\n\
             #3 [x] RUN false\n#3 ERROR: process \"/bin/sh -c false\" did not complete successfully: exit code: 1\n\n\
             #4 [y] RUN sleep 9\n#4 0.100 zz\n#4 CANCELED\n\
             ------\n > [x] RUN false:\n------\n"
        );
    }

    #[test]
    fn byte_units() {
        assert_eq!(bytes(37), "37B");
        assert_eq!(bytes(1050), "1.05kB");
        assert_eq!(bytes(3_200_000), "3.20MB");
    }
}
