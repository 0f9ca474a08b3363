//! Results an imported cache (`--cache-from`) holds and the build has not brought in yet, as
//! BuildKit's lazy refs: a hit costs nothing until something needs the files (a step that
//! runs on the result, an output that needs its content). A push, and a cache export, need
//! only the blobs, which they mount or copy from the cache without unpacking them.
//!
//! A result that cannot be brought in when needed (a blob missing or corrupt) is made by
//! running its step after all, with a warning saying which and why.

use std::sync::{Arc, Weak};

use futures_util::future::BoxFuture;

use crate::content::{ContentStore, Digest};
use crate::registry::LazyBlob;

use super::snapshots::{View, Workspace};
use super::{Ref, Snapshots, SolveError, Solver};

/// One layer of an imported result, as the cache describes it.
#[derive(Debug, Clone)]
pub struct ImportedLayer {
    /// Its compressed blob in the cache, and where to fetch it.
    pub blob: LazyBlob,
    /// The digest of the uncompressed tar, when the cache names it.
    pub diff_id: Option<Digest>,
    /// The time the layer's snapshot gets, as an eager import gives it.
    pub created: i64,
}

/// A result an imported cache holds.
pub trait ImportedResult: Send + Sync {
    /// Its layers, bottom first.
    fn layers(&self) -> &[ImportedLayer];
    /// Brings it into the state root: the layers it lacks downloaded, verified, extracted.
    fn bring_in<'a>(&'a self, snapshots: &'a Arc<Snapshots>) -> BoxFuture<'a, anyhow::Result<Ref>>;
    /// Its top layer's files alone, extracted into a workspace that is never committed (the
    /// layers below are left out): for a copy that reads only files that layer holds.
    fn top_layer<'a>(
        &'a self,
        snapshots: &'a Arc<Snapshots>,
    ) -> BoxFuture<'a, anyhow::Result<Workspace>>;
    /// Records that the cache's repository holds its blobs and that they are its layers
    /// compressed, so that a push to that registry mounts them.
    fn remember_blobs(&self, content: &ContentStore);
    /// For messages: the cache it comes from.
    fn cache(&self) -> String;
}

/// Runs the step whose cached outputs could not be brought in.
pub(super) type Rerun =
    Box<dyn Fn(Arc<Solver>) -> BoxFuture<'static, Result<Vec<Ref>, SolveError>> + Send + Sync>;

/// The outputs of one op that hit an imported cache, brought in together the first time one
/// of them is needed.
pub struct LazyVertex {
    step: String,
    outputs: Vec<Arc<dyn ImportedResult>>,
    solver: Weak<Solver>,
    rerun: Rerun,
    brought: tokio::sync::OnceCell<Vec<Ref>>,
    /// Each output's top layer alone, once extracted (None: it could not be).
    tops: Vec<tokio::sync::OnceCell<Option<Arc<View>>>>,
}

/// Output `index` of a [`LazyVertex`].
#[derive(Clone)]
pub struct LazyRef {
    vertex: Arc<LazyVertex>,
    index: usize,
}

impl std::fmt::Debug for LazyRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LazyRef({} #{})", self.vertex.step, self.index)
    }
}

impl LazyVertex {
    pub(super) fn refs(
        step: String,
        outputs: Vec<Arc<dyn ImportedResult>>,
        solver: Weak<Solver>,
        rerun: Rerun,
    ) -> Vec<Ref> {
        let count = outputs.len();
        let vertex = Arc::new(LazyVertex {
            step,
            outputs,
            solver,
            rerun,
            brought: tokio::sync::OnceCell::new(),
            tops: (0..count).map(|_| tokio::sync::OnceCell::new()).collect(),
        });
        (0..count)
            .map(|index| {
                Ref::Lazy(LazyRef {
                    vertex: vertex.clone(),
                    index,
                })
            })
            .collect()
    }

    async fn bring_in(&self) -> Result<&Vec<Ref>, SolveError> {
        self.brought
            .get_or_try_init(|| async {
                let solver = self.solver.upgrade().ok_or(SolveError::Cancelled)?;
                let mut refs = Vec::with_capacity(self.outputs.len());
                for output in &self.outputs {
                    match output.bring_in(&solver.snapshots).await {
                        Ok(r) => refs.push(r),
                        Err(e) => {
                            solver.progress.warning(
                                None,
                                format!(
                                    "cache from {}: the cached result of {} could not be \
                                     brought in, the step runs: {}",
                                    output.cache(),
                                    self.step,
                                    crate::error_chain::error_chain(e.as_ref())
                                ),
                            );
                            return (self.rerun)(solver.clone()).await;
                        }
                    }
                }
                Ok(refs)
            })
            .await
    }
}

impl LazyRef {
    /// The result, brought in (or made by running its step) the first time it is asked for.
    pub async fn bring_in(&self) -> Result<Ref, SolveError> {
        let refs = self.vertex.bring_in().await?;
        refs.get(self.index)
            .cloned()
            .ok_or_else(|| SolveError::InvalidDefinition("imported output out of range".into()))
    }

    /// The top layer of the result alone, extracted the first time it is asked for (and
    /// kept for the build); None when it could not be.
    pub async fn top_layer(&self, snapshots: &Arc<Snapshots>) -> Option<Arc<View>> {
        let top = self.vertex.tops.get(self.index)?;
        top.get_or_init(|| async {
            match self.imported().top_layer(snapshots).await {
                Ok(ws) => Some(Arc::new(View::holding(ws))),
                Err(e) => {
                    tracing::debug!(
                        "the top layer of {self:?}: {}",
                        crate::error_chain::error_chain(e.as_ref())
                    );
                    None
                }
            }
        })
        .await
        .clone()
    }

    /// The result as the cache describes it.
    pub fn imported(&self) -> &dyn ImportedResult {
        &*self.vertex.outputs[self.index]
    }

    /// Already brought in (or made): the result itself.
    pub fn brought(&self) -> Option<Ref> {
        self.vertex.brought.get()?.get(self.index).cloned()
    }
}
