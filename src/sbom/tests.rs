//! Scans of root filesystems made in the tests (one per ecosystem, and hostile ones), the
//! host's own dpkg database, and the shape of the SPDX document.

use std::os::unix::fs::symlink;
use std::path::Path;
use std::time::{Duration, SystemTime};

use serde_json::Value;

use super::*;

const RPM_FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/sbom/rpm/rpmdb.sqlite"
);

fn write(root: &Path, path: &str, content: impl AsRef<[u8]>) {
    let path = root.join(path.trim_start_matches('/'));
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, content).unwrap();
}

fn purls(inventory: &Inventory, ecosystem: Ecosystem) -> Vec<&str> {
    inventory
        .packages
        .iter()
        .filter(|p| p.ecosystem == ecosystem)
        .map(|p| p.purl.as_str())
        .collect()
}

fn find<'a>(inventory: &'a Inventory, name: &str) -> &'a Package {
    inventory
        .packages
        .iter()
        .find(|p| p.name == name)
        .unwrap_or_else(|| panic!("{name} not found in {:#?}", inventory.packages))
}

const DEBIAN_STATUS: &str = "\
Package: libc6
Status: install ok installed
Priority: optional
Architecture: amd64
Multi-Arch: same
Source: glibc
Version: 2.36-9+deb12u4
Maintainer: GNU Libc Maintainers <debian-glibc@lists.debian.org>
Description: GNU C Library: Shared libraries
 Contains the standard libraries that are used by nearly all programs on
 the system.

Package: removed-but-configured
Status: deinstall ok config-files
Architecture: amd64
Version: 1.0

Package: held
Status: hold ok installed
Architecture: all
Source: held-src (1:2.0-1)
Version: 1:2.0-1+b1
Maintainer: Someone <someone@example.org>
";

#[test]
fn debian_root() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(
        root,
        "/usr/lib/os-release",
        "ID=debian\nVERSION_ID=\"12\"\n",
    );
    symlink("../usr/lib/os-release", root.join("etc-os-release-link")).unwrap();
    std::fs::create_dir_all(root.join("etc")).unwrap();
    symlink("/usr/lib/os-release", root.join("etc/os-release")).unwrap();
    write(root, "/var/lib/dpkg/status", DEBIAN_STATUS);
    write(
        root,
        "/usr/share/doc/libc6/copyright",
        "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\n\
         Files: *\nLicense: LGPL-2.1+\n\nFiles: x\nLicense: GPL-2+ with OpenSSL exception\n",
    );
    // A distroless image: one file per package and no Status, md5sums beside them.
    write(
        root,
        "/var/lib/dpkg/status.d/tzdata",
        "Package: tzdata\nVersion: 2024a-0+deb12u1\nArchitecture: all\n",
    );
    write(
        root,
        "/var/lib/dpkg/status.d/tzdata.md5sums",
        "abc  usr/share/x\n",
    );

    let inventory = scan(root).unwrap();
    assert_eq!(inventory.warnings, []);
    assert_eq!(
        purls(&inventory, Ecosystem::Deb),
        [
            "pkg:deb/debian/held@1:2.0-1%2Bb1?arch=all&distro=debian-12&upstream=held-src%401:2.0-1",
            "pkg:deb/debian/libc6@2.36-9%2Bdeb12u4?arch=amd64&distro=debian-12&upstream=glibc",
            "pkg:deb/debian/tzdata@2024a-0%2Bdeb12u1?arch=all&distro=debian-12",
        ]
    );
    let libc = find(&inventory, "libc6");
    assert_eq!(
        libc.supplier,
        Some(Supplier::Person(
            "GNU Libc Maintainers (debian-glibc@lists.debian.org)".into()
        ))
    );
    assert_eq!(
        libc.licenses,
        ["GPL-2+ with OpenSSL exception", "LGPL-2.1+"]
    );
    assert_eq!(libc.location, "/var/lib/dpkg/status");
    assert_eq!(
        find(&inventory, "tzdata").location,
        "/var/lib/dpkg/status.d/tzdata"
    );

    let doc = spdx_document(&inventory, "/run/src/core", SystemTime::UNIX_EPOCH);
    check_spdx_shape(&doc);
    let libc = spdx_package(&doc, "libc6");
    assert_eq!(
        libc["licenseDeclared"],
        "LicenseRef-GPL-2--with-OpenSSL-exception AND LGPL-2.1-or-later"
    );
    assert_eq!(libc["versionInfo"], "2.36-9+deb12u4");
    assert_eq!(
        libc["supplier"],
        "Person: GNU Libc Maintainers (debian-glibc@lists.debian.org)"
    );
    assert_eq!(
        libc["sourceInfo"],
        "acquired package info from DPKG DB: /var/lib/dpkg/status"
    );
    assert_eq!(
        doc["hasExtractedLicensingInfos"][0]["extractedText"],
        "GPL-2+ with OpenSSL exception"
    );
}

