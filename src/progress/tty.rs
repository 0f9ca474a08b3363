//! The live terminal view, as buildx draws it on stderr:
//!
//! ```text
//! [+] Building 3.2s (3/5)
//!  => [internal] load build definition from Dockerfile                   0.0s
//!  => CACHED [2/5] COPY go.mod .                                         0.0s
//!  => [3/5] RUN make                                                     1.2s
//!  => => # cc -o app main.c
//!  => [1/5] FROM docker.io/library/alpine                                0.9s
//!  => => resolve sha256:4bcff6… 3.20MB / 10.00MB                         0.5s
//! ```
//!
//! The whole frame is redrawn in place (cursor up, erase down) on each change, and ten
//! times a second while building so that the timers move. The last frame stays on screen,
//! followed by the output of failed steps and the warnings.

use std::collections::{HashMap, VecDeque};
use std::io::Write;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use super::plain::bytes;
use super::{Event, PlainRenderer, QuietRenderer, RawJsonRenderer, Renderer};
use super::{WarningInfo, failure_block, warnings};
use crate::cli::Progress;

/// Output lines of a running step shown under it.
const LIVE_LOG_LINES: usize = 6;
const REFRESH: Duration = Duration::from_millis(100);

/// Which renderer a build uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgressOutput {
    /// buildx's live view, redrawn in place ([`TtyRenderer`]).
    Tty,
    /// BuildKit's plain lines ([`PlainRenderer`]).
    Plain,
    /// One JSON `SolveStatus` per line ([`RawJsonRenderer`]).
    RawJson,
    /// Nothing but errors.
    Quiet,
}

impl ProgressOutput {
    /// `--progress` and `-q` to a renderer: auto means tty when stderr is a terminal.
    pub fn choose(mode: Progress, quiet: bool, stderr_is_term: bool) -> Self {
        if quiet {
            return ProgressOutput::Quiet;
        }
        match mode {
            Progress::Auto if stderr_is_term => ProgressOutput::Tty,
            Progress::Auto | Progress::Plain => ProgressOutput::Plain,
            // Asked for explicitly on a non-terminal, the frames still draw; buildx agrees.
            Progress::Tty => ProgressOutput::Tty,
            Progress::Rawjson => ProgressOutput::RawJson,
            Progress::Quiet => ProgressOutput::Quiet,
        }
    }
}

/// The renderer for `--progress=mode` (and `-q`), writing to stderr as buildx does, and
/// sending OpenTelemetry traces when the environment names an OTLP endpoint.
pub fn renderer_for(mode: Progress, quiet: bool) -> Box<dyn Renderer> {
    let term = console::Term::stderr();
    let shown: Box<dyn Renderer> = match ProgressOutput::choose(mode, quiet, term.is_term()) {
        ProgressOutput::Tty => Box::new(TtyRenderer::stderr()),
        ProgressOutput::Plain => Box::new(PlainRenderer::new(std::io::stderr())),
        ProgressOutput::RawJson => Box::new(RawJsonRenderer::new(std::io::stderr())),
        ProgressOutput::Quiet => Box::new(QuietRenderer),
    };
    super::otel::wrap_from_env(shown)
}

/// The live view. Drawn on each event; [`TtyRenderer::stderr`] also redraws on a timer.
pub struct TtyRenderer<W: Write + Send + 'static> {
    screen: Arc<Mutex<Screen<W>>>,
    ticker: Option<(mpsc::Sender<()>, JoinHandle<()>)>,
}

impl TtyRenderer<console::Term> {
    /// Draws on stderr at its current size, refreshing the timers ten times a second.
    pub fn stderr() -> Self {
        let term = console::Term::stderr();
        let (height, width) = term.size();
        let size = term.clone();
        let mut r = Self::new(term, usize::from(width), usize::from(height), Clock::Wall).sized_by(
            move || {
                size.size_checked()
                    .map(|(h, w)| (usize::from(w), usize::from(h)))
            },
        );
        r.start_ticker();
        r
    }
}

/// Where "now" comes from: the wall clock, or the time of the latest event (reproducible
/// frames for tests and replays).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Clock {
    /// The system's clock: running steps' times advance between events.
    Wall,
    /// The latest event's time: a frame depends on the events alone.
    Events,
}

