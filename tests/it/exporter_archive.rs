//! The docker archive and OCI layout writers, checked by reading their output back.

use std::collections::{BTreeMap, HashSet};
use std::io::Read;
use std::path::{Path, PathBuf};

use bud::content::Digest;
use bud::exporter::{CompressedBlob, ExportError, Image, Layer, docker_archive, oci_layout};
use bud_frontend::image::History;
use serde_json::Value;

/// A layer tar holding one file, written to `dir`.
fn layer(dir: &Path, name: &str, content: &[u8]) -> Layer {
    let mut builder = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_ustar();
    header.set_size(content.len() as u64);
    header.set_mode(0o644);
    header.set_cksum();
    builder.append_data(&mut header, name, content).unwrap();
    let bytes = builder.into_inner().unwrap();
    let path = dir.join(format!("{name}.tar"));
    std::fs::write(&path, &bytes).unwrap();
    Layer {
        tar: path,
        diff_id: Digest::of(&bytes),
        compressed: None,
        base: false,
    }
}

fn image(layers: &[Layer]) -> Image {
    let mut image = Image::from_json(
        br#"{"architecture":"amd64","os":"linux","created":"2025-01-01T00:00:00Z",
             "config":{"Cmd":["sh"],"Env":["PATH=/bin"],"Hostname":"kept"}}"#,
    )
    .unwrap();
    image.rootfs.diff_ids = layers.iter().map(|l| l.diff_id.to_string()).collect();
    image.history = layers
        .iter()
        .map(|_| History {
            created_by: "test".into(),
            ..Default::default()
        })
        .collect();
    image
}

/// Every regular file of a tar, by path.
fn entries(archive: &[u8]) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    for entry in tar::Archive::new(archive).entries().unwrap() {
        let mut entry = entry.unwrap();
        if entry.header().entry_type().is_file() {
            let path = entry.path().unwrap().to_string_lossy().into_owned();
            let mut data = Vec::new();
            entry.read_to_end(&mut data).unwrap();
            assert!(out.insert(path.clone(), data).is_none(), "{path} twice");
        }
    }
    out
}

fn json(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).unwrap()
}

struct Fixture {
    _dir: tempfile::TempDir,
    layers: Vec<Layer>,
}

/// Layers a, b, a: the repeated diff sits at another height, as an empty layer often does.
fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let a = layer(dir.path(), "a", b"first");
    let b = layer(dir.path(), "b", b"second");
    Fixture {
        layers: vec![a.clone(), b, a],
        _dir: dir,
    }
}

