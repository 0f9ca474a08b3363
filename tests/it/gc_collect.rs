//! Garbage collection on a real state root: order, leases held by other processes,
//! orphans.
#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a test's notes (what it skipped or measured) go to its captured output"
)]

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};

use bud::cache::meta::{LeaseOwner, MetaStore, SnapshotKind, SnapshotRecord};
use bud::gc::{self, GcPolicy};
use bud::state::StateRoot;

/// Set in a re-executed copy of this test binary: lease this snapshot id in this db.
const LEASE_ENV: &str = "BUD_TEST_LEASE";
/// What the child prints once it holds the lease (the harness prints around it, on the
/// same line).
const LEASED: &str = "bud-test-lease-held";

fn state() -> (tempfile::TempDir, StateRoot, MetaStore) {
    let dir = tempfile::tempdir().unwrap();
    let state = StateRoot::open(dir.path().join("root")).unwrap();
    let meta = MetaStore::open(&state.db_path()).unwrap();
    (dir, state, meta)
}

/// A committed snapshot with `bytes` of file data, its size left for GC to measure.
fn snapshot(
    state: &StateRoot,
    meta: &MetaStore,
    id: &str,
    parent: Option<&str>,
    kind: SnapshotKind,
    bytes: usize,
    last_used: i64,
) {
    let base = match kind {
        SnapshotKind::CacheMount => state.cache_mounts_dir(),
        _ => state.snapshots_dir(),
    };
    let dir = base.join(id);
    std::fs::create_dir_all(dir.join("usr")).unwrap();
    std::fs::write(dir.join("usr/data"), vec![7u8; bytes]).unwrap();
    let record = SnapshotRecord {
        id: id.into(),
        parent: parent.map(Into::into),
        kind,
        size: 0,
        diff_id: None,
        description: format!("RUN make {id}"),
        created: last_used,
        last_used,
        usage_count: 1,
        tar_format: 0,
    };
    meta.commit(&record, &[&format!("key-{id}")]).unwrap();
}

fn ids(meta: &MetaStore) -> Vec<String> {
    let mut ids: Vec<_> = meta
        .snapshots()
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    ids.sort();
    ids
}

fn removed(report: &gc::GcReport) -> Vec<&str> {
    report.removed.iter().map(|r| r.id.as_str()).collect()
}

#[test]
fn least_recently_used_leaves_go_first_and_cache_mounts_last() {
    let (_d, state, meta) = state();
    let now = bud::cache::meta::now();
    snapshot(
        &state,
        &meta,
        "base",
        None,
        SnapshotKind::Layer,
        4096,
        now - 500,
    );
    snapshot(
        &state,
        &meta,
        "mid",
        Some("base"),
        SnapshotKind::Layer,
        4096,
        now - 50,
    );
    snapshot(
        &state,
        &meta,
        "old-top",
        Some("mid"),
        SnapshotKind::Layer,
        4096,
        now - 400,
    );
    snapshot(
        &state,
        &meta,
        "other",
        None,
        SnapshotKind::Layer,
        4096,
        now - 300,
    );
    snapshot(
        &state,
        &meta,
        "cache",
        None,
        SnapshotKind::CacheMount,
        4096,
        now - 1000,
    );

    let report = gc::collect(
        &state,
        &meta,
        &GcPolicy {
            include_image_layers: true,
            ..GcPolicy::default()
        },
    )
    .unwrap();
    // "base" is oldest but has children: it goes once "mid" is gone, and "mid" (recent)
    // once "old-top" is; the cache mount, oldest of all, last.
    assert_eq!(
        removed(&report),
        ["old-top", "other", "mid", "base", "cache"]
    );
    assert!(ids(&meta).is_empty());
    for id in ["base", "mid", "old-top", "other"] {
        assert!(!state.snapshots_dir().join(id).exists(), "{id}");
    }
    assert!(!state.cache_mounts_dir().join("cache").exists());
    let sizes: u64 = report.removed.iter().map(|r| r.size).sum();
    assert_eq!(report.freed, sizes);
    assert!(report.removed.iter().all(|r| r.size >= 4096));
    // Nothing was left half-deleted in tmp/.
    assert_eq!(std::fs::read_dir(state.tmp_dir()).unwrap().count(), 0);
}

