//! The SPDX 2.3 JSON document of an [`Inventory`], shaped as syft's `spdx-json` output that
//! BuildKit's default scanner attaches: one package per found package (its purl as the
//! PACKAGE-MANAGER external reference, its declared licenses as an SPDX expression), a root
//! package for the scanned filesystem that CONTAINS them all, and the document DESCRIBES
//! the root. Files are not listed.
//!
//! Unlike syft's random UUID, the document namespace is derived from everything the
//! document says: the SBOM is a blob of the image index, so a random one would give every
//! build of the same inputs another index digest and break reproducible images (syft's own
//! `SYFT_FORMAT_SPDX_JSON_DETERMINISTIC_UUID` does the same for that reason).

use std::collections::{BTreeMap, HashSet};
use std::time::SystemTime;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::licenses::{self, OtherLicense};
use super::{Inventory, Package, Supplier};

/// SPDX's word for "the scanner says nothing about this".
const NOASSERTION: &str = "NOASSERTION";

/// The document for the packages and warnings of `inventory`, found in the filesystem named
/// `subject_name`, made at `created` (SOURCE_DATE_EPOCH where the build has one).
pub fn spdx_document(inventory: &Inventory, subject_name: &str, created: SystemTime) -> Value {
    let created = spdx_time(created);
    let mut ids = HashSet::new();
    let mut others: BTreeMap<String, OtherLicense> = BTreeMap::new();
    let mut packages = Vec::new();
    let mut relationships = Vec::new();
    let root_id = unique_id(
        &mut ids,
        format!("SPDXRef-DocumentRoot-Directory-{}", sanitize(subject_name)),
    );
    for package in &inventory.packages {
        let id = unique_id(&mut ids, package_id(package));
        let (declared, refs) = licenses::declared(&package.licenses);
        for other in refs {
            others.entry(other.id.clone()).or_insert(other);
        }
        packages.push(package_json(package, &id, &declared));
        relationships.push(relationship(&root_id, "CONTAINS", &id));
    }
    packages.push(json!({
        "name": subject_name,
        "SPDXID": root_id,
        "supplier": NOASSERTION,
        "downloadLocation": NOASSERTION,
        "filesAnalyzed": false,
        "licenseConcluded": NOASSERTION,
        "licenseDeclared": NOASSERTION,
        "copyrightText": NOASSERTION,
        "primaryPackagePurpose": "FILE",
    }));
    relationships.push(relationship("SPDXRef-DOCUMENT", "DESCRIBES", &root_id));

    let mut doc = json!({
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": subject_name,
        "documentNamespace": namespace(inventory, subject_name, &created),
        "creationInfo": {
            "licenseListVersion": license_list_version(),
            "creators": [format!("Tool: bud-{}", env!("CARGO_PKG_VERSION"))],
            "created": created,
        },
        "packages": packages,
        "relationships": relationships,
    });
    if !others.is_empty() {
        doc["hasExtractedLicensingInfos"] = others
            .into_values()
            .map(|o| json!({"licenseId": o.id, "extractedText": o.text, "name": o.text}))
            .collect();
    }
    if !inventory.warnings.is_empty() {
        let notes: Vec<String> = inventory.warnings.iter().map(|w| w.to_string()).collect();
        doc["comment"] = Value::String(format!("Not scanned: {}", notes.join("; ")));
    }
    doc
}

/// The SPDX package of `package`, named `id`, with its `declared` license expression, in
/// the fields syft fills (no files, nothing concluded).
fn package_json(package: &Package, id: &str, declared: &str) -> Value {
    let mut p = json!({
        "name": package.name,
        "SPDXID": id,
        "supplier": supplier(package.supplier.as_ref()),
        "downloadLocation": NOASSERTION,
        "filesAnalyzed": false,
        "sourceInfo": format!("{}: {}", package.ecosystem.source_info(), package.location),
        "licenseConcluded": NOASSERTION,
        "licenseDeclared": declared,
        "copyrightText": NOASSERTION,
        "externalRefs": [{
            "referenceCategory": "PACKAGE-MANAGER",
            "referenceType": "purl",
            "referenceLocator": package.purl,
        }],
    });
    if !package.version.is_empty() {
        p["versionInfo"] = Value::String(package.version.clone());
    }
    // syft names the maintainer or author both supplier and originator.
    if package.supplier.is_some() {
        p["originator"] = p["supplier"].clone();
    }
    p
}

/// The `supplier` field: `Person: …`, `Organization: …` or NOASSERTION.
fn supplier(supplier: Option<&Supplier>) -> String {
    match supplier {
        Some(Supplier::Person(name)) => format!("Person: {name}"),
        Some(Supplier::Organization(name)) => format!("Organization: {name}"),
        None => NOASSERTION.into(),
    }
}

