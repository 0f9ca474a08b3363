//! `--attest`, `--provenance` and `--sbom`, as buildx 0.29 parses them: each `--attest` a
//! CSV record with a `type=` (and `disabled=BOOL`); `--provenance=VALUE` and `--sbom=VALUE`
//! shorthands (`true`/`false`, or attributes); the first value given for a type wins, as
//! buildx's `CreateAttestations` keeps it. Without a provenance value, buildx (on a driver
//! that attaches attestations) asks for `mode=min,inline-only=true` unless
//! `BUILDX_NO_DEFAULT_ATTESTATIONS` is true.

use std::collections::BTreeMap;

/// The environment variable that turns the default provenance off.
pub const NO_DEFAULT_ATTESTATIONS_ENV: &str = "BUILDX_NO_DEFAULT_ATTESTATIONS";

/// The attestation types bud knows; BuildKit knows no others.
pub const TYPES: [&str; 2] = ["provenance", "sbom"];

/// The provenance attributes BuildKit reads, and what bud does with each.
const PROVENANCE_ATTRS: [&str; 5] = [
    "mode",
    "builder-id",
    "reproducible",
    "inline-only",
    "version",
];

/// One `--attest` value (or a shorthand's), as given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attest {
    /// `type=`: `provenance` or `sbom` (checked against [`TYPES`]).
    pub kind: String,
    /// `disabled=true`: the type is turned off, and, being first, wins over later values.
    pub disabled: bool,
    /// Every other field, `type` and `disabled` left out.
    pub attrs: BTreeMap<String, String>,
}

impl Attest {
    /// `--attest type=TYPE[,disabled=BOOL][,KEY=VALUE...]`.
    pub fn parse(value: &str) -> Result<Attest, String> {
        let fields = super::super::cli::csv_fields(value)?;
        let mut kind = String::new();
        let mut disabled = false;
        let mut attrs = BTreeMap::new();
        for field in fields {
            let Some((key, v)) = field.split_once('=') else {
                return Err(format!("invalid value {field}"));
            };
            match key.trim().to_ascii_lowercase().as_str() {
                "type" => kind = v.to_owned(),
                "disabled" => {
                    disabled = crate::cli::parse_go_bool(v)
                        .ok_or_else(|| format!("invalid value {field}: not a boolean"))?;
                }
                _ => {
                    attrs.insert(key.to_owned(), v.to_owned());
                }
            }
        }
        if kind.is_empty() {
            return Err("attestation type not specified".to_owned());
        }
        let attest = Attest {
            kind,
            disabled,
            attrs,
        };
        attest.check()?;
        Ok(attest)
    }

    /// `--provenance=VALUE` / `--sbom=VALUE`: a boolean turns it on or off, anything else is
    /// its attributes (buildx's `CanonicalizeAttest`).
    pub fn shorthand(kind: &str, value: &str) -> Result<Attest, String> {
        match crate::cli::parse_go_bool(value) {
            Some(on) => Attest::parse(&format!("type={kind},disabled={}", !on)),
            None => Attest::parse(&format!("type={kind},{value}")),
        }
    }

    /// Refuses what neither bud nor BuildKit would do with the attestation.
    fn check(&self) -> Result<(), String> {
        if !TYPES.contains(&self.kind.as_str()) {
            return Err(format!(
                "unknown attestation type {:?}; accepted: {}",
                self.kind,
                TYPES.join(", ")
            ));
        }
        if self.kind == "provenance" && !self.disabled {
            for key in self.attrs.keys() {
                if !PROVENANCE_ATTRS.contains(&key.as_str()) {
                    return Err(format!(
                        "provenance attribute {key:?} is not supported; accepted: {}",
                        PROVENANCE_ATTRS.join(", ")
                    ));
                }
            }
            ProvenanceRequest::from_attrs(&self.attrs)?;
        }
        // buildx's generator= (a scanner image), scan-context= and scan-stage= ask for
        // BuildKit's scanner; bud scans the final image itself, as that scanner does by
        // default.
        if self.kind == "sbom"
            && !self.disabled
            && let Some(key) = self.attrs.keys().next()
        {
            return Err(format!(
                "sbom attribute {key:?} is not supported: bud scans the image's package \
                 databases itself (no scanner image, no scan of the context or stages)"
            ));
        }
        Ok(())
    }
}