#[test]
fn a_size_limit_keeps_the_most_recently_used() {
    let (_d, state, meta) = state();
    let now = bud::cache::meta::now();
    for (i, id) in ["a", "b", "c", "d"].iter().enumerate() {
        snapshot(
            &state,
            &meta,
            id,
            None,
            SnapshotKind::Layer,
            20_000,
            now - 100 + i as i64,
        );
    }
    let usage = gc::usage(&state, &meta).unwrap();
    let size_of = |id: &str| {
        usage
            .iter()
            .find(|u| u.record.id == id)
            .unwrap()
            .record
            .size
    };
    let keep = size_of("c") + size_of("d");
    let report = gc::collect(
        &state,
        &meta,
        &GcPolicy {
            keep_bytes: Some(keep),
            ..GcPolicy::default()
        },
    )
    .unwrap();
    assert_eq!(removed(&report), ["a", "b"]);
    assert_eq!(ids(&meta), ["c", "d"]);
    assert_eq!(report.freed, size_of("a") + size_of("b"));
}

#[test]
fn image_layers_and_recent_records_are_kept_when_asked() {
    let (_d, state, meta) = state();
    let now = bud::cache::meta::now();
    snapshot(
        &state,
        &meta,
        "img",
        None,
        SnapshotKind::ImageLayer,
        100,
        now - 10_000,
    );
    snapshot(
        &state,
        &meta,
        "old",
        None,
        SnapshotKind::Layer,
        100,
        now - 10_000,
    );
    snapshot(&state, &meta, "new", None, SnapshotKind::Layer, 100, now);
    let report = gc::collect(
        &state,
        &meta,
        &GcPolicy {
            keep_duration: Some(std::time::Duration::from_secs(3600)),
            ..GcPolicy::default()
        },
    )
    .unwrap();
    assert_eq!(removed(&report), ["old"]);
    assert_eq!(ids(&meta), ["img", "new"]);
}

/// The child side of `records_leased_by_a_live_process_survive`: lease, say so, and hold
/// the lease until the parent closes our stdin.
#[test]
fn lease_holder() {
    let Ok(spec) = std::env::var(LEASE_ENV) else {
        return;
    };
    let (db, id) = spec.split_once('|').unwrap();
    let meta = MetaStore::open(Path::new(db)).unwrap();
    meta.lease(&LeaseOwner::current(), &[id]).unwrap();
    println!("{LEASED}");
    std::io::stdout().flush().unwrap();
    let mut rest = String::new();
    while std::io::stdin().read_line(&mut rest).unwrap() > 0 {}
}

#[test]
fn records_leased_by_a_live_process_survive() {
    let (_d, state, meta) = state();
    let now = bud::cache::meta::now();
    snapshot(
        &state,
        &meta,
        "base",
        None,
        SnapshotKind::Layer,
        5000,
        now - 900,
    );
    snapshot(
        &state,
        &meta,
        "held",
        Some("base"),
        SnapshotKind::Layer,
        5000,
        now - 800,
    );
    snapshot(
        &state,
        &meta,
        "free",
        None,
        SnapshotKind::Layer,
        5000,
        now - 100,
    );

    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "gc_collect::lease_holder",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(LEASE_ENV, format!("{}|held", state.db_path().display()))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    // The test harness prints its own lines around ours; wait for the child's.
    loop {
        let line = lines.next().expect("lease holder exited early").unwrap();
        if line.contains(LEASED) {
            break;
        }
    }

    let tiny = GcPolicy {
        keep_bytes: Some(1),
        ..GcPolicy::default()
    };
    let report = gc::collect(&state, &meta, &tiny).unwrap();
    assert_eq!(removed(&report), ["free"]);
    assert_eq!(ids(&meta), ["base", "held"]);
    let usage = gc::usage(&state, &meta).unwrap();
    assert!(
        usage.iter().all(|u| u.in_use),
        "the leased record and its parent"
    );

    drop(child.stdin.take());
    assert!(child.wait().unwrap().success());
    // The lease died with its process.
    let report = gc::collect(&state, &meta, &tiny).unwrap();
    assert_eq!(removed(&report), ["held", "base"]);
}

