//! With `--addr`: which outputs the daemon's exporters write, and which bud writes itself.
//!
//! A BuildKit with its own image exporters (a buildkitd, or dockerd on the containerd image
//! store) gets every output in its Control.Solve, as buildx sends them: `image` with
//! `push=true` pushes from the daemon with the session's credentials, `oci` and `docker`
//! send their tarball back through the session. dockerd's BuildKit on Docker's own image
//! store has only `moby`, `local` and `tar`: the image goes into Docker with `moby` (as
//! buildx's docker driver does), and bud reads it back and pushes or archives it with the
//! code the embedded solver's exports use.

use std::collections::BTreeMap;

use anyhow::{Context as _, bail};
use bud_frontend::reference::Reference;

use crate::content::ContentStore;
use crate::exporter::Layer;
use crate::registry::{Compression, LayerCompression, RegistryConfig};
use crate::remote::{ArchiveKind, DaemonExporters, Exporter};

use super::BuildReport;
use super::export::BuiltImage;
use super::outputs::{Dest, Export};

/// The exporters the daemon runs, and the exports bud finishes from the image the `moby`
/// exporter stored.
#[derive(Debug, PartialEq)]
pub(super) struct DaemonPlan {
    pub exporter: Exporter,
    pub more: Vec<Exporter>,
    pub from_docker: Vec<Export>,
}

pub(super) fn plan(
    exports: &[Export],
    daemon: DaemonExporters,
    registry: &RegistryConfig,
) -> anyhow::Result<DaemonPlan> {
    let mut exporters = Vec::new();
    let mut from_docker = Vec::new();
    let mut moby_names: Option<Vec<String>> = None;
    // Where Docker's image goes among the exporters: BuildKit merges their answers, the
    // last one's winning, which `--iidfile`/`--metadata-file` read, so the order is
    // buildx's (the `-o` outputs, then `--push`, then `--load`).
    let mut moby_at = 0;
    for e in exports {
        refuse_unsupported(e, daemon)?;
        match (e, daemon) {
            (Export::DockerLoad { names, .. }, _) => {
                if moby_names.is_none() {
                    moby_at = exporters.len();
                }
                moby_names
                    .get_or_insert_with(Vec::new)
                    .extend(names.clone())
            }
            (
                Export::Local {
                    dest,
                    merge_platforms,
                    epoch,
                    ..
                },
                _,
            ) => exporters.push(Exporter::Local {
                dest: dest.clone(),
                merge_platforms: *merge_platforms,
                epoch: *epoch,
            }),
            (
                Export::Tar {
                    dest: Dest::File(dest),
                    epoch,
                },
                _,
            ) => exporters.push(Exporter::Tar {
                dest: dest.clone(),
                epoch: *epoch,
            }),
            (
                Export::Tar {
                    dest: Dest::Stdout, ..
                }
                | Export::OciArchive {
                    dest: Dest::Stdout, ..
                }
                | Export::DockerArchive {
                    dest: Dest::Stdout, ..
                },
                DaemonExporters::All,
            ) => bail!("with --addr, an archive output needs dest=FILE, not stdout"),
            (
                Export::Tar {
                    dest: Dest::Stdout, ..
                },
                DaemonExporters::MobyOnly,
            ) => {
                bail!("with --addr, an archive output needs dest=FILE, not stdout")
            }
            (Export::Push { names, .. }, DaemonExporters::MobyOnly) => {
                // Tagged in Docker too, as buildx's docker driver leaves a pushed image.
                moby_names
                    .get_or_insert_with(Vec::new)
                    .extend(names.clone());
                from_docker.push(e.clone());
            }
            (
                Export::OciArchive { .. } | Export::DockerArchive { .. },
                DaemonExporters::MobyOnly,
            ) => {
                moby_names.get_or_insert_with(Vec::new);
                from_docker.push(e.clone());
            }
            (
                Export::Push {
                    names,
                    compression,
                    oci_media_types,
                    insecure,
                    ..
                },
                DaemonExporters::All,
            ) => exporters.push(Exporter::Image {
                attrs: push_attrs(
                    names,
                    *compression,
                    oci_media_types.unwrap_or(false),
                    *insecure,
                    registry,
                ),
            }),
            (
                Export::OciArchive {
                    dest: Dest::File(dest),
                    names,
                    compression,
                    ..
                },
                DaemonExporters::All,
            ) => {
                let mut exporter = archive(ArchiveKind::Oci, dest, names);
                if let (Exporter::Archive { attrs, .. }, Some(compression)) =
                    (&mut exporter, compression)
                {
                    compression_attrs(*compression, attrs);
                }
                exporters.push(exporter);
            }
            (
                Export::DockerArchive {
                    dest: Dest::File(dest),
                    names,
                    ..
                },
                DaemonExporters::All,
            ) => exporters.push(archive(ArchiveKind::Docker, dest, names)),
        }
    }
    if let Some(names) = moby_names {
        let mut unique = Vec::new();
        for n in names {
            if !unique.contains(&n) {
                unique.push(n);
            }
        }
        // On Docker's own image store, Docker's image first: bud's own exports read it
        // back once the solve is done.
        if daemon == DaemonExporters::MobyOnly {
            moby_at = 0;
        }
        exporters.insert(moby_at, Exporter::Moby { names: unique });
    }
    let mut exporters = exporters.into_iter();
    let Some(exporter) = exporters.next() else {
        bail!("with --addr, give an output (-t, --load, --push or -o)");
    };
    Ok(DaemonPlan {
        exporter,
        more: exporters.collect(),
        from_docker,
    })
}

