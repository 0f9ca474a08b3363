//! `bud du`: the build cache's records (snapshots, cache mounts and content-store blobs),
//! their sizes and whether they can be reclaimed.

use std::io::Write;

use super::format::{human_age, human_size, table, utc_time};
use super::{CommandError, open_meta};
use crate::cache::meta::{self, SnapshotKind};
use crate::cli::DuOptions;
use crate::gc::{self, RecordFilter, UsageRecord};
use crate::state::StateRoot;

/// Writes the records `opts.filters` selects, largest first, as a table (or one block per
/// record with `--verbose`), then the reclaimable and total sizes.
pub fn run(state: &StateRoot, opts: &DuOptions, out: &mut impl Write) -> Result<(), CommandError> {
    let filter = RecordFilter::parse(&opts.filters).map_err(CommandError::Usage)?;
    let meta = open_meta(state)?;
    let now = meta::now();
    let mut records: Vec<UsageRecord> = gc::usage(state, &meta)?
        .into_iter()
        .filter(|u| filter.matches(&u.record, now))
        .collect();
    records.sort_by(|a, b| {
        b.record
            .size
            .cmp(&a.record.size)
            .then_with(|| a.record.id.cmp(&b.record.id))
    });
    if opts.verbose {
        write_verbose(out, &records, now)?;
    } else {
        write_table(out, &records, now)?;
    }
    // Totals of a filtered listing would read as totals of the cache (as buildctl, omitted).
    if filter.is_empty() {
        let total: u64 = records.iter().map(|u| u.record.size).sum();
        let reclaimable: u64 = records
            .iter()
            .filter(|u| u.reclaimable())
            .map(|u| u.record.size)
            .sum();
        out.write_all(
            table(&[
                vec!["Reclaimable:".into(), human_size(reclaimable)],
                vec!["Total:".into(), human_size(total)],
            ])
            .as_bytes(),
        )?;
    }
    Ok(())
}

fn write_table(
    out: &mut impl Write,
    records: &[UsageRecord],
    now: i64,
) -> Result<(), CommandError> {
    let mut rows = vec![vec![
        "ID".to_string(),
        "RECLAIMABLE".to_string(),
        "SIZE".to_string(),
        "LAST ACCESSED".to_string(),
    ]];
    for u in records {
        rows.push(vec![
            u.record.id.clone(),
            u.reclaimable().to_string(),
            human_size(u.record.size),
            human_age(now - u.record.last_used),
        ]);
    }
    out.write_all(table(&rows).as_bytes())?;
    Ok(())
}

fn write_verbose(
    out: &mut impl Write,
    records: &[UsageRecord],
    now: i64,
) -> Result<(), CommandError> {
    for u in records {
        let r = &u.record;
        let mut rows = vec![vec!["ID:".to_string(), r.id.clone()]];
        if let Some(p) = &r.parent {
            rows.push(vec!["Parent:".into(), p.clone()]);
        }
        rows.push(vec!["Type:".into(), r.kind.as_str().into()]);
        rows.push(vec!["Created at:".into(), utc_time(r.created)]);
        rows.push(vec!["Reclaimable:".into(), u.reclaimable().to_string()]);
        rows.push(vec!["Size:".into(), human_size(r.size)]);
        if !r.description.is_empty() {
            rows.push(vec!["Description:".into(), r.description.clone()]);
        }
        if let Some(d) = &r.diff_id {
            rows.push(vec!["Diff ID:".into(), d.clone()]);
        }
        // Lookups of a blob are not counted, only its last one is known; orphans have none.
        if !matches!(r.kind, SnapshotKind::ContentBlob | SnapshotKind::Orphan) {
            rows.push(vec!["Usage count:".into(), r.usage_count.to_string()]);
        }
        rows.push(vec![
            "Last used:".into(),
            format!(
                "{} ({})",
                utc_time(r.last_used),
                human_age(now - r.last_used)
            ),
        ]);
        out.write_all(table(&rows).as_bytes())?;
        out.write_all(b"\n")?;
    }
    Ok(())
}