impl<W: Write + Send + 'static> TtyRenderer<W> {
    /// A renderer drawing on `out`, a terminal of `width` columns and `height` rows.
    pub fn new(out: W, width: usize, height: usize, clock: Clock) -> Self {
        Self {
            screen: Arc::new(Mutex::new(Screen {
                out,
                width: width.max(20),
                height: height.max(3),
                clock,
                build: Build::default(),
                size: None,
                drawn: Vec::new(),
                finished: None,
            })),
            ticker: None,
        }
    }

    /// Reads the terminal's (width, height) before every frame, so that a resized
    /// terminal gets a frame that fits it. `None` keeps the last size.
    pub fn sized_by(self, size: impl FnMut() -> Option<(usize, usize)> + Send + 'static) -> Self {
        self.screen().size = Some(Box::new(size));
        self
    }

    fn start_ticker(&mut self) {
        let (stop, stopped) = mpsc::channel::<()>();
        let screen = Arc::clone(&self.screen);
        let handle = std::thread::spawn(move || {
            while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(REFRESH) {
                let mut s = screen.lock().unwrap_or_else(|p| p.into_inner());
                if s.build.started.is_some() && s.finished.is_none() {
                    s.draw();
                }
            }
        });
        self.ticker = Some((stop, handle));
    }

    fn stop_ticker(&mut self) {
        if let Some((stop, handle)) = self.ticker.take() {
            drop(stop);
            let _ = handle.join();
        }
    }

    fn screen(&self) -> std::sync::MutexGuard<'_, Screen<W>> {
        self.screen.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl<W: Write + Send + 'static> Renderer for TtyRenderer<W> {
    fn event(&mut self, event: &Event) {
        let mut s = self.screen();
        s.build.apply(event);
        // With a ticker, frames come from it: a chatty step must not redraw per chunk.
        if self.ticker.is_none() {
            s.draw();
        }
    }

    fn finish(&mut self, ok: bool) {
        self.stop_ticker();
        let mut s = self.screen();
        if s.finished.is_some() {
            return;
        }
        s.finished = Some(ok);
        s.draw();
        s.epilogue();
    }
}

impl<W: Write + Send + 'static> Drop for TtyRenderer<W> {
    fn drop(&mut self) {
        self.stop_ticker();
    }
}

#[derive(Default)]
struct Build {
    order: Vec<String>,
    vertices: HashMap<String, Vertex>,
    started: Option<SystemTime>,
    last_event: Option<SystemTime>,
    warnings: Vec<(String, Option<Arc<WarningInfo>>)>,
}

#[derive(Default)]
struct Vertex {
    name: String,
    started: Option<SystemTime>,
    completed: Option<SystemTime>,
    cached: bool,
    error: Option<String>,
    /// Why it ran rather than came from the cache.
    reason: Option<String>,
    logs: VecDeque<String>,
    partial: Vec<u8>,
    statuses: Vec<Status>,
}

struct Status {
    id: String,
    current: u64,
    total: Option<u64>,
    started: SystemTime,
    completed: Option<SystemTime>,
}

impl Build {
    fn vertex(&mut self, id: &str) -> &mut Vertex {
        if !self.vertices.contains_key(id) {
            self.order.push(id.to_string());
        }
        self.vertices.entry(id.to_string()).or_default()
    }

    fn apply(&mut self, event: &Event) {
        let at = match event {
            Event::Started { at, .. }
            | Event::Cached { at, .. }
            | Event::Completed { at, .. }
            | Event::Log { at, .. }
            | Event::Status { at, .. } => Some(*at),
            Event::Warning { .. } | Event::Reason { .. } => None,
        };
        if let Some(at) = at {
            self.started.get_or_insert(at);
            self.last_event = Some(self.last_event.map_or(at, |l| l.max(at)));
        }
        match event {
            Event::Started { vertex, name, at } => {
                let v = self.vertex(vertex);
                v.name.clone_from(name);
                v.started = Some(*at);
                v.completed = None;
            }
            Event::Cached { vertex, name, at } => {
                let v = self.vertex(vertex);
                v.name.clone_from(name);
                v.cached = true;
                v.started.get_or_insert(*at);
                v.completed = Some(*at);
            }
            Event::Completed { vertex, at, error } => {
                let v = self.vertex(vertex);
                v.started.get_or_insert(*at);
                v.completed = Some(*at);
                v.error.clone_from(error);
                if !v.partial.is_empty() {
                    let line = std::mem::take(&mut v.partial);
                    v.push_log(&line);
                }
            }
            Event::Reason { vertex, reason } => {
                self.vertex(vertex).reason = Some(reason.clone());
            }
            Event::Log { vertex, data, .. } => {
                let v = self.vertex(vertex);
                v.partial.extend_from_slice(data);
                while let Some(i) = v.partial.iter().position(|b| *b == b'\n') {
                    let line: Vec<u8> = v.partial.drain(..=i).collect();
                    v.push_log(&line[..i]);
                }
            }
            Event::Status {
                vertex,
                id,
                current,
                total,
                done,
                at,
            } => {
                let v = self.vertex(vertex);
                let pos = match v.statuses.iter().position(|s| s.id == *id) {
                    Some(pos) => pos,
                    None => {
                        v.statuses.push(Status {
                            id: id.clone(),
                            current: 0,
                            total: None,
                            started: *at,
                            completed: None,
                        });
                        v.statuses.len() - 1
                    }
                };
                let s = &mut v.statuses[pos];
                s.current = *current;
                s.total = *total;
                s.completed = done.then_some(*at);
            }
            Event::Warning { message, info, .. } => {
                self.warnings.push((message.clone(), info.clone()));
            }
        }
    }
}

