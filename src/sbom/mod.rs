//! The SBOM of an image: its package databases (dpkg, apk, rpm's SQLite database) and its
//! Python and Node package metadata read from the unpacked root filesystem, written as the
//! SPDX 2.3 JSON document BuildKit's default scanner (docker/buildkit-syft-scanner, syft's
//! `spdx-json`) attaches as an in-toto predicate of type [`PREDICATE_TYPE`].
//!
//! The scan reads the image, never the host: every path goes through `rootfs::RootFs`. A
//! database that cannot be read (too large, corrupt, a format bud does not read) is skipped
//! with a [`ScanWarning`]; only a root that is not a directory fails the scan.

mod apk;
mod deb822;
mod document;
mod dpkg;
mod licenses;
mod node;
mod osrelease;
mod python;
mod rootfs;
mod rpm;
mod walk;

use std::fmt;
use std::path::Path;

pub use document::spdx_document;

/// The in-toto predicate type of an SPDX document, as BuildKit's SBOM attestations carry it.
pub const PREDICATE_TYPE: &str = "https://spdx.dev/Document";

/// The package manager a package was found by; its name is syft's package type, which
/// SPDX IDs carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Ecosystem {
    /// A Debian package, from dpkg's status database (or distroless `status.d/`).
    Deb,
    /// An Alpine package, from apk's `installed` database.
    Apk,
    /// An RPM package, from rpm's SQLite database.
    Rpm,
    /// A Python distribution, from its `*.dist-info` or `*.egg-info` metadata.
    Python,
    /// A Node package, from its `package.json` under a `node_modules` directory.
    Npm,
}

impl Ecosystem {
    /// syft's package type, as the document's package IDs (`SPDXRef-Package-deb-…`) name it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Deb => "deb",
            Self::Apk => "apk",
            Self::Rpm => "rpm",
            Self::Python => "python",
            Self::Npm => "npm",
        }
    }

    /// Where the package's information came from, as syft's SPDX `sourceInfo` says it.
    fn source_info(self) -> &'static str {
        match self {
            Self::Deb => "acquired package info from DPKG DB",
            Self::Apk => "acquired package info from APK DB",
            Self::Rpm => "acquired package info from RPM DB",
            Self::Python => "acquired package info from installed python package manifest file",
            Self::Npm => "acquired package info from installed node module manifest file",
        }
    }
}

/// Who distributes a package: SPDX's `PackageSupplier`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Supplier {
    /// A maintainer or author (dpkg, apk, Python, npm), `Name (email)` as syft writes one.
    Person(String),
    /// A vendor: rpm's `Vendor`.
    Organization(String),
}

/// One installed package.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Package {
    /// The name the package manager knows it by.
    pub name: String,
    /// As the package manager writes it (dpkg's and rpm's with their epoch, `E:V-R`).
    pub version: String,
    /// The package manager that installed it.
    pub ecosystem: Ecosystem,
    /// The package URL (purl spec), with its distribution where the ecosystem has one.
    pub purl: String,
    /// Who distributes it, where the database says.
    pub supplier: Option<Supplier>,
    /// The licenses the package declares, as written (SPDX expressions are made from them
    /// when the document is written).
    pub licenses: Vec<String>,
    /// The database or manifest the package was read from, as a path in the image.
    pub location: String,
}

/// A database or manifest that was skipped, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanWarning {
    /// The path in the image.
    pub path: String,
    /// Why it was skipped, with the causes (`error_chain`), shown as a build warning and
    /// noted in the document.
    pub message: String,
}

impl fmt::Display for ScanWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// What a scan found.
#[derive(Debug, Default, Clone)]
pub struct Inventory {
    /// Sorted (name, version, ecosystem, …), one entry per package and location.
    pub packages: Vec<Package>,
    /// What could not be read: the SBOM is made without it, and says so.
    pub warnings: Vec<ScanWarning>,
}

/// More packages than any real image holds (Debian's whole archive has under 70 000 binary
/// packages): a hostile database cannot grow the inventory without bound.
const MAX_PACKAGES: usize = 500_000;

impl Inventory {
    /// Adds packages read from `path`, as many as the inventory has room for.
    fn add(&mut self, path: &str, packages: Vec<Package>) {
        let room = MAX_PACKAGES.saturating_sub(self.packages.len());
        if packages.len() > room {
            self.warn(
                path,
                format_args!("more than {MAX_PACKAGES} packages in the image: the rest left out"),
            );
        }
        self.packages.extend(packages.into_iter().take(room));
    }

