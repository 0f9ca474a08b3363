//! Layer tars: writing an upper directory, extracting a layer, refusing hostile archives.
//! Whiteouts and opaque xattrs need root.

use std::io::Cursor;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;

use bud::snapshot::SnapshotError;
use bud::snapshot::apply::extract_layer;
use bud::snapshot::diff::{layer_size, write_layer};
use sha2::{Digest, Sha256};

use crate::support::{
    Mounted, bud_at, docker, docker_ok, remove_images, require_base_image, require_docker28,
    require_docker28_containerd, require_root, require_runc, stderr_of,
};

fn is_root() -> bool {
    if rustix::process::geteuid().is_root() {
        return true;
    }
    if std::env::var_os("CI").is_some() {
        panic!("snapshot tests need root");
    }
    eprintln!("skipping: not running as root");
    false
}

fn whiteout(path: &Path) {
    rustix::fs::mknodat(
        rustix::fs::CWD,
        path,
        rustix::fs::FileType::CharacterDevice,
        rustix::fs::Mode::empty(),
        0,
    )
    .unwrap();
}

fn set_opaque(path: &Path) {
    rustix::fs::setxattr(
        path,
        "trusted.overlay.opaque",
        b"y",
        rustix::fs::XattrFlags::empty(),
    )
    .unwrap();
}

/// (path, type char, link target) of each entry, in archive order.
fn listing(tar: &[u8]) -> Vec<(String, char, String)> {
    let mut archive = tar::Archive::new(Cursor::new(tar));
    archive
        .entries()
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let kind = match e.header().entry_type() {
                tar::EntryType::Regular => 'f',
                tar::EntryType::Directory => 'd',
                tar::EntryType::Symlink => 'l',
                tar::EntryType::Link => 'h',
                tar::EntryType::Char => 'c',
                other => panic!("unexpected {other:?}"),
            };
            let link = e
                .link_name_bytes()
                .map(|l| String::from_utf8_lossy(&l).into_owned())
                .unwrap_or_default();
            (
                String::from_utf8_lossy(&e.path_bytes()).into_owned(),
                kind,
                link,
            )
        })
        .collect()
}

/// `security.capability` as `setcap cap_net_raw+ep` sets it (VFS_CAP_REVISION_2).
const NET_RAW_CAPABILITY: [u8; 20] = [
    1, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
];

/// An upper directory as overlayfs leaves it after a step.
fn sample_upper(dir: &Path) {
    std::fs::create_dir_all(dir.join("etc/opaque")).unwrap();
    std::fs::write(dir.join("etc/opaque/kept"), "kept\n").unwrap();
    set_opaque(&dir.join("etc/opaque"));
    whiteout(&dir.join("etc/removed"));
    // Whiteouts from another builder's layer may carry any owner; the tar keeps it.
    rustix::fs::chownat(
        rustix::fs::CWD,
        dir.join("etc/removed"),
        Some(rustix::fs::Uid::from_raw(1000)),
        Some(rustix::fs::Gid::from_raw(27)),
        rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
    )
    .unwrap();
    std::fs::write(dir.join("etc/app.conf"), "a=1\n").unwrap();
    std::fs::set_permissions(dir.join("etc/app.conf"), PermissionsExt::from_mode(0o640)).unwrap();
    rustix::fs::chown(
        dir.join("etc/app.conf"),
        Some(rustix::fs::Uid::from_raw(1000)),
        Some(rustix::fs::Gid::from_raw(27)),
    )
    .unwrap();
    rustix::fs::setxattr(
        dir.join("etc/app.conf"),
        "user.origin",
        b"bud",
        rustix::fs::XattrFlags::empty(),
    )
    .unwrap();
    rustix::fs::setxattr(
        dir.join("etc/app.conf"),
        "security.capability",
        &NET_RAW_CAPABILITY,
        rustix::fs::XattrFlags::empty(),
    )
    .unwrap();
    std::fs::hard_link(dir.join("etc/app.conf"), dir.join("etc/app.link")).unwrap();
    std::os::unix::fs::symlink("app.conf", dir.join("etc/current")).unwrap();
    let deep = "d".repeat(60) + "/" + &"e".repeat(60);
    std::fs::create_dir_all(dir.join(&deep)).unwrap();
    std::fs::write(dir.join(&deep).join("f".repeat(150)), "long\n").unwrap();
}

