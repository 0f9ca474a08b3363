//! A multi-platform image: each platform's manifest pushed under its digest (`push` with
//! `untagged`), then one image index listing them pushed under every tag. The index is an
//! OCI image index, or a Docker manifest list when the manifests are Docker's, as BuildKit
//! writes them (`oci-mediatypes=false`).

use std::collections::BTreeMap;

use bytes::Bytes;

use futures_util::{StreamExt as _, TryStreamExt as _, stream};

use super::super::RegistryError;
use super::super::client::TRANSFER_CONCURRENCY;
use super::super::manifest::{self, Descriptor, Index, Platform};
use super::{
    Destination, PushOptions, PushResult, Transfer, ensure_blob, group_by_repository, oci_reference,
};
use crate::attest::AttestationManifest;
use crate::content::Digest;

/// One platform's manifest, as `push` left it in every repository of the tags.
pub struct PlatformManifest {
    /// The platform of the index's entry.
    pub platform: Platform,
    /// The untagged push of the platform's image: digest, size and media type of the entry.
    pub pushed: PushResult,
    /// On the index's entry for the manifest (`manifest-descriptor` annotations).
    pub annotations: BTreeMap<String, String>,
}

/// The index of `manifests`, in their order, then their `attestations` (as BuildKit lists
/// them): its bytes and media type. It is an OCI index unless every manifest is a Docker
/// one and there is no attestation.
pub(crate) fn image_index(
    manifests: &[PlatformManifest],
    attestations: &[AttestationManifest],
    annotations: &BTreeMap<String, String>,
) -> Result<(Vec<u8>, &'static str), String> {
    let docker = attestations.is_empty()
        && manifests
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
                annotations: m.annotations.clone(),
                platform: Some(m.platform.clone()),
            })
            .chain(attestations.iter().map(|a| Descriptor {
                media_type: a.media_type().to_owned(),
                digest: a.digest.to_string(),
                size: a.manifest.len() as u64,
                urls: Vec::new(),
                annotations: BTreeMap::from([
                    (
                        crate::attest::manifest::REFERENCE_DIGEST_ANNOTATION.to_owned(),
                        a.subject.to_string(),
                    ),
                    (
                        crate::attest::manifest::REFERENCE_TYPE_ANNOTATION.to_owned(),
                        crate::attest::manifest::ATTESTATION_MANIFEST.to_owned(),
                    ),
                ]),
                platform: Some(Platform::new("unknown", "unknown", "")),
            }))
            .collect(),
        annotations: annotations.clone(),
    };
    let bytes = serde_json::to_vec(&index).map_err(|e| e.to_string())?;
    Ok((bytes, media_type))
}

/// Pushes an attestation manifest and its blobs to every repository of `tags`, under its
/// digest only: the index that lists it carries the tags.
pub async fn push_attestation(
    attestation: &AttestationManifest,
    tags: &[String],
    opts: &PushOptions,
) -> Result<(), RegistryError> {
    let mut blobs = Vec::with_capacity(attestation.blobs.len());
    for blob in &attestation.blobs {
        opts.store.put(&blob.bytes)?;
        blobs.push(Descriptor {
            media_type: blob.media_type.to_owned(),
            digest: blob.digest.to_string(),
            size: blob.bytes.len() as u64,
            urls: Vec::new(),
            annotations: BTreeMap::new(),
            platform: None,
        });
    }
    opts.store.put(&attestation.manifest)?;
    let bytes = Bytes::from(attestation.manifest.clone());
    let content_type = http::HeaderValue::from_static(attestation.media_type());
    for (repository, references) in group_by_repository(tags)? {
        let destination = Destination::open(opts, &repository, &references).await?;
        let ensures: Vec<_> = blobs
            .iter()
            .map(|blob| ensure_blob(&destination, blob, opts))
            .collect();
        stream::iter(ensures)
            .buffer_unordered(TRANSFER_CONCURRENCY)
            .try_collect::<Vec<Transfer>>()
            .await?;
        let reference = &references[0];
        let by_digest = oci_client::Reference::with_digest(
            reference.domain.clone(),
            reference.path.clone(),
            attestation.digest.to_string(),
        );
        let host = &destination.host;
        host.exchange(
            "pushing the attestation manifest of",
            &reference.to_string(),
            host.client
                .push_manifest_raw(&by_digest, bytes.clone(), content_type.clone()),
        )
        .await?;
    }
    Ok(())
}

/// Pushes the index of `manifests` and their `attestations` (each pushed already) under
/// every tag in `tags`; returns its digest, size and media type.
pub async fn push_index(
    manifests: &[PlatformManifest],
    attestations: &[AttestationManifest],
    tags: &[String],
    opts: &PushOptions,
) -> Result<(Digest, u64, &'static str), RegistryError> {
    let (bytes, media_type) = image_index(manifests, attestations, &opts.index_annotations)
        .map_err(|message| RegistryError::InvalidManifest {
            reference: tags.join(", "),
            message,
        })?;
    let digest = opts.store.put(&bytes)?;
    let size = bytes.len() as u64;
    let bytes = Bytes::from(bytes);
    let content_type = http::HeaderValue::from_static(media_type);
    for (repository, references) in group_by_repository(tags)? {
        let destination = Destination::open(opts, &repository, &references).await?;
        for reference in &references {
            let tagged = oci_reference(reference, reference.tag.as_deref());
            let host = &destination.host;
            let status = format!("pushing manifest for {reference}@{digest}");
            super::announce(opts, &status, false);
            host.exchange(
                "pushing the image index of",
                &reference.to_string(),
                host.client
                    .push_manifest_raw(&tagged, bytes.clone(), content_type.clone()),
            )
            .await?;
            super::announce(opts, &status, true);
        }
    }
    Ok((digest, size, media_type))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pushed(media_type: &str, digest: &str) -> PushResult {
        PushResult {
            layers: Vec::new(),
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
                annotations: BTreeMap::new(),
            },
            PlatformManifest {
                platform: Platform::new("linux", "arm", "v7"),
                pushed: pushed(manifest::DOCKER_MANIFEST, &b),
                annotations: BTreeMap::new(),
            },
        ];
        let (bytes, media_type) = image_index(&list, &[], &BTreeMap::new()).unwrap();
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
            annotations: BTreeMap::from([("d".to_owned(), "1".to_owned())]),
        }];
        let annotations = BTreeMap::from([("i".to_owned(), "2".to_owned())]);
        let (bytes, media_type) = image_index(&oci, &[], &annotations).unwrap();
        assert_eq!(media_type, manifest::OCI_INDEX);
        let json: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(json["annotations"]["i"], "2", "{json}");
        assert_eq!(json["manifests"][0]["annotations"]["d"], "1", "{json}");
        assert_eq!(json["manifests"][0]["mediaType"], manifest::OCI_MANIFEST);
        assert_eq!(json["manifests"][0]["platform"].get("variant"), None);
    }
}
