//! Debian packages: dpkg's status file (installed packages only) and distroless images'
//! `status.d/` (one file per package, no `Status` field: all installed), with licenses from
//! each package's `/usr/share/doc/<package>/copyright` `License:` fields.

use std::collections::BTreeSet;

use super::deb822::{self, Fields};
use super::osrelease::Distro;
use super::rootfs::{RootFs, RootFsError};
use super::{Ecosystem, Inventory, Package, Skipped, person, purl};

/// dpkg's database of the packages it knows, installed or not.
const STATUS: &str = "/var/lib/dpkg/status";
/// Where distroless images (which have no dpkg) put one status paragraph per package.
const STATUS_D: &str = "/var/lib/dpkg/status.d";
/// A full Debian desktop's status file is a few MiB.
const STATUS_LIMIT: u64 = 64 << 20;
/// One copyright file: the longest in Debian are a few hundred KiB.
const COPYRIGHT_LIMIT: u64 = 4 << 20;
/// All copyright files together: a hostile status naming one huge file a million times
/// costs no more than this.
const COPYRIGHT_BUDGET: u64 = 256 << 20;

/// Adds the installed packages of dpkg's status file and of `status.d/`, each with the
/// licenses its copyright file names.
pub(super) fn scan(fs: &RootFs, distro: &Distro, inventory: &mut Inventory) {
    let mut licenses = CopyrightReader::new(fs);
    if let Some(text) = read(fs, STATUS, inventory) {
        add_paragraphs(&text, STATUS, true, distro, &mut licenses, inventory);
    }
    let names = match fs.list_dir(STATUS_D) {
        Ok(names) => names,
        Err(e) => {
            inventory.warn(STATUS_D, crate::error_chain::error_chain(&e));
            Vec::new()
        }
    };
    for name in names {
        let name = name.to_string_lossy();
        if name.ends_with(".md5sums") {
            continue;
        }
        let path = format!("{STATUS_D}/{name}");
        if let Some(text) = read(fs, &path, inventory) {
            add_paragraphs(&text, &path, false, distro, &mut licenses, inventory);
        }
    }
    licenses.report(inventory);
}

/// The text of the database file `path`, if there is one; one that cannot be read is a
/// warning.
fn read(fs: &RootFs, path: &str, inventory: &mut Inventory) -> Option<String> {
    match fs.read(path, STATUS_LIMIT) {
        Ok(bytes) => bytes.map(|b| String::from_utf8_lossy(&b).into_owned()),
        Err(e) => {
            inventory.warn(
                path,
                format_args!(
                    "dpkg database skipped: {}",
                    crate::error_chain::error_chain(&e)
                ),
            );
            None
        }
    }
}

/// The packages of one status file, added only once all of it has been read: a file dpkg
/// could not read is skipped whole.
fn add_paragraphs(
    text: &str,
    path: &str,
    needs_status: bool,
    distro: &Distro,
    licenses: &mut CopyrightReader,
    inventory: &mut Inventory,
) {
    let mut found = Vec::new();
    let mut skipped = Skipped::default();
    for fields in deb822::paragraphs(text) {
        let fields = match fields {
            Ok(fields) => fields,
            Err(e) => {
                inventory.warn(
                    path,
                    format_args!(
                        "dpkg database skipped: {}",
                        crate::error_chain::error_chain(&e)
                    ),
                );
                return;
            }
        };
        if needs_status && !installed(&fields) {
            continue;
        }
        let (Some(name), Some(version)) = (fields.get("Package"), fields.get("Version")) else {
            skipped.note(path, "an entry without Package or Version skipped");
            continue;
        };
        match package(&fields, name, version, path, distro, licenses) {
            Ok(p) => found.push(p),
            Err(e) => skipped.note(
                path,
                format_args!("{name} skipped: {}", crate::error_chain::error_chain(&e)),
            ),
        }
        if inventory.packages.len() + found.len() > super::MAX_PACKAGES {
            break;
        }
    }
    skipped.report(inventory);
    inventory.add(path, found);
}

/// dpkg's `Status: want flag state`: the package is on the system when its state is
/// `installed`, whatever is wanted of it next (`install`, `hold`, `deinstall`…).
fn installed(fields: &Fields) -> bool {
    fields
        .get("Status")
        .and_then(|s| s.split_whitespace().nth(2))
        == Some("installed")
}