/// Gives every entry under `dir` (symlinks and whiteouts included, children before their
/// directory) its own time in 2001, so that any time an extraction fails to restore is
/// "now" and differs whatever the machine's load.
fn backdate(dir: &Path) {
    fn visit(path: &Path, next: &mut i64) {
        if std::fs::symlink_metadata(path).unwrap().is_dir() {
            let mut names: Vec<_> = std::fs::read_dir(path)
                .unwrap()
                .map(|e| e.unwrap().path())
                .collect();
            names.sort();
            for child in names {
                visit(&child, next);
            }
        }
        set_mtime(path, *next, 0);
        *next += 61;
    }
    visit(dir, &mut 1_000_000_000);
}

/// Every header field of each entry, in archive order, for an entry-by-entry comparison.
fn headers(tar: &[u8]) -> Vec<String> {
    let mut archive = tar::Archive::new(Cursor::new(tar));
    archive
        .entries()
        .unwrap()
        .map(|e| {
            let mut e = e.unwrap();
            let pax: Vec<String> = e
                .pax_extensions()
                .unwrap()
                .map(|exts| {
                    // `path` and `linkpath` are shown as the entry's path and link.
                    exts.map(|x| x.unwrap())
                        .filter(|x| !matches!(x.key(), Ok("path" | "linkpath")))
                        .map(|x| {
                        format!(
                            "{}={}",
                            x.key().unwrap(),
                            String::from_utf8_lossy(x.value_bytes())
                        )
                    })
                    .collect()
                })
                .unwrap_or_default();
            let h = e.header();
            format!(
                "{} {:?} mode={:o} uid={} gid={} mtime={} size={} link={:?} dev={:?},{:?} pax={pax:?}",
                String::from_utf8_lossy(&e.path_bytes()),
                h.entry_type(),
                // Permission bits: Docker 20.10's Go also wrote the file type there.
                h.mode().unwrap() & 0o7777,
                h.uid().unwrap(),
                h.gid().unwrap(),
                h.mtime().unwrap(),
                h.size().unwrap(),
                e.link_name_bytes()
                    .map(|l| String::from_utf8_lossy(&l).into_owned()),
                h.device_major().ok().flatten(),
                h.device_minor().ok().flatten(),
            )
        })
        .collect()
}

#[test]
fn write_layer_converts_overlay_markers_and_is_deterministic() {
    if !is_root() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let upper = tmp.path().join("upper");
    sample_upper(&upper);

    let mut tar = Vec::new();
    let stats = write_layer(&upper, &mut tar).unwrap();
    assert_eq!(stats.size, tar.len() as u64);
    // Long names (PAX headers), xattrs, hardlinks and whiteouts all count.
    assert_eq!(layer_size(&upper).unwrap(), tar.len() as u64);
    assert_eq!(
        stats.diff_id,
        format!("sha256:{}", hex::encode(Sha256::digest(&tar)))
    );

    let long_dir = "d".repeat(60);
    let deep = format!("{long_dir}/{}", "e".repeat(60));
    // Directories end in `/`, as Docker writes them.
    let expected: Vec<(String, char, String)> = [
        (format!("{long_dir}/"), 'd', ""),
        (format!("{deep}/"), 'd', ""),
        (format!("{deep}/{}", "f".repeat(150)), 'f', ""),
        ("etc/".into(), 'd', ""),
        ("etc/app.conf".into(), 'f', ""),
        ("etc/app.link".into(), 'h', "etc/app.conf"),
        ("etc/current".into(), 'l', "app.conf"),
        ("etc/opaque/".into(), 'd', ""),
        ("etc/opaque/.wh..wh..opq".into(), 'f', ""),
        ("etc/opaque/kept".into(), 'f', ""),
        // At the name it deletes, as Docker's differs write it.
        ("etc/.wh.removed".into(), 'f', ""),
    ]
    .into_iter()
    .map(|(p, k, l)| (p, k, l.to_owned()))
    .collect();
    assert_eq!(listing(&tar), expected);
    assert_eq!(stats.entries, expected.len() as u64);

    // Of the xattrs only `security.capability` is carried, as Docker's differs carry it
    // (not overlay's, not the user's); ownership is.
    let mut archive = tar::Archive::new(Cursor::new(&tar));
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let path = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let keys: Vec<String> = entry
            .pax_extensions()
            .unwrap()
            .map(|exts| exts.map(|e| e.unwrap().key().unwrap().to_owned()).collect())
            .unwrap_or_default();
        assert!(
            !keys.iter().any(|k| k.contains("overlay")),
            "{path}: {keys:?}"
        );
        if path == "etc/app.conf" {
            assert_eq!(keys, ["SCHILY.xattr.security.capability"]);
            assert_eq!(entry.header().uid().unwrap(), 1000);
            assert_eq!(entry.header().gid().unwrap(), 27);
            assert_eq!(entry.header().mode().unwrap(), 0o640);
        }
    }

    let mut again = Vec::new();
    assert_eq!(write_layer(&upper, &mut again).unwrap(), stats);
    assert_eq!(again, tar);
}

