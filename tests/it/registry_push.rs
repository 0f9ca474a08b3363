//! Pushing images to the test environment's registries (scripts/test-env): the open one at
//! 127.0.0.1:5000 and the htpasswd one at 127.0.0.1:5001, then pulling them back with the
//! Docker CLI and running them. Without them these tests print why and pass, except under
//! CI (`CI` set), where they fail.

use crate::support;

use std::fs::File;
use std::io::Read;
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use bud::content::{ContentStore, Digest};
use bud::exporter::{Image, Layer};
use bud::progress::{Event, ProgressSink, RecordingRenderer};
use bud::registry::manifest::Manifest;
use bud::registry::{
    Compression, ManifestFormat, ProgressTarget, PullOptions, PushOptions, RegistryConfig,
    RegistryError, push,
};
use bud::source::image::{ImageSource, PulledImage};
use bud_frontend::image::History;
use bud_frontend::reference::Reference;

const PUSHED_BASE: &str = "127.0.0.1:5000/bud-test/busybox:latest";
const AUTH_USER: &str = "bud";
const AUTH_PASSWORD: &str = "bud-test-password";
const GREETING: &str = "hello from a pushed bud image";

fn require_registries() -> bool {
    support::require(
        "the registries at 127.0.0.1:5000 and 127.0.0.1:5001",
        TcpStream::connect(support::OPEN_REGISTRY).is_ok()
            && TcpStream::connect(support::AUTH_REGISTRY).is_ok(),
    )
}

/// A repository name no other test run uses.
fn unique(registry: &str, name: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{registry}/bud-test/{name}-{}-{nanos}", std::process::id())
}

/// busybox from the open registry plus one layer with `/greeting`, run by `CMD`.
async fn image_to_push(dir: &Path, store: &ContentStore) -> (Image, Vec<Layer>) {
    let source = ImageSource::new(store.clone(), RegistryConfig::default(), None);
    let base: PulledImage = source
        .resolve(
            &Reference::parse(PUSHED_BASE).unwrap(),
            &PullOptions::default(),
        )
        .await
        .unwrap();
    let mut layers = Vec::new();
    for (i, pulled) in base.layers.iter().enumerate() {
        let path = dir.join(format!("base-{i}.tar"));
        std::io::copy(
            &mut source.open_layer(pulled).unwrap(),
            &mut File::create(&path).unwrap(),
        )
        .unwrap();
        layers.push(Layer {
            tar: path,
            diff_id: pulled.diff_id.clone(),
            compressed: None,
            base: false,
        });
    }
    let mut image = base.config.clone();
    add_layer(dir, &mut image, &mut layers, "greeting", GREETING);
    image.config.cmd = vec!["cat".into(), "/greeting".into()];
    image.config.entrypoint = Vec::new();
    (image, layers)
}

/// Appends a layer holding `/<name>` with `content` and a newline.
fn add_layer(dir: &Path, image: &mut Image, layers: &mut Vec<Layer>, name: &str, content: &str) {
    let tar = layer_tar(name, content);
    let path = dir.join(format!("{name}.tar"));
    std::fs::write(&path, &tar).unwrap();
    layers.push(Layer {
        tar: path,
        diff_id: Digest::of(&tar),
        compressed: None,
        base: false,
    });
    image.rootfs.diff_ids.push(Digest::of(&tar).to_string());
    image.history.push(History {
        created_by: format!("COPY {name} /{name}"),
        ..History::default()
    });
}

fn layer_tar(name: &str, content: &str) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(content.len() as u64 + 1);
    header.set_mode(0o644);
    builder
        .append_data(&mut header, name, format!("{content}\n").as_bytes())
        .unwrap();
    builder.into_inner().unwrap()
}

/// The manifest a push stored.
fn stored_manifest(store: &ContentStore, digest: &Digest) -> Manifest {
    serde_json::from_reader(store.open(digest).unwrap()).unwrap()
}

fn docker_with_config(config: Option<&Path>, args: &[&str]) -> std::process::Output {
    let mut command = Command::new(support::DOCKER);
    command.args(args);
    if let Some(config) = config {
        command.env("DOCKER_CONFIG", config);
    }
    command.output().unwrap()
}

