//! Resolving base images against the test environment's open registry (127.0.0.1:5000) and
//! Docker daemon (scripts/test-env). Without them these tests print why and pass, except
//! under CI (`CI` set), where they fail.

use crate::support;

use std::io::{self, Read};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bollard::Docker;
use bud::content::{ContentStore, Digest, DigestWriter};
use bud::registry::{PullOptions, RegistryConfig};
use bud::source::image::{ImageOrigin, ImageSource, PulledImage};
use bud_frontend::reference::Reference;
use tokio::net::TcpListener;

const PUSHED_BASE: &str = "127.0.0.1:5000/bud-test/busybox:latest";

fn require_registry() -> bool {
    support::require(
        "the open registry at 127.0.0.1:5000",
        TcpStream::connect(support::OPEN_REGISTRY).is_ok(),
    )
}

fn store(dir: &tempfile::TempDir) -> ContentStore {
    ContentStore::new(dir.path().join("content")).unwrap()
}

fn registry_only(store: ContentStore) -> ImageSource {
    ImageSource::new(store, RegistryConfig::default(), None)
}

fn reference(text: &str) -> Reference {
    Reference::parse(text).unwrap()
}

/// Every layer, uncompressed, hashes to the diff ID the config lists for it.
fn assert_layers_match_config(source: &ImageSource, image: &PulledImage) {
    let diff_ids: Vec<Digest> = image
        .config
        .rootfs
        .diff_ids
        .iter()
        .map(|d| Digest::parse(d).unwrap())
        .collect();
    assert!(!diff_ids.is_empty());
    assert_eq!(
        image.layers.iter().map(|l| &l.diff_id).collect::<Vec<_>>(),
        diff_ids.iter().collect::<Vec<_>>()
    );
    for layer in &image.layers {
        assert!(source.store().exists(&layer.digest));
        assert_eq!(source.store().size(&layer.digest).unwrap(), layer.size);
        let mut hashed = DigestWriter::new(io::sink());
        io::copy(&mut source.open_layer(layer).unwrap(), &mut hashed).unwrap();
        assert_eq!(hashed.finish().0, layer.diff_id, "layer {}", layer.digest);
    }
    let mut config = Vec::new();
    source
        .store()
        .open(&image.config_digest)
        .unwrap()
        .read_to_end(&mut config)
        .unwrap();
    assert_eq!(Digest::of(&config), image.config_digest);
}