#[test]
fn extract_layer_round_trips() {
    if !is_root() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let upper = tmp.path().join("upper");
    sample_upper(&upper);
    backdate(&upper);
    let mut tar = Vec::new();
    let stats = write_layer(&upper, &mut tar).unwrap();

    let lower = tmp.path().join("lower");
    std::fs::create_dir(&lower).unwrap();
    extract_layer(Cursor::new(&tar), &lower).unwrap();

    let removed = std::fs::symlink_metadata(lower.join("etc/removed")).unwrap();
    assert!(removed.file_type().is_char_device() && removed.rdev() == 0);
    assert_eq!(
        rustix::fs::getxattr(
            lower.join("etc/opaque"),
            "trusted.overlay.opaque",
            &mut [0u8; 4]
        )
        .unwrap(),
        1
    );
    let conf = std::fs::metadata(lower.join("etc/app.conf")).unwrap();
    assert_eq!(
        (conf.uid(), conf.gid(), conf.mode() & 0o7777),
        (1000, 27, 0o640)
    );
    assert_eq!(
        conf.ino(),
        std::fs::metadata(lower.join("etc/app.link")).unwrap().ino()
    );
    assert_eq!(
        std::fs::read_link(lower.join("etc/current")).unwrap(),
        Path::new("app.conf")
    );
    let original_mtime = std::fs::metadata(upper.join("etc")).unwrap().mtime();
    assert_eq!(
        std::fs::metadata(lower.join("etc")).unwrap().mtime(),
        original_mtime
    );

    // Extracted back to overlay format, the tree tars to the same layer: every entry's
    // time (whiteouts', symlinks', directories' after their children) and owner restored.
    let mut again = Vec::new();
    let again_stats = write_layer(&lower, &mut again).unwrap();
    assert_eq!(headers(&again), headers(&tar));
    assert_eq!(again_stats, stats);
}

#[test]
fn extract_layer_keeps_sub_second_pax_times() {
    if !is_root() {
        return;
    }
    use tar::EntryType::{Directory, Regular, Symlink};
    // Each entry's own PAX mtime, the directory's before the entries made inside it.
    let entries = [
        ("d", Directory, "", "1000000000.5"),
        ("d/f", Regular, "", "1000000001.25"),
        ("d/l", Symlink, "f", "1000000002.125"),
        ("d/.wh.gone", Regular, "", "1000000003.000000007"),
        // Out of what Go's time holds in nanoseconds: the epoch, as containerd bounds it.
        ("d/before-epoch", Regular, "", "-100.5"),
        ("d/after-2262", Regular, "", "10000000000000"),
    ];
    let mut builder = tar::Builder::new(Vec::new());
    for (path, kind, link, mtime) in entries {
        builder
            .append_pax_extensions([("mtime", mtime.as_bytes())])
            .unwrap();
        let mut header = tar::Header::new_ustar();
        header.set_path(path).unwrap();
        header.set_entry_type(kind);
        if !link.is_empty() {
            header.set_link_name(link).unwrap();
        }
        header.set_mode(if kind == Directory { 0o755 } else { 0o644 });
        header.set_mtime(mtime.split('.').next().unwrap().parse().unwrap_or(0));
        header.set_size(0);
        header.set_cksum();
        builder.append(&header, std::io::empty()).unwrap();
    }
    let tar = builder.into_inner().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    extract_layer(Cursor::new(&tar), tmp.path()).unwrap();

    let time_of = |rel: &str| {
        let meta = std::fs::symlink_metadata(tmp.path().join(rel)).unwrap();
        (meta.mtime(), meta.mtime_nsec())
    };
    assert_eq!(time_of("d"), (1_000_000_000, 500_000_000));
    assert_eq!(time_of("d/f"), (1_000_000_001, 250_000_000));
    assert_eq!(time_of("d/l"), (1_000_000_002, 125_000_000));
    // The whiteout overlayfs reads for `.wh.gone`.
    assert!(
        std::fs::symlink_metadata(tmp.path().join("d/gone"))
            .unwrap()
            .file_type()
            .is_char_device()
    );
    assert_eq!(time_of("d/gone"), (1_000_000_003, 7));
    assert_eq!(time_of("d/before-epoch"), (0, 0));
    assert_eq!(time_of("d/after-2262"), (0, 0));
}

