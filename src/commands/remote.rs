//! `bud du`, `bud prune` and `bud debug workers` with `--addr`: the daemon's DiskUsage, Prune
//! and ListWorkers, printed like the embedded worker's.

use std::io::Write;

use bud_proto::control::UsageRecord;

use crate::cli::{DuOptions, PruneOptions};
use crate::remote::{self, RemoteSolver, TlsOptions};

use super::format::{human_age, human_size, table};

async fn connect(addr: &str, tls: &TlsOptions) -> anyhow::Result<RemoteSolver> {
    // The solver's errors name the address already.
    Ok(RemoteSolver::connect_with(addr, tls).await?)
}

fn age(r: &UsageRecord) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    match &r.last_used_at {
        Some(t) => human_age(now - t.seconds),
        None => String::new(),
    }
}

fn print_records(
    records: &[UsageRecord],
    verbose: bool,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    if verbose {
        for r in records {
            writeln!(out, "ID:\t\t{}", r.id)?;
            if !r.parents.is_empty() {
                writeln!(out, "Parents:\t{}", r.parents.join(", "))?;
            }
            writeln!(out, "Type:\t\t{}", r.record_type)?;
            writeln!(out, "Description:\t{}", r.description)?;
            writeln!(out, "Size:\t\t{}", human_size(r.size.max(0) as u64))?;
            writeln!(out, "Last used:\t{}", age(r))?;
            writeln!(out, "Usage count:\t{}", r.usage_count)?;
            writeln!(out, "Shared:\t\t{}", r.shared)?;
            writeln!(out, "In use:\t\t{}\n", r.in_use)?;
        }
    } else {
        let mut rows = vec![vec![
            "ID".to_string(),
            "RECLAIMABLE".to_string(),
            "SIZE".to_string(),
            "LAST ACCESSED".to_string(),
        ]];
        for r in records {
            rows.push(vec![
                r.id.clone(),
                (!r.in_use).to_string(),
                human_size(r.size.max(0) as u64),
                age(r),
            ]);
        }
        write!(out, "{}", table(&rows))?;
    }
    let total: i64 = records.iter().map(|r| r.size.max(0)).sum();
    let reclaimable: i64 = records
        .iter()
        .filter(|r| !r.in_use)
        .map(|r| r.size.max(0))
        .sum();
    writeln!(out, "Reclaimable:\t{}", human_size(reclaimable as u64))?;
    writeln!(out, "Total:\t\t{}", human_size(total as u64))?;
    Ok(())
}

/// `bud du --addr`: the daemon's cache records (BuildKit's DiskUsage), largest first.
pub async fn du(
    addr: &str,
    tls: &TlsOptions,
    opts: &DuOptions,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let mut records = connect(addr, tls)
        .await?
        .disk_usage(opts.filters.clone())
        .await?;
    records.sort_by_key(|r| std::cmp::Reverse(r.size));
    print_records(&records, opts.verbose, out)
}

/// `bud prune --addr`: the daemon's Prune; refused without `--force`, as bud does not ask
/// before removing a remote cache.
pub async fn prune(
    addr: &str,
    tls: &TlsOptions,
    opts: &PruneOptions,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    if !opts.force {
        anyhow::bail!(
            "pruning a daemon's cache needs --force (bud does not prompt for remote caches)"
        );
    }
    let removed = connect(addr, tls)
        .await?
        .prune(remote::PruneOptions {
            all: opts.all,
            keep_storage: opts.keep_storage.unwrap_or(0),
            filters: opts.filters.clone(),
            ..Default::default()
        })
        .await?;
    let freed: i64 = removed.iter().map(|r| r.size.max(0)).sum();
    if !removed.is_empty() {
        writeln!(out, "Deleted build cache objects:")?;
        for r in &removed {
            writeln!(out, "{}", r.id)?;
        }
    }
    writeln!(out, "Total:\t{}", human_size(freed as u64))?;
    Ok(())
}

/// `bud debug workers --addr`: the daemon's workers (ListWorkers) and their GC policies.
pub async fn workers(addr: &str, tls: &TlsOptions, out: &mut dyn Write) -> anyhow::Result<()> {
    let workers = connect(addr, tls).await?.list_workers().await?;
    for w in workers {
        writeln!(out, "ID:\t\t{}", w.id)?;
        let platforms: Vec<String> = w
            .platforms
            .iter()
            .map(|p| {
                let mut s = format!("{}/{}", p.os, p.architecture);
                if !p.variant.is_empty() {
                    s.push('/');
                    s.push_str(&p.variant);
                }
                s
            })
            .collect();
        writeln!(out, "Platforms:\t{}", platforms.join(","))?;
        if let Some(v) = &w.buildkit_version {
            writeln!(out, "BuildKit:\t{} {} {}", v.package, v.version, v.revision)?;
        }
        for (k, v) in &w.labels {
            writeln!(out, "Label:\t\t{k}={v}")?;
        }
        for p in &w.gc_policy {
            writeln!(
                out,
                "GC policy:\tall={} keep duration={}s reserved={}",
                p.all,
                p.keep_duration,
                human_size(p.reserved_space.max(0) as u64)
            )?;
        }
        writeln!(out)?;
    }
    Ok(())
}