#[test]
fn alpine_root() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(
        root,
        "/etc/os-release",
        "NAME=\"Alpine Linux\"\nID=alpine\nVERSION_ID=3.19.1\n",
    );
    write(
        root,
        "/lib/apk/db/installed",
        "C:Q1abc=\nP:musl\nV:1.2.4_git20230717-r4\nA:x86_64\nS:383152\nT:the musl c library\n\
         U:https://musl.libc.org/\nL:MIT\no:musl\nm:Timo Teräs <timo.teras@iki.fi>\nF:lib\n\
         R:libc.musl-x86_64.so.1\n\n\
         P:ssl_client\nV:1.36.1-r15\nA:x86_64\nL:GPL-2.0-only\no:busybox\n\
         m:Sören Tempel <soeren+alpine@soeren-tempel.net>\n\n",
    );
    let inventory = scan(root).unwrap();
    assert_eq!(inventory.warnings, []);
    assert_eq!(
        purls(&inventory, Ecosystem::Apk),
        [
            "pkg:apk/alpine/musl@1.2.4_git20230717-r4?arch=x86_64&distro=alpine-3.19.1",
            "pkg:apk/alpine/ssl_client@1.36.1-r15?arch=x86_64&distro=alpine-3.19.1&upstream=busybox",
        ]
    );
    assert_eq!(find(&inventory, "ssl_client").licenses, ["GPL-2.0-only"]);
    assert_eq!(
        find(&inventory, "musl").supplier,
        Some(Supplier::Person("Timo Teräs (timo.teras@iki.fi)".into()))
    );
    check_spdx_shape(&spdx_document(&inventory, "alpine", SystemTime::UNIX_EPOCH));
}

#[test]
fn rpm_root_from_a_real_rpm_database() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(root, "/etc/os-release", "ID=\"fedora\"\nVERSION_ID=40\n");
    // As on Fedora: the database in /usr/lib/sysimage/rpm, /var/lib/rpm a symlink to it.
    std::fs::create_dir_all(root.join("usr/lib/sysimage/rpm")).unwrap();
    std::fs::copy(RPM_FIXTURE, root.join("usr/lib/sysimage/rpm/rpmdb.sqlite")).unwrap();
    std::fs::create_dir_all(root.join("var/lib")).unwrap();
    symlink("../../usr/lib/sysimage/rpm", root.join("var/lib/rpm")).unwrap();

    let inventory = scan(root).unwrap();
    assert_eq!(inventory.warnings, []);
    assert_eq!(
        purls(&inventory, Ecosystem::Rpm),
        [
            "pkg:rpm/fedora/bud-fixture@1.2.3-4.fc40?arch=x86_64&distro=fedora-40&epoch=2&upstream=bud-fixture-1.2.3-4.fc40.src.rpm",
            "pkg:rpm/fedora/legacy-licence@0.9-1?arch=noarch&distro=fedora-40&upstream=legacy-licence-0.9-1.src.rpm",
        ]
    );
    let fixture = find(&inventory, "bud-fixture");
    assert_eq!(fixture.version, "2:1.2.3-4.fc40");
    assert_eq!(
        fixture.supplier,
        Some(Supplier::Organization("Bud Fixtures Inc.".into()))
    );
    assert_eq!(fixture.location, "/var/lib/rpm/rpmdb.sqlite");
    assert_eq!(find(&inventory, "legacy-licence").supplier, None);

    let doc = spdx_document(&inventory, "fedora", SystemTime::UNIX_EPOCH);
    check_spdx_shape(&doc);
    assert_eq!(
        spdx_package(&doc, "bud-fixture")["licenseDeclared"],
        "(MIT AND (Apache-2.0 OR GPL-2.0-or-later))"
    );
    assert_eq!(
        spdx_package(&doc, "legacy-licence")["licenseDeclared"],
        "LicenseRef-GPLv2--and-Some-Custom-Licence"
    );
    assert_eq!(
        spdx_package(&doc, "bud-fixture")["supplier"],
        "Organization: Bud Fixtures Inc."
    );
}

