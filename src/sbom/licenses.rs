//! Declared licenses as SPDX license expressions. A value that is (or canonicalises to) a
//! valid expression over the SPDX license list is used as such; any other value becomes a
//! `LicenseRef-` whose text the document carries in `hasExtractedLicensingInfos`, as syft
//! does. Debian's copyright-format short names (`GPL-2+`, `Expat`, `BSD-3-clause`) and
//! Fedora's older ones (`GPLv2+`, `LGPLv2`) are mapped to their SPDX identifiers first.

use spdx::{Expression, ParseMode, identifiers::LICENSES};

/// The `spdx` crate's lax mode (`/` for OR, lowercase operators, `GPL-2.0+`, deprecated IDs)
/// without its imprecise names: a bare `gpl`, `bsd` or `apache` does not say which version
/// or variant, and an SBOM names no license the package did not.
const MODE: ParseMode = ParseMode {
    allow_slash_as_or_operator: true,
    allow_imprecise_license_names: false,
    allow_postfix_plus_on_gpl: true,
    allow_deprecated: true,
    allow_unknown: false,
};

/// A license that is not on the SPDX list, named by `id` (`LicenseRef-…`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct OtherLicense {
    /// `LicenseRef-` and the text made fit for an SPDX ID.
    pub id: String,
    /// The license as the package declares it.
    pub text: String,
}

/// The `licenseDeclared` expression of a package declaring `raw` (ANDed, as syft joins
/// several), `NOASSERTION` for none, and the licenses it refers to by `LicenseRef-`.
pub(super) fn declared(raw: &[String]) -> (String, Vec<OtherLicense>) {
    let mut terms: Vec<String> = Vec::new();
    let mut others = Vec::new();
    for value in raw {
        let value = value.trim();
        if value.is_empty() {
            continue;
        }
        let term = match expression(value) {
            Some(expr) if is_compound(&expr) => format!("({expr})"),
            Some(expr) => expr,
            None => {
                let id = license_ref(value);
                others.push(OtherLicense {
                    id: id.clone(),
                    text: value.to_string(),
                });
                id
            }
        };
        if !terms.contains(&term) {
            terms.push(term);
        }
    }
    if terms.is_empty() {
        return ("NOASSERTION".into(), others);
    }
    (terms.join(" AND "), others)
}

/// `value` as a valid SPDX expression, if it is one once canonicalised.
pub(super) fn expression(value: &str) -> Option<String> {
    let mapped = map_names(value);
    Expression::parse_mode(&mapped, MODE).ok()?;
    // Parsed without imprecise names, the canonical form only rewrites operators, `+` and
    // deprecated IDs.
    let canonical = match Expression::canonicalize(&mapped) {
        Ok(Some(canonical)) => canonical,
        Ok(None) => mapped,
        Err(_) => return None,
    };
    Expression::parse(&canonical).ok().map(|_| canonical)
}

/// Whether `expr` joins terms with an operator outside parentheses: ANDed with another
/// package license, it needs its own.
fn is_compound(expr: &str) -> bool {
    let wrapped = expr.starts_with('(') && expr.ends_with(')');
    !wrapped
        && [" AND ", " OR ", " WITH "]
            .iter()
            .any(|op| expr.contains(op))
}

/// `LicenseRef-` and the value with every character an SPDX ID cannot hold replaced.
fn license_ref(value: &str) -> String {
    let mut id = String::from("LicenseRef-");
    id.extend(value.chars().map(|c| {
        if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
            c
        } else {
            '-'
        }
    }));
    id
}

/// Each word of `value` that is a Debian or Fedora short name or an SPDX identifier in the
/// wrong case, replaced by its SPDX identifier; operators and parentheses kept.
fn map_names(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let mut word = String::new();
    for c in value.chars().chain(std::iter::once(' ')) {
        if c.is_whitespace() || "()/".contains(c) {
            if !word.is_empty() {
                out.push_str(&map_word(&word));
                word.clear();
            }
            out.push(c);
        } else {
            word.push(c);
        }
    }
    out.pop();
    out
}