/// A tar whose raw entries are written as given, bypassing the tar crate's path checks.
fn raw_tar(entries: &[(&str, tar::EntryType, &str, &[u8])]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (path, kind, link, data) in entries {
        let mut header = tar::Header::new_ustar();
        let name = &mut header.as_old_mut().name;
        name[..path.len()].copy_from_slice(path.as_bytes());
        if !link.is_empty() {
            header.as_old_mut().linkname[..link.len()].copy_from_slice(link.as_bytes());
        }
        header.set_entry_type(*kind);
        header.set_mode(0o644);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(0);
        header.set_size(data.len() as u64);
        header.set_cksum();
        builder.append(&header, *data).unwrap();
    }
    builder.into_inner().unwrap()
}

fn assert_refused(tar: &[u8], outside: &Path) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("layer");
    std::fs::create_dir(&dir).unwrap();
    let result = extract_layer(Cursor::new(tar), &dir);
    assert!(
        matches!(result, Err(SnapshotError::UnsafeEntry { .. })),
        "{result:?}"
    );
    assert!(!outside.exists(), "{} was written", outside.display());
}

#[test]
fn hostile_archives_are_refused_and_absolute_names_rerooted() {
    if !is_root() {
        return;
    }
    let victim = tempfile::tempdir().unwrap();
    let target = victim.path().join("pwned");
    let abs = target.to_str().unwrap();
    let escape = format!("../../../../../../../..{abs}");
    use tar::EntryType::{Directory, Link, Regular, Symlink};

    assert_refused(&raw_tar(&[(&escape, Regular, "", b"x")]), &target);
    assert_refused(&raw_tar(&[("a/../../pwned", Regular, "", b"x")]), &target);
    // An absolute name is extracted under the layer's root, as Docker extracts it.
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("layer");
    std::fs::create_dir(&dir).unwrap();
    let tar = raw_tar(&[
        ("/abs-dir/", Directory, "", b""),
        (abs, Regular, "", b"x"),
        ("/abs-dir/hard", Link, abs, b""),
    ]);
    extract_layer(Cursor::new(tar), &dir).unwrap();
    assert!(!target.exists(), "{} was written", target.display());
    let inside = dir.join(abs.trim_start_matches('/'));
    assert_eq!(std::fs::read(&inside).unwrap(), b"x");
    assert!(dir.join("abs-dir").is_dir());
    assert_eq!(std::fs::read(dir.join("abs-dir/hard")).unwrap(), b"x");
    // A symlink to outside, then a file written through it.
    let victim_dir = victim.path().to_str().unwrap();
    assert_refused(
        &raw_tar(&[
            ("link", Symlink, victim_dir, b""),
            ("link/pwned", Regular, "", b"x"),
        ]),
        &target,
    );
    // The same through a relative symlink and a directory entry.
    assert_refused(
        &raw_tar(&[
            ("up", Symlink, "../../../../../../../../../..", b""),
            ("up/tmp", Directory, "", b""),
        ]),
        &target,
    );
    // A hard link to a file outside.
    assert_refused(&raw_tar(&[("h", Link, &escape, b"")]), &target);
}

