//! MergeOp (`COPY --link`): the inputs' layers stacked in order. The first input's chain is
//! used as it is; every layer of the others is cloned with hard links onto the growing
//! chain, so a linked layer keeps its bytes (and diff ID) whatever it lands on.

use bud_proto::pb;

use crate::cache::meta::SnapshotKind;

use super::key::output_key;
use super::snapshots::Ref;
use super::{SolveError, Solver, graph::Vertex};

pub(super) async fn run(
    solver: &Solver,
    vertex: &Vertex,
    merge: &pb::MergeOp,
    inputs: &[Ref],
    key: &str,
) -> Result<Vec<Ref>, SolveError> {
    let refs = merge
        .inputs
        .iter()
        .map(|m| match m.input {
            i if i < 0 => Ok(Ref::Scratch),
            i => inputs
                .get(i as usize)
                .cloned()
                .ok_or_else(|| SolveError::InvalidDefinition(format!("merge input {i}"))),
        })
        .collect::<Result<Vec<_>, _>>()?;
    let snapshots = solver.snapshots.clone();
    let merge_key = key.to_string();
    let name = vertex.name.clone();
    let top = tokio::task::spawn_blocking(move || -> Result<Ref, SolveError> {
        let mut top = Ref::Scratch;
        let mut stacked = 0;
        for r in refs {
            let rec = match r {
                Ref::Scratch => continue,
                Ref::Context(_) => {
                    return Err(SolveError::Unsupported("merging a local context".into()));
                }
                Ref::Snapshot(rec) => rec,
                Ref::Lazy(_) => return Err(SolveError::NotBroughtIn),
            };
            if matches!(top, Ref::Scratch) {
                top = Ref::Snapshot(rec);
                continue;
            }
            for layer in snapshots.chain_bottom_up(&rec.id)? {
                stacked += 1;
                let ws = snapshots.workspace()?;
                crate::snapshot::clone::hardlink_tree(
                    &snapshots.layer_dir(&layer.id),
                    &ws.upper(),
                )?;
                top = snapshots.commit(
                    ws,
                    &top,
                    SnapshotKind::Layer,
                    &format!("{merge_key}/merge/{stacked}"),
                    &format!("{name} (layer {stacked})"),
                )?;
                if let (Some(diff_id), Some(id)) = (&layer.diff_id, top.snapshot_id()) {
                    snapshots.meta.set_diff_id(id, diff_id, layer.tar_format)?;
                }
            }
        }
        Ok(top)
    })
    .await
    .map_err(SolveError::failed("merge"))??;
    // The result is an existing snapshot: record it under the op's output key too.
    if let Some(id) = top.snapshot_id() {
        solver.snapshots.meta.alias(&output_key(key, 0), id)?;
    }
    Ok(vec![top])
}
