//! `bud du` and `bud prune` on a populated cache, with sizes checked against the disk.

use crate::support;

use bud::cache::meta::{MetaStore, SnapshotKind, SnapshotRecord, now};
use bud::cli::{DuOptions, PruneOptions};
use bud::commands::format::human_size;
use bud::commands::{du, prune};
use bud::state::StateRoot;
use support::{Mounted, bud_at, du_bytes, fill_disk, require_root, stderr_of};

struct Cache {
    _dir: Option<tempfile::TempDir>,
    state: StateRoot,
}

impl Cache {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let state = StateRoot::open(dir.path().join("root")).unwrap();
        Self {
            _dir: Some(dir),
            state,
        }
    }

    fn at(root: &std::path::Path) -> Self {
        Self {
            _dir: None,
            state: StateRoot::open(root).unwrap(),
        }
    }

    fn meta(&self) -> MetaStore {
        MetaStore::open(&self.state.db_path()).unwrap()
    }

    /// A snapshot holding files of the given sizes, last used `age` seconds ago.
    fn add(&self, id: &str, kind: SnapshotKind, files: &[usize], age: i64) {
        let base = match kind {
            SnapshotKind::CacheMount => self.state.cache_mounts_dir(),
            _ => self.state.snapshots_dir(),
        };
        let dir = base.join(id);
        std::fs::create_dir_all(&dir).unwrap();
        for (i, size) in files.iter().enumerate() {
            std::fs::write(dir.join(format!("f{i}")), vec![1u8; *size]).unwrap();
        }
        let t = now() - age;
        let record = SnapshotRecord {
            id: id.into(),
            parent: None,
            kind,
            size: 0,
            diff_id: None,
            description: format!("RUN build {id}"),
            created: t,
            last_used: t,
            usage_count: 2,
            tar_format: 0,
        };
        self.meta().commit(&record, &[id]).unwrap();
    }

    fn dir(&self, id: &str) -> std::path::PathBuf {
        self.state.snapshots_dir().join(id)
    }

    fn du(&self, verbose: bool, filters: &[&str]) -> String {
        let opts = DuOptions {
            verbose,
            filters: filters.iter().map(|s| s.to_string()).collect(),
        };
        let mut out = Vec::new();
        du::run(&self.state, &opts, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    fn prune(&self, opts: &PruneOptions, answer: &str) -> String {
        let mut out = Vec::new();
        prune::run(&self.state, opts, &mut answer.as_bytes(), &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    fn ids(&self) -> Vec<String> {
        let mut ids: Vec<_> = self
            .meta()
            .snapshots()
            .unwrap()
            .into_iter()
            .map(|r| r.id)
            .collect();
        ids.sort();
        ids
    }
}

fn prune_opts() -> PruneOptions {
    PruneOptions {
        all: false,
        keep_storage: None,
        filters: Vec::new(),
        force: true,
    }
}

#[test]
fn du_lists_records_with_their_size_on_disk() {
    let c = Cache::new();
    c.add("big", SnapshotKind::Layer, &[300_000, 5], 7200);
    c.add("small", SnapshotKind::Layer, &[10_000], 30);
    c.add("img", SnapshotKind::ImageLayer, &[50_000], 3 * 86_400);
    let (big, small, img) = (
        du_bytes(&c.dir("big")),
        du_bytes(&c.dir("small")),
        du_bytes(&c.dir("img")),
    );

    let out = c.du(false, &[]);
    let lines: Vec<&str> = out.lines().collect();
    let words = |l: &str| l.split_whitespace().map(str::to_string).collect::<Vec<_>>();
    assert_eq!(
        words(lines[0]),
        ["ID", "RECLAIMABLE", "SIZE", "LAST", "ACCESSED"]
    );
    // Largest first.
    assert_eq!(
        words(lines[1]),
        ["big", "true", &human_size(big), "2", "hours", "ago"]
    );
    assert_eq!(words(lines[2])[..3], ["img", "true", &human_size(img)]);
    assert_eq!(words(lines[3])[..3], ["small", "true", &human_size(small)]);
    let total = human_size(big + small + img);
    assert_eq!(words(lines[4]), ["Reclaimable:", &total]);
    assert_eq!(words(lines[5]), ["Total:", &total]);
    assert_eq!(lines.len(), 6);

    // The measured sizes were stored.
    let stored: u64 = c.meta().snapshots().unwrap().iter().map(|r| r.size).sum();
    assert_eq!(stored, big + small + img);
}

#[test]
fn du_filters_and_verbose() {
    let c = Cache::new();
    c.add("a", SnapshotKind::Layer, &[4096], 10);
    // Used hours ago: its "Last used" reads the same however long the test takes.
    c.add("m", SnapshotKind::CacheMount, &[4096], 5 * 3600);
    c.add("old", SnapshotKind::Layer, &[4096], 10 * 86_400);

    let out = c.du(false, &["type=layer", "until=24h"]);
    let ids: Vec<&str> = out
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().next().unwrap())
        .collect();
    // A filtered listing has no totals.
    assert_eq!(ids, ["old"]);

    let out = c.du(true, &["description~=build m"]);
    let size = human_size(du_bytes(&c.state.cache_mounts_dir().join("m")));
    let fields: Vec<(String, String)> = out
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| {
            let (k, v) = l.split_once(':').unwrap();
            (k.to_string(), v.trim().to_string())
        })
        .collect();
    let get = |k: &str| fields.iter().find(|(f, _)| f == k).map(|(_, v)| v.as_str());
    assert_eq!(get("ID"), Some("m"));
    assert_eq!(get("Type"), Some("cache-mount"));
    assert_eq!(get("Reclaimable"), Some("true"));
    assert_eq!(get("Size"), Some(size.as_str()));
    assert_eq!(get("Description"), Some("RUN build m"));
    assert_eq!(get("Usage count"), Some("2"));
    assert!(get("Last used").unwrap().ends_with("(5 hours ago)"));
}

#[test]
fn prune_keep_storage_keeps_the_most_recently_used() {
    let c = Cache::new();
    for (id, age) in [
        ("oldest", 400),
        ("older", 300),
        ("newer", 200),
        ("newest", 100),
    ] {
        c.add(id, SnapshotKind::Layer, &[100_000], age);
    }
    let size = |id: &str| du_bytes(&c.dir(id));
    let (oldest, older) = (size("oldest"), size("older"));
    let keep = size("newer") + size("newest");
    let out = c.prune(
        &PruneOptions {
            keep_storage: Some(keep),
            ..prune_opts()
        },
        "",
    );
    assert_eq!(c.ids(), ["newer", "newest"]);
    assert!(!c.dir("oldest").exists() && !c.dir("older").exists());
    assert_eq!(
        out,
        format!(
            "Deleted build cache objects:\noldest\nolder\n\nTotal:\t{}\n",
            human_size(oldest + older)
        )
    );
}

#[test]
fn prune_keeps_base_image_layers_unless_all() {
    let c = Cache::new();
    c.add("img", SnapshotKind::ImageLayer, &[1000], 100);
    c.add("run", SnapshotKind::Layer, &[1000], 100);
    c.prune(&prune_opts(), "");
    assert_eq!(c.ids(), ["img"]);
    let out = c.prune(
        &PruneOptions {
            all: true,
            ..prune_opts()
        },
        "",
    );
    assert!(c.ids().is_empty());
    assert!(
        out.starts_with("Deleted build cache objects:\nimg\n"),
        "{out}"
    );
}

/// `prune --filter` removes only what the filters select, as `du --filter` lists it.
#[test]
fn prune_filters_select_what_is_removed() {
    let c = Cache::new();
    c.add("recent", SnapshotKind::Layer, &[1000], 10);
    c.add("old", SnapshotKind::Layer, &[1000], 10 * 86_400);
    c.add("mount", SnapshotKind::CacheMount, &[1000], 10 * 86_400);
    let out = c.prune(
        &PruneOptions {
            filters: vec!["until=24h".into(), "type=layer".into()],
            ..prune_opts()
        },
        "",
    );
    assert!(
        out.starts_with("Deleted build cache objects:\nold\n"),
        "{out}"
    );
    assert_eq!(c.ids(), ["mount", "recent"]);
}

#[test]
fn prune_asks_first_without_force() {
    let c = Cache::new();
    c.add("run", SnapshotKind::Layer, &[1000], 100);
    let opts = PruneOptions {
        force: false,
        ..prune_opts()
    };
    let out = c.prune(&opts, "n\n");
    assert!(out.starts_with("WARNING! This will remove"), "{out}");
    assert_eq!(c.ids(), ["run"]);
    let out = c.prune(&opts, "y\n");
    assert!(out.contains("\nTotal:\t"), "{out}");
    assert!(c.ids().is_empty());
}

#[test]
fn bad_filters_are_usage_errors() {
    let c = Cache::new();
    let opts = DuOptions {
        verbose: false,
        filters: vec!["colour=red".into()],
    };
    let err = du::run(&c.state, &opts, &mut Vec::new()).unwrap_err();
    assert!(err.to_string().contains("accepted filters"), "{err}");
}

/// A state root on a 32 MiB disk: a 12 MiB layer and a small one, then the disk filled.
fn full_disk_cache(disk: &tempfile::TempDir) -> (Mounted, Cache) {
    let mount = Mounted::tmpfs(&disk.path().join("disk"), 32 << 20);
    let c = Cache::at(&mount.path().join("root"));
    c.add("big", SnapshotKind::Layer, &[12 << 20], 100);
    c.add("small", SnapshotKind::Layer, &[4096], 50);
    fill_disk(&mount.path().join("filler"));
    (mount, c)
}

#[test]
fn du_and_prune_work_on_a_full_disk() {
    if !require_root("to mount a small tmpfs") {
        return;
    }
    let disk = tempfile::tempdir().unwrap();
    let (mount, c) = full_disk_cache(&disk);
    let root = c.state.path();
    assert!(root.join("meta.reserve").exists());

    // No byte to write: reading needs no shared-memory file.
    let du = bud_at(root, &["du"]);
    assert!(du.status.success(), "{}", stderr_of(&du));
    let listed = String::from_utf8_lossy(&du.stdout);
    assert!(listed.lines().any(|l| l.starts_with("big ")), "{listed}");

    // Deleting records writes to SQLite: the reserve makes room for it.
    let prune = bud_at(root, &["prune", "-a", "-f"]);
    assert!(prune.status.success(), "{}", stderr_of(&prune));
    let out = String::from_utf8_lossy(&prune.stdout);
    assert!(out.lines().any(|l| l == "big"), "{out}");
    assert!(c.ids().is_empty());
    assert!(!c.dir("big").exists() && !c.dir("small").exists());

    // With room again, the next open takes the reserve back.
    std::fs::remove_file(mount.path().join("filler")).unwrap();
    c.meta();
    assert!(root.join("meta.reserve").exists());
}

#[test]
fn a_full_disk_without_the_reserve_is_named() {
    if !require_root("to mount a small tmpfs") {
        return;
    }
    let disk = tempfile::tempdir().unwrap();
    let (_mount, c) = full_disk_cache(&disk);
    let root = c.state.path();
    // Gone (taken by an earlier prune, or a root older than the reserve) while the disk
    // filled up again.
    std::fs::remove_file(root.join("meta.reserve")).unwrap();
    fill_disk(&root.join("more"));

    let du = bud_at(root, &["du"]);
    assert!(du.status.success(), "{}", stderr_of(&du));
    let prune = bud_at(root, &["prune", "-a", "-f"]);
    assert!(!prune.status.success());
    let err = stderr_of(&prune);
    assert!(err.contains("no space left on the disk"), "{err}");
    assert_eq!(c.ids(), ["big", "small"]);
}

#[test]
fn du_counts_what_dead_processes_left_and_prune_removes_it() {
    let c = Cache::new();
    c.add("run", SnapshotKind::Layer, &[10_000], 100);
    // The scratch of a step whose bud was killed, and a layer moved in but never recorded.
    let mut gone = std::process::Command::new("true").spawn().unwrap();
    let dead_pid = gone.id();
    gone.wait().unwrap();
    let scratch = c
        .state
        .tmp_dir()
        .join(format!("{dead_pid}-0123456789abcdef"));
    std::fs::create_dir_all(scratch.join("upper")).unwrap();
    std::fs::write(scratch.join("upper/big"), vec![7u8; 2_000_000]).unwrap();
    let unrecorded = c.dir("unrecorded");
    std::fs::create_dir_all(&unrecorded).unwrap();
    std::fs::write(unrecorded.join("f"), vec![7u8; 300_000]).unwrap();
    let scratch_id = format!("tmp/{dead_pid}-0123456789abcdef");
    let (scratch_size, unrecorded_size, run_size) = (
        du_bytes(&scratch),
        du_bytes(&unrecorded),
        du_bytes(&c.dir("run")),
    );

    let out = c.du(false, &[]);
    let rows: Vec<Vec<&str>> = out
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        rows[1][..3],
        [scratch_id.as_str(), "true", &human_size(scratch_size)]
    );
    assert_eq!(
        rows[2][..3],
        ["snapshots/unrecorded", "true", &human_size(unrecorded_size)]
    );
    let total = human_size(scratch_size + unrecorded_size + run_size);
    assert_eq!(rows[4], ["Reclaimable:", &total]);
    assert_eq!(rows[5], ["Total:", &total]);
    let verbose = c.du(true, &["type=orphan", &format!("id={scratch_id}")]);
    assert!(
        verbose.contains("work of a bud process that is gone"),
        "{verbose}"
    );

    // Kept records aside, prune removes them and says so.
    let out = c.prune(
        &PruneOptions {
            keep_storage: Some(u64::MAX),
            ..prune_opts()
        },
        "",
    );
    let mut deleted: Vec<&str> = out.lines().skip(1).take(2).collect();
    deleted.sort();
    assert_eq!(deleted, ["snapshots/unrecorded", scratch_id.as_str()]);
    assert!(!scratch.exists() && !unrecorded.exists());
    assert_eq!(c.ids(), ["run"]);
    let rows = c.du(false, &[]);
    assert_eq!(rows.lines().count(), 4, "{rows}");
}
