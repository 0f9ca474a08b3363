//! OCI annotations an image export writes: `--annotation [TYPE[\[PLATFORM\]]:]KEY=VALUE` as
//! buildx parses it, and the `annotation[-TYPE][\[PLATFORM\]].KEY=VALUE` output attributes
//! as BuildKit's image exporters read them. The entry points are [`Annotations::for_image`]:
//! what goes into one platform's manifest and onto the descriptor that points at it, and
//! [`Annotations::for_index`]: the same for every platform of an image index, and what goes
//! into the index and onto its own descriptor.
//!
//! Types, as in BuildKit: `manifest` (the default), `manifest-descriptor`, `index`,
//! `index-descriptor`. bud writes one manifest and no image index for a single-platform
//! image, so index annotations are refused there rather than dropped, as BuildKit refuses
//! them for a single-platform export.

use std::collections::BTreeMap;
use std::fmt;

use bud_frontend::convert::Platform;
use thiserror::Error;

/// Where an annotation goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum AnnotationType {
    /// The image manifest's `annotations` (BuildKit's default for an untyped key).
    Manifest,
    /// The descriptor pointing at the manifest (in an index or `index.json`).
    ManifestDescriptor,
    /// The image index's `annotations`.
    Index,
    /// The descriptor pointing at the index (in an OCI layout's `index.json`).
    IndexDescriptor,
}

impl AnnotationType {
    const ALL: [(&'static str, AnnotationType); 4] = [
        ("manifest", AnnotationType::Manifest),
        ("manifest-descriptor", AnnotationType::ManifestDescriptor),
        ("index", AnnotationType::Index),
        ("index-descriptor", AnnotationType::IndexDescriptor),
    ];

    fn parse(name: &str) -> Option<Self> {
        Self::ALL.iter().find(|(n, _)| *n == name).map(|(_, t)| *t)
    }

    /// As `--annotation` and output attributes spell it (`manifest-descriptor`, …).
    pub fn name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, t)| *t == self)
            .map_or("manifest", |(n, _)| *n)
    }
}

/// One annotation, for every platform or (manifests only) for one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Annotation {
    /// Where it is written.
    pub kind: AnnotationType,
    /// The one platform's image it applies to; `None` applies it to every platform.
    pub platform: Option<Platform>,
    /// Annotation key, e.g. `org.opencontainers.image.title`.
    pub key: String,
    /// Its value, verbatim.
    pub value: String,
}

impl fmt::Display for Annotation {
    /// As an output attribute of the same meaning (buildx writes a typeless one as
    /// `annotation.KEY`, which BuildKit reads as a manifest annotation).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "annotation-{}", self.kind.name())?;
        if let Some(p) = &self.platform {
            write!(f, "[{p}]")?;
        }
        write!(f, ".{}={}", self.key, self.value)
    }
}

/// Why an annotation cannot be written.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum AnnotationError {
    /// An index or index-descriptor annotation on a single-platform image, which has no index.
    #[error(
        "annotation {key:?} is of type {kind}: bud writes no image index for a single-platform \
         image, so it has nowhere to go (BuildKit refuses it too)"
    )]
    NoIndex {
        /// The annotation's type, as spelled in the flag.
        kind: &'static str,
        /// The annotation's key.
        key: String,
    },
    /// An annotation for a platform the build does not produce.
    #[error("annotation {key:?} is for platform {platform}, but the image is built for {built}")]
    OtherPlatform {
        /// The annotation's key.
        key: String,
        /// The platform it names.
        platform: String,
        /// The platforms built, comma-separated.
        built: String,
    },
}

/// `--annotation VALUE`, as buildx's `ParseAnnotations`: `KEY=VALUE`, or
/// `TYPE:KEY=VALUE`, or `TYPE[PLATFORM]:KEY=VALUE`.
pub fn parse_flag(s: &str) -> Result<Annotation, String> {
    let (left, value) = s
        .split_once('=')
        .ok_or_else(|| format!("invalid annotation {s:?}, expected key=value"))?;
    let form = || format!("invalid annotation format, expected <type>:<key>=<value>, got {s:?}");
    // `(\S+)` for the key; a type, when there is one, is `[a-z-]+` before a `:`.
    let (kind, platform, key) = match split_type_prefix(left) {
        Some((kind, platform, key)) => (Some(kind), platform, key),
        None => (None, None, left),
    };
    if key.is_empty() || key.chars().any(char::is_whitespace) {
        return Err(form());
    }
    let kind = match kind {
        None => AnnotationType::Manifest,
        Some(name) => AnnotationType::parse(name)
            .ok_or_else(|| format!("unknown annotation type {name:?}"))?,
    };
    let platform = platform
        .map(|p| Platform::parse(p).map_err(|e| format!("invalid platform {p:?}: {e}")))
        .transpose()?;
    Ok(Annotation {
        kind,
        platform,
        key: key.to_owned(),
        value: value.to_owned(),
    })
}

