//! ADD's archive unpacking (`attempt_unpack_docker_compatibility`).

use std::fs;
use std::io::Write;

use crate::support::fileop::*;
use bud::fileop::{self, CopyAction, Owner};
use tar::EntryType;

/// The action the Dockerfile frontend emits for `ADD <src> <dest>` of a local file.
fn docker_add(src: &str, dest: &str) -> CopyAction<'static> {
    CopyAction {
        src: src.to_owned(),
        dest: dest.to_owned(),
        follow_symlinks: true,
        dir_copy_contents: true,
        create_dest_path: true,
        allow_wildcard: true,
        attempt_unpack_docker_compatibility: true,
        ..CopyAction::default()
    }
}

/// Appends an entry with a raw name and link name, bypassing the tar crate's own path
/// checks so that hostile archives can be built.
fn raw_entry(
    b: &mut tar::Builder<Vec<u8>>,
    name: &str,
    kind: EntryType,
    link: &str,
    data: &[u8],
    mode: u32,
) {
    let mut h = tar::Header::new_ustar();
    {
        let bytes = h.as_mut_bytes();
        bytes[..name.len()].copy_from_slice(name.as_bytes());
        bytes[157..157 + link.len()].copy_from_slice(link.as_bytes());
    }
    h.set_mode(mode);
    h.set_size(data.len() as u64);
    h.set_entry_type(kind);
    h.set_mtime(1_500_000_000);
    h.set_uid(7);
    h.set_gid(8);
    h.set_cksum();
    b.append(&h, data).unwrap();
}

