//! Overlay mounts of extracted layers, a real step with runc on them, and its layer.

use std::io::Cursor;
use std::path::{Path, PathBuf};

use crate::support::executor::{Sandbox, busybox_rootfs, can_run_containers};
use bud::snapshot::apply::extract_layer;
use bud::snapshot::diff::write_layer;
use bud::snapshot::overlay::{self, Writable};
use bud::snapshot::stubs::{DEFAULT_TARGETS, MountStubs};
use bud::snapshot::{copy, diff};

fn can_mount_overlay() -> bool {
    if rustix::process::geteuid().is_root() && overlay::is_supported() {
        return true;
    }
    if std::env::var_os("CI").is_some() {
        panic!("overlay tests need root and overlayfs");
    }
    eprintln!("skipping: needs root and overlayfs");
    false
}

fn tar_of(dir: &Path) -> Vec<u8> {
    let mut tar = Vec::new();
    write_layer(dir, &mut tar).unwrap();
    tar
}

fn names(tar: &[u8]) -> Vec<String> {
    let mut archive = tar::Archive::new(Cursor::new(tar));
    archive
        .entries()
        .unwrap()
        .map(|e| String::from_utf8_lossy(&e.unwrap().path_bytes()).into_owned())
        .collect()
}

/// Three lowers, bottom to top: busybox; `/data/{a,b}` and `/old/x`; `/data/b` removed.
fn three_lowers(root: &Path) -> Vec<PathBuf> {
    let src = root.join("src");
    let base = src.join("base");
    busybox_rootfs(&base);
    let second = src.join("second");
    std::fs::create_dir_all(second.join("data")).unwrap();
    std::fs::create_dir_all(second.join("old")).unwrap();
    std::fs::write(second.join("data/a"), "a\n").unwrap();
    std::fs::write(second.join("data/b"), "b\n").unwrap();
    std::fs::write(second.join("old/x"), "x\n").unwrap();
    let third = src.join("third");
    std::fs::create_dir_all(third.join("data")).unwrap();
    rustix::fs::mknodat(
        rustix::fs::CWD,
        third.join("data/b"),
        rustix::fs::FileType::CharacterDevice,
        rustix::fs::Mode::empty(),
        0,
    )
    .unwrap();
    // Each goes through a tar and back, as layers pulled from a registry would.
    [third, second, base]
        .iter()
        .enumerate()
        .map(|(i, dir)| {
            let lower = root.join(format!("layer{i}"));
            std::fs::create_dir(&lower).unwrap();
            extract_layer(Cursor::new(tar_of(dir)), &lower).unwrap();
            lower
        })
        .collect()
}

#[tokio::test]
async fn step_on_three_lowers_gives_whiteouts_and_no_stubs() {
    if !can_run_containers() || !can_mount_overlay() {
        return;
    }
    let sandbox = Sandbox::new();
    let root = sandbox.dir.path();
    let lowers = three_lowers(root);
    let lower_refs: Vec<&Path> = lowers.iter().map(PathBuf::as_path).collect();
    let (upper, work, merged) = (root.join("upper"), root.join("work"), root.join("merged"));
    for d in [&upper, &work, &merged] {
        std::fs::create_dir(d).unwrap();
    }
    let mount = overlay::mount(
        &lower_refs,
        Some(Writable {
            upper: &upper,
            work: &work,
        }),
        &merged,
    )
    .unwrap();
    assert_eq!(
        std::fs::read_to_string(merged.join("data/a")).unwrap(),
        "a\n"
    );
    assert!(!merged.join("data/b").exists());

    let mut targets: Vec<&str> = DEFAULT_TARGETS.to_vec();
    targets.push("/cache/deep");
    let stubs = MountStubs::record(&merged, targets).unwrap();

    let mut exec = sandbox.spec(
        "echo new > /data/c && rm /data/a && rm -rf /old && mkdir /old && echo y > /old/y \
         && ls /data",
    );
    exec.rootfs = merged.clone();
    exec.mounts.push(bud::executor::Mount {
        dest: "/cache/deep".into(),
        kind: bud::executor::MountKind::Tmpfs { size: None },
    });
    let (code, out, err) = sandbox.run(&exec).await;
    assert_eq!((code, out.as_str()), (0, "c\n"), "stderr: {err}");
    mount.unmount().unwrap();

    let mut removed = stubs.remove_from(&upper).unwrap();
    removed.sort();
    assert_eq!(
        removed,
        [
            "cache",
            "cache/deep",
            "dev",
            "etc/hosts",
            "etc/resolv.conf",
            "proc",
            "sys"
        ]
    );
    let stats_tar = tar_of(&upper);
    assert_eq!(
        names(&stats_tar),
        [
            "data/",
            "data/.wh.a",
            "data/c",
            "etc/",
            "old/",
            "old/.wh..wh..opq",
            "old/y",
        ]
    );
    let stats = diff::write_layer(&upper, std::io::sink()).unwrap();
    assert_eq!(stats.size, stats_tar.len() as u64);
}

#[test]
fn read_only_overlay_and_bind_of_upper() {
    if !can_mount_overlay() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let lowers = three_lowers(tmp.path());
    let lower_refs: Vec<&Path> = lowers.iter().map(PathBuf::as_path).collect();
    let merged = tmp.path().join("merged");
    std::fs::create_dir(&merged).unwrap();
    {
        let _mount = overlay::mount(&lower_refs, None, &merged).unwrap();
        assert!(merged.join("bin/busybox").is_file());
        let write = std::fs::write(merged.join("new"), "x");
        assert_eq!(
            write.unwrap_err().raw_os_error(),
            Some(rustix::io::Errno::ROFS.raw_os_error())
        );
    }
    // Dropping the guard unmounted it.
    assert!(!merged.join("bin").exists());

    let upper = tmp.path().join("upper");
    std::fs::create_dir(&upper).unwrap();
    let mount = overlay::mount(
        &[],
        Some(Writable {
            upper: &upper,
            work: &tmp.path().join("unused"),
        }),
        &merged,
    )
    .unwrap();
    std::fs::write(merged.join("f"), "x").unwrap();
    mount.unmount().unwrap();
    assert_eq!(std::fs::read_to_string(upper.join("f")).unwrap(), "x");
    assert!(overlay::mount(&[], None, &merged).is_err());
}

#[test]
fn copy_fallback_matches_the_overlay_view() {
    if !can_mount_overlay() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let lowers = three_lowers(tmp.path());
    let lower_refs: Vec<&Path> = lowers.iter().map(PathBuf::as_path).collect();
    let copied = tmp.path().join("copied");
    std::fs::create_dir(&copied).unwrap();
    copy::populate(&lower_refs, &copied).unwrap();

    let merged = tmp.path().join("merged");
    std::fs::create_dir(&merged).unwrap();
    let _mount = overlay::mount(&lower_refs, None, &merged).unwrap();
    assert_eq!(tar_of(&copied), tar_of(&merged));
    assert!(!copied.join("data/b").exists());
}