    /// Records that `path` was skipped, and why.
    fn warn(&mut self, path: impl Into<String>, message: impl fmt::Display) {
        self.warnings.push(ScanWarning {
            path: path.into(),
            message: message.to_string(),
        });
    }
}

/// Entries or manifests left out: one warning for all of them (naming the first), however
/// many a hostile image holds.
#[derive(Default)]
struct Skipped {
    count: usize,
    first: Option<(String, String)>,
}

impl Skipped {
    /// Counts one more left out, remembering the first.
    fn note(&mut self, path: &str, reason: impl fmt::Display) {
        self.count += 1;
        if self.first.is_none() {
            self.first = Some((path.to_string(), reason.to_string()));
        }
    }

    /// The one warning for all of them, if any.
    fn report(self, inventory: &mut Inventory) {
        match (self.count, self.first) {
            (1, Some((path, reason))) => inventory.warn(path, reason),
            (n, Some((path, reason))) => {
                inventory.warn(path, format_args!("{reason} (and {} more like it)", n - 1))
            }
            _ => {}
        }
    }
}

/// Why there is no inventory at all: the root filesystem itself cannot be scanned (what is
/// in it that cannot be read is a [`ScanWarning`] instead).
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    /// The path given as the root is a file, or something else that holds no tree.
    #[error("{}: the root filesystem to scan is not a directory", .0.display())]
    NotADirectory(std::path::PathBuf),
    /// The root cannot be looked at (missing, or not searchable).
    #[error("{}: cannot read the root filesystem to scan", .path.display())]
    Root {
        /// The root as given.
        path: std::path::PathBuf,
        /// Why it cannot be read.
        #[source]
        source: std::io::Error,
    },
}

/// Reads every package database and manifest of the unpacked root filesystem at `root`.
pub fn scan(root: &Path) -> Result<Inventory, ScanError> {
    let meta = std::fs::metadata(root).map_err(|source| ScanError::Root {
        path: root.to_path_buf(),
        source,
    })?;
    if !meta.is_dir() {
        return Err(ScanError::NotADirectory(root.to_path_buf()));
    }
    let fs = rootfs::RootFs::new(root);
    let mut inventory = Inventory::default();
    let distro = osrelease::read(&fs, &mut inventory);
    dpkg::scan(&fs, &distro, &mut inventory);
    apk::scan(&fs, &distro, &mut inventory);
    rpm::scan(&fs, &distro, &mut inventory);
    let manifests = walk::find_manifests(&fs, &mut inventory);
    python::scan(&fs, &manifests.python, &mut inventory);
    node::scan(&fs, &manifests.node, &mut inventory);
    inventory.packages.sort();
    inventory.packages.dedup();
    Ok(inventory)
}

/// A package URL per the purl spec: the `packageurl` crate applies each type's rules
/// (npm and PyPI names lowercased, PyPI's `_` as `-`) and the percent-encoding; qualifiers
/// without a value are left out.
fn purl(
    ty: &str,
    namespace: Option<&str>,
    name: &str,
    version: &str,
    qualifiers: &[(&str, Option<&str>)],
) -> Result<String, packageurl::Error> {
    let mut purl = packageurl::PackageUrl::new(ty, name)?;
    if let Some(namespace) = namespace {
        purl.with_namespace(namespace)?;
    }
    if !version.is_empty() {
        purl.with_version(version)?;
    }
    for (key, value) in qualifiers {
        if let Some(value) = value.filter(|v| !v.is_empty()) {
            purl.add_qualifier(*key, value)?;
        }
    }
    Ok(purl.to_string())
}

/// `Name <email> (url)`, as maintainers and authors are written, as syft's SPDX supplier:
/// `Name (email)`, or whichever of the two there is.
fn person(value: &str) -> Option<Supplier> {
    let value = value.trim();
    let (rest, _url) = match value.strip_suffix(')').and_then(|v| v.rsplit_once(" (")) {
        Some((rest, url)) => (rest, Some(url)),
        None => (value, None),
    };
    let (name, email) = match rest.strip_suffix('>').and_then(|v| v.rsplit_once('<')) {
        Some((name, email)) => (name.trim(), email.trim()),
        None if rest.contains('@') && !rest.contains(' ') => ("", rest),
        None => (rest.trim(), ""),
    };
    let formatted = match (name.is_empty(), email.is_empty()) {
        (false, false) => format!("{name} ({email})"),
        (false, true) => name.to_string(),
        (true, false) => email.to_string(),
        (true, true) => return None,
    };
    Some(Supplier::Person(formatted))
}

#[cfg(test)]
mod tests;
