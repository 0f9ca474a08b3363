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
    /// The step's standard output.
    Stdout = 1,
    /// The step's standard error.
    Stderr = 2,
}

/// One thing that happened in a build, as BuildKit's `SolveStatus` reports it: a vertex is
/// one step of the graph, named by its id in every event about it.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A vertex began: `name` is its description (`[stage 2/5] RUN …`).
    Started {
        /// The vertex's id: its LLB op digest, or a name of bud's own for steps outside the
        /// graph (`exporting to image`…).
        vertex: String,
        /// The line a user sees for it.
        name: String,
        /// When it began.
        at: SystemTime,
    },
    /// A vertex was found in the cache and did not run.
    Cached {
        /// The vertex's id, as in [`Event::Started`].
        vertex: String,
        /// The line a user sees for it.
        name: String,
        /// When it was found.
        at: SystemTime,
    },
    /// Why a vertex that just started was not found in the cache, in one short phrase
    /// (the embedded solver only: BuildKit does not say).
    Reason {
        /// The vertex's id, as in [`Event::Started`].
        vertex: String,
        /// The phrase (`build arg VERSION changed`).
        reason: String,
    },
    /// A vertex finished, successfully or with `error`.
    Completed {
        /// The vertex's id, as in [`Event::Started`].
        vertex: String,
        /// When it finished.
        at: SystemTime,
        /// The failure as one message (its causes included), `None` on success.
        error: Option<String>,
    },
    /// Output of a running vertex.
    Log {
        /// The vertex's id, as in [`Event::Started`].
        vertex: String,
        /// Which output the bytes came from.
        stream: Stream,
        /// The bytes as read, not split into lines.
        data: Vec<u8>,
        /// When they were read.
        at: SystemTime,
    },
    /// A sub-task of a vertex with a counter (pulling a layer, sending a context).
    Status {
        /// The vertex's id, as in [`Event::Started`].
        vertex: String,
        /// The sub-task's name, shown as its line (`sha256:… 1.2MB / 3.4MB`).
        id: String,
        /// Progress so far, in the sub-task's unit (bytes for transfers).
        current: u64,
        /// The whole amount when known.
        total: Option<u64>,
        /// The sub-task is over; later events for it are not expected.
        done: bool,
        /// When this was reported.
        at: SystemTime,
    },
    /// A warning about the build (for example a deprecated Dockerfile form): `message` is
    /// its one line (BuildKit's `short`), `info` what BuildKit attaches to it.
    Warning {
        /// The vertex it is about; `None` for the build as a whole.
        vertex: Option<String>,
        /// The one line shown.
        message: String,
        /// Detail, URL and source range, when the warning has them.
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
    /// The file's name as the build names it (`Dockerfile`).
    pub filename: String,
    /// The whole file, to print the lines from.
    pub data: Arc<str>,
    /// `(first, last)` line of each range, both included.
    pub lines: Vec<(usize, usize)>,
}

/// Something that shows progress. Renderers keep their own state; they are called from
/// whichever task reports, so they must not block for long.
pub trait Renderer: Send {
    /// Shows (or records) one event; called in the order the events happened.
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
    /// A sink reporting to `renderer`.
    pub fn new(renderer: Box<dyn Renderer>) -> Self {
        Self {
            renderer: Arc::new(Mutex::new(renderer)),
        }
    }

    /// A sink that shows nothing.
    pub fn quiet() -> Self {
        Self::new(Box::new(QuietRenderer))
    }

    /// Hands `event` to the renderer; the helpers below make the common ones, stamped now.
    pub fn emit(&self, event: Event) {
        // A renderer that panicked has already shown what it could; keep building.
        let mut r = self.renderer.lock().unwrap_or_else(|p| p.into_inner());
        r.event(&event);
    }

    /// [`Event::Started`].
    pub fn started(&self, vertex: &str, name: &str) {
        self.emit(Event::Started {
            vertex: vertex.to_string(),
            name: name.to_string(),
            at: SystemTime::now(),
        });
    }

    /// [`Event::Cached`].
    pub fn cached(&self, vertex: &str, name: &str) {
        self.emit(Event::Cached {
            vertex: vertex.to_string(),
            name: name.to_string(),
            at: SystemTime::now(),
        });
    }

    /// [`Event::Reason`].
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

    /// [`Event::Completed`].
    pub fn completed(&self, vertex: &str, error: Option<String>) {
        self.emit(Event::Completed {
            vertex: vertex.to_string(),
            at: SystemTime::now(),
            error,
        });
    }

    /// [`Event::Log`].
    pub fn log(&self, vertex: &str, stream: Stream, data: &[u8]) {
        self.emit(Event::Log {
            vertex: vertex.to_string(),
            stream,
            data: data.to_vec(),
            at: SystemTime::now(),
        });
    }

    /// A plain [`Event::Warning`], without detail or source.
    pub fn warning(&self, vertex: Option<&str>, message: impl Into<String>) {
        self.emit(Event::Warning {
            vertex: vertex.map(str::to_string),
            message: message.into(),
            info: None,
        });
    }

    /// Ends the output: [`Renderer::finish`].
    pub fn finish(&self, ok: bool) {
        let mut r = self.renderer.lock().unwrap_or_else(|p| p.into_inner());
        r.finish(ok);
    }
}

/// A renderer that records events, for tests.
#[derive(Clone, Default)]
pub struct RecordingRenderer {
    /// Every event so far, in order; shared by the clones.
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
