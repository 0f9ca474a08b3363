//! With `--addr`: what the daemon's BuildKit is too old to read, refused by name before the
//! solve. BuildKit passes over a cache attribute or an exporter attribute it does not know;
//! the first release that reads each cache type and attribute is in `remotecache::attrs`'s
//! table, the image exporters' compression attributes here (`exporter/containerimage`,
//! `util/compression`). Those an older daemon's exporters already had (`name`, `push`,
//! `oci-mediatypes`, `registry.insecure`, `compression=gzip|uncompressed`) pass, and
//! `platform-split` and `source-date-epoch` are answered where they are sent
//! (`build::remote`).

use anyhow::bail;

use crate::progress::ProgressSink;
use crate::remote::{BuildKitRelease, CacheEntry, Exporter, RemoteSolver};
use crate::remotecache::attrs::{Direction, unread_by};

/// The image and archive exporters' attributes (and values) that came after BuildKit 0.8,
/// with the first BuildKit that reads them: `(attribute, value or any, 0.since)`.
const EXPORTER_ATTRS: &[(&str, Option<&str>, u64)] = &[
    ("compression", Some("estargz"), 10),
    ("compression", Some("zstd"), 10),
    ("compression-level", None, 10),
    ("force-compression", None, 9),
];

/// The cache entries the daemon reads all of: an import it would pass over in part is
/// refused, an export too unless it has `ignore-error=true`, which leaves it out with a
/// warning (as an attribute the daemon does not take at all is). The daemon is asked its
/// release only when there is a cache.
pub(super) async fn readable_caches(
    solver: &RemoteSolver,
    (imports, exports): (Vec<CacheEntry>, Vec<CacheEntry>),
    progress: &ProgressSink,
) -> anyhow::Result<(Vec<CacheEntry>, Vec<CacheEntry>)> {
    if imports.is_empty() && exports.is_empty() {
        return Ok((imports, exports));
    }
    let release = solver.buildkit_release().await?;
    for import in &imports {
        if let Some(why) = unread(import, Direction::Import, &release) {
            bail!("--cache-from type={}: {why}", import.kind);
        }
    }
    let mut kept = Vec::new();
    for export in exports {
        let Some(why) = unread(&export, Direction::Export, &release) else {
            kept.push(export);
            continue;
        };
        if ignores_errors(&export) {
            progress.warning(
                None,
                format!(
                    "--cache-to type={}: not exported (ignore-error=true): {why}",
                    export.kind
                ),
            );
        } else {
            bail!(
                "--cache-to type={}: {why}; add ignore-error=true to build without it",
                export.kind
            );
        }
    }
    Ok((imports, kept))
}

/// Refuses an attribute of the image and archive exporters (`--push`, `-o type=image|oci|
/// docker` on a daemon that exports images itself) that the daemon's BuildKit does not read.
pub(super) async fn refuse_unread_exporter_attrs(
    solver: &RemoteSolver,
    exporters: impl IntoIterator<Item = &Exporter>,
) -> anyhow::Result<()> {
    let sent: Vec<_> = exporters
        .into_iter()
        .filter_map(|e| match e {
            Exporter::Image { attrs } | Exporter::Archive { attrs, .. } => Some(attrs),
            _ => None,
        })
        .collect();
    let asks_later = sent
        .iter()
        .flat_map(|attrs| attrs.iter())
        .any(|(k, v)| first_reading(k, v).is_some());
    if !asks_later {
        return Ok(());
    }
    let release = solver.buildkit_release().await?;
    for attrs in sent {
        for (key, value) in attrs {
            if let Some(since) = first_reading(key, value).filter(|s| !release.reads(*s)) {
                bail!(
                    "{key}={value}: {}",
                    too_old(&release, since, "write the image with it")
                );
            }
        }
    }
    Ok(())
}

/// The first BuildKit whose image exporters read `key=value`, when it came after 0.8.
fn first_reading(key: &str, value: &str) -> Option<u64> {
    EXPORTER_ATTRS
        .iter()
        .find(|(k, v, _)| *k == key && v.is_none_or(|v| v == value))
        .map(|(_, _, since)| *since)
}

/// Why `entry` cannot go to a daemon of `release`, naming the type or attribute.
fn unread(entry: &CacheEntry, direction: Direction, release: &BuildKitRelease) -> Option<String> {
    let keys = entry.attrs.keys().map(String::as_str);
    let unread = unread_by(&entry.kind, keys, direction, |since| release.reads(since))?;
    Some(format!(
        "{}: {}",
        unread.what,
        too_old(release, unread.since, "read it")
    ))
}

fn too_old(release: &BuildKitRelease, since: u64, does: &str) -> String {
    format!(
        "the daemon's {} does not {does} (BuildKit 0.{since} is the first that does)",
        release.name
    )
}

/// `ignore-error=true` in Go's forms of true, as `remotecache` reads it.
fn ignores_errors(entry: &CacheEntry) -> bool {
    crate::remotecache::ignores_errors(&crate::cli::CacheOption {
        kind: entry.kind.clone(),
        attrs: entry.attrs.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compression_attributes_are_read_from_their_first_buildkit() {
        assert_eq!(first_reading("compression", "zstd"), Some(10));
        assert_eq!(first_reading("compression", "estargz"), Some(10));
        assert_eq!(first_reading("compression", "gzip"), None);
        assert_eq!(first_reading("compression", "uncompressed"), None);
        assert_eq!(first_reading("compression-level", "3"), Some(10));
        assert_eq!(first_reading("force-compression", "true"), Some(9));
        assert_eq!(first_reading("oci-mediatypes", "true"), None);
        assert_eq!(first_reading("name", "a"), None);
    }
}
