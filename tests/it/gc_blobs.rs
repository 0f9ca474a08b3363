//! Content-store blobs as build cache: `bud du` lists them with their size on disk, `bud prune`
//! removes the ones nothing keeps, with the metadata naming them, and never one another live
//! process leases. The end-to-end tests build (and push) again after a prune.
#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a test's notes (what it skipped or measured) go to its captured output"
)]

use crate::support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use bud::cache::meta::{LeaseOwner, MetaStore, SnapshotKind, SnapshotRecord, now};
use bud::cli::{DuOptions, PruneOptions};
use bud::commands::{du, prune};
use bud::content::{ContentStore, Digest};
use bud::state::StateRoot;
use support::du_bytes;

fn du_verbose(state: &StateRoot, filters: &[&str]) -> String {
    let opts = DuOptions {
        verbose: true,
        filters: filters.iter().map(|s| s.to_string()).collect(),
    };
    let mut out = Vec::new();
    du::run(state, &opts, &mut out).unwrap();
    String::from_utf8(out).unwrap()
}

/// The `ID:` and `Size:` of each record `bud du -v` lists.
fn listed(du: &str) -> Vec<(String, String)> {
    let mut records = Vec::new();
    let mut id = None;
    for line in du.lines() {
        let mut fields = line.split_whitespace();
        match (fields.next(), fields.next()) {
            (Some("ID:"), Some(v)) => id = Some(v.to_string()),
            (Some("Size:"), Some(v)) => records.push((id.take().unwrap(), v.to_string())),
            _ => {}
        }
    }
    records
}

fn prune(state: &StateRoot, all: bool, filters: &[&str]) -> String {
    let opts = PruneOptions {
        all,
        keep_storage: None,
        filters: filters.iter().map(|s| s.to_string()).collect(),
        force: true,
    };
    let mut out = Vec::new();
    prune::run(state, &opts, &mut &b""[..], &mut out).unwrap();
    String::from_utf8(out).unwrap()
}

fn blobs_on_disk(state: &StateRoot) -> BTreeSet<String> {
    std::fs::read_dir(state.content_dir().join("blobs/sha256"))
        .unwrap()
        .map(|e| format!("sha256:{}", e.unwrap().file_name().to_str().unwrap()))
        .collect()
}

fn snapshot(meta: &MetaStore, state: &StateRoot, id: &str, kind: SnapshotKind, diff_id: &Digest) {
    std::fs::create_dir_all(state.snapshots_dir().join(id)).unwrap();
    std::fs::write(state.snapshots_dir().join(id).join("f"), id).unwrap();
    let t = now() - 3600;
    let record = SnapshotRecord {
        id: id.into(),
        parent: None,
        kind,
        size: 0,
        diff_id: Some(diff_id.to_string()),
        description: format!("step {id}"),
        created: t,
        last_used: t,
        usage_count: 1,
        tar_format: 0,
    };
    meta.commit(&record, &[id]).unwrap();
}

/// A process that stays alive until killed, to hold leases.
struct OtherProcess(Child);

impl OtherProcess {
    fn start() -> Self {
        Self(Command::new("sleep").arg("600").spawn().unwrap())
    }

    /// Leases `digest` as that process would (`content::lease`'s file format).
    fn lease(&self, store: &ContentStore, digest: &Digest) -> PathBuf {
        let owner = LeaseOwner::of(self.0.id());
        let dir = store.root().join("leases");
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join(format!("{}-{}", owner.pid, owner.start_time));
        std::fs::write(&file, format!("{digest}\n")).unwrap();
        file
    }
}

impl Drop for OtherProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn blobs_are_listed_and_pruned_by_what_keeps_them() {
    let dir = tempfile::tempdir().unwrap();
    let state = StateRoot::open(dir.path().join("root")).unwrap();
    let meta = MetaStore::open(&state.db_path()).unwrap();
    let store = ContentStore::new(state.content_dir()).unwrap();
    let root = store.root().to_owned();