/// The package a paragraph describes: its purl in the distribution's namespace (`debian`
/// when the image does not say), with its architecture and source package.
fn package(
    fields: &Fields,
    name: &str,
    version: &str,
    path: &str,
    distro: &Distro,
    licenses: &mut CopyrightReader,
) -> Result<Package, packageurl::Error> {
    let arch = fields.get("Architecture");
    let upstream = fields.get("Source").map(|source| {
        // `Source: name (version)` when the source version differs.
        match source.split_once(' ') {
            Some((src, ver)) => format!("{src}@{}", ver.trim().trim_matches(['(', ')'])),
            None => source.to_string(),
        }
    });
    let distro_q = distro.qualifier();
    let namespace = distro.id.as_deref().unwrap_or("debian");
    let purl = purl(
        "deb",
        Some(namespace),
        name,
        version,
        &[
            ("arch", arch),
            ("upstream", upstream.as_deref()),
            ("distro", distro_q.as_deref()),
        ],
    )?;
    Ok(Package {
        name: name.to_string(),
        version: version.to_string(),
        ecosystem: Ecosystem::Deb,
        purl,
        supplier: fields.get("Maintainer").and_then(person),
        licenses: licenses.of(name),
        location: path.to_string(),
    })
}

/// Licenses from copyright files, within one budget for the whole scan.
struct CopyrightReader<'a> {
    /// The image.
    fs: &'a RootFs,
    /// Bytes of copyright files still to be read.
    budget: u64,
    /// A file was larger than what was left: no more are read.
    exhausted: bool,
    /// The files that could not be read, reported once the scan is done.
    errors: Vec<(String, RootFsError)>,
}

impl<'a> CopyrightReader<'a> {
    /// A reader with the whole budget.
    fn new(fs: &'a RootFs) -> Self {
        Self {
            fs,
            budget: COPYRIGHT_BUDGET,
            exhausted: false,
            errors: Vec::new(),
        }
    }

    /// The licenses of `package`, from its copyright file, while the budget lasts. A name
    /// with a `/` is no package dpkg installs: it would lead elsewhere in the image.
    fn of(&mut self, package: &str) -> Vec<String> {
        if self.exhausted || package.contains('/') {
            return Vec::new();
        }
        let path = format!("/usr/share/doc/{package}/copyright");
        let limit = COPYRIGHT_LIMIT.min(self.budget);
        let bytes = match self.fs.read(&path, limit) {
            Ok(Some(bytes)) => bytes,
            Ok(None) => return Vec::new(),
            Err(RootFsError::TooLarge { .. }) if limit < COPYRIGHT_LIMIT => {
                self.exhausted = true;
                return Vec::new();
            }
            Err(e) => {
                self.errors.push((path, e));
                return Vec::new();
            }
        };
        self.budget -= bytes.len() as u64;
        copyright_licenses(&String::from_utf8_lossy(&bytes))
    }

    /// Warns of the copyright files that could not be read and of a budget used up.
    fn report(self, inventory: &mut Inventory) {
        for (path, e) in self.errors {
            inventory.warn(
                path,
                format_args!("licenses not read: {}", crate::error_chain::error_chain(&e)),
            );
        }
        if self.exhausted {
            inventory.warn(
                "/usr/share/doc",
                format_args!(
                    "licenses not read past the first {} MiB of copyright files",
                    COPYRIGHT_BUDGET >> 20
                ),
            );
        }
    }
}

/// The short names of the `License:` fields of a copyright file (the machine-readable
/// format, DEP-5) and of the licenses it refers to in `/usr/share/common-licenses/` (as most
/// files in free form do), sorted and once each, as syft reads them.
pub(super) fn copyright_licenses(text: &str) -> Vec<String> {
    /// Where Debian keeps the text of common licenses, named by their short names.
    const COMMON: &str = "/usr/share/common-licenses/";
    let mut names = BTreeSet::new();
    for (at, _) in text.match_indices(COMMON) {
        let rest = &text[at + COMMON.len()..];
        let end = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || "._-+".contains(c)))
            .unwrap_or(rest.len());
        let name = rest[..end].trim_end_matches('.');
        if !name.is_empty() {
            names.insert(name.to_string());
        }
    }
    for line in text.lines() {
        let Some((field, value)) = line.split_once(':') else {
            continue;
        };
        if !field.eq_ignore_ascii_case("License") {
            continue;
        }
        let value = value.trim();
        if !value.is_empty() {
            names.insert(value.to_string());
        }
    }
    names.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copyright_license_fields() {
        let text = "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\
                    \nFiles: *\nCopyright: 2000 Someone\nLicense: GPL-2+\n\n\
                    Files: lib/*\nLicense: Expat\n\nLicense: GPL-2+\n Full text here.\n\
                    License:\n";
        assert_eq!(copyright_licenses(text), ["Expat", "GPL-2+"]);
        let free_form = "can be found in `/usr/share/common-licenses/LGPL-2.1'.\n\
                         see /usr/share/common-licenses/GPL-3.\n/usr/share/common-licenses/\n";
        assert_eq!(copyright_licenses(free_form), ["GPL-3", "LGPL-2.1"]);
    }
}