#[test]
fn python_and_node_packages() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let site = "/usr/local/lib/python3.12/site-packages";
    write(
        root,
        &format!("{site}/Flask_Login-0.6.3.dist-info/METADATA"),
        "Metadata-Version: 2.1\nName: Flask_Login\nVersion: 0.6.3\nLicense: MIT\n\
         Author: Matthew Frazier\nAuthor-email: leafstormrush@gmail.com\n\n\
         License: not a header, the description\n",
    );
    write(
        root,
        &format!("{site}/newstyle-1.0.dist-info/METADATA"),
        "Metadata-Version: 2.4\nName: newstyle\nVersion: 1.0\n\
         License-Expression: Apache-2.0 OR MIT\nLicense: ignored when there is an expression\n",
    );
    write(
        root,
        "/usr/lib/python3/dist-packages/six-1.16.0.egg-info",
        "Metadata-Version: 1.1\nName: six\nVersion: 1.16.0\nLicense: UNKNOWN\n",
    );
    write(
        root,
        "/opt/venv/lib/python3.11/site-packages/old-2.0.egg-info/PKG-INFO",
        "Name: old\nVersion: 2.0\n",
    );
    let app = "/app/node_modules";
    write(
        root,
        &format!("{app}/left-pad/package.json"),
        r#"{"name": "left-pad", "version": "1.3.0", "license": "WTFPL",
            "author": "azer <azer@example.com> (http://azer.bike)"}"#,
    );
    write(
        root,
        &format!("{app}/@babel/core/package.json"),
        r#"{"name": "@babel/core", "version": "7.24.0", "license": {"type": "MIT"},
            "author": {"name": "The Babel Team", "email": "team@babeljs.io"}}"#,
    );
    write(
        root,
        &format!("{app}/left-pad/node_modules/nested/package.json"),
        r#"{"name": "nested", "version": "0.0.1", "licenses": [{"type": "MIT"}, {"type": "ISC"}]}"#,
    );
    // Not packages: a subdirectory marker, a package.json outside node_modules, .bin.
    write(
        root,
        &format!("{app}/left-pad/lib/package.json"),
        r#"{"type": "module"}"#,
    );
    write(
        root,
        "/app/package.json",
        r#"{"name": "app", "version": "1.0.0"}"#,
    );
    write(
        root,
        &format!("{app}/.bin/package.json"),
        r#"{"name": "x", "version": "1"}"#,
    );
    // A symlink loop in node_modules and a link out of the root: not followed.
    symlink("..", root.join("app/node_modules/loop")).unwrap();
    symlink("/", root.join("app/node_modules/root")).unwrap();

    let inventory = scan(root).unwrap();
    assert_eq!(inventory.warnings, []);
    assert_eq!(
        purls(&inventory, Ecosystem::Python),
        [
            "pkg:pypi/flask-login@0.6.3",
            "pkg:pypi/newstyle@1.0",
            "pkg:pypi/old@2.0",
            "pkg:pypi/six@1.16.0",
        ]
    );
    assert_eq!(
        purls(&inventory, Ecosystem::Npm),
        [
            "pkg:npm/%40babel/core@7.24.0",
            "pkg:npm/left-pad@1.3.0",
            "pkg:npm/nested@0.0.1",
        ]
    );
    let flask = find(&inventory, "Flask_Login");
    assert_eq!(flask.licenses, ["MIT"]);
    assert_eq!(
        flask.supplier,
        Some(Supplier::Person(
            "Matthew Frazier (leafstormrush@gmail.com)".into()
        ))
    );
    assert_eq!(find(&inventory, "newstyle").licenses, ["Apache-2.0 OR MIT"]);
    assert!(find(&inventory, "six").licenses.is_empty());
    assert_eq!(
        find(&inventory, "left-pad").supplier,
        Some(Supplier::Person("azer (azer@example.com)".into()))
    );
    assert_eq!(find(&inventory, "nested").licenses, ["MIT", "ISC"]);
    assert_eq!(
        find(&inventory, "@babel/core").supplier,
        Some(Supplier::Person("The Babel Team (team@babeljs.io)".into()))
    );

    let doc = spdx_document(&inventory, "app", SystemTime::UNIX_EPOCH);
    check_spdx_shape(&doc);
    assert_eq!(
        spdx_package(&doc, "nested")["licenseDeclared"],
        "MIT AND ISC"
    );
    assert_eq!(
        spdx_package(&doc, "newstyle")["licenseDeclared"],
        "(Apache-2.0 OR MIT)"
    );
    assert_eq!(spdx_package(&doc, "six")["licenseDeclared"], "NOASSERTION");
}