/// An SPDX relationship: `from` `kind` (CONTAINS, DESCRIBES) `to`.
fn relationship(from: &str, kind: &str, to: &str) -> Value {
    json!({"spdxElementId": from, "relatedSpdxElement": to, "relationshipType": kind})
}

/// `SPDXRef-Package-deb-libc6-<16 hex>` as syft names them; the hex part is a digest of
/// everything said of the package, so the same package gets the same ID in every build.
fn package_id(package: &Package) -> String {
    let digest = Sha256::digest(package_key(package));
    format!(
        "SPDXRef-Package-{}-{}-{}",
        package.ecosystem.name(),
        sanitize(&package.name),
        hex::encode(&digest[..8])
    )
}

/// Everything the document says of a package, as bytes to hash for its ID.
fn package_key(p: &Package) -> Vec<u8> {
    let supplier = supplier(p.supplier.as_ref());
    let mut fields = vec![
        p.ecosystem.name(),
        &p.name,
        &p.version,
        &p.purl,
        &p.location,
        &supplier,
    ];
    fields.extend(p.licenses.iter().map(String::as_str));
    // Each field with its length: no two different packages give the same bytes.
    let mut key = Vec::new();
    for field in fields {
        key.extend_from_slice(&(field.len() as u64).to_be_bytes());
        key.extend_from_slice(field.as_bytes());
    }
    key
}

/// `id`, or `id-2`, `id-3`… if taken: SPDX IDs are unique in a document.
fn unique_id(taken: &mut HashSet<String>, id: String) -> String {
    let mut candidate = id.clone();
    let mut n = 1;
    while !taken.insert(candidate.clone()) {
        n += 1;
        candidate = format!("{id}-{n}");
    }
    candidate
}

/// What an SPDX ID may hold after `SPDXRef-`: letters, digits, `.` and `-`.
fn sanitize(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect()
}

/// A URI unique to this document's content, as the SPDX spec's example forms it
/// (`https://spdx.org/spdxdocs/<name>-<UUID>`): a UUID (version 8, RFC 9562's custom one)
/// from a SHA-256 of the subject, the time and every package and note.
fn namespace(inventory: &Inventory, subject: &str, created: &str) -> String {
    let mut hasher = Sha256::new();
    for part in [
        b"bud-spdx-namespace-v1".as_slice(),
        subject.as_bytes(),
        created.as_bytes(),
    ] {
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part);
    }
    for package in &inventory.packages {
        hasher.update(package_key(package));
    }
    for warning in &inventory.warnings {
        let text = warning.to_string();
        hasher.update((text.len() as u64).to_be_bytes());
        hasher.update(text.as_bytes());
    }
    let mut b: [u8; 16] = hasher.finalize()[..16].try_into().unwrap_or_default();
    b[6] = (b[6] & 0x0f) | 0x80;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    let uuid = format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    );
    let name: String = subject
        .trim_start_matches('/')
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-._~/".contains(c) {
                c
            } else {
                '-'
            }
        })
        .collect();
    if name.is_empty() {
        format!("https://spdx.org/spdxdocs/bud/{uuid}")
    } else {
        format!("https://spdx.org/spdxdocs/bud/{name}-{uuid}")
    }
}

/// `3.29`: the license list the expressions were checked against, without its patch
/// version, as syft writes it.
fn license_list_version() -> String {
    let v = spdx::identifiers::VERSION;
    match v.match_indices('.').nth(1) {
        Some((at, _)) => v[..at].to_string(),
        None => v.to_string(),
    }
}

/// `YYYY-MM-DDThh:mm:ssZ`, the one form SPDX 2.3 allows.
fn spdx_time(t: SystemTime) -> String {
    let secs = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_else(|e| -(e.duration().as_secs_f64().ceil() as i64));
    let (y, m, d) = crate::timefmt::civil_from_days(secs.div_euclid(86_400));
    let rem = secs.rem_euclid(86_400);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn times_and_ids() {
        let t = SystemTime::UNIX_EPOCH + Duration::new(1_700_000_000, 999_999_999);
        assert_eq!(spdx_time(t), "2023-11-14T22:13:20Z");
        assert_eq!(spdx_time(SystemTime::UNIX_EPOCH), "1970-01-01T00:00:00Z");
        assert_eq!(sanitize("lib@x/y_z.1-2"), "lib-x-y-z.1-2");
        let mut taken = HashSet::new();
        assert_eq!(unique_id(&mut taken, "a".into()), "a");
        assert_eq!(unique_id(&mut taken, "a".into()), "a-2");
        assert_eq!(unique_id(&mut taken, "a".into()), "a-3");
        assert_eq!(license_list_version().matches('.').count(), 1);
    }
}
