//! `bud prune`: removes build cache, all of it or down to `--keep-storage`.

use std::io::{BufRead, Write};

use super::CommandError;
use super::format::human_size;
use crate::cache::meta::MetaStore;
use crate::cli::PruneOptions;
use crate::gc::{self, GcPolicy, RecordFilter};
use crate::state::StateRoot;

/// Prunes as `opts` say. Without `--force`, asks on `out` and reads the answer from
/// `input`; anything but y/yes leaves the cache as it was.
pub fn run(
    state: &StateRoot,
    opts: &PruneOptions,
    input: &mut impl BufRead,
    out: &mut impl Write,
) -> Result<(), CommandError> {
    let policy = GcPolicy {
        keep_bytes: opts.keep_storage,
        keep_duration: None,
        filter: RecordFilter::parse(&opts.filters).map_err(CommandError::Usage)?,
        include_image_layers: opts.all,
    };
    if !opts.force && !confirm(opts.all, input, out)? {
        return Ok(());
    }
    let meta = MetaStore::open_to_free_space(&state.db_path())?;
    let report = gc::collect(state, &meta, &policy)?;
    if !report.removed.is_empty() || !report.orphans.is_empty() {
        writeln!(out, "Deleted build cache objects:")?;
        for r in &report.removed {
            writeln!(out, "{}", r.id)?;
        }
        // As `bud du` listed them.
        for o in &report.orphans {
            let path = o.path.strip_prefix(state.path()).unwrap_or(&o.path);
            writeln!(out, "{}", path.display())?;
        }
        writeln!(out)?;
    }
    // The failed steps' logs go with the cache they were built with.
    let logs = state.logs_dir();
    let logs_bytes = crate::gc::size::disk_usage(&logs).unwrap_or(0);
    match std::fs::remove_dir_all(&logs) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(source) => return Err(CommandError::Remove { path: logs, source }),
    }
    writeln!(out, "Total:\t{}", human_size(report.freed + logs_bytes))?;
    Ok(())
}

fn confirm(all: bool, input: &mut impl BufRead, out: &mut impl Write) -> std::io::Result<bool> {
    let what = if all {
        "all build cache"
    } else {
        "all build cache except base image layers"
    };
    write!(
        out,
        "WARNING! This will remove {what}. Are you sure you want to continue? [y/N] "
    )?;
    out.flush()?;
    let mut answer = String::new();
    input.read_line(&mut answer)?;
    Ok(matches!(
        answer.trim().to_ascii_lowercase().as_str(),
        "y" | "yes"
    ))
}