#[test]
fn orphans_are_removed_and_live_work_is_not() {
    let (_d, state, meta) = state();
    snapshot(
        &state,
        &meta,
        "kept",
        None,
        SnapshotKind::Layer,
        100,
        bud::cache::meta::now(),
    );

    let orphan = state.snapshots_dir().join("orphan");
    std::fs::create_dir_all(orphan.join("etc")).unwrap();
    std::fs::write(orphan.join("etc/f"), b"x").unwrap();
    let orphan_mount = state.cache_mounts_dir().join("lost");
    std::fs::create_dir_all(&orphan_mount).unwrap();
    // A build publishing this one leased its id before moving it in.
    let publishing = state.snapshots_dir().join("publishing");
    std::fs::create_dir_all(&publishing).unwrap();
    meta.lease(&LeaseOwner::current(), &["publishing"]).unwrap();

    let mut gone = Command::new("true").spawn().unwrap();
    let dead_pid = gone.id();
    gone.wait().unwrap();
    let dead_work = state.tmp_dir().join(format!("{dead_pid}-run"));
    std::fs::create_dir_all(dead_work.join("upper")).unwrap();
    let live_work = state.tmp_dir().join(format!("{}-run", std::process::id()));
    std::fs::create_dir_all(&live_work).unwrap();
    let foreign = state.tmp_dir().join("not-ours");
    std::fs::create_dir_all(&foreign).unwrap();

    // Keep every record: only orphans go.
    let report = gc::collect(
        &state,
        &meta,
        &GcPolicy {
            keep_bytes: Some(u64::MAX),
            ..GcPolicy::default()
        },
    )
    .unwrap();
    assert!(report.removed.is_empty());
    let mut cleaned: Vec<_> = report.orphans.iter().map(|o| o.path.clone()).collect();
    cleaned.sort();
    let mut expected = vec![orphan.clone(), orphan_mount.clone(), dead_work.clone()];
    expected.sort();
    assert_eq!(cleaned, expected);
    assert_eq!(
        report.freed,
        report.orphans.iter().map(|o| o.size).sum::<u64>()
    );
    for p in [&orphan, &orphan_mount, &dead_work] {
        assert!(!p.exists(), "{}", p.display());
    }
    for p in [
        &publishing,
        &live_work,
        &foreign,
        &state.snapshots_dir().join("kept"),
    ] {
        assert!(p.exists(), "{}", p.display());
    }
}

#[test]
fn read_only_layers_are_removed() {
    use std::os::unix::fs::PermissionsExt;
    let (_d, state, meta) = state();
    snapshot(&state, &meta, "ro", None, SnapshotKind::Layer, 100, 1);
    let dir = state.snapshots_dir().join("ro");
    for d in [dir.join("usr"), dir.clone()] {
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o555)).unwrap();
    }
    let report = gc::collect(&state, &meta, &GcPolicy::default()).unwrap();
    assert_eq!(removed(&report), ["ro"]);
    assert!(!dir.exists());
    assert_eq!(std::fs::read_dir(state.tmp_dir()).unwrap().count(), 0);
}

#[test]
fn configured_collection_follows_bud_toml() {
    let (_d, state, meta) = state();
    snapshot(&state, &meta, "old", None, SnapshotKind::Layer, 100, 1);
    let off = bud::config::Config::parse("[gc]\nenabled = false", Path::new("bud.toml")).unwrap();
    assert!(
        gc::collect_configured(&state, &meta, &off.gc)
            .unwrap()
            .is_none()
    );
    assert_eq!(ids(&meta), ["old"]);
    let tiny =
        bud::config::Config::parse("[gc]\nkeep_storage = \"1\"", Path::new("bud.toml")).unwrap();
    let report = gc::collect_configured(&state, &meta, &tiny.gc)
        .unwrap()
        .unwrap();
    assert_eq!(removed(&report), ["old"]);
}