impl Vertex {
    fn push_log(&mut self, raw: &[u8]) {
        failure_block::keep(&mut self.logs, printable(raw));
    }

    fn running(&self) -> bool {
        self.started.is_some() && self.completed.is_none()
    }

    fn elapsed(&self, now: SystemTime) -> Duration {
        let Some(started) = self.started else {
            return Duration::ZERO;
        };
        if self.cached {
            return Duration::ZERO;
        }
        self.completed
            .unwrap_or(now)
            .duration_since(started)
            .unwrap_or_default()
    }
}

/// A log line as it can be shown in one row: escape sequences and control characters out,
/// and of a line redrawn with `\r` (a progress bar) only its last state.
fn printable(raw: &[u8]) -> String {
    let text = String::from_utf8_lossy(raw);
    let text = console::strip_ansi_codes(&text);
    let last = text.rsplit('\r').find(|s| !s.is_empty()).unwrap_or("");
    last.chars()
        .map(|c| if c == '\t' { ' ' } else { c })
        .filter(|c| !c.is_control())
        .collect()
}

struct Screen<W> {
    out: W,
    width: usize,
    height: usize,
    clock: Clock,
    build: Build,
    /// Where the terminal's current size comes from.
    size: Option<SizeSource>,
    /// The width of each row of the frame on screen, to move back over when redrawing.
    drawn: Vec<usize>,
    finished: Option<bool>,
}

type SizeSource = Box<dyn FnMut() -> Option<(usize, usize)> + Send>;

impl<W: Write> Screen<W> {
    fn now(&self) -> SystemTime {
        match self.clock {
            Clock::Wall if self.finished.is_none() => SystemTime::now(),
            // A finished build's clock stops at its last event.
            _ => self.build.last_event.unwrap_or(SystemTime::UNIX_EPOCH),
        }
    }

    fn frame(&self) -> Vec<String> {
        let now = self.now();
        let b = &self.build;
        let done = b
            .vertices
            .values()
            .filter(|v| v.completed.is_some())
            .count();
        let elapsed = b
            .started
            .and_then(|s| now.duration_since(s).ok())
            .unwrap_or_default();
        let state = match self.finished {
            Some(true) => " FINISHED",
            Some(false) => " ERROR",
            None => "",
        };
        let header = format!(
            "[+] Building {:.1}s ({done}/{}){state}",
            elapsed.as_secs_f64(),
            b.order.len()
        );
        let mut rows: Vec<(bool, String)> = vec![(false, fit(&header, self.width))];
        for id in &b.order {
            let Some(v) = b.vertices.get(id) else {
                continue;
            };
            let prefix = if v.cached {
                "CACHED "
            } else if let Some(e) = &v.error {
                if failure_block::cancelled(e) {
                    "CANCELED "
                } else {
                    "ERROR "
                }
            } else {
                ""
            };
            // Why a step ran shows once it is done, when its output is gone from the frame.
            let reason = match (&v.reason, v.completed) {
                (Some(r), Some(_)) => format!(" ({r})"),
                _ => String::new(),
            };
            let line = self.timed(&format!(" => {prefix}{}{reason}", v.name), v.elapsed(now));
            // Finished steps may scroll away when the frame is taller than the terminal.
            rows.push((v.completed.is_some(), line));
            for s in &v.statuses {
                let time = s
                    .completed
                    .unwrap_or(now)
                    .duration_since(s.started)
                    .unwrap_or_default();
                rows.push((v.completed.is_some(), self.timed(&status_text(s), time)));
            }
            if v.running() && self.finished.is_none() {
                let mut tail: Vec<String> = v.logs.iter().cloned().collect();
                if !v.partial.is_empty() {
                    tail.push(printable(&v.partial));
                }
                let skip = tail.len().saturating_sub(LIVE_LOG_LINES);
                for line in &tail[skip..] {
                    rows.push((false, fit(&format!(" => => # {line}"), self.width)));
                }
            }
        }
        if self.finished.is_none() {
            let mut extra = rows.len().saturating_sub(self.height - 1);
            rows.retain(|(scrollable, _)| {
                let drop = extra > 0 && *scrollable;
                extra -= usize::from(drop);
                !drop
            });
        }
        rows.into_iter().map(|(_, r)| r).collect()
    }