    // A base image layer's tar: the only copy of the layer as the image had it.
    let base_tar = store.put(&vec![1u8; 20_000]).unwrap();
    snapshot(&meta, &state, "img", SnapshotKind::ImageLayer, &base_tar);
    // A step's layer tar, and its gzip made for a push.
    let run_tar = store.put(&vec![2u8; 30_000]).unwrap();
    snapshot(&meta, &state, "run", SnapshotKind::Layer, &run_tar);
    let gzip = store.put(b"gzip bytes").unwrap();
    let compressed = root.join(format!("compressed/{}.gzip", run_tar.hex()));
    std::fs::create_dir_all(compressed.parent().unwrap()).unwrap();
    std::fs::write(&compressed, gzip.to_string()).unwrap();
    let sources = root.join(format!("sources/{}", gzip.hex()));
    std::fs::create_dir_all(sources.parent().unwrap()).unwrap();
    std::fs::write(&sources, "127.0.0.1:5000/app\n").unwrap();
    // A pulled image: manifest, config and layer, named by a resolved reference.
    let config = store
        .put(br#"{"rootfs":{"type":"layers","diff_ids":[]}}"#)
        .unwrap();
    let pulled = store.put(&vec![3u8; 5000]).unwrap();
    let manifest = store
        .put(
            format!(
                r#"{{"schemaVersion":2,"config":{{"digest":"{config}"}},"layers":[{{"digest":"{pulled}"}}]}}"#
            )
            .as_bytes(),
        )
        .unwrap();
    let resolved = root.join("refs/0123");
    std::fs::create_dir_all(resolved.parent().unwrap()).unwrap();
    std::fs::write(&resolved, manifest.to_string()).unwrap();
    // Nothing names these; the second is in use by another live process.
    let stray = store.put(b"stray").unwrap();
    let in_use = store.put(b"in use elsewhere").unwrap();
    let other = OtherProcess::start();
    let lease_file = other.lease(&store, &in_use);

    let all: BTreeSet<String> = [
        &base_tar, &run_tar, &gzip, &config, &pulled, &manifest, &stray, &in_use,
    ]
    .iter()
    .map(|d| d.to_string())
    .collect();
    assert_eq!(blobs_on_disk(&state), all);

    // du: every blob, with its allocated size, described by what names it.
    let text = du_verbose(&state, &["type=content-blob"]);
    let records = listed(&text);
    assert_eq!(
        records
            .iter()
            .map(|(id, _)| id.clone())
            .collect::<BTreeSet<_>>(),
        all,
        "{text}"
    );
    for (id, size) in &records {
        let path = store.path(&Digest::parse(id).unwrap());
        assert_eq!(
            *size,
            bud::commands::format::human_size(du_bytes(&path)),
            "{id}"
        );
    }
    assert!(
        text.contains("Type:") && text.contains("content-blob"),
        "{text}"
    );
    assert!(text.contains("layer tar of step run"), "{text}");
    assert!(
        text.contains(&format!("gzip of layer sha256:{}", &run_tar.hex()[..12])),
        "{text}"
    );
    assert!(
        text.contains("image manifest") && text.contains("image config"),
        "{text}"
    );
    let in_use_entry = text
        .split("\n\n")
        .find(|r| r.contains(&in_use.to_string()))
        .unwrap();
    assert!(in_use_entry.contains("Reclaimable:") && in_use_entry.contains("false"));

    // Without --all, blobs of base images stay; a removed blob takes what names it along.
    // Its snapshot keeps the diff ID (an export writes the tar again and checks it).
    let out = prune(&state, false, &["type=content-blob"]);
    for gone in [&run_tar, &gzip, &stray] {
        assert!(out.contains(&gone.to_string()), "{out}");
    }
    let kept: BTreeSet<String> = [&base_tar, &config, &pulled, &manifest, &in_use]
        .iter()
        .map(|d| d.to_string())
        .collect();
    assert_eq!(blobs_on_disk(&state), kept);
    assert!(!compressed.exists() && !sources.exists());
    assert_eq!(
        meta.snapshot("run").unwrap().unwrap().diff_id,
        Some(run_tar.to_string())
    );
    assert_eq!(
        meta.snapshot("img").unwrap().unwrap().diff_id,
        Some(base_tar.to_string())
    );

    // With --all the pulled image goes, with its resolved reference; the base layer's tar
    // stays while its snapshot does.
    prune(&state, true, &["type=content-blob"]);
    let kept: BTreeSet<String> = [&base_tar, &in_use].iter().map(|d| d.to_string()).collect();
    assert_eq!(blobs_on_disk(&state), kept);
    assert!(!resolved.exists());

    // Pruning everything removes the snapshot, then its tar; the leased blob stays until
    // its process is gone, and so does its lease file.
    prune(&state, true, &[]);
    assert_eq!(blobs_on_disk(&state), BTreeSet::from([in_use.to_string()]));
    assert!(meta.snapshots().unwrap().is_empty());
    assert!(lease_file.exists());
    drop(other);
    prune(&state, true, &[]);
    assert!(blobs_on_disk(&state).is_empty());
    assert!(!lease_file.exists());
    assert_eq!(
        du_bytes(&root.join("blobs/sha256")),
        du_bytes(&root.join("ingest"))
    );
}

/// Run by [`a_blob_looked_up_by_another_process_is_kept`] in a child process: looks the
/// blob up, says so, and holds on until its stdin closes.
#[test]
fn lookup_helper() {
    let (Ok(root), Ok(digest)) = (
        std::env::var("GC_BLOBS_HELPER_ROOT"),
        std::env::var("GC_BLOBS_HELPER_DIGEST"),
    ) else {
        return;
    };
    let store = ContentStore::new(root).unwrap();
    assert!(store.exists(&Digest::parse(&digest).unwrap()));
    println!("LEASED");
    std::io::Write::flush(&mut std::io::stdout()).unwrap();
    let mut rest = String::new();
    let _ = std::io::Read::read_to_string(&mut std::io::stdin(), &mut rest);
}

#[test]
fn a_blob_looked_up_by_another_process_is_kept() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let state = StateRoot::open(dir.path().join("root")).unwrap();
    let store = ContentStore::new(state.content_dir()).unwrap();
    let digest = store.put(b"looked up elsewhere").unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "gc_blobs::lookup_helper",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("GC_BLOBS_HELPER_ROOT", store.root())
        .env("GC_BLOBS_HELPER_DIGEST", digest.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    assert!(
        lines.any(|l| l.unwrap().contains("LEASED")),
        "the helper did not lease"
    );

    // This process's own lease (from `put`) does not count: a collection runs once the
    // build is over. The other process's does.
    prune(&state, true, &[]);
    assert!(store.path(&digest).exists());
    assert!(
        listed(&du_verbose(&state, &[]))
            .iter()
            .any(|(id, _)| *id == digest.to_string())
    );

    drop(child.stdin.take());
    assert!(child.wait().unwrap().success());
    prune(&state, true, &[]);
    assert!(!store.path(&digest).exists());
}

#[test]
fn abandoned_ingest_files_are_removed() {
    let dir = tempfile::tempdir().unwrap();
    let state = StateRoot::open(dir.path().join("root")).unwrap();
    let store = ContentStore::new(state.content_dir()).unwrap();
    let ingest = store.root().join("ingest");
    let dead = ingest.join(format!("{}-ingest-abc", i32::MAX));
    let mine = ingest.join(format!("{}-ingest-abc", std::process::id()));
    std::fs::write(&dead, b"partial").unwrap();
    std::fs::write(&mine, b"being written").unwrap();
    prune(&state, true, &[]);
    assert!(!dead.exists());
    assert!(mine.exists());
}

fn bud(root: &Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_bud"))
        .arg("--root")
        .arg(root)
        .args(["--progress", "plain"])
        .args(args)
        .output()
        .expect("run bud")
}

fn ok(out: &std::process::Output) -> String {
    assert!(
        out.status.success(),
        "bud failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The bytes of `name` in a tar archive.
fn tar_entry(path: &Path, name: &str) -> Vec<u8> {
    let mut archive = tar::Archive::new(std::fs::File::open(path).unwrap());
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        if entry.path().unwrap().to_str() == Some(name) {
            let mut bytes = Vec::new();
            std::io::Read::read_to_end(&mut entry, &mut bytes).unwrap();
            return bytes;
        }
    }
    panic!("{name} not in {}", path.display());
}

#[test]
fn an_export_after_pruning_blobs_makes_them_again() {
    if !(support::require_base_image() && support::require_runc()) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let state = StateRoot::open(dir.path().join("root")).unwrap();
    let ctx = support::testdata("hello");
    let ctx = ctx.to_str().unwrap();
    let oci = |name: &str| {
        let dest = dir.path().join(name);
        ok(&bud(
            state.path(),
            // Two layouts of one image compared: without the per-invocation provenance.
            &[
                "--provenance=false",
                "-o",
                &format!("type=oci,dest={}", dest.display()),
                ctx,
            ],
        ));
        dest
    };
    let first = oci("first.tar");

    // Every blob on disk is listed, with its size on disk.
    let text = du_verbose(&state, &["type=content-blob"]);
    let records = listed(&text);
    assert!(!records.is_empty(), "{text}");
    assert_eq!(
        records
            .iter()
            .map(|(id, _)| id.clone())
            .collect::<BTreeSet<_>>(),
        blobs_on_disk(&state),
        "{text}"
    );
    let store = ContentStore::new(state.content_dir()).unwrap();
    for (id, size) in &records {
        let path = store.path(&Digest::parse(id).unwrap());
        assert_eq!(
            *size,
            bud::commands::format::human_size(du_bytes(&path)),
            "{id}"
        );
    }

    // Blobs go, snapshots stay: the base layers' tars are kept for them, the steps' tars
    // are written again by the next export, to the very same image.
    prune(&state, true, &["type=content-blob"]);
    let left = blobs_on_disk(&state);
    assert!(left.len() < records.len(), "{left:?}");
    let meta = MetaStore::open(&state.db_path()).unwrap();
    let base_tars: BTreeSet<String> = meta
        .snapshots()
        .unwrap()
        .into_iter()
        .filter(|r| r.kind == SnapshotKind::ImageLayer)
        .filter_map(|r| r.diff_id)
        .collect();
    assert_eq!(left, base_tars);
    let second = oci("second.tar");
    assert_eq!(
        tar_entry(&first, "index.json"),
        tar_entry(&second, "index.json")
    );

    // Everything goes; a build after that starts over and succeeds.
    prune(&state, true, &[]);
    assert!(blobs_on_disk(&state).is_empty());
    assert!(meta.snapshots().unwrap().is_empty());
    oci("third.tar");
}

#[test]
fn a_push_after_pruning_blobs_succeeds() {
    if !(support::require_base_image()
        && support::require_runc()
        && support::require(
            "the registry at 127.0.0.1:5000",
            std::net::TcpStream::connect(support::OPEN_REGISTRY).is_ok(),
        ))
    {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let state = StateRoot::open(dir.path().join("root")).unwrap();
    let ctx = support::testdata("hello");
    let tag = format!(
        "{}/bud-test/gc-blobs:{}-{}",
        support::OPEN_REGISTRY,
        std::process::id(),
        now()
    );
    // Without the provenance, whose blobs are new on every push (its invocation's own).
    let push = || {
        ok(&bud(
            state.path(),
            &[
                "--provenance=false",
                "-t",
                &tag,
                "--push",
                ctx.to_str().unwrap(),
            ],
        ))
    };
    push();
    let before = blobs_on_disk(&state);
    prune(&state, true, &["type=content-blob"]);
    assert!(blobs_on_disk(&state).len() < before.len());
    push();
    // The compressed layers, config and manifest are back.
    assert_eq!(blobs_on_disk(&state), before);
}
