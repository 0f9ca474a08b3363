//! Package URLs of images (`pkg:docker/NAMESPACE/NAME@TAG?platform=...`), as BuildKit's
//! `purl.RefToPURL` writes them with packageurl-go: each path segment and qualifier value
//! escaped as Go's `url.QueryEscape` escapes it, with `%20` for a space.

use bud_frontend::convert::Platform;
use bud_frontend::reference::Reference;

/// The package URL of `reference` (normalised as Docker does), for `platform`.
pub fn image_purl(
    reference: &str,
    platform: Option<&Platform>,
) -> Result<String, super::AttestError> {
    let r = Reference::parse(reference).map_err(|source| super::AttestError::Reference {
        reference: reference.to_owned(),
        source,
    })?;
    let familiar = if r.domain == "docker.io" {
        r.path
            .strip_prefix("library/")
            .unwrap_or(&r.path)
            .to_owned()
    } else {
        format!("{}/{}", r.domain, r.path)
    };
    let mut qualifiers = Vec::new();
    let version = match (&r.digest, &r.tag) {
        (Some(digest), tag) => {
            qualifiers.push(("digest", digest.clone()));
            tag.clone().unwrap_or_default()
        }
        (None, tag) => tag.clone().unwrap_or_else(|| "latest".to_owned()),
    };
    if let Some(p) = platform {
        qualifiers.push(("platform", p.to_string()));
    }
    let mut out = String::from("pkg:docker/");
    let segments: Vec<&str> = familiar.split('/').collect();
    for ns in &segments[..segments.len() - 1] {
        out.push_str(&escape(ns));
        out.push('/');
    }
    out.push_str(&escape(segments[segments.len() - 1]));
    if !version.is_empty() {
        out.push('@');
        out.push_str(&escape(&version));
    }
    if !qualifiers.is_empty() {
        out.push('?');
        let q: Vec<String> = qualifiers
            .iter()
            .map(|(k, v)| format!("{k}={}", escape(v)))
            .collect();
        out.push_str(&q.join("&"));
    }
    Ok(out)
}

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn as_buildkit_writes_them() {
        let amd64 = Platform::parse("linux/amd64").unwrap();
        assert_eq!(
            image_purl("alpine:3.17", Some(&amd64)).unwrap(),
            "pkg:docker/alpine@3.17?platform=linux%2Famd64"
        );
        assert_eq!(
            image_purl("docker.io/moby/buildkit", None).unwrap(),
            "pkg:docker/moby/buildkit@latest"
        );
        let arm = Platform::parse("linux/arm/v7").unwrap();
        assert_eq!(
            image_purl("127.0.0.1:5000/bud-test/app:1", Some(&arm)).unwrap(),
            "pkg:docker/127.0.0.1%3A5000/bud-test/app@1?platform=linux%2Farm%2Fv7"
        );
        let digest = format!("sha256:{}", "a".repeat(64));
        assert_eq!(
            image_purl(&format!("busybox@{digest}"), None).unwrap(),
            format!("pkg:docker/busybox?digest=sha256%3A{}", "a".repeat(64))
        );
    }
}