#[test]
fn docker_archive_as_docker_load_reads_it() {
    let f = fixture();
    let image = image(&f.layers);
    let mut out = Vec::new();
    let tags = ["app".to_owned(), "localhost:5000/team/app:v1".to_owned()];
    let id = docker_archive::write(&mut out, &image, &f.layers, &tags, &HashSet::new()).unwrap();
    let files = entries(&out);

    assert_eq!(id, Digest::of(&image.to_json()));
    let manifest = json(&files["manifest.json"]);
    let entry = &manifest.as_array().unwrap()[0];
    assert_eq!(entry["Config"], format!("{}.json", id.hex()));
    assert_eq!(
        entry["RepoTags"],
        serde_json::json!(["app:latest", "localhost:5000/team/app:v1"])
    );
    let layer_paths: Vec<&str> = entry["Layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap())
        .collect();
    assert_eq!(layer_paths.len(), 3);
    assert_eq!(layer_paths[0], layer_paths[2]);
    for (path, layer) in layer_paths.iter().zip(&f.layers) {
        assert_eq!(*path, format!("{}/layer.tar", layer.diff_id.hex()));
        assert_eq!(Digest::of(&files[*path]), layer.diff_id);
        let dir = path.trim_end_matches("/layer.tar");
        assert_eq!(files[&format!("{dir}/VERSION")], b"1.0");
        assert_eq!(json(&files[&format!("{dir}/json")])["id"], dir);
    }

    let config_bytes = &files[entry["Config"].as_str().unwrap()];
    assert_eq!(Digest::of(config_bytes), id);
    let config = Image::from_json(config_bytes).unwrap();
    assert_eq!(config, image);
    assert_eq!(config.config.extra["Hostname"], "kept");

    let top = f.layers[2].diff_id.hex();
    assert_eq!(
        json(&files["repositories"]),
        serde_json::json!({"app": {"latest": top}, "localhost:5000/team/app": {"v1": top}})
    );
    // Same input, same bytes.
    let mut again = Vec::new();
    docker_archive::write(&mut again, &image, &f.layers, &tags, &HashSet::new()).unwrap();
    assert_eq!(again, out);
}

#[test]
fn docker_archive_leaves_out_skipped_layers() {
    let f = fixture();
    let image = image(&f.layers);
    let mut full = Vec::new();
    docker_archive::write(&mut full, &image, &f.layers, &[], &HashSet::new()).unwrap();
    let skip = HashSet::from([f.layers[1].diff_id.clone()]);
    let mut slim = Vec::new();
    docker_archive::write(&mut slim, &image, &f.layers, &[], &skip).unwrap();

    let files = entries(&slim);
    let skipped = format!("{}/layer.tar", f.layers[1].diff_id.hex());
    assert!(!files.contains_key(&skipped));
    assert!(files.contains_key(&format!("{}/layer.tar", f.layers[0].diff_id.hex())));
    let manifest = json(&files["manifest.json"]);
    // Still listed: docker load needs every layer in the manifest.
    assert_eq!(manifest[0]["Layers"][1], skipped.as_str());
    assert_eq!(manifest[0]["RepoTags"], Value::Null);
    assert!(!files.contains_key("repositories"));
    assert!(slim.len() < full.len());
}

#[test]
fn docker_archive_rejects_inconsistent_layers() {
    let f = fixture();
    let image = image(&f.layers);
    let none = HashSet::new();
    let err = docker_archive::write(Vec::new(), &image, &f.layers[..2], &[], &none).unwrap_err();
    assert!(
        matches!(
            err,
            ExportError::LayerCount {
                config: 3,
                given: 2
            }
        ),
        "{err}"
    );

    let mut swapped = f.layers.clone();
    swapped.swap(0, 1);
    let err = docker_archive::write(Vec::new(), &image, &swapped, &[], &none).unwrap_err();
    assert!(
        matches!(err, ExportError::LayerOrder { index: 0, .. }),
        "{err}"
    );

    // A layer file that no longer matches its diff ID.
    std::fs::write(&f.layers[1].tar, b"changed").unwrap();
    let err = docker_archive::write(Vec::new(), &image, &f.layers, &[], &none).unwrap_err();
    assert!(matches!(err, ExportError::LayerDigest { .. }), "{err}");

    let err =
        docker_archive::write(Vec::new(), &image, &f.layers, &["Bad".into()], &none).unwrap_err();
    assert!(matches!(err, ExportError::InvalidName(_)), "{err}");

    let mut missing = f.layers.clone();
    missing[1].tar = PathBuf::from("/nonexistent/layer.tar");
    let err = docker_archive::write(Vec::new(), &image, &missing, &[], &none).unwrap_err();
    assert!(matches!(err, ExportError::Io { .. }), "{err}");
}

#[test]
fn oci_layout_as_oci_tools_read_it() {
    let f = fixture();
    let mut layers = f.layers.clone();
    // The middle layer as a "compressed" blob: the writer copies it, it does not look inside.
    let blob_path = f._dir.path().join("b.tar.zst");
    std::fs::write(&blob_path, b"not really zstd").unwrap();
    layers[1].compressed = Some(CompressedBlob {
        path: blob_path,
        digest: Digest::of(b"not really zstd"),
        media_type: "application/vnd.oci.image.layer.v1.tar+zstd".into(),
        annotations: Default::default(),
    });
    let image = image(&layers);
    let mut out = Vec::new();
    let tags = ["app:1".to_owned(), "ghcr.io/o/app".to_owned()];
    let manifest_digest =
        oci_layout::write(&mut out, &image, &layers, &tags, &Default::default()).unwrap();
    let files = entries(&out);

    assert_eq!(
        json(&files["oci-layout"]),
        serde_json::json!({"imageLayoutVersion": "1.0.0"})
    );
    let blob = |d: &Value| -> &Vec<u8> {
        let digest = Digest::parse(d.as_str().unwrap()).unwrap();
        let bytes = &files[&format!("blobs/sha256/{}", digest.hex())];
        assert_eq!(Digest::of(bytes), digest);
        bytes
    };

    let index = json(&files["index.json"]);
    assert_eq!(index["schemaVersion"], 2);
    assert_eq!(
        index["mediaType"],
        "application/vnd.oci.image.index.v1+json"
    );
    let manifests = index["manifests"].as_array().unwrap();
    assert_eq!(manifests.len(), 2);
    let names: Vec<(&str, &str)> = manifests
        .iter()
        .map(|m| {
            assert_eq!(m["digest"], manifest_digest.to_string());
            assert_eq!(
                m["annotations"]["org.opencontainers.image.created"],
                "2025-01-01T00:00:00Z"
            );
            (
                m["annotations"]["io.containerd.image.name"]
                    .as_str()
                    .unwrap(),
                m["annotations"]["org.opencontainers.image.ref.name"]
                    .as_str()
                    .unwrap(),
            )
        })
        .collect();
    assert_eq!(
        names,
        [
            ("docker.io/library/app:1", "1"),
            ("ghcr.io/o/app:latest", "latest")
        ]
    );

    let manifest_bytes = blob(&manifests[0]["digest"]);
    assert_eq!(manifests[0]["size"], manifest_bytes.len());
    let manifest = json(manifest_bytes);
    assert_eq!(manifest["schemaVersion"], 2);
    assert_eq!(
        manifest["mediaType"],
        "application/vnd.oci.image.manifest.v1+json"
    );
    assert_eq!(
        manifest["config"]["mediaType"],
        "application/vnd.oci.image.config.v1+json"
    );
    let config_bytes = blob(&manifest["config"]["digest"]);
    assert_eq!(Image::from_json(config_bytes).unwrap(), image);

    let descriptors = manifest["layers"].as_array().unwrap();
    let media: Vec<&str> = descriptors
        .iter()
        .map(|d| d["mediaType"].as_str().unwrap())
        .collect();
    assert_eq!(
        media,
        [
            "application/vnd.oci.image.layer.v1.tar",
            "application/vnd.oci.image.layer.v1.tar+zstd",
            "application/vnd.oci.image.layer.v1.tar",
        ]
    );
    for (d, layer) in descriptors.iter().zip(&layers) {
        let bytes = blob(&d["digest"]);
        assert_eq!(d["size"], bytes.len());
        match &layer.compressed {
            Some(c) => assert_eq!(d["digest"], c.digest.to_string()),
            None => assert_eq!(d["digest"], layer.diff_id.to_string()),
        }
    }
    // Layer a (stored once for both uses), layer b compressed, the config, the manifest.
    assert_eq!(files.keys().filter(|k| k.starts_with("blobs/")).count(), 4);
}

#[test]
fn oci_layout_without_names() {
    let f = fixture();
    let image = image(&f.layers);
    let mut out = Vec::new();
    let digest = oci_layout::write(&mut out, &image, &f.layers, &[], &Default::default()).unwrap();
    let index = json(&entries(&out)["index.json"]);
    let manifests = index["manifests"].as_array().unwrap();
    assert_eq!(manifests.len(), 1);
    assert_eq!(manifests[0]["digest"], digest.to_string());
    assert!(
        manifests[0]["annotations"]
            .get("io.containerd.image.name")
            .is_none()
    );
}

/// A layer still a directory is tarred into the archive as it is written: the entry holds
/// exactly what `write_layer` makes of the directory, and the config that follows lists its
/// diff ID.
#[test]
fn directory_layers_are_tarred_into_the_archive() {
    use bud::exporter::docker_archive::{ArchiveLayer, ArchiveTar};

    let f = fixture();
    let upper = f._dir.path().join("upper");
    std::fs::create_dir_all(upper.join("app/deep")).unwrap();
    std::fs::write(upper.join("app/deep/data"), vec![7u8; 1000]).unwrap();
    // A name too long for ustar takes a PAX header: sizes must still agree.
    std::fs::write(upper.join("app").join("n".repeat(120)), b"long name").unwrap();
    let mut expected_tar = Vec::new();
    let stats = bud::snapshot::diff::write_layer(&upper, &mut expected_tar).unwrap();
    let dir_diff = Digest::parse(&stats.diff_id).unwrap();

    let base = &f.layers[0];
    // The same diff once more above, as a stored tar: it is not archived twice.
    let again = f._dir.path().join("again.tar");
    std::fs::write(&again, &expected_tar).unwrap();
    let layers = [
        ArchiveLayer {
            diff_id: Some(&base.diff_id),
            tar: ArchiveTar::Stored(&base.tar),
        },
        ArchiveLayer {
            diff_id: None,
            tar: ArchiveTar::Directory(&upper),
        },
        ArchiveLayer {
            diff_id: Some(&dir_diff),
            tar: ArchiveTar::Stored(&again),
        },
    ];
    let mut image = image(&f.layers);
    image.rootfs.diff_ids.clear();
    let mut out = Vec::new();
    let written =
        docker_archive::write_layers(&mut out, &image, &layers, &["app:v1".into()]).unwrap();
    assert_eq!(
        written.diff_ids,
        [base.diff_id.clone(), dir_diff.clone(), dir_diff.clone()]
    );

    let files = entries(&out);
    let manifest = json(&files["manifest.json"]);
    let listed: Vec<&str> = manifest[0]["Layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(files[listed[1]], expected_tar);
    assert_eq!(listed[2], listed[1], "one copy serves both heights");
    let config_name = manifest[0]["Config"].as_str().unwrap();
    assert_eq!(Digest::of(&files[config_name]), written.image_id);
    let config = json(&files[config_name]);
    assert_eq!(
        config["rootfs"]["diff_ids"],
        serde_json::json!([
            base.diff_id.to_string(),
            dir_diff.to_string(),
            dir_diff.to_string()
        ])
    );

    // A directory that no longer tars to the diff ID recorded for it is refused.
    let wrong = [ArchiveLayer {
        diff_id: Some(&base.diff_id),
        tar: ArchiveTar::Directory(&upper),
    }];
    let err = docker_archive::write_layers(Vec::new(), &image, &wrong, &[]).unwrap_err();
    assert!(matches!(err, ExportError::LayerDigest { .. }), "{err}");
}