#[test]
fn hostile_databases_are_skipped_with_warnings() {
    let outer = tempfile::tempdir().unwrap();
    std::fs::write(
        outer.path().join("host-status"),
        "Package: from-the-host\nStatus: install ok installed\nVersion: 1\n",
    )
    .unwrap();
    let root = &outer.path().join("root");
    std::fs::create_dir_all(root.join("var/lib/dpkg/status.d")).unwrap();
    // `..` out of the root: refused.
    symlink("../../../../host-status", root.join("var/lib/dpkg/status")).unwrap();
    // An absolute link to the host's path: read inside the root, where nothing is.
    symlink(
        outer.path().join("host-status"),
        root.join("var/lib/dpkg/status.d/absolute"),
    )
    .unwrap();
    // A status that claims a gigabyte (sparse: nothing is written or read).
    let big = std::fs::File::create(root.join("var/lib/dpkg/status.d/big")).unwrap();
    big.set_len(1 << 30).unwrap();
    // Not UTF-8: read with replacement characters, not refused.
    write(
        root,
        "/var/lib/dpkg/status.d/latin1",
        b"Package: latin1\nVersion: 1.0\nMaintainer: Ren\xe9 <r@example.org>\n",
    );
    write(
        root,
        "/var/lib/dpkg/status.d/garbage",
        b"\x00\x01\x02 not deb822\n",
    );
    // Many bad entries: one warning for all of them.
    write(
        root,
        "/var/lib/dpkg/status.d/versionless",
        "Package: a\n\nPackage: b\n\nPackage: c\n",
    );
    write(root, "/lib/apk/db/installed", "P:x\nthis is not apk\n");
    write(
        root,
        "/var/lib/rpm/Packages",
        b"\x00\x06\x15\x61 BerkeleyDB",
    );
    write(
        root,
        "/var/lib/rpm/rpmdb.sqlite",
        b"SQLite format 3\x00 but truncated",
    );
    write(
        root,
        "/usr/lib/python3/site-packages/broken.dist-info/METADATA",
        "Summary: no name\n",
    );
    write(root, "/node_modules/bad/package.json", "{not json");

    let inventory = scan(root).unwrap();
    let names: Vec<&str> = inventory.packages.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["latin1"]);
    assert_eq!(
        inventory.packages[0].supplier,
        Some(Supplier::Person("Ren\u{fffd} (r@example.org)".into()))
    );
    let warned = |path: &str, needle: &str| {
        assert!(
            inventory
                .warnings
                .iter()
                .any(|w| w.path == path && w.message.contains(needle)),
            "no warning for {path} with {needle:?} in {:#?}",
            inventory.warnings
        );
    };
    warned("/var/lib/dpkg/status", "leaves the root");
    warned("/var/lib/dpkg/status.d/big", "1073741824 bytes");
    warned("/var/lib/dpkg/status.d/garbage", "line 1");
    warned(
        "/var/lib/dpkg/status.d/versionless",
        "an entry without Package or Version skipped (and 2 more like it)",
    );
    warned("/lib/apk/db/installed", "line 2");
    warned("/var/lib/rpm/Packages", "BerkeleyDB");
    warned("/var/lib/rpm/rpmdb.sqlite", "rpm database skipped");
    warned(
        "/usr/lib/python3/site-packages/broken.dist-info/METADATA",
        "without Name",
    );
    warned("/node_modules/bad/package.json", "package.json skipped");
    assert_eq!(inventory.warnings.len(), 9, "{:#?}", inventory.warnings);

    // The document says what was not scanned.
    let doc = spdx_document(&inventory, "hostile", SystemTime::UNIX_EPOCH);
    check_spdx_shape(&doc);
    let comment = doc["comment"].as_str().unwrap();
    assert!(
        comment.contains("/var/lib/rpm/Packages: rpm database skipped"),
        "{comment}"
    );
}