/// How much the provenance says (BuildKit's `mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProvenanceMode {
    /// No build argument or label values, no secrets or ssh ids, no build steps.
    Min,
    /// Everything, with the LLB definition and its source map.
    Max,
}

/// A provenance attestation as asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProvenanceRequest {
    /// `mode=`: max when not given, as BuildKit reads it (buildx's default asks min).
    pub mode: ProvenanceMode,
    /// `builder-id=`: the predicate's `builder.id`.
    pub builder_id: String,
    /// `reproducible=true`: the predicate's `metadata.reproducible`.
    pub reproducible: bool,
    /// `inline-only=true`: only for exports that hold the image (never a local or tar
    /// output's file); bud writes provenance into images only anyway.
    pub inline_only: bool,
    /// The attributes as given, for a daemon that makes the attestation itself.
    pub attrs: BTreeMap<String, String>,
}

impl ProvenanceRequest {
    fn from_attrs(attrs: &BTreeMap<String, String>) -> Result<Self, String> {
        // BuildKit's default when no mode is given is max; buildx's own default asks min.
        let mode = match attrs.get("mode").map(String::as_str) {
            None | Some("max" | "full") => ProvenanceMode::Max,
            Some("min") => ProvenanceMode::Min,
            Some(other) => {
                return Err(format!(
                    "invalid provenance mode {other:?}; accepted: min, max"
                ));
            }
        };
        let flag = |key: &str| -> Result<bool, String> {
            match attrs.get(key) {
                None => Ok(false),
                Some(v) => crate::cli::parse_go_bool(v)
                    .ok_or_else(|| format!("invalid {key} value {v:?}: not a boolean")),
            }
        };
        if let Some(version) = attrs.get("version")
            && version != "v0.2"
        {
            return Err(format!(
                "provenance version={version}: bud writes SLSA provenance v0.2 (BuildKit's default) only"
            ));
        }
        Ok(ProvenanceRequest {
            mode,
            builder_id: attrs.get("builder-id").cloned().unwrap_or_default(),
            reproducible: flag("reproducible")?,
            inline_only: flag("inline-only")?,
            attrs: attrs.clone(),
        })
    }

    /// buildx's default: `mode=min,inline-only=true`.
    pub fn default_min() -> Self {
        ProvenanceRequest {
            mode: ProvenanceMode::Min,
            builder_id: String::new(),
            reproducible: false,
            inline_only: true,
            attrs: BTreeMap::from([
                ("mode".to_owned(), "min".to_owned()),
                ("inline-only".to_owned(), "true".to_owned()),
            ]),
        }
    }

    /// The attribute value BuildKit reads (`attest:provenance=...`).
    pub fn frontend_attr(&self) -> String {
        self.attrs
            .iter()
            .map(|(k, v)| csv_field(&format!("{k}={v}")))
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// The attestations of a build, once every flag and the environment are read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Attestations {
    /// The provenance to attach, asked for or buildx's default; `None` when turned off.
    pub provenance: Option<ProvenanceRequest>,
    /// `--sbom` or `--attest type=sbom` turned on; its attributes as given.
    pub sbom: Option<BTreeMap<String, String>>,
    /// Whether anything was asked for explicitly (rather than buildx's default).
    pub explicit: bool,
}

impl Attestations {
    /// True when the build attaches no attestation at all.
    pub fn is_empty(&self) -> bool {
        self.provenance.is_none() && self.sbom.is_none()
    }