/// Files of one directory, one listed twice and one replacing a symlink, and a file whose
/// directory the layer never lists: a later entry wins, as in tar.
#[test]
fn a_later_entry_replaces_an_earlier_one_of_the_same_directory() {
    if !is_root() {
        return;
    }
    use tar::EntryType::{Directory, Regular, Symlink};
    let tar = raw_tar(&[
        ("d/", Directory, "", b""),
        ("d/a", Regular, "", b"first"),
        ("d/b", Regular, "", b"b"),
        ("d/a", Regular, "", b"second"),
        ("d/c", Symlink, "/etc", b""),
        ("d/c", Regular, "", b"not a link"),
        ("e/f", Regular, "", b"f"),
    ]);
    let tmp = tempfile::tempdir().unwrap();
    extract_layer(Cursor::new(&tar), tmp.path()).unwrap();
    let read = |path: &str| std::fs::read_to_string(tmp.path().join(path)).unwrap();
    assert_eq!(
        [read("d/a"), read("d/b"), read("d/c"), read("e/f")],
        ["second", "b", "not a link", "f"]
    );
    assert!(!tmp.path().join("d/c").is_symlink());
}

/// Many small files (written side by side) and one among them that cannot be made as the
/// layer says (an xattr in no namespace the kernel knows): the extraction fails, naming it.
#[test]
fn a_file_that_cannot_be_written_fails_the_extraction_among_many() {
    if !is_root() {
        return;
    }
    let mut builder = tar::Builder::new(Vec::new());
    for i in 0..200 {
        let name = format!("d{}/f{i}", i % 3);
        if i == 150 {
            builder
                .append_pax_extensions([("SCHILY.xattr.nonsense.attr", &b"x"[..])])
                .unwrap();
        }
        let mut header = tar::Header::new_ustar();
        header.set_entry_type(tar::EntryType::Regular);
        header.set_mode(0o644);
        header.set_size(3);
        header.set_cksum();
        builder
            .append_data(&mut header, &name, &b"abc"[..])
            .unwrap();
    }
    let tar = builder.into_inner().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let result = extract_layer(Cursor::new(&tar), tmp.path());
    let message = match result {
        Err(e) => bud::error_chain::error_chain(&e),
        Ok(()) => panic!("extracted"),
    };
    assert!(message.contains("d0/f150"), "{message}");
}

#[test]
fn symlinks_may_point_anywhere_but_are_never_followed() {
    if !is_root() {
        return;
    }
    let victim = tempfile::tempdir().unwrap();
    std::fs::write(victim.path().join("file"), "original").unwrap();
    let outside = victim.path().join("file");
    use tar::EntryType::{Regular, Symlink};
    // An absolute symlink is normal in images; a later file of the same name replaces the
    // link instead of writing through it.
    let tar = raw_tar(&[
        ("bin", Symlink, outside.to_str().unwrap(), b""),
        ("bin", Regular, "", b"replaced"),
    ]);
    let tmp = tempfile::tempdir().unwrap();
    extract_layer(Cursor::new(&tar), tmp.path()).unwrap();
    assert_eq!(std::fs::read_to_string(&outside).unwrap(), "original");
    assert_eq!(
        std::fs::read_to_string(tmp.path().join("bin")).unwrap(),
        "replaced"
    );
}

/// Sets `path`'s mtime (not following a symlink) to `secs` and `nanos`.
fn set_mtime(path: &Path, secs: i64, nanos: i64) {
    let time = rustix::fs::Timespec {
        tv_sec: secs,
        tv_nsec: nanos,
    };
    rustix::fs::utimensat(
        rustix::fs::CWD,
        path,
        &rustix::fs::Timestamps {
            last_access: time,
            last_modification: time,
        },
        rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
    )
    .unwrap();
}

