//! `docker_load` against the real daemon at /var/run/docker.sock (or `DOCKER_HOST`).
//!
//! Without a reachable daemon these tests print why and pass, except under CI (`CI` set),
//! where they fail.

use std::collections::HashSet;
use std::path::Path;

use bollard::Docker;
use bollard::models::ContainerCreateBody;
use bollard::query_parameters::{
    CreateContainerOptions, LogsOptionsBuilder, RemoveContainerOptionsBuilder,
    RemoveImageOptionsBuilder, StartContainerOptions, WaitContainerOptions,
};
use bud::content::Digest;
use bud::exporter::{
    ExportError, Image, Layer, LayerTar, LoadLayer, chain_ids, docker_archive, docker_load,
};
use bud_frontend::image::{Healthcheck, History, ImageConfig};
use futures_util::StreamExt;

async fn docker() -> Option<Docker> {
    let reachable = match Docker::connect_with_unix_defaults() {
        Ok(docker) => match docker.ping().await {
            Ok(_) => Ok(docker),
            Err(e) => Err(e.to_string()),
        },
        Err(e) => Err(e.to_string()),
    };
    match reachable {
        Ok(docker) => Some(docker),
        Err(e) if std::env::var_os("CI").is_some() => panic!("docker is not reachable: {e}"),
        Err(e) => {
            eprintln!("skipping: docker is not reachable: {e}");
            None
        }
    }
}

/// Writes a layer tar of `(path, content)` files (plus symlinks) and returns it as a Layer.
fn layer(path: &Path, files: &[(&str, &[u8], u32)], symlinks: &[(&str, &str)]) -> Layer {
    let mut builder = tar::Builder::new(Vec::new());
    for (name, content, mode) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(content.len() as u64);
        header.set_mode(*mode);
        builder.append_data(&mut header, name, *content).unwrap();
    }
    for (name, target) in symlinks {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Symlink);
        header.set_mode(0o777);
        builder.append_link(&mut header, name, target).unwrap();
    }
    let bytes = builder.into_inner().unwrap();
    std::fs::write(path, &bytes).unwrap();
    Layer {
        tar: path.to_owned(),
        diff_id: Digest::of(&bytes),
        compressed: None,
        base: false,
    }
}

fn busybox_layer(dir: &Path) -> Option<Layer> {
    let busybox = match std::fs::read("/bin/busybox") {
        Ok(bytes) => bytes,
        Err(e) if std::env::var_os("CI").is_some() => panic!("/bin/busybox: {e}"),
        Err(e) => {
            eprintln!("skipping: /bin/busybox (package busybox-static): {e}");
            return None;
        }
    };
    Some(layer(
        &dir.join("busybox.tar"),
        &[("bin/busybox", &busybox, 0o755)],
        &[("bin/sh", "busybox"), ("bin/cat", "busybox")],
    ))
}

fn arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