    /// `--attest` values, then `--provenance`, then `--sbom` (buildx's order), the first
    /// for each type winning; `no_default` is `BUILDX_NO_DEFAULT_ATTESTATIONS`' value.
    /// `defaults`: whether the exports take buildx's default provenance at all.
    pub fn resolve(
        attests: &[Attest],
        provenance: Option<&Attest>,
        sbom: Option<&Attest>,
        no_default: Option<&str>,
        defaults: bool,
    ) -> Result<Attestations, String> {
        let mut first: BTreeMap<&str, &Attest> = BTreeMap::new();
        for a in attests.iter().chain(provenance).chain(sbom) {
            first.entry(a.kind.as_str()).or_insert(a);
        }
        let mut out = Attestations::default();
        if let Some(a) = first.get("provenance") {
            if !a.disabled {
                out.provenance = Some(ProvenanceRequest::from_attrs(&a.attrs)?);
                out.explicit = true;
            }
        } else if defaults {
            let off = match no_default {
                Some(v) => crate::cli::parse_go_bool(v).ok_or_else(|| {
                    format!("invalid {NO_DEFAULT_ATTESTATIONS_ENV}: {v:?} is not a boolean")
                })?,
                None => false,
            };
            if !off {
                out.provenance = Some(ProvenanceRequest::default_min());
            }
        }
        if let Some(a) = first.get("sbom")
            && !a.disabled
        {
            out.sbom = Some(a.attrs.clone());
            out.explicit = true;
        }
        Ok(out)
    }
}

/// A CSV field, quoted when it must be (a comma or a quote in it).
fn csv_field(field: &str) -> String {
    if field.contains([',', '"']) {
        format!("\"{}\"", field.replace('"', "\"\""))
    } else {
        field.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(
        attests: &[&str],
        provenance: Option<&str>,
        env: Option<&str>,
    ) -> Result<Attestations, String> {
        let attests: Vec<Attest> = attests.iter().map(|a| Attest::parse(a).unwrap()).collect();
        let provenance = provenance.map(|p| Attest::shorthand("provenance", p).unwrap());
        Attestations::resolve(&attests, provenance.as_ref(), None, env, true)
    }

    #[test]
    fn parsed_as_buildx_parses_them() {
        assert_eq!(
            Attest::parse("mode=max").unwrap_err(),
            "attestation type not specified"
        );
        assert_eq!(
            Attest::parse("type=provenance,mode").unwrap_err(),
            "invalid value mode"
        );
        assert!(Attest::parse("type=provenance,disabled=maybe").is_err());
        assert!(
            Attest::parse("type=foo")
                .unwrap_err()
                .contains("unknown attestation type")
        );
        assert!(Attest::parse("type=provenance,mode=bogus").is_err());
        assert!(Attest::parse("type=provenance,version=v1").is_err());
        assert!(Attest::parse("type=provenance,\"mode=max").is_err());
        let a = Attest::shorthand("provenance", "false").unwrap();
        assert!(a.disabled);
        let a = Attest::shorthand("provenance", "mode=max,builder-id=https://ci/1").unwrap();
        assert_eq!(a.attrs["mode"], "max");
        assert_eq!(a.attrs["builder-id"], "https://ci/1");
        // A disabled type's attributes are not looked at.
        assert!(Attest::parse("type=provenance,disabled=true,whatever=1").is_ok());
    }

    #[test]
    fn defaults_and_the_first_value_win() {
        let min = resolve(&[], None, None).unwrap();
        assert_eq!(min.provenance, Some(ProvenanceRequest::default_min()));
        assert!(!min.explicit);
        assert_eq!(
            min.provenance.unwrap().frontend_attr(),
            "inline-only=true,mode=min"
        );
        assert!(resolve(&[], Some("false"), None).unwrap().is_empty());
        assert!(resolve(&[], None, Some("1")).unwrap().is_empty());
        assert!(resolve(&[], None, Some("maybe")).is_err());
        // An explicit value does not read the variable at all.
        assert!(
            resolve(&[], Some("true"), Some("maybe"))
                .unwrap()
                .provenance
                .is_some()
        );
        // --provenance=true asks BuildKit with no mode: its default, max.
        let on = resolve(&[], Some("true"), None).unwrap();
        assert_eq!(on.provenance.unwrap().mode, ProvenanceMode::Max);
        // --attest comes before the shorthand, and the first for a type wins.
        let first = resolve(&["type=provenance,mode=min"], Some("false"), None).unwrap();
        assert_eq!(first.provenance.unwrap().mode, ProvenanceMode::Min);
        assert!(
            resolve(
                &["type=provenance,disabled=true", "type=provenance"],
                None,
                None
            )
            .unwrap()
            .is_empty()
        );
        let none = Attestations::resolve(&[], None, None, None, false).unwrap();
        assert!(none.is_empty());
    }
}