fn archive(kind: ArchiveKind, dest: &std::path::Path, names: &[String]) -> Exporter {
    let mut attrs = BTreeMap::new();
    if !names.is_empty() {
        attrs.insert("name".to_string(), names.join(","));
    }
    Exporter::Archive {
        kind,
        dest: dest.to_path_buf(),
        attrs,
    }
}

/// The `image` exporter's attributes for a push, as buildx sends them. Registries bud
/// reaches over plain HTTP (loopback, `insecure` in bud.toml) are insecure for the daemon
/// too.
/// What the daemon's exporters are not asked to do yet, refused rather than left out:
/// `rewrite-timestamp` (dockerd's `moby` exporter ignores it), and annotations for a daemon
/// that exports the image itself.
fn refuse_unsupported(e: &Export, daemon: DaemonExporters) -> anyhow::Result<()> {
    let Some(image) = e.image_attrs() else {
        return Ok(());
    };
    if image.rewrite_timestamp {
        bail!(
            "with --addr, rewrite-timestamp=true is not supported: the daemon's image \
             exporter would ignore it; build with the embedded solver"
        );
    }
    if daemon == DaemonExporters::All && !image.annotations.is_empty() {
        bail!(
            "with --addr to a BuildKit that exports images itself, annotations are not supported yet"
        );
    }
    Ok(())
}

fn push_attrs(
    names: &[String],
    compression: LayerCompression,
    oci_media_types: bool,
    insecure: bool,
    registry: &RegistryConfig,
) -> BTreeMap<String, String> {
    let mut attrs = BTreeMap::from([
        ("name".to_string(), names.join(",")),
        ("push".to_string(), "true".to_string()),
    ]);
    let plain_http = names
        .iter()
        .all(|n| Reference::parse(n).is_ok_and(|r| registry.uses_plain_http(&r.domain)));
    if plain_http || insecure {
        attrs.insert("registry.insecure".into(), "true".into());
    }
    compression_attrs(compression, &mut attrs);
    // bud writes zstd and eStargz with OCI media types only, as BuildKit writes eStargz.
    if oci_media_types || compression.kind.docker_media_type().is_none() {
        attrs.insert("oci-mediatypes".into(), "true".into());
    }
    attrs
}

/// `compression`, `compression-level` and `force-compression` as buildx passes them on.
fn compression_attrs(compression: LayerCompression, attrs: &mut BTreeMap<String, String>) {
    if compression.kind != Compression::Gzip {
        attrs.insert("compression".into(), compression.kind.name().into());
    }
    if let Some(level) = compression.level {
        attrs.insert("compression-level".into(), level.to_string());
    }
    if compression.force {
        attrs.insert("force-compression".into(), "true".into());
    }
}

/// Runs the exports bud writes itself of the image the `moby` exporter stored (`built`, read
/// back from Docker), with `attestations` attached where an export holds manifests.
pub(super) async fn finish_from_docker(
    exports: &[Export],
    built: &BuiltImage,
    content: &ContentStore,
    registry: &RegistryConfig,
    attestations: &[crate::attest::Attestation],
    report: &mut BuildReport,
) -> anyhow::Result<()> {
    for e in exports {
        super::route::export_built(e, built, content, registry, None, attestations, report).await?;
    }
    Ok(())
}