    /// `text` with `time` at the right edge, truncated so that both fit.
    fn timed(&self, text: &str, time: Duration) -> String {
        let time = format!("{:.1}s", time.as_secs_f64());
        let room = self.width.saturating_sub(time.len() + 1);
        let text = console::truncate_str(text, room, "");
        let pad = room - console::measure_text_width(&text) + 1;
        format!("{text}{}{time}", " ".repeat(pad))
    }

    fn draw(&mut self) {
        if let Some((width, height)) = self.size.as_mut().and_then(|size| size()) {
            self.width = width.max(20);
            self.height = height.max(3);
        }
        let frame = self.frame();
        let mut buf = Vec::new();
        // The frame on screen, in terminal lines: after the terminal narrowed, a row drawn
        // for the old width takes several (terminals rewrap long lines when resized).
        let on_screen: usize = self
            .drawn
            .iter()
            .map(|w| w.div_ceil(self.width).max(1))
            .sum();
        if on_screen > 0 {
            // Back to the frame's first row, then erase everything below.
            let _ = write!(buf, "\r\x1b[{on_screen}A\x1b[J");
        }
        for row in &frame {
            buf.extend_from_slice(row.as_bytes());
            buf.push(b'\n');
        }
        self.drawn = frame
            .iter()
            .map(|r| console::measure_text_width(r))
            .collect();
        // Writing progress must never fail a build: a closed stderr only loses the display.
        let _ = self.out.write_all(&buf);
        let _ = self.out.flush();
    }

    /// After the last frame: the output of failed steps, then the warnings.
    fn epilogue(&mut self) {
        let mut text = String::new();
        for id in &self.build.order {
            let Some(v) = self.build.vertices.get(id) else {
                continue;
            };
            if v.error.as_deref().is_some_and(failure_block::shown_for) {
                text.push_str(&failure_block::render(&v.name, &v.logs));
            }
        }
        let listed: Vec<(String, Option<&WarningInfo>)> = self
            .build
            .warnings
            .iter()
            .map(|(m, i)| (m.clone(), i.as_deref()))
            .collect();
        text.push_str(&warnings::summary(&listed, warnings::expanded()));
        let _ = self.out.write_all(text.as_bytes());
        let _ = self.out.flush();
    }
}

fn status_text(s: &Status) -> String {
    let progress = match s.total {
        Some(total) => format!(" {} / {}", bytes(s.current), bytes(total)),
        None if s.current > 0 => format!(" {}", bytes(s.current)),
        None => String::new(),
    };
    format!(" => => {}{progress}", s.id)
}

fn fit(text: &str, width: usize) -> String {
    console::truncate_str(text, width, "").into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_is_tty_only_on_a_terminal() {
        use ProgressOutput as O;
        assert_eq!(O::choose(Progress::Auto, false, true), O::Tty);
        assert_eq!(O::choose(Progress::Auto, false, false), O::Plain);
        assert_eq!(O::choose(Progress::Tty, false, false), O::Tty);
        assert_eq!(O::choose(Progress::Rawjson, false, true), O::RawJson);
        assert_eq!(O::choose(Progress::Plain, true, true), O::Quiet);
        assert_eq!(O::choose(Progress::Quiet, false, true), O::Quiet);
    }

    #[test]
    fn why_a_step_ran_shows_beside_it_once_done() {
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let frame_with = |events: &[Event]| {
            let mut screen = Screen {
                out: Vec::new(),
                width: 80,
                height: 20,
                clock: Clock::Events,
                build: Build::default(),
                size: None,
                drawn: Vec::new(),
                finished: None,
            };
            for e in events {
                screen.build.apply(e);
            }
            screen.frame().join("\n")
        };
        let started = Event::Started {
            vertex: "a".into(),
            name: "[2/3] RUN make".into(),
            at,
        };
        let reason = Event::Reason {
            vertex: "a".into(),
            reason: "new step".into(),
        };
        let done = Event::Completed {
            vertex: "a".into(),
            at: at + Duration::from_millis(1200),
            error: None,
        };
        let running = frame_with(&[started.clone(), reason.clone()]);
        assert!(!running.contains("new step"), "{running}");
        let finished = frame_with(&[started, reason, done]);
        assert!(
            finished.contains(" => [2/3] RUN make (new step) "),
            "{finished}"
        );
    }

    #[test]
    fn log_lines_are_made_printable() {
        assert_eq!(printable(b"\x1b[31mred\x1b[0m\tx"), "red x");
        assert_eq!(printable(b"10%\r50%\r100%"), "100%");
        assert_eq!(printable(b"a\x07b"), "ab");
    }
}