/// `TYPE[PLATFORM]:REST` or `TYPE:REST` at the start of `s`, as buildx's expression
/// `^(?:([a-z-]+)(?:\[([A-Za-z0-9_/-]+)\])?:)?` takes it.
fn split_type_prefix(s: &str) -> Option<(&str, Option<&str>, &str)> {
    let type_end = s
        .find(|c: char| !(c.is_ascii_lowercase() || c == '-'))
        .filter(|&i| i > 0)?;
    let (kind, rest) = s.split_at(type_end);
    if let Some(rest) = rest.strip_prefix(':') {
        return Some((kind, None, rest));
    }
    let inner = rest.strip_prefix('[')?;
    let close = inner.find(']')?;
    let (platform, rest) = inner.split_at(close);
    let rest = rest.strip_prefix("]:")?;
    platform_chars_ok(platform).then_some((kind, Some(platform), rest))
}

fn platform_chars_ok(p: &str) -> bool {
    !p.is_empty()
        && p.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '/' | '-'))
}

/// Whether an output attribute is an annotation (BuildKit: `^annotation[-.\[]`).
pub fn is_annotation_attr(key: &str) -> bool {
    key.strip_prefix("annotation")
        .is_some_and(|rest| rest.starts_with(['-', '.', '[']))
}

/// An `annotation…` output attribute, as BuildKit's `ParseAnnotationKey`:
/// `annotation[-TYPE][\[PLATFORM\]].KEY`.
pub fn parse_attr(attr: &str, value: &str) -> Result<Annotation, String> {
    let bad = || format!("could not fully parse annotation {attr}");
    let rest = attr.strip_prefix("annotation").ok_or_else(bad)?;
    let (kind, rest) = match rest.strip_prefix('-') {
        Some(rest) => {
            let end = rest
                .find(|c: char| !(c.is_ascii_lowercase() || c == '-'))
                .ok_or_else(bad)?;
            let (name, rest) = rest.split_at(end);
            let kind = AnnotationType::parse(name)
                .ok_or_else(|| format!("unrecognized annotation type {name}"))?;
            (kind, rest)
        }
        None => (AnnotationType::Manifest, rest),
    };
    let (platform, rest) = match rest.strip_prefix('[') {
        Some(inner) => {
            let close = inner.find(']').ok_or_else(bad)?;
            let (platform, rest) = inner.split_at(close);
            if !platform_chars_ok(platform) {
                return Err(bad());
            }
            let parsed = Platform::parse(platform)
                .map_err(|e| format!("invalid platform {platform:?}: {e}"))?;
            (Some(parsed), &rest[1..])
        }
        None => (None, rest),
    };
    let key = rest.strip_prefix('.').ok_or_else(bad)?;
    if key.is_empty() || key.chars().any(char::is_whitespace) {
        return Err(bad());
    }
    Ok(Annotation {
        kind,
        platform,
        key: key.to_owned(),
        value: value.to_owned(),
    })
}

/// The annotations one image export asks for, in the order given (a later one wins).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Annotations(pub Vec<Annotation>);

/// What goes into one image's manifest, and onto the descriptor that points at it (an OCI
/// layout's `index.json`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageAnnotations {
    /// Written into the image manifest.
    pub manifest: BTreeMap<String, String>,
    /// Written onto the descriptor that points at the manifest.
    pub manifest_descriptor: BTreeMap<String, String>,
}

/// What an image index of several platforms writes: each platform's own, in the order of
/// the platforms, then the index's and its descriptor's (an OCI layout's `index.json`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IndexAnnotations {
    /// One per platform, in the order the platforms were given.
    pub images: Vec<ImageAnnotations>,
    /// Written into the image index.
    pub index: BTreeMap<String, String>,
    /// Written onto the index's descriptor in `index.json`.
    pub index_descriptor: BTreeMap<String, String>,
}

impl Annotations {
    /// An output's `annotation…` attributes, then the `--annotation` flags (buildx sets
    /// those on every output, over the output's own).
    pub fn of_output(
        attrs: &BTreeMap<String, String>,
        flags: &[Annotation],
    ) -> Result<Self, String> {
        let mut all = Vec::new();
        for (k, v) in attrs.iter().filter(|(k, _)| is_annotation_attr(k)) {
            all.push(parse_attr(k, v)?);
        }
        all.extend(flags.iter().cloned());
        Ok(Annotations(all))
    }

