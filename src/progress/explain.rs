//! `--explain`: the steps that ran and why, gathered from the progress events and printed
//! once the build's progress has ended.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::{Event, Renderer};

/// Passes every event on to the renderer it wraps, keeping the reasons for [`Explained`].
pub struct ExplainRenderer {
    inner: Box<dyn Renderer>,
    explained: Explained,
}

/// The steps that ran, in the order they started, with why.
#[derive(Clone, Default)]
pub struct Explained {
    inner: Arc<Mutex<Gathered>>,
}

#[derive(Default)]
struct Gathered {
    names: HashMap<String, String>,
    ran: Vec<(String, String)>,
    cached: usize,
}

impl ExplainRenderer {
    /// Wraps `inner`; the [`Explained`] returned fills as the events pass.
    pub fn new(inner: Box<dyn Renderer>) -> (Self, Explained) {
        let explained = Explained::default();
        let renderer = Self {
            inner,
            explained: explained.clone(),
        };
        (renderer, explained)
    }
}

impl Renderer for ExplainRenderer {
    fn event(&mut self, event: &Event) {
        {
            let mut g = self.explained.lock();
            match event {
                Event::Started { vertex, name, .. } => {
                    g.names.insert(vertex.clone(), name.clone());
                }
                Event::Cached { .. } => g.cached += 1,
                Event::Reason { vertex, reason } => {
                    let name = g.names.get(vertex).cloned().unwrap_or_default();
                    g.ran.push((name, reason.clone()));
                }
                _ => {}
            }
        }
        self.inner.event(event);
    }

    fn finish(&mut self, ok: bool) {
        self.inner.finish(ok);
    }
}

impl Explained {
    fn lock(&self) -> std::sync::MutexGuard<'_, Gathered> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The summary: a heading, then one line per step that ran.
    pub fn summary(&self) -> String {
        let g = self.lock();
        if g.ran.is_empty() {
            return format!("Why steps ran: none ran ({} from the cache)\n", g.cached);
        }
        let mut text = String::from("Why steps ran:\n");
        for (name, reason) in &g.ran {
            text.push_str(&format!(" => {name}: {reason}\n"));
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::progress::QuietRenderer;
    use std::time::SystemTime;

    #[test]
    fn one_line_per_step_that_ran() {
        let (mut r, explained) = ExplainRenderer::new(Box::new(QuietRenderer));
        assert_eq!(
            explained.summary(),
            "Why steps ran: none ran (0 from the cache)\n"
        );
        let at = SystemTime::UNIX_EPOCH;
        r.event(&Event::Cached {
            vertex: "a".into(),
            name: "[1/3] COPY . /".into(),
            at,
        });
        r.event(&Event::Started {
            vertex: "b".into(),
            name: "[2/3] RUN make".into(),
            at,
        });
        r.event(&Event::Reason {
            vertex: "b".into(),
            reason: "new step".into(),
        });
        r.finish(true);
        assert_eq!(
            explained.summary(),
            "Why steps ran:\n => [2/3] RUN make: new step\n"
        );
    }
}
