//! Alpine packages: apk's installed database, `/lib/apk/db/installed`, one `K:value` line per
//! field and a blank line after each package (apk-tools' `apk_db_index_read`).

use super::osrelease::Distro;
use super::rootfs::RootFs;
use super::{Ecosystem, Inventory, MAX_PACKAGES, Package, Skipped, licenses, person, purl};

/// Where apk keeps the installed packages.
const INSTALLED: &str = "/lib/apk/db/installed";
/// Far beyond any real image's database (a few MiB for thousands of packages): a hostile
/// one is not read whole.
const LIMIT: u64 = 64 << 20;

/// The fields of one package that the inventory uses, by their apk keys (`P:`, `V:`, `A:`,
/// `L:`, `o:`, `m:`).
#[derive(Default)]
struct Entry<'a> {
    name: Option<&'a str>,
    version: Option<&'a str>,
    arch: Option<&'a str>,
    license: Option<&'a str>,
    origin: Option<&'a str>,
    maintainer: Option<&'a str>,
}

/// Adds the packages of apk's database, if the image has one: `pkg:apk/<distro>/name` with
/// the origin as `upstream`; a package without a name or version is left out with a
/// warning.
pub(super) fn scan(fs: &RootFs, distro: &Distro, inventory: &mut Inventory) {
    let bytes = match fs.read(INSTALLED, LIMIT) {
        Ok(Some(bytes)) => bytes,
        Ok(None) => return,
        Err(e) => {
            inventory.warn(
                INSTALLED,
                format_args!(
                    "apk database skipped: {}",
                    crate::error_chain::error_chain(&e)
                ),
            );
            return;
        }
    };
    let text = String::from_utf8_lossy(&bytes);
    let entries = match entries(&text) {
        Ok(entries) => entries,
        Err(line) => {
            inventory.warn(
                INSTALLED,
                format_args!("apk database skipped: line {line} is not a `K:value` field"),
            );
            return;
        }
    };
    let mut found = Vec::new();
    let mut skipped = Skipped::default();
    for entry in entries {
        let (Some(name), Some(version)) = (entry.name, entry.version) else {
            skipped.note(INSTALLED, "an entry without P: or V: skipped");
            continue;
        };
        let upstream = entry.origin.filter(|o| *o != name);
        let distro_q = distro.qualifier();
        let purl = purl(
            "apk",
            Some(distro.id.as_deref().unwrap_or("alpine")),
            name,
            version,
            &[
                ("arch", entry.arch),
                ("upstream", upstream),
                ("distro", distro_q.as_deref()),
            ],
        );
        match purl {
            Ok(purl) => found.push(Package {
                name: name.to_string(),
                version: version.to_string(),
                ecosystem: Ecosystem::Apk,
                purl,
                supplier: entry.maintainer.and_then(person),
                licenses: entry.license.map(split_license).unwrap_or_default(),
                location: INSTALLED.to_string(),
            }),
            Err(e) => skipped.note(
                INSTALLED,
                format_args!("{name} skipped: {}", crate::error_chain::error_chain(&e)),
            ),
        }
    }
    skipped.report(inventory);
    inventory.add(INSTALLED, found);
}

/// The entries of the database (no more than an inventory holds: the rest could not be
/// added anyway); `Err(line)` for a line that is not a field.
fn entries(text: &str) -> Result<Vec<Entry<'_>>, usize> {
    let mut out = Vec::new();
    let mut current = Entry::default();
    let mut empty = true;
    for (index, line) in text.lines().enumerate() {
        if line.is_empty() {
            if !empty {
                out.push(std::mem::take(&mut current));
                empty = true;
                if out.len() > MAX_PACKAGES {
                    return Ok(out);
                }
            }
            continue;
        }
        let bytes = line.as_bytes();
        if bytes.len() < 2 || bytes[1] != b':' {
            return Err(index + 1);
        }
        empty = false;
        let value = Some(&line[2..]);
        match bytes[0] {
            b'P' => current.name = value,
            b'V' => current.version = value,
            b'A' => current.arch = value,
            b'L' => current.license = value,
            b'o' => current.origin = value,
            b'm' => current.maintainer = value,
            _ => {}
        }
    }
    if !empty {
        out.push(current);
    }
    Ok(out)
}

/// Alpine's `L:` is an SPDX expression today; older packages list licenses separated by
/// spaces (`MIT BSD GPL2+`), each its own license.
fn split_license(value: &str) -> Vec<String> {
    let words: Vec<&str> = value.split_whitespace().collect();
    let has_operator = words.iter().any(|w| {
        ["and", "or", "with"]
            .iter()
            .any(|op| w.eq_ignore_ascii_case(op))
    });
    if words.len() > 1 && !has_operator && licenses::expression(value).is_none() {
        return words.into_iter().map(str::to_string).collect();
    }
    vec![value.to_string()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_and_licenses() {
        let text = "C:Q1abc=\nP:musl\nV:1.2.4-r2\nA:x86_64\nL:MIT\no:musl\n\
                    m:Timo Teräs <timo.teras@iki.fi>\nF:lib\nR:libc.musl-x86_64.so.1\n\n\
                    P:ssl_client\nV:1.36.1-r15\nL:GPL-2.0-only\no:busybox\n\n";
        let e = entries(text).unwrap();
        assert_eq!(e.len(), 2);
        assert_eq!(e[0].name, Some("musl"));
        assert_eq!(e[0].maintainer, Some("Timo Teräs <timo.teras@iki.fi>"));
        assert_eq!(e[1].origin, Some("busybox"));
        assert_eq!(entries("P:x\nno field here\n").err(), Some(2));

        assert_eq!(split_license("MIT BSD GPL2+"), ["MIT", "BSD", "GPL2+"]);
        assert_eq!(
            split_license("MIT AND BSD-3-Clause"),
            ["MIT AND BSD-3-Clause"]
        );
    }
}
