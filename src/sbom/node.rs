//! Node packages: the `package.json` of each package installed in a `node_modules`.

use serde_json::Value;

use super::rootfs::RootFs;
use super::{Ecosystem, Inventory, MAX_PACKAGES, Package, Skipped, Supplier, person, purl};

/// A package.json is a few KiB; one of megabytes is no manifest to trust.
const LIMIT: u64 = 4 << 20;

/// Adds the package each of `manifests` (the walk's `package.json` paths) describes. One
/// that is not JSON is left out with a warning; one without a name and a version is no
/// installed package, and is passed over.
pub(super) fn scan(fs: &RootFs, manifests: &[String], inventory: &mut Inventory) {
    let mut found = Vec::new();
    let mut skipped = Skipped::default();
    for path in manifests {
        if inventory.packages.len() + found.len() > MAX_PACKAGES {
            break;
        }
        let bytes = match fs.read(path, LIMIT) {
            Ok(Some(bytes)) => bytes,
            Ok(None) => continue,
            Err(e) => {
                skipped.note(
                    path,
                    format_args!(
                        "package.json skipped: {}",
                        crate::error_chain::error_chain(&e)
                    ),
                );
                continue;
            }
        };
        let json: Value = match serde_json::from_slice(&bytes) {
            Ok(json) => json,
            Err(e) => {
                skipped.note(
                    path,
                    format_args!(
                        "package.json skipped: {}",
                        crate::error_chain::error_chain(&e)
                    ),
                );
                continue;
            }
        };
        let text = |key: &str| {
            json.get(key)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
        };
        // A package.json without both is no installed package (a workspace root, a marker
        // of module type in a subdirectory).
        let (Some(name), Some(version)) = (text("name"), text("version")) else {
            continue;
        };
        let (namespace, bare) = match name.split_once('/') {
            Some((scope, bare)) if scope.starts_with('@') => (Some(scope), bare),
            _ => (None, name),
        };
        let purl = match purl("npm", namespace, bare, version, &[]) {
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
            ecosystem: Ecosystem::Npm,
            purl,
            supplier: author(json.get("author")),
            licenses: licenses(&json),
            location: path.clone(),
        });
    }
    skipped.report(inventory);
    inventory.add("/", found);
}

/// `"license": "MIT"`, the older `"license": {"type": "MIT"}` and
/// `"licenses": [{"type": "MIT"}, …]`.
fn licenses(json: &Value) -> Vec<String> {
    let of = |v: &Value| match v {
        Value::String(s) => Some(s.clone()),
        Value::Object(o) => o.get("type").and_then(Value::as_str).map(str::to_string),
        _ => None,
    };
    if let Some(license) = json.get("license").and_then(of) {
        return vec![license];
    }
    match json.get("licenses") {
        Some(Value::Array(list)) => list.iter().filter_map(of).collect(),
        Some(other) => of(other).into_iter().collect(),
        None => Vec::new(),
    }
}

/// `"author": "Name <email> (url)"` or `{"name": …, "email": …}`.
fn author(value: Option<&Value>) -> Option<Supplier> {
    match value? {
        Value::String(s) => person(s),
        Value::Object(o) => {
            let field = |k: &str| o.get(k).and_then(Value::as_str).unwrap_or("").trim();
            match (field("name"), field("email")) {
                ("", "") => None,
                (name, "") => Some(Supplier::Person(name.to_string())),
                ("", email) => Some(Supplier::Person(email.to_string())),
                (name, email) => Some(Supplier::Person(format!("{name} ({email})"))),
            }
        }
        _ => None,
    }
}