/// The image the `moby` exporter stored (`image_id`), read back from Docker into the
/// content store, which makes the build collect garbage when it ends. The config is written
/// as the embedded solver writes it, so the image pushed or archived is the one an embedded
/// build of the same layers gives; its digest is not Docker's image ID, whose JSON dockerd
/// formats its own way.
pub(super) async fn read_back(
    docker: &bollard::Docker,
    image_id: &str,
    env: &super::BuildEnv,
) -> anyhow::Result<BuiltImage> {
    let content = &env.content;
    env.wrote_state_root
        .store(true, std::sync::atomic::Ordering::Relaxed);
    let (image, _, diff_ids) = crate::source::image::import_from_docker(content, docker, image_id)
        .await
        .context("reading the built image back from Docker")?;
    let config_digest = content.put(&image.to_json())?;
    let layers = diff_ids
        .into_iter()
        .map(|diff_id| Layer {
            tar: content.path(&diff_id),
            diff_id,
            compressed: None,
            // dockerd's export does not tell which layers its base image gave.
            base: false,
        })
        .collect();
    Ok(BuiltImage {
        image,
        layers,
        config_digest,
        lazy_layers: Vec::new(),
    })
}

/// A daemon taken for a buildkitd that turns out to lack an exporter is dockerd's BuildKit
/// reached another way (a proxy of its `/grpc`): bud exports the image itself only where it
/// can read it back from Docker, through `docker://`.
pub(super) fn explain_missing_exporter(e: crate::remote::RemoteError) -> anyhow::Error {
    match &e {
        crate::remote::RemoteError::Build(crate::remote::BuildFailure { message, .. })
            if message.contains("exporter \"") && message.contains("could not be found") =>
        {
            anyhow::anyhow!(
                "{e}: the daemon's BuildKit has only some exporters, as dockerd's without the \
                 containerd image store; reach it with --addr docker://, through Docker's API, \
                 and bud pushes or archives the image itself"
            )
        }
        _ => e.into(),
    }
}