#[test]
fn the_inventory_is_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let mut status = String::new();
    for n in 0..=MAX_PACKAGES {
        status.push_str(&format!(
            "Package: p{n}\nStatus: install ok installed\nVersion: 1\n\n"
        ));
    }
    write(dir.path(), "/var/lib/dpkg/status", status);
    let inventory = scan(dir.path()).unwrap();
    assert_eq!(inventory.packages.len(), MAX_PACKAGES);
    assert_eq!(inventory.warnings.len(), 1, "{:?}", inventory.warnings);
    assert!(
        inventory.warnings[0].message.contains("the rest left out"),
        "{}",
        inventory.warnings[0]
    );
}

#[test]
fn corrupt_rpm_rows_are_skipped_and_the_rest_read() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir_all(root.join("var/lib/rpm")).unwrap();
    let db = root.join("var/lib/rpm/rpmdb.sqlite");
    std::fs::copy(RPM_FIXTURE, &db).unwrap();
    {
        let conn = rusqlite::Connection::open(&db).unwrap();
        conn.execute(
            "INSERT INTO Packages (blob) VALUES (x'0000000100000010deadbeef')",
            [],
        )
        .unwrap();
    }
    let inventory = scan(root).unwrap();
    assert_eq!(purls(&inventory, Ecosystem::Rpm).len(), 2);
    assert_eq!(inventory.warnings.len(), 1, "{:#?}", inventory.warnings);
    // The row, and the cause (the typed error's source) through the one printer.
    assert!(
        inventory.warnings[0]
            .message
            .contains("package 3 skipped: 12 bytes where its preamble says 40"),
        "{}",
        inventory.warnings[0]
    );

    // A Packages that is a view (here an endless one) is refused before it is queried.
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.execute_batch(
        "DROP TABLE Packages; CREATE VIEW Packages AS WITH RECURSIVE n(hnum) AS \
         (SELECT 1 UNION ALL SELECT hnum + 1 FROM n) SELECT hnum, x'00' AS blob FROM n;",
    )
    .unwrap();
    drop(conn);
    let inventory = scan(root).unwrap();
    assert!(inventory.packages.is_empty());
    assert!(
        inventory.warnings[0].message.contains("not a table"),
        "{:#?}",
        inventory.warnings
    );
}