/// The SPDX identifier of one license name: an SPDX ID as it is, Debian's `Expat` as MIT,
/// GNU names by their version rules, an SPDX ID in another case in SPDX's; any other word
/// unchanged (the expression then fails to parse and becomes a `LicenseRef-`).
fn map_word(word: &str) -> String {
    if spdx::license_id(word).is_some() {
        return word.to_string();
    }
    if word.eq_ignore_ascii_case("Expat") {
        return "MIT".into();
    }
    if let Some(gnu) = gnu_name(word) {
        return gnu;
    }
    match LICENSES.iter().find(|l| l.name.eq_ignore_ascii_case(word)) {
        Some(license) => license.name.to_string(),
        None => word.to_string(),
    }
}

/// Debian's `GPL-2`, `LGPL-2.1+`, `AGPL-3` and Fedora's `GPLv2+`, `LGPLv2` as
/// `GPL-2.0-only`, `LGPL-2.1-or-later`, ….
fn gnu_name(word: &str) -> Option<String> {
    let split = word.find(['-', 'v'])?;
    let (family, version) = (&word[..split], &word[split + 1..]);
    let family = ["GPL", "LGPL", "AGPL", "GFDL"]
        .into_iter()
        .find(|f| f.eq_ignore_ascii_case(family))?;
    let (version, later) = match version.strip_suffix('+') {
        Some(v) => (v, true),
        None => (version, false),
    };
    if version.is_empty() || !version.chars().all(|c| c.is_ascii_digit() || c == '.') {
        return None;
    }
    let version = if version.contains('.') {
        version.to_string()
    } else {
        format!("{version}.0")
    };
    let suffix = if later { "or-later" } else { "only" };
    let name = format!("{family}-{version}-{suffix}");
    spdx::license_id(&name).map(|_| name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spdx_expressions_and_debian_names() {
        assert_eq!(expression("MIT").as_deref(), Some("MIT"));
        assert_eq!(
            expression("Apache-2.0 OR GPL-2.0-or-later").as_deref(),
            Some("Apache-2.0 OR GPL-2.0-or-later")
        );
        assert_eq!(expression("GPL-2+").as_deref(), Some("GPL-2.0-or-later"));
        assert_eq!(expression("LGPL-2.1").as_deref(), Some("LGPL-2.1-only"));
        assert_eq!(
            expression("GPL-2+ or Artistic-2.0").as_deref(),
            Some("GPL-2.0-or-later OR Artistic-2.0")
        );
        assert_eq!(
            expression("Apache-2.0 with LLVM-exception").as_deref(),
            Some("Apache-2.0 WITH LLVM-exception")
        );
        assert_eq!(
            expression("BSD-3-clause or Expat").as_deref(),
            Some("BSD-3-Clause OR MIT")
        );
        assert_eq!(expression("Expat").as_deref(), Some("MIT"));
        assert_eq!(expression("BSD-3-clause").as_deref(), Some("BSD-3-Clause"));
        assert_eq!(expression("GPLv2+").as_deref(), Some("GPL-2.0-or-later"));
        assert_eq!(expression("LGPLv2").as_deref(), Some("LGPL-2.0-only"));
        assert_eq!(
            expression("mit/Apache-2.0").as_deref(),
            Some("MIT OR Apache-2.0")
        );
        assert_eq!(expression("GPL-2.0+").as_deref(), Some("GPL-2.0-or-later"));
        // Names that do not say which license: never guessed.
        for vague in ["GPL", "gpl", "BSD", "Apache", "GNU GPL v2", "MIT License"] {
            assert_eq!(expression(vague), None, "{vague}");
        }
        assert_eq!(expression("public-domain"), None);
        assert_eq!(expression("Some Custom Licence"), None);
    }

    #[test]
    fn declared_joins_and_refers_to_others() {
        let raw = vec![
            "MIT".to_string(),
            "Apache-2.0 OR MIT".to_string(),
            "Some Custom/Licence".to_string(),
            "MIT".to_string(),
            " ".to_string(),
        ];
        let (expr, others) = declared(&raw);
        assert_eq!(
            expr,
            "MIT AND (Apache-2.0 OR MIT) AND LicenseRef-Some-Custom-Licence"
        );
        assert_eq!(
            others,
            [OtherLicense {
                id: "LicenseRef-Some-Custom-Licence".into(),
                text: "Some Custom/Licence".into()
            }]
        );
        assert_eq!(declared(&[]).0, "NOASSERTION");
    }
}