fn image(layers: &[Layer]) -> Image {
    Image {
        architecture: arch().into(),
        os: "linux".into(),
        created: Some("2025-06-01T12:00:00Z".into()),
        config: ImageConfig {
            env: vec!["PATH=/bin".into(), "GREETING=hello world".into()],
            cmd: vec!["sh".into()],
            working_dir: "/tmp".into(),
            exposed_ports: ["8080/tcp".to_owned()].into(),
            labels: [("org.example.test".to_owned(), "bud".to_owned())].into(),
            healthcheck: Some(Healthcheck {
                test: vec!["CMD-SHELL".into(), "true".into()],
                interval: std::time::Duration::from_secs(5),
                ..Default::default()
            }),
            ..Default::default()
        },
        rootfs: bud_frontend::image::RootFs {
            diff_ids: layers.iter().map(|l| l.diff_id.to_string()).collect(),
            ..Default::default()
        },
        history: layers
            .iter()
            .map(|_| History {
                created_by: "bud exporter test".into(),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    }
}

/// Runs `cmd` in a container of `image` and returns its standard output.
async fn run(docker: &Docker, image: &str, cmd: &[&str]) -> String {
    let body = ContainerCreateBody {
        image: Some(image.to_owned()),
        cmd: Some(cmd.iter().map(|s| s.to_string()).collect()),
        ..Default::default()
    };
    let id = docker
        .create_container(None::<CreateContainerOptions>, body)
        .await
        .unwrap()
        .id;
    docker
        .start_container(&id, None::<StartContainerOptions>)
        .await
        .unwrap();
    let exit: Vec<_> = docker
        .wait_container(&id, None::<WaitContainerOptions>)
        .collect()
        .await;
    let logs: Vec<_> = docker
        .logs(&id, Some(LogsOptionsBuilder::new().stdout(true).build()))
        .collect()
        .await;
    let options = RemoveContainerOptionsBuilder::new().force(true).build();
    docker.remove_container(&id, Some(options)).await.unwrap();
    assert!(
        matches!(exit.last(), Some(Ok(r)) if r.status_code == 0),
        "{cmd:?} in {image}: {exit:?}"
    );
    logs.into_iter()
        .map(|chunk| chunk.unwrap().to_string())
        .collect()
}

async fn remove(docker: &Docker, name: &str) {
    let options = RemoveImageOptionsBuilder::new().force(true).build();
    // Gone already is fine: this only tidies up.
    let _ = docker.remove_image(name, Some(options), None).await;
}

#[tokio::test]
async fn load_then_load_again_without_held_layer() {
    let Some(docker) = docker().await else { return };
    let dir = tempfile::tempdir().unwrap();
    let Some(base) = busybox_layer(dir.path()) else {
        return;
    };
    let base_size = std::fs::metadata(&base.tar).unwrap().len();

    // First image: the busybox layer alone.
    let first_layers = vec![base.clone()];
    let first = image(&first_layers);
    let first_tag = "bud-test/exporter-first:latest".to_owned();
    let loaded = docker_load::load(
        &docker,
        &first,
        &load_layers(&first_layers),
        std::slice::from_ref(&first_tag),
        &[],
        None,
    )
    .await
    .unwrap();
    assert_eq!(loaded.image_id, Digest::of(&first.to_json()).to_string());

    let inspect = docker.inspect_image(&first_tag).await.unwrap();
    assert_eq!(inspect.id.as_deref(), Some(loaded.image_id.as_str()));
    assert!(inspect.repo_tags.unwrap().contains(&first_tag));
    let config = inspect.config.unwrap();
    assert_eq!(config.cmd.unwrap(), ["sh"]);
    assert_eq!(config.env.unwrap(), ["PATH=/bin", "GREETING=hello world"]);
    assert_eq!(config.working_dir.as_deref(), Some("/tmp"));
    assert_eq!(config.labels.unwrap()["org.example.test"], "bud");
    assert!(
        config
            .exposed_ports
            .unwrap()
            .contains(&"8080/tcp".to_owned())
    );
    let health = config.healthcheck.unwrap();
    assert_eq!(health.test.unwrap(), ["CMD-SHELL", "true"]);
    assert_eq!(health.interval, Some(5_000_000_000));
    assert_eq!(
        inspect.root_fs.unwrap().layers.unwrap(),
        [base.diff_id.to_string()]
    );

    // Second image on top of the first: a fresh layer (unique per run, so that it is never
    // held already) over the busybox layer, which the daemon now holds.
    let nonce = format!("{}-{:?}", std::process::id(), std::time::SystemTime::now());
    let top = layer(
        &dir.path().join("top.tar"),
        &[("etc/nonce", nonce.as_bytes(), 0o644)],
        &[],
    );
    let second_layers = vec![base.clone(), top.clone()];
    let second = image(&second_layers);
    let second_tags = [
        "bud-test/exporter-second:latest".to_owned(),
        "bud-test/exporter-second:v2".to_owned(),
    ];

    let held = docker_load::layers_held(&docker, &diff_ids(&second_layers), &[])
        .await
        .unwrap();
    assert_eq!(held, HashSet::from([base.diff_id.clone()]));
    // Asked of the image that holds it, or of names that hold nothing (then all are asked).
    for related in [
        first_tag.clone(),
        "bud-test/exporter-no-such-image".into(),
        "not::a::name".into(),
    ] {
        let held = docker_load::layers_held(&docker, &diff_ids(&second_layers), &[related])
            .await
            .unwrap();
        assert_eq!(held, HashSet::from([base.diff_id.clone()]));
    }

    let loaded = docker_load::load(
        &docker,
        &second,
        &load_layers(&second_layers),
        &second_tags,
        &[],
        None,
    )
    .await
    .unwrap();
    assert_eq!(loaded.layers_skipped, 1);
    assert!(
        loaded.archive_size < base_size,
        "archive of {} bytes although the {base_size}-byte layer was held",
        loaded.archive_size
    );
    assert_eq!(loaded.image_id, Digest::of(&second.to_json()).to_string());
    for tag in &second_tags {
        let inspect = docker.inspect_image(tag).await.unwrap();
        assert_eq!(inspect.id.as_deref(), Some(loaded.image_id.as_str()));
        let diff_ids = inspect.root_fs.unwrap().layers.unwrap();
        assert_eq!(
            diff_ids,
            [base.diff_id.to_string(), top.diff_id.to_string()]
        );
    }

    // A container of the second image sees both layers, the held one included.
    assert_eq!(
        run(&docker, &second_tags[1], &["cat", "/etc/nonce"]).await,
        nonce
    );

    // The whole chain is in the daemon's layer store, not only its bottom.
    let chain = chain_ids(&[base.diff_id.clone(), top.diff_id.clone()]);
    let held = docker_load::layers_held(&docker, &diff_ids(&second_layers), &[])
        .await
        .unwrap();
    assert_eq!(held.len(), 2, "chain {chain:?} not held after the load");

    // A third image whose top layer is still a directory: it is tarred into the upload,
    // the held base is not sent, and the config lists the diff ID the directory tars to.
    // Its load is opened before the layer exists, as a build opens it when a step runs.
    let pending = docker_load::PendingLoad::open(&docker);
    let upper = dir.path().join("upper");
    std::fs::create_dir_all(upper.join("etc")).unwrap();
    std::fs::write(upper.join("etc/third"), format!("third {nonce}")).unwrap();
    let upper_diff = bud::snapshot::diff::write_layer(&upper, std::io::sink()).unwrap();
    let third_tag = "bud-test/exporter-third:latest".to_owned();
    let mut third = image(&first_layers);
    third.history.push(third.history[0].clone());
    let third_layers = [
        LoadLayer::from(&base),
        LoadLayer {
            diff_id: None,
            tar: LayerTar::Directory(upper.clone()),
        },
    ];
    let loaded = docker_load::load(
        &docker,
        &third,
        &third_layers,
        std::slice::from_ref(&third_tag),
        &[],
        Some(pending),
    )
    .await
    .unwrap();
    assert_eq!(loaded.layers_skipped, 1);
    assert_eq!(
        loaded.diff_ids,
        [
            base.diff_id.clone(),
            Digest::parse(&upper_diff.diff_id).unwrap()
        ]
    );
    assert_eq!(
        run(&docker, &third_tag, &["cat", "/etc/third"]).await,
        format!("third {nonce}")
    );

    for tag in second_tags.iter().chain([&first_tag, &third_tag]) {
        remove(&docker, tag).await;
    }
}

/// A load opened early and not needed after all ends without error and without an image;
/// one opened for an image the daemon already holds only tags it.
#[tokio::test]
async fn unused_early_loads_end_cleanly() {
    let Some(docker) = docker().await else { return };
    docker_load::PendingLoad::open(&docker)
        .close()
        .await
        .expect("the daemon accepts an archive that lists no image");

    let dir = tempfile::tempdir().unwrap();
    let Some(base) = busybox_layer(dir.path()) else {
        return;
    };
    let layers = vec![base];
    let image = image(&layers);
    let tags = ["bud-test/exporter-early:a".to_owned()];
    let first = docker_load::load(&docker, &image, &load_layers(&layers), &tags, &[], None)
        .await
        .unwrap();
    let again_tags = ["bud-test/exporter-early:b".to_owned()];
    let pending = docker_load::PendingLoad::open(&docker);
    let again = docker_load::load(
        &docker,
        &image,
        &load_layers(&layers),
        &again_tags,
        &[],
        Some(pending),
    )
    .await
    .unwrap();
    assert_eq!(again.image_id, first.image_id);
    assert_eq!(again.archive_size, 0, "a held image is tagged, not sent");
    let inspect = docker.inspect_image(&again_tags[0]).await.unwrap();
    assert_eq!(inspect.id.as_deref(), Some(first.image_id.as_str()));
    for tag in tags.iter().chain(&again_tags) {
        remove(&docker, tag).await;
    }
}

fn load_layers(layers: &[Layer]) -> Vec<LoadLayer> {
    layers.iter().map(LoadLayer::from).collect()
}

fn diff_ids(layers: &[Layer]) -> Vec<Digest> {
    layers.iter().map(|l| l.diff_id.clone()).collect()
}

#[tokio::test]
async fn load_untagged_and_refused_archives() {
    let Some(docker) = docker().await else { return };
    let dir = tempfile::tempdir().unwrap();
    let nonce = format!("{}-{:?}", std::process::id(), std::time::SystemTime::now());
    let only = layer(
        &dir.path().join("only.tar"),
        &[("nonce", nonce.as_bytes(), 0o644)],
        &[],
    );
    let layers = vec![only.clone()];
    let image = image(&layers);

    // Untagged: Docker answers with the ID.
    let loaded = docker_load::load(&docker, &image, &load_layers(&layers), &[], &[], None)
        .await
        .unwrap();
    assert_eq!(loaded.image_id, Digest::of(&image.to_json()).to_string());
    assert_eq!(loaded.layers_skipped, 0);
    remove(&docker, &loaded.image_id).await;

    // The daemon's own refusal comes back as its message.
    let mut foreign = image.clone();
    foreign.os = "windows".into();
    let err = docker_load::load(
        &docker,
        &foreign,
        &load_layers(&layers),
        &["bud-test/exporter-windows".into()],
        &[],
        None,
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&err, ExportError::LoadRejected(msg) if msg.contains("windows")),
        "{err}"
    );

    // A layer file that vanished mid-export aborts the upload with the file's error.
    let mut gone = layers.clone();
    gone[0].tar = dir.path().join("vanished.tar");
    let err = docker_load::load(
        &docker,
        &image,
        &load_layers(&gone),
        &["bud-test/exporter-gone".into()],
        &[],
        None,
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&err, ExportError::Io { path, .. } if path.ends_with("vanished.tar")),
        "{err}"
    );

    // An archive leaving out a layer the daemon does not hold is refused with Docker's error,
    // which is what `load` falls back from.
    let mut slim = Vec::new();
    let skip = HashSet::from([only.diff_id.clone()]);
    docker_archive::write(&mut slim, &image, &layers, &[], &skip).unwrap();
    let body = futures_util::stream::iter([Ok::<_, std::io::Error>(bytes::Bytes::from(slim))]);
    let mut responses = docker.import_image_stream(
        bollard::query_parameters::ImportImageOptionsBuilder::new()
            .quiet(true)
            .build(),
        body,
        None,
    );
    let mut refused = false;
    while let Some(response) = responses.next().await {
        refused |= response.is_err();
    }
    assert!(
        refused,
        "docker accepted an archive missing a layer it lacks"
    );
}