#[test]
fn a_root_that_is_not_a_directory_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("file");
    std::fs::write(&file, "").unwrap();
    assert!(matches!(scan(&file), Err(ScanError::NotADirectory(_))));
    assert!(matches!(
        scan(&dir.path().join("missing")),
        Err(ScanError::Root { .. })
    ));
}

/// The host's own dpkg database, a real one of a few hundred packages: every installed
/// package dpkg-query lists is found, with the same version and architecture.
#[test]
fn host_dpkg_database() {
    let Ok(out) = std::process::Command::new("dpkg-query")
        .args([
            "-W",
            "-f",
            "${db:Status-Status} ${Package} ${Version} ${Architecture}\n",
        ])
        .output()
    else {
        panic!("dpkg-query cannot run: this test needs the Debian host the project builds on");
    };
    assert!(out.status.success());
    let mut expected: Vec<(String, String, String)> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter_map(|l| l.strip_prefix("installed "))
        .map(|l| {
            let mut w = l.split(' ');
            let mut next = || w.next().unwrap().to_string();
            (next(), next(), next())
        })
        .collect();
    expected.sort();
    assert!(
        expected.len() > 100,
        "{} installed packages",
        expected.len()
    );

    let fs = rootfs::RootFs::new(Path::new("/"));
    let mut inventory = Inventory::default();
    let distro = osrelease::read(&fs, &mut inventory);
    dpkg::scan(&fs, &distro, &mut inventory);
    assert_eq!(inventory.warnings, []);
    let mut found: Vec<(String, String, String)> = inventory
        .packages
        .iter()
        .map(|p| {
            let arch = p
                .purl
                .split(['?', '&'])
                .find_map(|q| q.strip_prefix("arch="))
                .unwrap_or("")
                .to_string();
            (p.name.clone(), p.version.clone(), arch)
        })
        .collect();
    found.sort();
    assert_eq!(found, expected);
    // Most Debian packages name their licenses in their copyright file, as `License:` fields
    // or references to /usr/share/common-licenses.
    let licensed = inventory
        .packages
        .iter()
        .filter(|p| !p.licenses.is_empty())
        .count();
    assert!(
        licensed * 2 > expected.len(),
        "{licensed} of {} packages with licenses",
        expected.len()
    );

    inventory.packages.sort();
    let doc = spdx_document(&inventory, "host", SystemTime::now());
    check_spdx_shape(&doc);
    assert_eq!(
        doc["packages"].as_array().unwrap().len(),
        expected.len() + 1
    );
}

#[test]
fn documents_are_reproducible() {
    let inventory = Inventory {
        packages: vec![Package {
            name: "a".into(),
            version: "1".into(),
            ecosystem: Ecosystem::Npm,
            purl: "pkg:npm/a@1".into(),
            supplier: None,
            licenses: vec!["MIT".into()],
            location: "/node_modules/a/package.json".into(),
        }],
        warnings: Vec::new(),
    };
    let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let doc = spdx_document(&inventory, "img", t);
    assert_eq!(doc, spdx_document(&inventory, "img", t));
    assert_eq!(doc["creationInfo"]["created"], "2023-11-14T22:13:20Z");
    let ns = doc["documentNamespace"].as_str().unwrap();
    assert!(ns.starts_with("https://spdx.org/spdxdocs/bud/img-"), "{ns}");
    // Another time, subject or package: another namespace.
    let later = spdx_document(&inventory, "img", t + Duration::from_secs(1));
    assert_ne!(later["documentNamespace"], doc["documentNamespace"]);
    let mut other = inventory.clone();
    other.packages[0].version = "2".into();
    assert_ne!(
        spdx_document(&other, "img", t)["documentNamespace"],
        doc["documentNamespace"]
    );
    // Two packages that differ only in what they declare still get their own SPDX IDs.
    let mut twins = inventory.clone();
    let mut twin = twins.packages[0].clone();
    twin.licenses = vec!["ISC".into()];
    twins.packages.push(twin);
    check_spdx_shape(&spdx_document(&twins, "img", t));
}

