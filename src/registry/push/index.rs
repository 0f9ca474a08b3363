//! A multi-platform image: each platform's manifest pushed under its digest (`push` with
//! `untagged`), then one image index listing them pushed under every tag. The index is an
//! OCI image index, or a Docker manifest list when the manifests are Docker's, as BuildKit
//! writes them (`oci-mediatypes=false`).

use std::collections::BTreeMap;

use bytes::Bytes;

use super::super::RegistryError;
use super::super::manifest::{self, Descriptor, Index, Platform};
use super::{Destination, PushOptions, PushResult, group_by_repository, oci_reference};
use crate::content::Digest;

/// One platform's manifest, as `push` left it in every repository of the tags.
pub struct PlatformManifest {
    pub platform: Platform,
    pub pushed: PushResult,
}

/// The index of `manifests`, in their order: its bytes and media type. It is an OCI index
/// unless every manifest is a Docker one.
pub fn image_index(manifests: &[PlatformManifest]) -> Result<(Vec<u8>, &'static str), String> {
    let docker = manifests
        .iter()
        .all(|m| m.pushed.media_type == manifest::DOCKER_MANIFEST);
    let media_type = if docker {
        manifest::DOCKER_MANIFEST_LIST
    } else {
        manifest::OCI_INDEX
    };
    let index = Index {
        schema_version: 2,
        media_type: Some(media_type.to_owned()),
        manifests: manifests
            .iter()
            .map(|m| Descriptor {
                media_type: m.pushed.media_type.clone(),
                digest: m.pushed.manifest_digest.to_string(),
                size: m.pushed.size,
                urls: Vec::new(),
                annotations: BTreeMap::new(),
                platform: Some(m.platform.clone()),
            })
            .collect(),
    };
    let bytes = serde_json::to_vec(&index).map_err(|e| e.to_string())?;
    Ok((bytes, media_type))
}

/// Pushes the index of `manifests` under every tag in `tags`; returns its digest.
pub async fn push_index(
    manifests: &[PlatformManifest],
    tags: &[String],
    opts: &PushOptions,
) -> Result<Digest, RegistryError> {
    let (bytes, media_type) =
        image_index(manifests).map_err(|message| RegistryError::InvalidManifest {
            reference: tags.join(", "),
            message,
        })?;
    let digest = opts.store.put(&bytes)?;
    let bytes = Bytes::from(bytes);
    let content_type = http::HeaderValue::from_static(media_type);
    for (repository, references) in group_by_repository(tags)? {
        let destination = Destination::open(opts, &repository, &references).await?;
        for reference in &references {
            let tagged = oci_reference(reference, reference.tag.as_deref());
            let host = &destination.host;
            host.exchange(
                "pushing the image index of",
                &reference.to_string(),
                host.client
                    .push_manifest_raw(&tagged, bytes.clone(), content_type.clone()),
            )
            .await?;
        }
    }
    Ok(digest)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pushed(media_type: &str, digest: &str) -> PushResult {
        PushResult {
            manifest_digest: Digest::parse(digest).unwrap(),
            size: 7,
            media_type: media_type.to_owned(),
            uploaded: 0,
            mounted: 0,
            existing: 0,
        }
    }

    #[test]
    fn docker_manifests_make_a_manifest_list_and_oci_ones_an_index() {
        let a = format!("sha256:{}", "a".repeat(64));
        let b = format!("sha256:{}", "b".repeat(64));
        let list = [
            PlatformManifest {
                platform: Platform::new("linux", "amd64", ""),
                pushed: pushed(manifest::DOCKER_MANIFEST, &a),
            },
            PlatformManifest {
                platform: Platform::new("linux", "arm", "v7"),
                pushed: pushed(manifest::DOCKER_MANIFEST, &b),
            },
        ];
        let (bytes, media_type) = image_index(&list).unwrap();
        assert_eq!(media_type, manifest::DOCKER_MANIFEST_LIST);
        let json: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(json["mediaType"], manifest::DOCKER_MANIFEST_LIST);
        assert_eq!(json["manifests"][0]["digest"], a.as_str());
        assert_eq!(json["manifests"][0]["platform"]["architecture"], "amd64");
        assert_eq!(json["manifests"][1]["platform"]["variant"], "v7");
        assert_eq!(json["manifests"][1]["size"], 7);

        let oci = [PlatformManifest {
            platform: Platform::new("linux", "arm64", ""),
            pushed: pushed(manifest::OCI_MANIFEST, &a),
        }];
        let (bytes, media_type) = image_index(&oci).unwrap();
        assert_eq!(media_type, manifest::OCI_INDEX);
        let json: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(json["manifests"][0]["mediaType"], manifest::OCI_MANIFEST);
        assert_eq!(json["manifests"][0]["platform"].get("variant"), None);
    }
}
