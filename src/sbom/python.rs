//! Python distributions: the core metadata of installed wheels (`*.dist-info/METADATA`) and
//! of eggs and distutils installs (`*.egg-info/PKG-INFO`, or an `*.egg-info` file).

use super::deb822;
use super::rootfs::RootFs;
use super::{Ecosystem, Inventory, Package, Skipped, Supplier, person, purl};

/// The header block is all that is read; a description is rarely more than a few hundred KiB.
const LIMIT: u64 = 4 << 20;
/// A `License:` longer than this is a license's text, not its name.
const MAX_LICENSE_NAME: usize = 200;

/// Adds the distribution each of `manifests` (the walk's metadata files) describes: one
/// without a `Name` or `Version` is left out with a warning.
pub(super) fn scan(fs: &RootFs, manifests: &[String], inventory: &mut Inventory) {
    let mut found = Vec::new();
    let mut skipped = Skipped::default();
    for path in manifests {
        let bytes = match fs.read(path, LIMIT) {
            Ok(Some(bytes)) => bytes,
            // A `.dist-info` without METADATA is no installed distribution.
            Ok(None) => continue,
            Err(e) => {
                skipped.note(
                    path,
                    format_args!(
                        "Python metadata skipped: {}",
                        crate::error_chain::error_chain(&e)
                    ),
                );
                continue;
            }
        };
        let fields = deb822::headers(&String::from_utf8_lossy(&bytes));
        let (Some(name), Some(version)) = (fields.get("Name"), fields.get("Version")) else {
            skipped.note(path, "Python metadata without Name or Version skipped");
            continue;
        };
        let purl = match purl("pypi", None, name, version, &[]) {
            Ok(purl) => purl,
            Err(e) => {
                skipped.note(
                    path,
                    format_args!("{name} skipped: {}", crate::error_chain::error_chain(&e)),
                );
                continue;
            }
        };
        found.push(Package {
            name: name.to_string(),
            version: version.to_string(),
            ecosystem: Ecosystem::Python,
            purl,
            supplier: author(&fields),
            licenses: license(&fields).into_iter().collect(),
            location: path.clone(),
        });
    }
    skipped.report(inventory);
    inventory.add("/", found);
}

/// PEP 639's `License-Expression`, else a short `License:` (many put the whole text there).
fn license(fields: &deb822::Fields) -> Option<String> {
    if let Some(expr) = fields.get("License-Expression").filter(|v| !v.is_empty()) {
        return Some(expr.to_string());
    }
    fields
        .get("License")
        .filter(|v| !v.is_empty() && !v.contains('\n') && v.len() <= MAX_LICENSE_NAME)
        .filter(|v| !v.eq_ignore_ascii_case("UNKNOWN"))
        .map(str::to_string)
}

/// `Author` and `Author-email` together, as syft writes the supplier.
fn author(fields: &deb822::Fields) -> Option<Supplier> {
    let name = fields.get("Author").unwrap_or("").trim();
    let email = fields.get("Author-email").unwrap_or("").trim();
    match (name.is_empty(), email.is_empty()) {
        (true, true) => None,
        (false, true) => Some(Supplier::Person(name.to_string())),
        // `Author-email: Name <email>` (PEP 621's form) carries both.
        (true, false) => person(email),
        (false, false) => Some(Supplier::Person(format!("{name} ({email})"))),
    }
}