fn spdx_package<'a>(doc: &'a Value, name: &str) -> &'a Value {
    doc["packages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name)
        .unwrap_or_else(|| panic!("no package {name}"))
}

/// The fields SPDX 2.3 requires, IDs that are valid and unique, relationships between
/// elements that exist, and the document describing its root.
fn check_spdx_shape(doc: &Value) {
    let valid_id = |id: &str| {
        id.strip_prefix("SPDXRef-").is_some_and(|rest| {
            !rest.is_empty()
                && rest
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
        })
    };
    assert_eq!(doc["spdxVersion"], "SPDX-2.3");
    assert_eq!(doc["dataLicense"], "CC0-1.0");
    assert_eq!(doc["SPDXID"], "SPDXRef-DOCUMENT");
    assert!(doc["name"].as_str().is_some_and(|n| !n.is_empty()));
    let ns = doc["documentNamespace"].as_str().unwrap();
    assert!(
        ns.starts_with("https://") && !ns.contains('#') && !ns.contains(' '),
        "{ns}"
    );
    let created = doc["creationInfo"]["created"].as_str().unwrap();
    assert_eq!(created.len(), 20, "{created}");
    assert!(
        created.ends_with('Z') && created.as_bytes()[10] == b'T',
        "{created}"
    );
    let creators = doc["creationInfo"]["creators"].as_array().unwrap();
    assert!(creators[0].as_str().unwrap().starts_with("Tool: bud-"));

    let mut ids = std::collections::HashSet::new();
    ids.insert("SPDXRef-DOCUMENT".to_string());
    for p in doc["packages"].as_array().unwrap() {
        let id = p["SPDXID"].as_str().unwrap();
        assert!(valid_id(id), "{id}");
        assert!(ids.insert(id.to_string()), "duplicate {id}");
        for field in [
            "name",
            "downloadLocation",
            "licenseConcluded",
            "licenseDeclared",
            "copyrightText",
        ] {
            assert!(
                p[field].as_str().is_some_and(|v| !v.is_empty()),
                "{field} of {p}"
            );
        }
        assert_eq!(p["filesAnalyzed"], false);
        let declared = p["licenseDeclared"].as_str().unwrap();
        if declared != "NOASSERTION" {
            // A valid expression, with LicenseRefs where the SPDX list has no ID.
            assert!(
                ::spdx::Expression::parse(declared).is_ok(),
                "{declared} is not an SPDX expression"
            );
        }
        if let Some(refs) = p["externalRefs"].as_array() {
            for r in refs {
                assert_eq!(r["referenceCategory"], "PACKAGE-MANAGER");
                assert_eq!(r["referenceType"], "purl");
                let purl = r["referenceLocator"].as_str().unwrap();
                assert!(purl.parse::<packageurl::PackageUrl>().is_ok(), "{purl}");
            }
        }
    }
    for other in doc["hasExtractedLicensingInfos"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let id = other["licenseId"].as_str().unwrap();
        assert!(id.starts_with("LicenseRef-"), "{id}");
        assert!(
            other["extractedText"]
                .as_str()
                .is_some_and(|t| !t.is_empty())
        );
    }
    let relationships = doc["relationships"].as_array().unwrap();
    for r in relationships {
        for end in ["spdxElementId", "relatedSpdxElement"] {
            let id = r[end].as_str().unwrap();
            assert!(ids.contains(id), "relationship to unknown {id}");
        }
    }
    let describes: Vec<&Value> = relationships
        .iter()
        .filter(|r| r["relationshipType"] == "DESCRIBES")
        .collect();
    assert_eq!(describes.len(), 1);
    assert_eq!(describes[0]["spdxElementId"], "SPDXRef-DOCUMENT");
    let root = describes[0]["relatedSpdxElement"].as_str().unwrap();
    let contained = relationships
        .iter()
        .filter(|r| r["relationshipType"] == "CONTAINS" && r["spdxElementId"] == root)
        .count();
    assert_eq!(contained, doc["packages"].as_array().unwrap().len() - 1);
}