/// The exporter response's `containerimage.descriptor` (base64 JSON) as buildx writes it
/// into the metadata file.
pub(super) fn descriptor(response: &BTreeMap<String, String>) -> Option<serde_json::Value> {
    use base64::Engine as _;
    let encoded = response.get("containerimage.descriptor")?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn push(names: &[&str]) -> Export {
        Export::Push {
            names: names.iter().map(|n| n.to_string()).collect(),
            compression: LayerCompression::default(),
            oci_media_types: None,
            insecure: false,
            image: Default::default(),
        }
    }

    #[test]
    fn a_buildkitd_pushes_and_archives_itself() {
        let registry = RegistryConfig::default();
        let exports = [
            push(&["127.0.0.1:5000/a:1"]),
            Export::OciArchive {
                dest: Dest::File("o.tar".into()),
                names: vec![],
                image: Default::default(),
                compression: None,
            },
        ];
        let planned = plan(&exports, DaemonExporters::All, &registry).unwrap();
        let Exporter::Image { attrs } = &planned.exporter else {
            panic!("{planned:?}")
        };
        assert_eq!(attrs["name"], "127.0.0.1:5000/a:1");
        assert_eq!(attrs["push"], "true");
        assert_eq!(attrs["registry.insecure"], "true", "a loopback registry");
        assert!(matches!(
            planned.more[..],
            [Exporter::Archive {
                kind: ArchiveKind::Oci,
                ..
            }]
        ));
        assert!(planned.from_docker.is_empty());

        let remote = plan(
            &[push(&["registry.example/a"])],
            DaemonExporters::All,
            &registry,
        );
        let Exporter::Image { attrs } = remote.unwrap().exporter else {
            panic!()
        };
        assert!(!attrs.contains_key("registry.insecure"));
    }

    #[test]
    fn dockerd_stores_the_image_and_bud_pushes_it() {
        let registry = RegistryConfig::default();
        let exports = [
            push(&["127.0.0.1:5000/a:1"]),
            Export::DockerLoad {
                names: vec!["a:1".into()],
                image: Default::default(),
            },
        ];
        let planned = plan(&exports, DaemonExporters::MobyOnly, &registry).unwrap();
        assert_eq!(
            planned.exporter,
            Exporter::Moby {
                names: vec!["127.0.0.1:5000/a:1".into(), "a:1".into()]
            }
        );
        assert!(planned.more.is_empty());
        assert_eq!(planned.from_docker, [exports[0].clone()]);

        let mixed = [
            push(&["127.0.0.1:5000/a:1"]),
            Export::Local {
                dest: "out".into(),
                merge_platforms: false,
                in_platform_dir: false,
                epoch: None,
            },
        ];
        let planned = plan(&mixed, DaemonExporters::MobyOnly, &registry).unwrap();
        assert!(matches!(planned.exporter, Exporter::Moby { .. }));
        assert_eq!(
            planned.more,
            [Exporter::Local {
                dest: "out".into(),
                merge_platforms: false,
                epoch: None,
            }]
        );
    }

    /// BuildKit merges the exporters' answers, the last one's winning: Docker's image is
    /// where buildx puts `--load`, after the `-o` outputs, on a daemon that exports images
    /// itself; first on Docker's own store, where bud reads it back.
    #[test]
    fn the_load_is_where_buildx_puts_it_among_the_exporters() {
        let registry = RegistryConfig::default();
        let load = Export::DockerLoad {
            names: vec!["a:1".into()],
            image: Default::default(),
        };
        let local = Export::Local {
            dest: "out".into(),
            merge_platforms: false,
            in_platform_dir: false,
            epoch: None,
        };
        let moby = Exporter::Moby {
            names: vec!["a:1".into()],
        };
        let planned = plan(
            &[local.clone(), load.clone()],
            DaemonExporters::All,
            &registry,
        )
        .unwrap();
        assert_eq!(
            planned.exporter,
            Exporter::Local {
                dest: "out".into(),
                merge_platforms: false,
                epoch: None,
            }
        );
        assert_eq!(planned.more, std::slice::from_ref(&moby));
        let planned = plan(
            &[load.clone(), local.clone()],
            DaemonExporters::All,
            &registry,
        )
        .unwrap();
        assert_eq!(planned.exporter, moby);
        let planned = plan(&[local, load], DaemonExporters::MobyOnly, &registry).unwrap();
        assert_eq!(planned.exporter, moby);
    }

    #[test]
    fn the_image_exporters_descriptor_is_decoded_for_the_metadata_file() {
        use base64::Engine as _;
        let json = r#"{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:ab","size":7}"#;
        let response = BTreeMap::from([(
            "containerimage.descriptor".to_string(),
            base64::engine::general_purpose::STANDARD.encode(json),
        )]);
        let decoded = descriptor(&response).unwrap();
        assert_eq!(decoded["digest"], "sha256:ab");
        assert_eq!(decoded["size"], 7);
        assert_eq!(descriptor(&BTreeMap::new()), None);
    }

    #[test]
    fn a_missing_exporter_points_to_docker_addresses() {
        let e = crate::remote::RemoteError::Build(crate::remote::BuildFailure::new(
            "exporter \"image\" could not be found",
        ));
        let message = explain_missing_exporter(e).to_string();
        assert!(message.contains("--addr docker://"), "{message}");
        let other =
            crate::remote::RemoteError::Build(crate::remote::BuildFailure::new("exit code: 1"));
        assert!(
            !explain_missing_exporter(other)
                .to_string()
                .contains("docker://")
        );
    }

    #[test]
    fn a_buildkitd_is_asked_for_estargz_with_oci_media_types() {
        let attrs = push_attrs(
            &["example.com/app:1".to_owned()],
            Compression::Estargz.into(),
            false,
            false,
            &RegistryConfig::default(),
        );
        for (key, value) in [("compression", "estargz"), ("oci-mediatypes", "true")] {
            assert_eq!(attrs.get(key).map(String::as_str), Some(value), "{attrs:?}");
        }
        // Base image layers stay as they came unless asked, as in an embedded build.
        assert_eq!(attrs.get("force-compression"), None, "{attrs:?}");
    }

    #[test]
    fn a_buildkitd_is_passed_the_level_and_force_as_given() {
        let given = LayerCompression {
            kind: Compression::Zstd,
            level: Some(19),
            force: true,
        };
        let attrs = push_attrs(
            &["example.com/app:1".to_owned()],
            given,
            false,
            false,
            &RegistryConfig::default(),
        );
        for (key, value) in [
            ("compression", "zstd"),
            ("compression-level", "19"),
            ("force-compression", "true"),
            ("oci-mediatypes", "true"),
        ] {
            assert_eq!(attrs.get(key).map(String::as_str), Some(value), "{attrs:?}");
        }
        let plan = plan(
            &[Export::OciArchive {
                dest: Dest::File("/tmp/o.tar".into()),
                names: Vec::new(),
                image: Default::default(),
                compression: Some(given),
            }],
            DaemonExporters::All,
            &RegistryConfig::default(),
        )
        .unwrap();
        let Exporter::Archive { attrs, .. } = plan.exporter else {
            panic!("not an archive: {:?}", plan.exporter);
        };
        assert_eq!(
            attrs.get("compression-level").map(String::as_str),
            Some("19")
        );
        assert_eq!(
            attrs.get("force-compression").map(String::as_str),
            Some("true")
        );
    }
}