    /// True when neither the output nor the flags give an annotation.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The annotations of the single image built for `built`: index annotations and ones
    /// for another platform are errors, since neither would be written anywhere.
    pub fn for_image(&self, built: &Platform) -> Result<ImageAnnotations, AnnotationError> {
        let mut out = ImageAnnotations::default();
        for a in &self.0 {
            if let Some(p) = &a.platform
                && p != built
            {
                return Err(AnnotationError::OtherPlatform {
                    key: a.key.clone(),
                    platform: p.to_string(),
                    built: built.to_string(),
                });
            }
            let map = match a.kind {
                AnnotationType::Manifest => &mut out.manifest,
                AnnotationType::ManifestDescriptor => &mut out.manifest_descriptor,
                AnnotationType::Index | AnnotationType::IndexDescriptor => {
                    return Err(AnnotationError::NoIndex {
                        kind: a.kind.name(),
                        key: a.key.clone(),
                    });
                }
            };
            map.insert(a.key.clone(), a.value.clone());
        }
        Ok(out)
    }

    /// The annotations of an image index of `built` (several platforms), as BuildKit's
    /// `AnnotationsGroup::Platform` resolves them: a manifest annotation without a platform
    /// goes to every image, one with a platform to that platform's image, over the former;
    /// index annotations go to the index whatever platform they name. A manifest annotation
    /// for a platform not built is an error: it would be written nowhere.
    pub fn for_index(&self, built: &[Platform]) -> Result<IndexAnnotations, AnnotationError> {
        let mut out = IndexAnnotations {
            images: vec![ImageAnnotations::default(); built.len()],
            ..Default::default()
        };
        for a in &self.0 {
            match a.kind {
                AnnotationType::Index => {
                    out.index.insert(a.key.clone(), a.value.clone());
                }
                AnnotationType::IndexDescriptor => {
                    out.index_descriptor.insert(a.key.clone(), a.value.clone());
                }
                AnnotationType::Manifest | AnnotationType::ManifestDescriptor => {
                    if let Some(p) = &a.platform
                        && !built.contains(p)
                    {
                        return Err(AnnotationError::OtherPlatform {
                            key: a.key.clone(),
                            platform: p.to_string(),
                            built: built
                                .iter()
                                .map(Platform::to_string)
                                .collect::<Vec<_>>()
                                .join(", "),
                        });
                    }
                }
            }
        }
        // Those for every platform first, so that a platform's own win, as in BuildKit.
        for scoped in [false, true] {
            for a in self.0.iter().filter(|a| a.platform.is_some() == scoped) {
                for (platform, image) in built.iter().zip(&mut out.images) {
                    if a.platform.as_ref().is_some_and(|p| p != platform) {
                        continue;
                    }
                    let map = match a.kind {
                        AnnotationType::Manifest => &mut image.manifest,
                        AnnotationType::ManifestDescriptor => &mut image.manifest_descriptor,
                        AnnotationType::Index | AnnotationType::IndexDescriptor => continue,
                    };
                    map.insert(a.key.clone(), a.value.clone());
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flag(s: &str) -> Annotation {
        parse_flag(s).unwrap()
    }

    #[test]
    fn flags_as_buildx_parses_them() {
        let a = flag("org.opencontainers.image.title=x=y");
        assert_eq!(a.kind, AnnotationType::Manifest);
        assert_eq!(
            (a.key.as_str(), a.value.as_str()),
            ("org.opencontainers.image.title", "x=y")
        );
        let a = flag("index:com.example=1");
        assert_eq!(
            (a.kind, a.key.as_str()),
            (AnnotationType::Index, "com.example")
        );
        let a = flag("manifest-descriptor[linux/amd64]:k=");
        assert_eq!(a.kind, AnnotationType::ManifestDescriptor);
        assert_eq!(a.platform, Some(Platform::parse("linux/amd64").unwrap()));
        assert_eq!(a.value, "");
        // A key with a colon but no type before it is a plain key.
        assert_eq!(flag("a.b:c=1").key, "a.b:c");
        assert_eq!(flag("Upper:k=1").key, "Upper:k");
        assert_eq!(
            parse_flag("k").unwrap_err(),
            "invalid annotation \"k\", expected key=value"
        );
        assert_eq!(
            parse_flag("bogus:k=1").unwrap_err(),
            "unknown annotation type \"bogus\""
        );
        assert!(
            parse_flag("=v")
                .unwrap_err()
                .contains("expected <type>:<key>=<value>")
        );
        assert!(parse_flag("manifest[linux/amd64]:=v").is_err());
    }

    #[test]
    fn attributes_as_buildkit_parses_them() {
        let a = parse_attr("annotation.k", "v").unwrap();
        assert_eq!(
            (a.kind, a.key.as_str(), a.platform),
            (AnnotationType::Manifest, "k", None)
        );
        let a = parse_attr("annotation-manifest-descriptor[linux/arm64].k.x", "v").unwrap();
        assert_eq!(a.kind, AnnotationType::ManifestDescriptor);
        assert_eq!(a.key, "k.x");
        assert_eq!(a.platform.unwrap().to_string(), "linux/arm64");
        assert_eq!(
            parse_attr("annotation-index.k", "v").unwrap().kind,
            AnnotationType::Index
        );
        assert_eq!(
            parse_attr("annotation-nope.k", "v").unwrap_err(),
            "unrecognized annotation type nope"
        );
        assert!(parse_attr("annotation.", "v").is_err());
        assert!(parse_attr("annotation[linux/amd64]k", "v").is_err());
        assert!(is_annotation_attr("annotation.k"));
        assert!(is_annotation_attr("annotation-index.k"));
        assert!(!is_annotation_attr("annotations"));
    }

    #[test]
    fn a_flag_reads_back_from_the_attribute_it_stands_for() {
        for (given, attr) in [
            ("k=v", "annotation-manifest.k=v"),
            ("index:k=v", "annotation-index.k=v"),
            (
                "manifest[linux/amd64]:k=v",
                "annotation-manifest[linux/amd64].k=v",
            ),
        ] {
            let a = flag(given);
            assert_eq!(a.to_string(), attr);
            let (k, v) = attr.split_once('=').unwrap();
            assert_eq!(parse_attr(k, v).unwrap(), a);
        }
    }

    #[test]
    fn one_image_takes_its_own_and_refuses_what_it_cannot_write() {
        let amd64 = Platform::parse("linux/amd64").unwrap();
        let all = Annotations(vec![
            flag("a=1"),
            flag("manifest[linux/amd64]:b=2"),
            flag("manifest-descriptor:c=3"),
            flag("a=4"),
        ]);
        let got = all.for_image(&amd64).unwrap();
        assert_eq!(
            got.manifest,
            BTreeMap::from([("a".into(), "4".into()), ("b".into(), "2".into())])
        );
        assert_eq!(
            got.manifest_descriptor,
            BTreeMap::from([("c".into(), "3".into())])
        );
        let other = Annotations(vec![flag("manifest[linux/arm64]:b=2")]);
        assert!(matches!(
            other.for_image(&amd64),
            Err(AnnotationError::OtherPlatform { .. })
        ));
        let index = Annotations(vec![flag("index-descriptor:k=v")]);
        assert_eq!(
            index.for_image(&amd64),
            Err(AnnotationError::NoIndex {
                kind: "index-descriptor",
                key: "k".into()
            })
        );
    }

    #[test]
    fn an_index_takes_each_platforms_own_and_its_own() {
        let amd64 = Platform::parse("linux/amd64").unwrap();
        let arm64 = Platform::parse("linux/arm64").unwrap();
        let built = [amd64.clone(), arm64.clone()];
        let all = Annotations(vec![
            flag("manifest[linux/arm64]:a=arm"),
            flag("a=all"),
            flag("manifest-descriptor[linux/amd64]:d=x"),
            flag("index:i=1"),
            flag("index[linux/arm64]:j=2"),
            flag("index-descriptor:k=3"),
        ]);
        let got = all.for_index(&built).unwrap();
        assert_eq!(
            got.images[0].manifest,
            BTreeMap::from([("a".into(), "all".into())])
        );
        // The platform's own wins over the one for every platform, given later or not.
        assert_eq!(
            got.images[1].manifest,
            BTreeMap::from([("a".into(), "arm".into())])
        );
        assert_eq!(
            got.images[0].manifest_descriptor,
            BTreeMap::from([("d".into(), "x".into())])
        );
        assert!(got.images[1].manifest_descriptor.is_empty());
        assert_eq!(
            got.index,
            BTreeMap::from([("i".into(), "1".into()), ("j".into(), "2".into())])
        );
        assert_eq!(
            got.index_descriptor,
            BTreeMap::from([("k".into(), "3".into())])
        );
        let other = Annotations(vec![flag("manifest[linux/riscv64]:b=2")]);
        assert_eq!(
            other.for_index(&built),
            Err(AnnotationError::OtherPlatform {
                key: "b".into(),
                platform: "linux/riscv64".into(),
                built: "linux/amd64, linux/arm64".into(),
            })
        );
    }
}
