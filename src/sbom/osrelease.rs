//! The image's distribution from os-release(5): its `ID` names the purl namespace of its OS
//! packages and `ID-VERSION_ID` their `distro` qualifier, as syft writes them.

use super::Inventory;
use super::rootfs::RootFs;

/// An os-release file is a few hundred bytes.
const LIMIT: u64 = 64 << 10;

/// The distribution the image says it is; nothing for an image without os-release.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(super) struct Distro {
    /// `ID`: `debian`, `alpine`, `fedora`…
    pub id: Option<String>,
    /// `VERSION_ID`: `12`, `3.19.1`…
    pub version_id: Option<String>,
}

impl Distro {
    /// `debian-12`, `alpine-3.19.1`: the purl `distro` qualifier.
    pub(super) fn qualifier(&self) -> Option<String> {
        match (&self.id, &self.version_id) {
            (Some(id), Some(version)) => Some(format!("{id}-{version}")),
            (Some(id), None) => Some(id.clone()),
            _ => None,
        }
    }
}

/// `/etc/os-release`, else `/usr/lib/os-release` (the order os-release(5) gives).
pub(super) fn read(fs: &RootFs, inventory: &mut Inventory) -> Distro {
    for path in ["/etc/os-release", "/usr/lib/os-release"] {
        match fs.read(path, LIMIT) {
            Ok(Some(bytes)) => return parse(&String::from_utf8_lossy(&bytes)),
            Ok(None) => {}
            Err(e) => inventory.warn(path, crate::error_chain::error_chain(&e)),
        }
    }
    Distro::default()
}

/// The `ID` and `VERSION_ID` of an os-release file's `KEY=value` lines, quotes removed.
pub(super) fn parse(text: &str) -> Distro {
    let mut distro = Distro::default();
    for line in text.lines() {
        let Some((key, value)) = line.trim().split_once('=') else {
            continue;
        };
        let value = unquote(value.trim());
        if value.is_empty() {
            continue;
        }
        match key {
            "ID" => distro.id = Some(value),
            "VERSION_ID" => distro.version_id = Some(value),
            _ => {}
        }
    }
    distro
}

/// A shell-quoted value as os-release(5) allows it: double quotes with `\` escapes, or
/// single quotes.
fn unquote(value: &str) -> String {
    if let Some(inner) = value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')) {
        return inner.to_string();
    }
    let Some(inner) = value.strip_prefix('"').and_then(|v| v.strip_suffix('"')) else {
        return value.to_string();
    };
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.extend(chars.next()),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_quoted_values() {
        let d =
            parse("PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nID=debian\nVERSION_ID=\"12\"\n");
        assert_eq!(d.id.as_deref(), Some("debian"));
        assert_eq!(d.qualifier().as_deref(), Some("debian-12"));
        let d = parse("ID='alpine'\nVERSION_ID=3.19.1\n# comment\nbroken line\n");
        assert_eq!(d.qualifier().as_deref(), Some("alpine-3.19.1"));
        assert_eq!(unquote(r#""a \"b\" \\c""#), r#"a "b" \c"#);
        assert_eq!(parse("ID=arch\n").qualifier().as_deref(), Some("arch"));
    }
}