/// `docker pull` then `docker run` of `name`, which must print the greeting.
fn pull_and_run(config: Option<&Path>, name: &str, digest: &Digest) {
    let pulled = docker_with_config(config, &["pull", name]);
    assert!(
        pulled.status.success(),
        "docker pull {name}: {}",
        String::from_utf8_lossy(&pulled.stderr)
    );
    assert!(
        String::from_utf8_lossy(&pulled.stdout).contains(&digest.to_string()),
        "docker pull reported another digest: {}",
        String::from_utf8_lossy(&pulled.stdout)
    );
    let run = docker_with_config(config, &["run", "--rm", name]);
    assert!(
        run.status.success(),
        "docker run {name}: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&run.stdout).trim(), GREETING);
    let _ = docker_with_config(config, &["rmi", name]);
}

fn docker_config_with(dir: &Path, user: &str, password: &str) -> std::path::PathBuf {
    let config = dir.join("docker-config");
    std::fs::create_dir_all(&config).unwrap();
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    std::fs::write(
        config.join("config.json"),
        format!(
            r#"{{"auths":{{"{}":{{"auth":"{auth}"}}}}}}"#,
            support::AUTH_REGISTRY
        ),
    )
    .unwrap();
    config
}

#[tokio::test(flavor = "multi_thread")]
async fn pushes_to_a_registry_and_docker_runs_the_result() {
    if !require_registries() || !support::require_docker() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let store = ContentStore::new(dir.path().join("content")).unwrap();
    let (image, layers) = image_to_push(dir.path(), &store).await;
    let repository = unique(support::OPEN_REGISTRY, "push");
    let tags = vec![format!("{repository}:v1"), format!("{repository}:latest")];

    let first = push(&image, &layers, &tags, PushOptions::new(store.clone()))
        .await
        .unwrap();
    assert_eq!(
        first.media_type,
        "application/vnd.docker.distribution.manifest.v2+json"
    );
    // The busybox layer is mounted from the repository it was pulled from; the new layer
    // and the config are uploaded.
    assert_eq!((first.mounted, first.uploaded, first.existing), (1, 2, 0));

    let second = push(&image, &layers, &tags, PushOptions::new(store.clone()))
        .await
        .unwrap();
    assert_eq!(second.manifest_digest, first.manifest_digest);
    assert_eq!(
        (second.mounted, second.uploaded, second.existing),
        (0, 0, 3)
    );

    pull_and_run(None, &tags[0], &first.manifest_digest);
}

#[tokio::test(flavor = "multi_thread")]
async fn pushes_to_a_registry_that_requires_login() {
    if !require_registries() || !support::require_docker() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let store = ContentStore::new(dir.path().join("content")).unwrap();
    let (image, layers) = image_to_push(dir.path(), &store).await;
    let config = docker_config_with(dir.path(), AUTH_USER, AUTH_PASSWORD);
    let tag = format!("{}:v1", unique(support::AUTH_REGISTRY, "auth"));
    let mut opts = PushOptions::new(store.clone());
    opts.registry.docker_config = Some(config.clone());

    let result = push(&image, &layers, std::slice::from_ref(&tag), opts.clone())
        .await
        .unwrap();
    // Another registry: nothing to mount from, everything is uploaded.
    assert_eq!(
        (result.mounted, result.uploaded, result.existing),
        (0, 3, 0)
    );
    let again = push(&image, &layers, std::slice::from_ref(&tag), opts)
        .await
        .unwrap();
    assert_eq!((again.mounted, again.uploaded, again.existing), (0, 0, 3));

    pull_and_run(Some(&config), &tag, &result.manifest_digest);
}

#[tokio::test(flavor = "multi_thread")]
async fn refused_credentials_say_to_log_in() {
    if !require_registries() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let store = ContentStore::new(dir.path().join("content")).unwrap();
    let (image, layers) = image_to_push(dir.path(), &store).await;
    let tag = format!("{}:v1", unique(support::AUTH_REGISTRY, "denied"));

    let wrong = docker_config_with(dir.path(), AUTH_USER, "not-the-password");
    let empty = dir.path().join("empty-config");
    std::fs::create_dir_all(&empty).unwrap();
    for config in [wrong, empty] {
        let mut opts = PushOptions::new(store.clone());
        opts.registry.docker_config = Some(config);
        let err = push(&image, &layers, std::slice::from_ref(&tag), opts)
            .await
            .unwrap_err();
        assert!(
            matches!(err, RegistryError::Unauthorized { ref registry, .. } if registry == support::AUTH_REGISTRY),
            "{err:?}"
        );
        assert!(
            err.to_string().contains("docker login 127.0.0.1:5001"),
            "{err}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn zstd_pushes_round_trip() {
    if !require_registries() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let store = ContentStore::new(dir.path().join("content")).unwrap();
    let (image, layers) = image_to_push(dir.path(), &store).await;
    let tag = format!("{}:zstd", unique(support::OPEN_REGISTRY, "zstd"));
    let mut opts = PushOptions::new(store.clone());
    opts.compression = Compression::Zstd.into();
    // zstd needs OCI media types, whatever was asked for.
    opts.format = ManifestFormat::Docker;
    let recorder = RecordingRenderer::default();
    opts.progress = Some(ProgressTarget {
        sink: ProgressSink::new(Box::new(recorder.clone())),
        vertex: "push".into(),
    });
    let pushed = push(&image, &layers, std::slice::from_ref(&tag), opts)
        .await
        .unwrap();
    assert_eq!(
        pushed.media_type,
        "application/vnd.oci.image.manifest.v1+json"
    );
    assert_eq!(pushed.uploaded, 3);
    // Each upload reports its bytes under the blob's digest, and ends done.
    let events = recorder.events.lock().unwrap().clone();
    let finished: Vec<(String, u64)> = events
        .iter()
        .filter_map(|e| match e {
            Event::Status {
                vertex,
                id,
                current,
                total,
                done: true,
                ..
            } if vertex == "push" && Some(*current) == *total => Some((id.clone(), *current)),
            _ => None,
        })
        .collect();
    // Neither layer had a zstd blob: both were compressed while uploading, and report under
    // their diff IDs; the config under its digest.
    let manifest = stored_manifest(&store, &pushed.manifest_digest);
    let mut expected: Vec<(String, u64)> = image
        .rootfs
        .diff_ids
        .iter()
        .cloned()
        .zip(manifest.layers.iter().map(|layer| layer.size))
        .chain([(manifest.config.digest.clone(), manifest.config.size)])
        .collect();
    let mut finished = finished;
    finished.sort();
    expected.sort();
    assert_eq!(finished, expected, "{events:?}");

    // Pulled into an empty store, the layers come back zstd and decompress to the diff IDs.
    let other = tempfile::tempdir().unwrap();
    let source = ImageSource::new(
        ContentStore::new(other.path().join("content")).unwrap(),
        RegistryConfig::default(),
        None,
    );
    let pulled = source
        .resolve(&Reference::parse(&tag).unwrap(), &PullOptions::default())
        .await
        .unwrap();
    assert_eq!(
        pulled.manifest_digest.as_ref(),
        Some(&pushed.manifest_digest)
    );
    assert_eq!(pulled.config.rootfs.diff_ids, image.rootfs.diff_ids);
    for layer in &pulled.layers {
        assert_eq!(
            layer.media_type,
            "application/vnd.oci.image.layer.v1.tar+zstd"
        );
        let mut hashed = bud::content::DigestWriter::new(std::io::sink());
        std::io::copy(&mut source.open_layer(layer).unwrap(), &mut hashed).unwrap();
        assert_eq!(hashed.finish().0, layer.diff_id);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_new_layer_is_compressed_while_uploading_and_stored_once() {
    if !require_registries() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let store = ContentStore::new(dir.path().join("content")).unwrap();
    let (mut image, mut layers) = image_to_push(dir.path(), &store).await;
    // Content no registry has seen: its blob must really go up.
    let nonce = unique("nonce", "layer");
    add_layer(dir.path(), &mut image, &mut layers, "nonce", &nonce);
    let first = unique(support::OPEN_REGISTRY, "pipelined");
    let second = unique(support::OPEN_REGISTRY, "pipelined-other");
    let tags = vec![format!("{first}:v1"), format!("{second}:v1")];

    let pushed = push(&image, &layers, &tags, PushOptions::new(store.clone()))
        .await
        .unwrap();
    // The first repository: busybox mounted from where it was pulled, both new layers
    // compressed while uploading, the config uploaded. The second mounts all four from it.
    assert_eq!(
        (pushed.mounted, pushed.uploaded, pushed.existing),
        (1 + 4, 3, 0)
    );

    // The stored blob is what the manifest names, and it decompresses to the layer.
    let manifest = stored_manifest(&store, &pushed.manifest_digest);
    let nonce_blob = manifest.layers.last().unwrap();
    let digest = Digest::parse(&nonce_blob.digest).unwrap();
    let stored = std::fs::read(store.path(&digest)).unwrap();
    assert_eq!(Digest::of(&stored), digest);
    assert_eq!(stored.len() as u64, nonce_blob.size);
    let mut tar = Vec::new();
    flate2::read::MultiGzDecoder::new(&stored[..])
        .read_to_end(&mut tar)
        .unwrap();
    assert_eq!(tar, layer_tar("nonce", &nonce));

    // What the registry serves, pulled into an empty store, is the same bytes.
    for tag in &tags {
        let other = tempfile::tempdir().unwrap();
        let other_store = ContentStore::new(other.path().join("content")).unwrap();
        let source = ImageSource::new(other_store.clone(), RegistryConfig::default(), None);
        let pulled = source
            .resolve(&Reference::parse(tag).unwrap(), &PullOptions::default())
            .await
            .unwrap();
        assert_eq!(
            pulled.manifest_digest.as_ref(),
            Some(&pushed.manifest_digest)
        );
        assert_eq!(pulled.layers.last().unwrap().digest, digest);
        assert_eq!(std::fs::read(other_store.path(&digest)).unwrap(), stored);
    }

    // Without the layer tars, pushing again can only reuse the stored blobs.
    for layer in &layers {
        std::fs::remove_file(&layer.tar).unwrap();
    }
    let again = push(&image, &layers, &tags, PushOptions::new(store.clone()))
        .await
        .unwrap();
    assert_eq!(again.manifest_digest, pushed.manifest_digest);
    assert_eq!((again.mounted, again.uploaded, again.existing), (0, 0, 8));
    let elsewhere = format!("{}:v1", unique(support::OPEN_REGISTRY, "pipelined-mount"));
    let mounted = push(
        &image,
        &layers,
        std::slice::from_ref(&elsewhere),
        PushOptions::new(store.clone()),
    )
    .await
    .unwrap();
    assert_eq!(mounted.manifest_digest, pushed.manifest_digest);
    assert_eq!(
        (mounted.mounted, mounted.uploaded, mounted.existing),
        (4, 0, 0)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_compression_failure_fails_the_push_and_stores_nothing() {
    if !require_registries() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let store = ContentStore::new(dir.path().join("content")).unwrap();
    let (image, mut layers) = image_to_push(dir.path(), &store).await;
    // Opens, but every read fails (EISDIR): compression fails once the upload has begun.
    let unreadable = dir.path().join("not-a-tar");
    std::fs::create_dir(&unreadable).unwrap();
    layers.last_mut().unwrap().tar = unreadable.clone();
    let before = store.blobs().unwrap().len();
    let tag = format!("{}:v1", unique(support::OPEN_REGISTRY, "unreadable"));

    let err = push(
        &image,
        &layers,
        std::slice::from_ref(&tag),
        PushOptions::new(store.clone()),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&err, RegistryError::Io { action: "compressing", path, .. } if *path == unreadable),
        "{err:?}"
    );
    assert_eq!(store.blobs().unwrap().len(), before);
    assert!(
        std::fs::read_dir(store.root().join("ingest"))
            .unwrap()
            .next()
            .is_none()
    );
}

/// `--push` to a registry that accepts connections and never answers fails with a timeout
/// instead of hanging the build.
#[test]
fn a_push_to_a_silent_registry_times_out() {
    if !support::build_ready() {
        return;
    }
    let registry = support::silent_listener();
    let dir = tempfile::tempdir().unwrap();
    let config = support::short_timeouts_config(dir.path());
    let tag = format!("{registry}/bud-test/silent:latest");
    let hello = support::testdata("hello");
    let out = support::bud_within(
        &dir.path().join("state"),
        &["--push", "-t", &tag, hello.to_str().unwrap()],
        &[("BUD_CONFIG", &config)],
        std::time::Duration::from_secs(300),
    );
    let stderr = support::stderr_of(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "error: pushing the image: authenticating to push {registry}/bud-test/silent:latest: \
             {registry}: timed out: no answer within 2s"
        )),
        "{stderr}"
    );
}

/// A registry that answers every request with 500, on a loopback port of its own.
async fn failing_registry() -> (String, tokio::task::JoinHandle<()>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let task = tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            tokio::spawn(async move {
                // The request's head; a body, if any, is left unread (the connection closes).
                let mut head = Vec::new();
                let mut buf = [0u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match conn.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = conn
                    .write_all(
                        b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                    )
                    .await;
            });
        }
    });
    (address, task)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_registry_is_named_with_the_pushed_tag() {
    let dir = tempfile::tempdir().unwrap();
    let store = ContentStore::new(dir.path().join("content")).unwrap();
    let mut image = Image::default();
    let mut layers = Vec::new();
    add_layer(dir.path(), &mut image, &mut layers, "greeting", GREETING);
    let (address, server) = failing_registry().await;
    let tag = format!("{address}/x:1");
    let err = push(
        &image,
        &layers,
        std::slice::from_ref(&tag),
        PushOptions::new(store),
    )
    .await
    .unwrap_err();
    server.abort();
    let message = err.to_string();
    assert!(message.contains(&tag), "{message}");
    assert!(!message.contains("latest"), "{message}");
}
