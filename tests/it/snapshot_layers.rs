//! Layer tars: writing an upper directory, extracting a layer, refusing hostile archives.
//! Whiteouts and opaque xattrs need root.

use std::io::Cursor;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;

use bud::snapshot::SnapshotError;
use bud::snapshot::apply::extract_layer;
use bud::snapshot::diff::{layer_size, write_layer};
use sha2::{Digest, Sha256};

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
        let time = rustix::fs::Timespec {
            tv_sec: *next,
            tv_nsec: 0,
        };
        *next += 61;
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
                h.mode().unwrap(),
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
    let expected: Vec<(String, char, String)> = [
        (long_dir.clone(), 'd', ""),
        (deep.clone(), 'd', ""),
        (format!("{deep}/{}", "f".repeat(150)), 'f', ""),
        ("etc".into(), 'd', ""),
        ("etc/.wh.removed".into(), 'f', ""),
        ("etc/app.conf".into(), 'f', ""),
        ("etc/app.link".into(), 'h', "etc/app.conf"),
        ("etc/current".into(), 'l', "app.conf"),
        ("etc/opaque".into(), 'd', ""),
        ("etc/opaque/.wh..wh..opq".into(), 'f', ""),
        ("etc/opaque/kept".into(), 'f', ""),
    ]
    .into_iter()
    .map(|(p, k, l)| (p, k, l.to_owned()))
    .collect();
    assert_eq!(listing(&tar), expected);
    assert_eq!(stats.entries, expected.len() as u64);

    // The overlay xattr is not carried; the user's xattr and ownership are.
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
            assert_eq!(keys, ["SCHILY.xattr.user.origin"]);
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
