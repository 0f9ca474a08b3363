//! Build progress: the solvers report events through a [`ProgressSink`]; a renderer at the
//! edge turns them into BuildKit's plain lines, rawjson, or nothing. The events are shaped
//! like BuildKit's `SolveStatus`, so the remote solver's Status stream maps onto them.

mod explain;
mod failure_block;
mod otel;
mod plain;
mod rawjson;
pub mod step_logs;
mod trace;
mod tty;
mod warnings;

use std::sync::{Arc, Mutex};
use std::time::SystemTime;

pub use explain::{ExplainRenderer, Explained};
pub use failure_block::cancelled as cancelled_error;
pub use otel::{OtelRenderer, OtlpConfig};
pub use plain::PlainRenderer;
pub use rawjson::RawJsonRenderer;
pub use trace::TraceRenderer;
pub use tty::{Clock, ProgressOutput, TtyRenderer, renderer_for};
pub use warnings::{source_excerpt, source_excerpt_of};

/// Which output a log chunk came from (BuildKit numbers them 1 and 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout = 1,
    Stderr = 2,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A vertex began: `name` is its description (`[stage 2/5] RUN …`).
    Started {
        vertex: String,
        name: String,
        at: SystemTime,
    },
    /// A vertex was found in the cache and did not run.
    Cached {
        vertex: String,
        name: String,
        at: SystemTime,
    },
    /// Why a vertex that just started was not found in the cache, in one short phrase
    /// (the embedded solver only: BuildKit does not say).
    Reason { vertex: String, reason: String },
    /// A vertex finished, successfully or with `error`.
    Completed {
        vertex: String,
        at: SystemTime,
        error: Option<String>,
    },
    /// Output of a running vertex.
    Log {
        vertex: String,
        stream: Stream,
        data: Vec<u8>,
        at: SystemTime,
    },
    /// A sub-task of a vertex with a counter (pulling a layer, sending a context).
    Status {
        vertex: String,
        id: String,
        current: u64,
        total: Option<u64>,
        done: bool,
        at: SystemTime,
    },
    /// A warning about the build (for example a deprecated Dockerfile form): `message` is
    /// its one line (BuildKit's `short`), `info` what BuildKit attaches to it.
    Warning {
        vertex: Option<String>,
        message: String,
        info: Option<Arc<WarningInfo>>,
    },
}

/// What a BuildKit `VertexWarning` carries besides its line: shown by rawjson, and by the
/// summary at the end with `--debug`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct WarningInfo {
    /// Longer explanations, one per line.
    pub detail: Vec<String>,
    /// Documentation.
    pub url: String,
    /// The file the warning is about and its places in it.
    pub source: Option<WarningSource>,
}

/// A file and the 1-based line ranges a warning points at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WarningSource {
    pub filename: String,
    pub data: Arc<str>,
    pub lines: Vec<(usize, usize)>,
}

/// Something that shows progress. Renderers keep their own state; they are called from
/// whichever task reports, so they must not block for long.
pub trait Renderer: Send {
    fn event(&mut self, event: &Event);
    /// Called once at the end, with whether the build succeeded.
    fn finish(&mut self, ok: bool);
}

/// A renderer that shows nothing (`--progress=quiet`, `-q`).
pub struct QuietRenderer;

impl Renderer for QuietRenderer {
    fn event(&mut self, _: &Event) {}
    fn finish(&mut self, _: bool) {}
}

/// The handle the solvers report through; cheap to clone and share between tasks.
#[derive(Clone)]
pub struct ProgressSink {
    renderer: Arc<Mutex<Box<dyn Renderer>>>,
}

impl ProgressSink {
    pub fn new(renderer: Box<dyn Renderer>) -> Self {
        Self {
            renderer: Arc::new(Mutex::new(renderer)),
        }
    }

    pub fn quiet() -> Self {
        Self::new(Box::new(QuietRenderer))
    }

    pub fn emit(&self, event: Event) {
        // A renderer that panicked has already shown what it could; keep building.
        let mut r = self.renderer.lock().unwrap_or_else(|p| p.into_inner());
        r.event(&event);
    }

    pub fn started(&self, vertex: &str, name: &str) {
        self.emit(Event::Started {
            vertex: vertex.to_string(),
            name: name.to_string(),
            at: SystemTime::now(),
        });
    }

    pub fn cached(&self, vertex: &str, name: &str) {
        self.emit(Event::Cached {
            vertex: vertex.to_string(),
            name: name.to_string(),
            at: SystemTime::now(),
        });
    }

    pub fn reason(&self, vertex: &str, reason: String) {
        self.emit(Event::Reason {
            vertex: vertex.to_string(),
            reason,
        });
    }

    /// A finished sub-task of a vertex, such as `writing image sha256:…`.
    pub fn done(&self, vertex: &str, what: &str) {
        self.emit(Event::Status {
            vertex: vertex.to_string(),
            id: what.to_string(),
            current: 0,
            total: None,
            done: true,
            at: SystemTime::now(),
        });
    }

    pub fn completed(&self, vertex: &str, error: Option<String>) {
        self.emit(Event::Completed {
            vertex: vertex.to_string(),
            at: SystemTime::now(),
            error,
        });
    }

    pub fn log(&self, vertex: &str, stream: Stream, data: &[u8]) {
        self.emit(Event::Log {
            vertex: vertex.to_string(),
            stream,
            data: data.to_vec(),
            at: SystemTime::now(),
        });
    }

    pub fn warning(&self, vertex: Option<&str>, message: impl Into<String>) {
        self.emit(Event::Warning {
            vertex: vertex.map(str::to_string),
            message: message.into(),
            info: None,
        });
    }

    pub fn finish(&self, ok: bool) {
        let mut r = self.renderer.lock().unwrap_or_else(|p| p.into_inner());
        r.finish(ok);
    }
}

/// A renderer that records events, for tests.
#[derive(Clone, Default)]
pub struct RecordingRenderer {
    pub events: Arc<Mutex<Vec<Event>>>,
}

impl Renderer for RecordingRenderer {
    fn event(&mut self, event: &Event) {
        self.events
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(event.clone());
    }
    fn finish(&mut self, _: bool) {}
}