/// A context whose `tree/` holds what Go's tar writer treats apart: sub-second mtimes
/// (truncated), a path USTAR holds split into prefix and name, one it cannot (a PAX
/// `path`), a name not in ASCII (PAX, its header named `PaxHeaders.0`), a symlink target
/// longer than the link field (PAX `linkpath`), a hard link, a setuid file.
fn layer_bytes_context(dir: &Path) {
    let tree = dir.join("tree");
    let split = tree.join("a".repeat(60)).join("b".repeat(60));
    let unsplittable = tree.join("l".repeat(150));
    std::fs::create_dir_all(&split).unwrap();
    std::fs::create_dir_all(&unsplittable).unwrap();
    std::fs::create_dir_all(tree.join("sub")).unwrap();
    std::fs::write(split.join("file-with-a-long-path"), "deep\n").unwrap();
    std::fs::write(unsplittable.join("c".repeat(120)), "c\n").unwrap();
    std::fs::write(tree.join("é-file"), "é\n").unwrap();
    std::fs::write(tree.join("sub/ns"), "ns\n").unwrap();
    std::fs::write(tree.join("hard1"), "h\n").unwrap();
    std::fs::hard_link(tree.join("hard1"), tree.join("hard2")).unwrap();
    std::os::unix::fs::symlink("sub/ns", tree.join("link")).unwrap();
    std::os::unix::fs::symlink(format!("../{}", "t".repeat(120)), tree.join("longlink")).unwrap();
    std::fs::write(tree.join("suid"), "s\n").unwrap();
    std::fs::set_permissions(tree.join("suid"), PermissionsExt::from_mode(0o4755)).unwrap();
    // Children before their directory, each a time with nanoseconds.
    fn visit(path: &Path) {
        if std::fs::symlink_metadata(path).unwrap().is_dir() {
            for entry in std::fs::read_dir(path).unwrap() {
                visit(&entry.unwrap().path());
            }
        }
        set_mtime(path, 1_580_608_922, 987_654_321);
    }
    visit(&tree);
    set_mtime(&tree.join("sub/ns"), 1_546_300_800, 500_000_000);
    std::fs::write(
        dir.join("Dockerfile"),
        "FROM bud-test/busybox\nCOPY tree /\n",
    )
    .unwrap();
}

/// The last layer of the image `docker save` wrote as `archive`, as its manifest names it.
fn last_saved_layer(archive: &[u8]) -> Vec<u8> {
    let entries = |f: &mut dyn FnMut(String, Vec<u8>) -> bool| {
        let mut tar = tar::Archive::new(Cursor::new(archive));
        for entry in tar.entries().unwrap() {
            let mut entry = entry.unwrap();
            let path = entry.path().unwrap().display().to_string();
            let mut bytes = Vec::new();
            std::io::Read::read_to_end(&mut entry, &mut bytes).unwrap();
            if f(path, bytes) {
                return;
            }
        }
    };
    let mut manifest = Vec::new();
    entries(&mut |path, bytes| {
        if path == "manifest.json" {
            manifest = bytes;
        }
        path == "manifest.json"
    });
    let manifest: serde_json::Value = serde_json::from_slice(&manifest).unwrap();
    let layer = manifest[0]["Layers"].as_array().unwrap().last().unwrap();
    let layer = layer.as_str().unwrap().to_owned();
    let mut found = Vec::new();
    entries(&mut |path, bytes| {
        if path == layer {
            found = bytes;
        }
        path == layer
    });
    assert!(!found.is_empty(), "{layer} is not in the archive");
    found
}

/// The diff ID of the top layer of `tag`, as `inspect` (a docker client's
/// `docker image inspect`) shows it.
fn top_diff_id(inspect: impl Fn(&[&str]) -> String, tag: &str) -> String {
    let layers = inspect(&[
        "image",
        "inspect",
        "--format",
        "{{json .RootFS.Layers}}",
        tag,
    ]);
    let layers: Vec<String> = serde_json::from_str(&layers).unwrap();
    layers.last().unwrap().clone()
}