fn sample_tar() -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    raw_entry(&mut b, "./", EntryType::Directory, "", b"", 0o700);
    raw_entry(&mut b, "app/", EntryType::Directory, "", b"", 0o750);
    raw_entry(
        &mut b,
        "app/run.sh",
        EntryType::Regular,
        "",
        b"echo hi",
        0o755,
    );
    raw_entry(&mut b, "app/link", EntryType::Symlink, "run.sh", b"", 0o777);
    raw_entry(
        &mut b,
        "app/hard",
        EntryType::Link,
        "app/run.sh",
        b"",
        0o755,
    );
    raw_entry(
        &mut b,
        "implied/parent/f",
        EntryType::Regular,
        "",
        b"F",
        0o600,
    );
    b.into_inner().unwrap()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn bzip2(data: &[u8]) -> Vec<u8> {
    let mut e = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn xz(data: &[u8]) -> Vec<u8> {
    let mut e = liblzma::write::XzEncoder::new(Vec::new(), 6);
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

#[test]
fn unpacks_plain_gzip_bzip2_and_xz_archives() {
    let tar = sample_tar();
    let formats: [(&str, Vec<u8>); 4] = [
        ("plain.tar", tar.clone()),
        ("archive.tgz", gzip(&tar)),
        ("archive.tar.bz2", bzip2(&tar)),
        // The name does not matter: detection is by content.
        ("archive.bin", xz(&tar)),
    ];
    for (name, data) in formats {
        let r = Roots::new();
        fs::write(r.src.join(name), data).unwrap();
        assert!(fileop::is_archive(&r.src.join(name)), "{name}");
        fileop::copy(&r.src, &r.dst, &docker_add(name, "/opt/")).unwrap();
        let t = tree(&r.dst);
        assert_eq!(t["opt/app/run.sh"], "file echo hi", "{name}");
        assert_eq!(t["opt/app/link"], "link run.sh", "{name}");
        assert_eq!(t["opt/implied/parent/f"], "file F", "{name}");
        let run = r.dst.join("opt/app/run.sh");
        assert_eq!(mode_of(&run), 0o755);
        assert_eq!(mode_of(&r.dst.join("opt/app")), 0o750);
        assert_eq!(mode_of(&r.dst.join("opt/implied")), 0o755);
        // The archive's `./` does not change the destination.
        assert_eq!(mode_of(&r.dst.join("opt")), 0o755);
        assert_eq!(owner_of(&run), (7, 8));
        assert_eq!(mtime_of(&run).0, 1_500_000_000);
        assert_eq!(mtime_of(&r.dst.join("opt/app")).0, 1_500_000_000);
        // Symlinks and hard links too (the directory's time is set after its entries).
        assert_eq!(mtime_of(&r.dst.join("opt/app/link")).0, 1_500_000_000);
        assert_eq!(mtime_of(&r.dst.join("opt/app/hard")).0, 1_500_000_000);
        use std::os::unix::fs::MetadataExt;
        assert_eq!(
            fs::metadata(&run).unwrap().ino(),
            fs::metadata(r.dst.join("opt/app/hard")).unwrap().ino()
        );
    }
}

/// Docker 28.5 (BuildKit) and 20.10 both show, for `ADD` of such an archive then
/// `RUN stat`, 2001-09-09 01:46:40.25 (20.10's legacy builder drops the .25), and
/// 1970-01-01 for a time before the epoch or past 2262 (what Go's nanoseconds hold).
#[test]
fn unpacked_times_keep_nanoseconds_and_are_bounded_as_docker_bounds_them() {
    let mut b = tar::Builder::new(Vec::new());
    for (name, mtime) in [
        ("frac", "1000000000.25"),
        ("neg", "-100.5"),
        ("huge", "1000000000000000"),
    ] {
        b.append_pax_extensions([("mtime", mtime.as_bytes())])
            .unwrap();
        let mut h = tar::Header::new_ustar();
        h.set_path(name).unwrap();
        h.set_mode(0o644);
        h.set_size(1);
        h.set_mtime(0);
        h.set_cksum();
        b.append(&h, &b"x"[..]).unwrap();
    }
    // A GNU base-256 mtime (10^13 s) past what nanoseconds in an i64 hold.
    let mut h = tar::Header::new_gnu();
    h.set_path("huge-gnu").unwrap();
    h.set_mode(0o644);
    h.set_size(1);
    h.as_gnu_mut().unwrap().mtime = [0x80, 0, 0, 0, 0, 0, 0x09, 0x18, 0x4e, 0x72, 0xa0, 0x00];
    assert_eq!(h.mtime().unwrap(), 10_000_000_000_000);
    h.set_cksum();
    b.append(&h, &b"x"[..]).unwrap();
    let r = Roots::new();
    fs::write(r.src.join("times.tar"), b.into_inner().unwrap()).unwrap();
    fileop::copy(&r.src, &r.dst, &docker_add("times.tar", "/x/")).unwrap();
    assert_eq!(
        mtime_of(&r.dst.join("x/frac")),
        (1_000_000_000, 250_000_000)
    );
    assert_eq!(mtime_of(&r.dst.join("x/neg")), (0, 0));
    assert_eq!(mtime_of(&r.dst.join("x/huge")), (0, 0));
    assert_eq!(mtime_of(&r.dst.join("x/huge-gnu")), (0, 0));
}

#[test]
fn owner_applies_to_unpacked_entries() {
    let r = Roots::new();
    fs::write(r.src.join("a.tar"), sample_tar()).unwrap();
    let action = CopyAction {
        owner: Some(Owner {
            uid: 1000,
            gid: 1001,
        }),
        ..docker_add("a.tar", "/opt")
    };
    fileop::copy(&r.src, &r.dst, &action).unwrap();
    for rel in ["opt", "opt/app", "opt/app/run.sh", "opt/app/link"] {
        assert_eq!(owner_of(&r.dst.join(rel)), (1000, 1001), "{rel}");
    }
}

#[test]
fn files_that_are_not_tar_archives_are_copied() {
    let r = Roots::new();
    fs::write(r.src.join("notes.txt"), "plain text").unwrap();
    fs::write(r.src.join("data.gz"), gzip(b"compressed, but not a tar")).unwrap();
    fs::write(r.src.join("empty"), "").unwrap();
    for name in ["notes.txt", "data.gz", "empty"] {
        assert!(!fileop::is_archive(&r.src.join(name)), "{name}");
        fileop::copy(&r.src, &r.dst, &docker_add(name, "/d/")).unwrap();
    }
    let t = tree(&r.dst);
    assert_eq!(t["d/notes.txt"], "file plain text");
    assert!(t.contains_key("d/data.gz"));
    assert_eq!(t["d/empty"], "file ");
}

#[test]
fn hostile_entries_are_confined_to_the_destination() {
    let r = Roots::new();
    let outside = r.outside.to_str().unwrap();
    let mut b = tar::Builder::new(Vec::new());
    raw_entry(&mut b, "../evil1", EntryType::Regular, "", b"1", 0o644);
    raw_entry(&mut b, "/abs-evil", EntryType::Regular, "", b"2", 0o644);
    raw_entry(
        &mut b,
        "a/../../../evil3",
        EntryType::Regular,
        "",
        b"3",
        0o644,
    );
    // A symlink out, then a write through it.
    raw_entry(&mut b, "lnk", EntryType::Symlink, outside, b"", 0o777);
    raw_entry(&mut b, "lnk/evil4", EntryType::Regular, "", b"4", 0o644);
    raw_entry(
        &mut b,
        "up",
        EntryType::Symlink,
        "../../../../..",
        b"",
        0o777,
    );
    raw_entry(
        &mut b,
        "up/outside/secret",
        EntryType::Regular,
        "",
        b"5",
        0o644,
    );
    // Replacing the link itself must not touch what it points to.
    raw_entry(&mut b, "lnk", EntryType::Regular, "", b"6", 0o644);
    fs::write(r.src.join("evil.tar"), b.into_inner().unwrap()).unwrap();

    fileop::copy(&r.src, &r.dst, &docker_add("evil.tar", "/x/")).unwrap();
    r.assert_nothing_escaped();
    let t = tree(&r.dst);
    assert_eq!(t["x/evil1"], "file 1");
    assert_eq!(t["x/abs-evil"], "file 2");
    assert_eq!(t["x/evil3"], "file 3");
    assert_eq!(t["x/lnk"], "file 6");
    let rerooted = format!("x/{}/evil4", outside.trim_start_matches('/'));
    assert_eq!(t[&rerooted], "file 4");
    assert_eq!(t["x/outside/secret"], "file 5");
}

#[test]
fn hardlinks_cannot_point_outside() {
    let r = Roots::new();
    let mut b = tar::Builder::new(Vec::new());
    raw_entry(
        &mut b,
        "hl",
        EntryType::Link,
        "../outside/secret",
        b"",
        0o644,
    );
    fs::write(r.src.join("evil.tar"), b.into_inner().unwrap()).unwrap();
    // The target is looked up inside the destination, where it does not exist.
    let err = fileop::copy(&r.src, &r.dst, &docker_add("evil.tar", "/")).unwrap_err();
    assert!(err.to_string().starts_with("link /hl: "), "{err}");
    r.assert_nothing_escaped();
}

#[test]
fn symlinked_destination_is_rerooted() {
    let r = Roots::new();
    fs::write(r.src.join("a.tar"), sample_tar()).unwrap();
    std::os::unix::fs::symlink(&r.outside, r.dst.join("opt")).unwrap();
    fileop::copy(&r.src, &r.dst, &docker_add("a.tar", "/opt/")).unwrap();
    r.assert_nothing_escaped();
    let inside = r.dst.join(r.outside.strip_prefix("/").unwrap());
    assert!(inside.join("app/run.sh").is_file());
}
