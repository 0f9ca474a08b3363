//! Maps BuildKit's Status stream onto bud's progress events, the ones the embedded solver
//! emits, so every renderer works with either solver.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bud_proto::control::{StatusResponse, VertexWarning};

use crate::progress::{Event, ProgressSink, Stream, WarningInfo, WarningSource};

/// What a daemon's warning says besides its line (a check's detail, URL and place).
fn warning_info(w: &VertexWarning) -> WarningInfo {
    let line =
        |p: Option<&bud_proto::pb::Position>| p.map_or(0, |p| usize::try_from(p.line).unwrap_or(0));
    WarningInfo {
        detail: w
            .detail
            .iter()
            .map(|d| String::from_utf8_lossy(d).into_owned())
            .collect(),
        url: w.url.clone(),
        source: w.info.as_ref().map(|info| WarningSource {
            filename: info.filename.clone(),
            data: String::from_utf8_lossy(&info.data).into(),
            lines: w
                .ranges
                .iter()
                .map(|r| (line(r.start.as_ref()), line(r.end.as_ref())))
                .collect(),
        }),
    }
}

/// What has been reported for one vertex: BuildKit resends a vertex whenever it changes.
#[derive(Default)]
struct Seen {
    started: bool,
    completed: bool,
}

#[derive(Default)]
pub(crate) struct StatusMapper {
    vertices: HashMap<String, Seen>,
    /// The vertices that failed (not those cancelled because another did), in order: digest
    /// and name.
    pub(crate) failed: Vec<(String, String)>,
}

fn time(ts: Option<&prost_types::Timestamp>) -> SystemTime {
    match ts {
        Some(ts) if ts.seconds >= 0 => {
            SystemTime::UNIX_EPOCH
                + Duration::from_secs(ts.seconds as u64)
                + Duration::from_nanos(u64::try_from(ts.nanos).unwrap_or(0))
        }
        _ => SystemTime::now(),
    }
}

impl StatusMapper {
    /// The events one StatusResponse adds, in the order a renderer needs them.
    pub(crate) fn map(&mut self, resp: StatusResponse) -> Vec<Event> {
        let mut events = Vec::new();
        for v in resp.vertexes {
            let seen = self.vertices.entry(v.digest.clone()).or_default();
            if v.started.is_some() && !seen.started {
                seen.started = true;
                let at = time(v.started.as_ref());
                events.push(if v.cached {
                    Event::Cached {
                        vertex: v.digest.clone(),
                        name: v.name.clone(),
                        at,
                    }
                } else {
                    Event::Started {
                        vertex: v.digest.clone(),
                        name: v.name.clone(),
                        at,
                    }
                });
            }
            // A cached vertex is done once it is shown as cached.
            if v.completed.is_some() && !seen.completed && !v.cached {
                seen.completed = true;
                if !v.error.is_empty() && !crate::progress::cancelled_error(&v.error) {
                    self.failed.push((v.digest.clone(), v.name.clone()));
                }
                events.push(Event::Completed {
                    vertex: v.digest.clone(),
                    at: time(v.completed.as_ref()),
                    error: (!v.error.is_empty()).then_some(v.error),
                });
            }
        }
        for s in resp.statuses {
            events.push(Event::Status {
                vertex: s.vertex,
                id: s.id,
                current: u64::try_from(s.current).unwrap_or(0),
                total: u64::try_from(s.total).ok().filter(|&t| t > 0),
                done: s.completed.is_some(),
                at: time(s.timestamp.as_ref()),
            });
        }
        for l in resp.logs {
            events.push(Event::Log {
                vertex: l.vertex,
                stream: if l.stream == 2 {
                    Stream::Stderr
                } else {
                    Stream::Stdout
                },
                data: l.msg,
                at: time(l.timestamp.as_ref()),
            });
        }
        for w in resp.warnings {
            events.push(Event::Warning {
                info: Some(Arc::new(warning_info(&w))),
                vertex: (!w.vertex.is_empty()).then_some(w.vertex),
                message: String::from_utf8_lossy(&w.short).into_owned(),
            });
        }
        events
    }

    pub(crate) fn forward(&mut self, resp: StatusResponse, sink: &ProgressSink) {
        for event in self.map(resp) {
            sink.emit(event);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bud_proto::control::{Vertex, VertexLog};

    fn ts(seconds: i64) -> Option<prost_types::Timestamp> {
        Some(prost_types::Timestamp { seconds, nanos: 0 })
    }

    #[test]
    fn vertices_start_and_complete_once() {
        let mut m = StatusMapper::default();
        let running = Vertex {
            digest: "sha256:a".into(),
            name: "RUN x".into(),
            started: ts(1),
            ..Default::default()
        };
        let first = m.map(StatusResponse {
            vertexes: vec![running.clone()],
            logs: vec![VertexLog {
                vertex: "sha256:a".into(),
                stream: 2,
                msg: b"oops\n".to_vec(),
                ..Default::default()
            }],
            ..Default::default()
        });
        assert!(matches!(&first[0], Event::Started { name, .. } if name == "RUN x"));
        assert!(matches!(
            &first[1],
            Event::Log {
                stream: Stream::Stderr,
                ..
            }
        ));
        let done = Vertex {
            completed: ts(2),
            error: "exit code 1".into(),
            ..running.clone()
        };
        let second = m.map(StatusResponse {
            vertexes: vec![running, done.clone()],
            ..Default::default()
        });
        assert_eq!(second.len(), 1);
        assert!(
            matches!(&second[0], Event::Completed { error: Some(e), .. } if e == "exit code 1")
        );
        assert!(
            m.map(StatusResponse {
                vertexes: vec![done],
                ..Default::default()
            })
            .is_empty()
        );
    }

    #[test]
    fn cached_vertices_are_reported_as_cached_only() {
        let mut m = StatusMapper::default();
        let events = m.map(StatusResponse {
            vertexes: vec![Vertex {
                digest: "sha256:b".into(),
                name: "COPY".into(),
                cached: true,
                started: ts(1),
                completed: ts(1),
                ..Default::default()
            }],
            ..Default::default()
        });
        assert_eq!(events.len(), 1);
        assert!(matches!(&events[0], Event::Cached { .. }));
    }
}