/// The same tree makes the same layer: bud's COPY layer has the diff ID Docker 28.5 gives
/// it, whether its layer store (moby's `pkg/archive`) or BuildKit's differ (containerd's
/// `archive`, the containerd image store) writes it: both truncate mtimes to the second
/// and write Go's headers (directories ending in `/`, device numbers and checksums in Go's
/// octal form, PAX headers only where USTAR cannot hold an entry). Docker 20.10's older Go
/// wrote the file type into the mode and the owner's names, so its diff ID differs; every
/// other header field is the same as bud's (but the times of the directories its COPY
/// makes).
#[test]
fn copy_layers_have_dockers_diff_ids() {
    if !require_base_image() || !require_runc() {
        return;
    }
    let (Some(docker28), Some(containerd_store)) =
        (require_docker28(), require_docker28_containerd())
    else {
        return;
    };
    let context = tempfile::tempdir().unwrap();
    layer_bytes_context(context.path());
    let dir = context.path().to_str().unwrap();
    let root = tempfile::tempdir().unwrap();
    let (docker20_tag, docker28_tag, bud_tag) = (
        "bud-layer-bytes/docker20",
        "bud-layer-bytes/docker28",
        "bud-layer-bytes/bud",
    );

    let out = docker(&["build", "-q", "-t", docker20_tag, dir]);
    assert!(out.status.success(), "docker 20.10: {}", stderr_of(&out));
    for daemon in [&docker28, &containerd_store] {
        let out = daemon.build(&["-q", "-t", docker28_tag, dir]);
        assert!(out.status.success(), "docker 28.5: {}", stderr_of(&out));
    }
    let out = bud_at(root.path(), &["-t", bud_tag, dir]);
    assert!(out.status.success(), "bud: {}", stderr_of(&out));

    let bud = top_diff_id(docker_ok, bud_tag);
    let layer_store = top_diff_id(|args| docker28.ok(args), docker28_tag);
    let buildkit_differ = top_diff_id(|args| containerd_store.ok(args), docker28_tag);
    assert_eq!(layer_store, buildkit_differ, "the two Docker 28.5 stores");
    assert_eq!(bud, layer_store, "bud's layer and Docker 28.5's");

    let save = |tag: &str| {
        let out = docker(&["save", tag]);
        assert!(
            out.status.success(),
            "docker save {tag}: {}",
            stderr_of(&out)
        );
        last_saved_layer(&out.stdout)
    };
    // Docker 20.10's COPY (BuildKit v0.8) gives the directories it makes the time of the
    // copy, not the source's: their mtimes are left out.
    let without_directory_times = |tar: &[u8]| -> Vec<String> {
        headers(tar)
            .into_iter()
            .map(|entry| {
                if !entry.contains(" Directory ") {
                    return entry;
                }
                let (before, after) = entry.split_once(" mtime=").unwrap();
                let (_, rest) = after.split_once(' ').unwrap();
                format!("{before} {rest}")
            })
            .collect()
    };
    let (bud_tar, docker20_tar) = (save(bud_tag), save(docker20_tag));
    assert_eq!(
        without_directory_times(&bud_tar),
        without_directory_times(&docker20_tar),
        "bud's and Docker 20.10's headers"
    );

    remove_images(&[docker20_tag, bud_tag]);
    for daemon in [&docker28, &containerd_store] {
        daemon.ok(&["image", "rm", docker28_tag]);
    }
}

/// Extracts `tar` into a new directory `lower` under `mounted`, checks that `fallback`
/// holds there, and that the directory tars to `tar` again: the same entries, in the same
/// order, with the same headers.
fn extract_and_retar(tar: &[u8], mounted: &Path, fallback: impl Fn(&Path)) {
    let lower = mounted.join("lower");
    std::fs::create_dir(&lower).unwrap();
    extract_layer(Cursor::new(tar), &lower).unwrap();
    fallback(&lower);
    let mut again = Vec::new();
    let stats = write_layer(&lower, &mut again).unwrap();
    assert_eq!(listing(&again), listing(tar));
    assert_eq!(headers(&again), headers(tar));
    assert_eq!(again, tar);
    assert_eq!(stats.size, layer_size(&lower).unwrap());
}