#[tokio::test(flavor = "multi_thread")]
async fn pulls_an_image_from_a_registry() {
    if !require_registry() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let source = registry_only(store(&dir));
    let image = source
        .resolve(&reference(PUSHED_BASE), &PullOptions::default())
        .await
        .unwrap();
    assert_eq!(image.origin, ImageOrigin::Registry);
    assert_eq!(image.reference.to_string(), PUSHED_BASE);
    assert_eq!(image.config.os, "linux");
    assert_eq!(image.config.architecture, "amd64");
    let manifest = image.manifest_digest.clone().unwrap();
    assert!(source.store().exists(&manifest));
    assert_layers_match_config(&source, &image);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_image_is_reported_as_not_found() {
    if !require_registry() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let err = registry_only(store(&dir))
        .resolve(
            &reference("127.0.0.1:5000/bud-test/no-such-image:latest"),
            &PullOptions::default(),
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("not found"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_anonymous_pull_from_a_login_registry_says_to_log_in() {
    if !require_registry()
        || !support::require(
            "the auth registry at 127.0.0.1:5001",
            TcpStream::connect(support::AUTH_REGISTRY).is_ok(),
        )
    {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("docker-config");
    std::fs::create_dir_all(&empty).unwrap();
    let registry = RegistryConfig {
        docker_config: Some(empty),
        ..RegistryConfig::default()
    };
    let err = ImageSource::new(store(&dir), registry, None)
        .resolve(
            &reference("127.0.0.1:5001/bud-test/busybox:latest"),
            &PullOptions::default(),
        )
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("docker login 127.0.0.1:5001"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn docker_is_a_source() {
    if !require_registry() || !support::require_base_image() {
        return;
    }
    let docker = Docker::connect_with_unix_defaults().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let source = ImageSource::new(store(&dir), RegistryConfig::default(), Some(docker));
    let local = source
        .resolve(&reference(support::BASE_IMAGE), &PullOptions::default())
        .await
        .unwrap();
    assert_eq!(local.origin, ImageOrigin::Docker);
    assert_layers_match_config(&source, &local);
    // Docker stores layers uncompressed: the blob is the tar.
    assert!(local.layers.iter().all(|l| l.digest == l.diff_id));
    let image_id = support::docker_ok(&[
        "image",
        "inspect",
        "--format",
        "{{.Id}}",
        support::BASE_IMAGE,
    ]);
    assert_eq!(local.config_digest.to_string(), image_id);

    // The same image from the registry has the same layers.
    let other = tempfile::tempdir().unwrap();
    let remote = registry_only(store(&other))
        .resolve(&reference(PUSHED_BASE), &PullOptions::default())
        .await
        .unwrap();
    assert_eq!(local.config.rootfs.diff_ids, remote.config.rootfs.diff_ids);

    // Asked again, the stored copy is used: exporting is not repeated (the blobs' files
    // are the very same inodes).
    let inode = |d: &Digest| {
        std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(source.store().path(d)).unwrap())
    };
    let before: Vec<u64> = local.layers.iter().map(|l| inode(&l.digest)).collect();
    let again = source
        .resolve(&reference(support::BASE_IMAGE), &PullOptions::default())
        .await
        .unwrap();
    assert_eq!(again.origin, ImageOrigin::Docker);
    let after: Vec<u64> = again.layers.iter().map(|l| inode(&l.digest)).collect();
    assert_eq!(before, after);
}

/// A TCP relay to the open registry that counts the connections made through it.
struct CountingProxy {
    address: String,
    connections: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl CountingProxy {
    async fn start() -> CountingProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let connections = Arc::new(AtomicUsize::new(0));
        let counter = connections.clone();
        let task = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    if let Ok(mut outbound) =
                        tokio::net::TcpStream::connect(support::OPEN_REGISTRY).await
                    {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        });
        CountingProxy {
            address,
            connections,
            task,
        }
    }

    fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_resolved_tag_is_reused_until_pull_is_forced() {
    if !require_registry() {
        return;
    }
    let proxy = CountingProxy::start().await;
    let name = reference(&format!("{}/bud-test/busybox:latest", proxy.address));
    let dir = tempfile::tempdir().unwrap();

    let first = registry_only(store(&dir))
        .resolve(&name, &PullOptions::default())
        .await
        .unwrap();
    assert_eq!(first.origin, ImageOrigin::Registry);
    let after_first = proxy.connections();
    assert!(after_first > 0);

    // A new source on the same store: the tag's resolution is remembered on disk.
    let second = registry_only(store(&dir))
        .resolve(&name, &PullOptions::default())
        .await
        .unwrap();
    assert_eq!(second.origin, ImageOrigin::Cache);
    assert_eq!(second.manifest_digest, first.manifest_digest);
    assert_eq!(second.layers, first.layers);
    assert_eq!(proxy.connections(), after_first);

    let forced = PullOptions {
        pull: true,
        ..PullOptions::default()
    };
    let third = registry_only(store(&dir))
        .resolve(&name, &forced)
        .await
        .unwrap();
    assert_eq!(third.origin, ImageOrigin::Registry);
    assert_eq!(third.manifest_digest, first.manifest_digest);
    assert!(proxy.connections() > after_first);

    // With the registry gone, the remembered resolution still serves; a forced pull fails.
    proxy.task.abort();
    let _ = proxy.task.await;
    let offline = registry_only(store(&dir))
        .resolve(&name, &PullOptions::default())
        .await
        .unwrap();
    assert_eq!(offline.origin, ImageOrigin::Cache);
    assert!(
        registry_only(store(&dir))
            .resolve(&name, &forced)
            .await
            .is_err()
    );
}

/// A base image on a registry that accepts connections and never answers fails the build
/// with a timeout instead of hanging it.
#[test]
fn a_base_image_on_a_silent_registry_times_out() {
    let registry = support::silent_listener();
    let dir = tempfile::tempdir().unwrap();
    let config = support::short_timeouts_config(dir.path());
    let context = dir.path().join("context");
    std::fs::create_dir(&context).unwrap();
    std::fs::write(
        context.join("Dockerfile"),
        format!("FROM {registry}/bud-test/silent\nRUN true\n"),
    )
    .unwrap();
    let out = support::bud_within(
        &dir.path().join("state"),
        &["-o", "type=tar,dest=/dev/null", context.to_str().unwrap()],
        &[("BUD_CONFIG", &config)],
        std::time::Duration::from_secs(300),
    );
    let stderr = support::stderr_of(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "authenticating to pull {registry}/bud-test/silent:latest: {registry}: \
             timed out: no answer within 2s"
        )),
        "{stderr}"
    );
}

/// The last line of `stderr` (the error) holds each of `causes` once, in that order.
fn causes_once_in_order(stderr: &str, causes: &[String]) {
    let last = stderr.lines().last().unwrap_or_default();
    let mut after = 0;
    for cause in causes {
        assert_eq!(
            last.matches(cause.as_str()).count(),
            1,
            "{cause:?} once in:\n{stderr}"
        );
        let at = last.find(cause.as_str()).unwrap_or_default();
        assert!(
            at >= after,
            "{cause:?} after the causes before it in:\n{stderr}"
        );
        after = at + cause.len();
    }
}

/// An image named by `--build-context NAME=docker-image://` on a registry nobody listens on
/// fails as a base image does: the frontend's resolver keeps the image source's error whole,
/// so the chain under the Dockerfile line is the pull's, each cause once and in order.
#[test]
fn an_unreachable_named_context_image_is_reported_with_each_cause_in_order() {
    let registry = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let context = dir.path().join("context");
    std::fs::create_dir(&context).unwrap();
    std::fs::write(context.join("Dockerfile"), "FROM base\nRUN true\n").unwrap();
    let named = format!("base=docker-image://{registry}/bud-test/named");
    let out = support::bud_at(
        &dir.path().join("state"),
        &[
            "--build-context",
            &named,
            "-o",
            "type=tar,dest=/dev/null",
            context.to_str().unwrap(),
        ],
    );
    let stderr = support::stderr_of(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    causes_once_in_order(
        &stderr,
        &[
            format!("line 1: {registry}/bud-test/named"),
            format!("authenticating to pull {registry}/bud-test/named:latest"),
            format!("error sending request for url (http://{registry}/v2/)"),
            "Connection refused (os error 111)".to_string(),
        ],
    );
}

/// A base image on a registry nobody listens on fails with each cause of the failure once,
/// down to the system's: the error convention (a message names its own layer, the one
/// printer walks the causes) holds end to end. Docker 20.10 names the refusal too.
#[test]
fn an_unreachable_registry_is_reported_with_each_cause_once() {
    // A port that was free a moment ago: nothing listens there now, so connecting is refused.
    let registry = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let context = dir.path().join("context");
    std::fs::create_dir(&context).unwrap();
    std::fs::write(
        context.join("Dockerfile"),
        format!("FROM {registry}/bud-test/nobody\nRUN true\n"),
    )
    .unwrap();
    let out = support::bud_at(
        &dir.path().join("state"),
        &["-o", "type=tar,dest=/dev/null", context.to_str().unwrap()],
    );
    let stderr = support::stderr_of(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    causes_once_in_order(
        &stderr,
        &[
            format!("line 1: {registry}/bud-test/nobody"),
            format!("authenticating to pull {registry}/bud-test/nobody:latest"),
            format!("error sending request for url (http://{registry}/v2/)"),
            "Connection refused (os error 111)".to_string(),
        ],
    );

    if !support::require_docker() {
        return;
    }
    let reference = std::process::Command::new(support::DOCKER)
        .args(["build", "--no-cache"])
        .arg(&context)
        .env("DOCKER_BUILDKIT", "1")
        .output()
        .expect("docker build");
    let reference = support::stderr_of(&reference);
    assert!(reference.contains("connection refused"), "{reference}");
}