/// Where overlayfs' markers cannot be made, extraction falls back to the OCI files, with
/// each marker's owner and time: `.wh.NAME` on overlayfs itself (a layer directory under a
/// container's root: overlayfs refuses a 0/0 device), `DIR/.wh..wh..opq` on a filesystem
/// without xattrs. Tarred again, such a directory gives the very layer extracted, as
/// Docker's: the same whiteouts at the same places (also beside a child that sorts before
/// `.wh..wh..opq`, and a whiteout whose `.wh.` name sorts apart from its own), with the same
/// headers, so the same diff ID.
#[test]
fn oci_whiteout_files_where_overlay_markers_are_refused_tar_to_the_same_layer() {
    if !require_root("to mount overlayfs and ramfs") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let upper = tmp.path().join("upper");
    sample_upper(&upper);
    // ramfs holds no xattrs: the capability would not extract there.
    rustix::fs::removexattr(upper.join("etc/app.conf"), "security.capability").unwrap();
    std::fs::write(upper.join("etc/opaque/+early"), "early\n").unwrap();
    whiteout(&upper.join("etc/+removed"));
    backdate(&upper);
    let mut tar = Vec::new();
    write_layer(&upper, &mut tar).unwrap();

    let container = Mounted::overlay(&tmp.path().join("layers"), &tmp.path().join("rootfs"));
    extract_and_retar(&tar, container.path(), |lower| {
        for name in ["etc/.wh.removed", "etc/.wh.+removed"] {
            let marker = std::fs::symlink_metadata(lower.join(name)).unwrap();
            assert!(marker.is_file() && marker.len() == 0, "{name}");
        }
        let marker = std::fs::symlink_metadata(lower.join("etc/.wh.removed")).unwrap();
        assert_eq!(
            (marker.uid(), marker.gid()),
            (1000, 27),
            "the whiteout's owner"
        );
        assert!(std::fs::symlink_metadata(lower.join("etc/removed")).is_err());
    });

    let no_xattrs = Mounted::ramfs(&tmp.path().join("ramfs"));
    extract_and_retar(&tar, no_xattrs.path(), |lower| {
        let marker = std::fs::symlink_metadata(lower.join("etc/opaque/.wh..wh..opq")).unwrap();
        assert!(marker.is_file() && marker.len() == 0);
        let removed = std::fs::symlink_metadata(lower.join("etc/removed")).unwrap();
        assert!(removed.file_type().is_char_device(), "ramfs makes devices");
    });
}

/// Gives every step layer of the state root `root` a diff ID as an earlier bud's layer
/// writer recorded it, its tar no longer stored: one the directory does not tar to now.
fn record_earlier_writers_diff_ids(root: &Path) -> usize {
    let state = bud::state::StateRoot::open(root).unwrap();
    let meta = bud::cache::meta::MetaStore::open(&state.db_path()).unwrap();
    let earlier = format!("sha256:{}", "0".repeat(64));
    let mut changed = 0;
    for record in meta.snapshots().unwrap() {
        if record.kind == bud::cache::meta::SnapshotKind::Layer && record.diff_id.is_some() {
            meta.set_diff_id(&record.id, &earlier, 0).unwrap();
            changed += 1;
        }
    }
    changed
}

/// A state root an earlier bud used holds diff IDs its layer writer recorded, which the
/// directories no longer tar to once the tars are pruned: such a diff ID is not trusted,
/// the directory is tarred again and its new diff ID recorded, whether the image goes into
/// Docker or into an archive; the image is the one a fresh state root gives.
#[test]
fn a_diff_id_an_earlier_layer_writer_recorded_is_not_trusted() {
    if !require_base_image() {
        return;
    }
    let context = tempfile::tempdir().unwrap();
    std::fs::write(context.path().join("f"), "f\n").unwrap();
    std::fs::write(
        context.path().join("Dockerfile"),
        "FROM bud-test/busybox\nCOPY f /f\n",
    )
    .unwrap();
    let dir = context.path().to_str().unwrap();
    let root = tempfile::tempdir().unwrap();
    let (first, again) = ("bud-layer-format/first", "bud-layer-format/again");

    let out = bud_at(root.path(), &["-t", first, dir]);
    assert!(out.status.success(), "bud: {}", stderr_of(&out));
    let want = top_diff_id(docker_ok, first);

    assert!(
        record_earlier_writers_diff_ids(root.path()) > 0,
        "no step layer recorded"
    );
    let out = bud_at(root.path(), &["-t", again, dir]);
    assert!(out.status.success(), "bud into Docker: {}", stderr_of(&out));
    assert_eq!(top_diff_id(docker_ok, again), want);

    assert!(
        record_earlier_writers_diff_ids(root.path()) > 0,
        "no step layer recorded"
    );
    let archive = root.path().join("image.tar");
    let output = format!("type=docker,dest={}", archive.display());
    let out = bud_at(root.path(), &["-o", &output, dir]);
    assert!(
        out.status.success(),
        "bud into an archive: {}",
        stderr_of(&out)
    );
    let layer = last_saved_layer(&std::fs::read(&archive).unwrap());
    assert_eq!(
        format!("sha256:{}", hex::encode(Sha256::digest(&layer))),
        want
    );

    remove_images(&[first, again]);
}
