//! The image config a build produces: Docker's flavour of the OCI image config.
//!
//! This is the JSON that `docker image inspect` shows under `Config`, `RootFS` and friends,
//! and whose sha256 is the image ID of Docker's classic image store. Field names and omission
//! rules follow moby's `docker-image-spec` (the OCI config plus `Healthcheck`, `OnBuild` and
//! `Shell`), which is also what BuildKit writes.
//!
//! A build starts from a base image's config and edits it, so every field this type does not
//! know (legacy `container_config`, `docker_version`, `Hostname`, vendor extensions…) is kept
//! in an `extra` map and written back unchanged: nothing a base image sets is lost.
//!
//! Serialization is deterministic: fields are written in a fixed order and every map is a
//! `BTreeMap`, so the same config always hashes to the same image ID.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

/// Media type of a config blob in an OCI image manifest.
pub const OCI_CONFIG_MEDIA_TYPE: &str = "application/vnd.oci.image.config.v1+json";
/// Media type of a config blob in a Docker schema 2 manifest.
pub const DOCKER_CONFIG_MEDIA_TYPE: &str = "application/vnd.docker.container.image.v1+json";

/// An image config (`application/vnd.oci.image.config.v1+json`, Docker extensions included).
///
/// Top-level keys are written in alphabetical order, as BuildKit's exporter writes them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Image {
    /// CPU architecture (`amd64`, `arm64`…). Always written, even when empty, as Go does.
    #[serde(default, deserialize_with = "null_as_default")]
    pub architecture: String,
    /// Who made the image (`MAINTAINER`, or kept from the base).
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub author: String,
    /// Always written, even when every field is empty (`"config":{}`).
    #[serde(default, deserialize_with = "null_as_default")]
    pub config: ImageConfig,
    /// RFC 3339 creation time; kept as text so that a base image's exact value survives.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    /// One entry per step, base image steps first.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub history: Vec<History>,
    /// Operating system (`linux`). Always written.
    #[serde(default, deserialize_with = "null_as_default")]
    pub os: String,
    /// Required OS features (Windows images).
    #[serde(
        rename = "os.features",
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub os_features: Vec<String>,
    /// Required OS version (Windows images).
    #[serde(
        rename = "os.version",
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub os_version: String,
    /// The layers, by diff ID. Always written.
    #[serde(default, deserialize_with = "null_as_default")]
    pub rootfs: RootFs,
    /// CPU variant (`v7` of `arm/v7`, `v8` of `arm64/v8`).
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub variant: String,
    /// Keys this type does not model, written back as they were read.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// How to run a container from the image (the `config` object).
///
/// Keys are written in the order of moby's Go struct, like Docker and BuildKit write them.
/// A JSON `null` reads as empty, and empty values are omitted: for an image config an absent,
/// null or empty `Entrypoint`/`Cmd` all mean "none" (this is how `ENTRYPOINT []` resets).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ImageConfig {
    /// `USER`: `name`, `uid`, `name:group` or `uid:gid`; empty is root.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub user: String,
    /// Ports as `port/proto` (`80/tcp`); Docker stores them as a map to empty objects.
    #[serde(
        default,
        with = "string_set",
        skip_serializing_if = "BTreeSet::is_empty"
    )]
    pub exposed_ports: BTreeSet<String>,
    /// `KEY=value` entries, in order; later entries win, as in Docker.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub env: Vec<String>,
    /// `ENTRYPOINT`, exec form (a shell form is stored with the shell before it).
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub entrypoint: Vec<String>,
    /// `CMD`, exec form; the entrypoint's arguments when there is one.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub cmd: Vec<String>,
    /// `VOLUME` paths; Docker stores them as a map to empty objects.
    #[serde(
        default,
        with = "string_set",
        skip_serializing_if = "BTreeSet::is_empty"
    )]
    pub volumes: BTreeSet<String>,
    /// `WORKDIR`, absolute; empty is `/`.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub working_dir: String,
    /// `LABEL`s, base image's included.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub labels: BTreeMap<String, String>,
    /// `STOPSIGNAL` as written (`SIGTERM`, `15`).
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub stop_signal: String,
    /// Windows-only legacy flag; kept because Docker still reads it.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "is_false"
    )]
    pub args_escaped: bool,
    /// `HEALTHCHECK`; `None` when neither the build nor its base set one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<Healthcheck>,
    /// `ONBUILD` triggers, run by a build that uses this image as its base.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub on_build: Vec<String>,
    /// Shell for the shell form of `RUN`, `CMD` and `ENTRYPOINT` (`SHELL`).
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub shell: Vec<String>,
    /// Keys this type does not model (`Hostname`, `AttachStdin`, `Image`…), kept as read.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// `HEALTHCHECK` settings. Zero durations and retries mean "inherit the default" and are
/// omitted; durations are stored as integer nanoseconds, as Go's `time.Duration`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Healthcheck {
    /// `[]` inherits, `["NONE"]` disables, `["CMD", args…]` or `["CMD-SHELL", command]`.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub test: Vec<String>,
    /// Time between checks (`--interval`).
    #[serde(default, with = "nanos", skip_serializing_if = "Duration::is_zero")]
    pub interval: Duration,
    /// Time a check may take before it counts as failed (`--timeout`).
    #[serde(default, with = "nanos", skip_serializing_if = "Duration::is_zero")]
    pub timeout: Duration,
    /// Time after start during which failures do not count (`--start-period`).
    #[serde(default, with = "nanos", skip_serializing_if = "Duration::is_zero")]
    pub start_period: Duration,
    /// Time between checks during the start period (`--start-interval`).
    #[serde(default, with = "nanos", skip_serializing_if = "Duration::is_zero")]
    pub start_interval: Duration,
    /// Consecutive failures that make the container unhealthy (`--retries`).
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "is_zero"
    )]
    pub retries: i64,
    /// Keys this type does not model, kept as read.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// The layers of the image, as uncompressed-tar digests (diff IDs), bottom first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RootFs {
    /// Always `layers`; a config that leaves it out reads as `layers`.
    #[serde(rename = "type", default = "layers")]
    pub kind: String,
    /// `sha256:<hex>` of each layer's uncompressed tar.
    #[serde(default, deserialize_with = "null_as_default")]
    pub diff_ids: Vec<String>,
}

fn layers() -> String {
    "layers".to_owned()
}

impl Default for RootFs {
    fn default() -> Self {
        RootFs {
            kind: layers(),
            diff_ids: Vec::new(),
        }
    }
}

/// One step of the image's history; steps with `empty_layer` set have no entry in
/// `rootfs.diff_ids`, the others map to the diff IDs in order.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct History {
    /// RFC 3339 time of the step; kept as text, as for [`Image::created`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    /// What the step ran, as `docker history` shows it (`RUN /bin/sh -c make # buildkit`).
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub created_by: String,
    /// The step's author, when the builder recorded one.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub author: String,
    /// A note of the builder's (`buildkit.dockerfile.v0`).
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub comment: String,
    /// The step added no layer (`ENV`, `CMD`…), so it has no diff ID.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "is_false"
    )]
    pub empty_layer: bool,
    /// Keys this type does not model, kept as read.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

impl Image {
    /// Parses a config blob (as pulled from a registry or read from an archive).
    pub fn from_json(bytes: &[u8]) -> Result<Image, serde_json::Error> {
        serde_json::from_slice(bytes)
    }

    /// The canonical bytes of this config: compact JSON in a fixed key order. Their sha256
    /// is the config digest, and the image ID in Docker's classic store.
    pub fn to_json(&self) -> Vec<u8> {
        // Every field is a string, integer, bool, sequence or string-keyed map, and durations
        // saturate: serializing to a Vec cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }
}

fn is_false(b: &bool) -> bool {
    !*b
}

fn is_zero(n: &i64) -> bool {
    *n == 0
}

/// Reads JSON `null` as the type's default, as Go's `encoding/json` does for slices, maps
/// and strings.
fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

/// Docker's `map[string]struct{}` sets (`{"80/tcp":{}}`) as a `BTreeSet`.
mod string_set {
    use super::*;

    pub(super) fn serialize<S: Serializer>(
        set: &BTreeSet<String>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        let empty = Value::Object(serde_json::Map::new());
        let map: BTreeMap<&str, &Value> = set.iter().map(|k| (k.as_str(), &empty)).collect();
        map.serialize(s)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<BTreeSet<String>, D::Error> {
        // The values carry nothing (Go writes `{}`); accept whatever is there.
        let map = Option::<BTreeMap<String, Value>>::deserialize(d)?;
        Ok(map.unwrap_or_default().into_keys().collect())
    }
}

/// `time.Duration` as integer nanoseconds.
mod nanos {
    use super::*;

    pub(super) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        // Go's Duration is an i64 (~292 years); a longer one saturates rather than making
        // the whole config unserializable.
        s.serialize_i64(i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let n = Option::<i64>::deserialize(d)?.unwrap_or(0);
        let n = u64::try_from(n)
            .map_err(|_| serde::de::Error::custom(format!("negative duration: {n}ns")))?;
        Ok(Duration::from_nanos(n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A config as Docker's classic builder wrote it (trimmed from `docker save` of an
    /// image built on busybox), with legacy and vendor keys this type does not model.
    const LEGACY: &str = r##"{"architecture":"amd64","config":{"Hostname":"","Domainname":"","User":"app","AttachStdin":false,"AttachStdout":false,"AttachStderr":false,"ExposedPorts":{"443/tcp":{},"80/tcp":{}},"Tty":false,"OpenStdin":false,"StdinOnce":false,"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin","A=b c"],"Cmd":["sh"],"Healthcheck":{"Test":["CMD-SHELL","wget -q localhost"],"Interval":30000000000,"Timeout":5000000000,"StartPeriod":1000000000,"Retries":3},"ArgsEscaped":true,"Image":"sha256:6fd955f66c231c1a946653170d096a28ac2b2052a02080c0b84ec082a07f7d12","Volumes":{"/data":{}},"WorkingDir":"/srv","Entrypoint":null,"OnBuild":null,"Labels":{"org.opencontainers.image.title":"demo","maintainer":"x"},"StopSignal":"SIGQUIT","Shell":["/bin/sh","-eu","-c"]},"container":"1b3f5e4b0b1c","container_config":{"Hostname":"1b3f5e4b0b1c","Cmd":["/bin/sh","-c","#(nop) ","CMD [\"sh\"]"],"Image":"sha256:6fd9","Entrypoint":null},"created":"2024-01-02T03:04:05.123456789Z","docker_version":"20.10.24","history":[{"created":"2023-05-18T22:34:17.17Z","created_by":"/bin/sh -c #(nop) ADD file:7e9002edaafd in / "},{"created":"2023-05-18T22:34:17.28Z","created_by":"/bin/sh -c #(nop)  CMD [\"sh\"]","empty_layer":true},{"created":"2024-01-02T03:04:05.123456789Z","created_by":"RUN /bin/sh -c true","comment":"buildkit.dockerfile.v0","author":"me"}],"os":"linux","rootfs":{"type":"layers","diff_ids":["sha256:baacf561cfff825708763ce7ee4a18293716c533e6ece3bd39009a5fb3c804d2","sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef"]},"variant":"v2","moby.buildkit.buildinfo.v1":"e30="}"##;

    #[test]
    fn reads_docker_fields() {
        let image = Image::from_json(LEGACY.as_bytes()).unwrap();
        let c = &image.config;
        assert_eq!(image.architecture, "amd64");
        assert_eq!(image.variant, "v2");
        assert_eq!(c.user, "app");
        assert_eq!(
            c.exposed_ports.iter().collect::<Vec<_>>(),
            ["443/tcp", "80/tcp"]
        );
        assert!(c.entrypoint.is_empty());
        assert!(c.on_build.is_empty());
        assert_eq!(c.cmd, ["sh"]);
        assert_eq!(c.shell, ["/bin/sh", "-eu", "-c"]);
        assert!(c.args_escaped);
        let hc = c.healthcheck.as_ref().unwrap();
        assert_eq!(hc.interval, Duration::from_secs(30));
        assert_eq!(hc.start_period, Duration::from_secs(1));
        assert_eq!(hc.start_interval, Duration::ZERO);
        assert_eq!(hc.retries, 3);
        assert_eq!(image.history.len(), 3);
        assert!(image.history[1].empty_layer);
        assert_eq!(image.history[2].author, "me");
        assert_eq!(image.rootfs.diff_ids.len(), 2);
        assert_eq!(
            image.created.as_deref(),
            Some("2024-01-02T03:04:05.123456789Z")
        );
    }

    #[test]
    fn round_trip_keeps_unknown_fields() {
        let image = Image::from_json(LEGACY.as_bytes()).unwrap();
        assert_eq!(image.extra["docker_version"], "20.10.24");
        assert_eq!(image.extra["container_config"]["Hostname"], "1b3f5e4b0b1c");
        assert_eq!(image.config.extra["Hostname"], "");
        assert_eq!(image.config.extra["AttachStdin"], false);

        let written = image.to_json();
        let again = Image::from_json(&written).unwrap();
        assert_eq!(again, image);

        // Semantically the same document as the input, except for the nulls and empty
        // values that Docker omits as well.
        let mut expected: Value = serde_json::from_str(LEGACY).unwrap();
        let config = expected["config"].as_object_mut().unwrap();
        config.remove("Entrypoint");
        config.remove("OnBuild");
        let actual: Value = serde_json::from_slice(&written).unwrap();
        assert_eq!(actual, expected);
    }

    #[test]
    fn serialization_is_deterministic_and_ordered() {
        let image = Image::from_json(LEGACY.as_bytes()).unwrap();
        let text = String::from_utf8(image.to_json()).unwrap();
        assert_eq!(text, String::from_utf8(image.clone().to_json()).unwrap());
        let pos = |k: &str| text.find(&format!("\"{k}\":")).unwrap();
        // Top level alphabetical, then unknown keys.
        assert!(pos("architecture") < pos("config"));
        assert!(pos("config") < pos("created"));
        assert!(pos("os") < pos("rootfs"));
        assert!(pos("rootfs") < pos("variant"));
        assert!(pos("variant") < pos("container_config"));
        // Inside config, Go's struct order.
        assert!(pos("User") < pos("ExposedPorts"));
        assert!(pos("Env") < pos("Cmd"));
        assert!(pos("StopSignal") < pos("ArgsEscaped"));
        assert!(pos("Healthcheck") < pos("Shell"));
    }

    #[test]
    fn empty_fields_are_omitted() {
        let image = Image {
            architecture: "arm64".into(),
            os: "linux".into(),
            config: ImageConfig {
                healthcheck: Some(Healthcheck {
                    test: vec!["NONE".into()],
                    ..Default::default()
                }),
                ..Default::default()
            },
            ..Default::default()
        };
        assert_eq!(
            String::from_utf8(image.to_json()).unwrap(),
            r#"{"architecture":"arm64","config":{"Healthcheck":{"Test":["NONE"]}},"os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#
        );
        let bare = Image::default();
        assert_eq!(
            String::from_utf8(bare.to_json()).unwrap(),
            r#"{"architecture":"","config":{},"os":"","rootfs":{"type":"layers","diff_ids":[]}}"#
        );
    }

    #[test]
    fn nulls_read_as_empty() {
        let text = r#"{"architecture":"amd64","os":"linux","config":{"Env":null,"Cmd":null,"ExposedPorts":null,"Volumes":null,"Labels":null,"Healthcheck":null},"rootfs":{"diff_ids":null},"history":null}"#;
        let image = Image::from_json(text.as_bytes()).unwrap();
        assert_eq!(image.config, ImageConfig::default());
        assert_eq!(image.rootfs, RootFs::default());
        assert!(image.history.is_empty());
    }

    #[test]
    fn huge_durations_saturate() {
        let hc = Healthcheck {
            interval: Duration::from_secs(u64::MAX),
            ..Default::default()
        };
        let text = serde_json::to_string(&hc).unwrap();
        assert_eq!(text, format!(r#"{{"Interval":{}}}"#, i64::MAX));
    }

    #[test]
    fn rejects_negative_durations() {
        let text = r#"{"config":{"Healthcheck":{"Interval":-1}}}"#;
        let err = Image::from_json(text.as_bytes()).unwrap_err();
        assert!(err.to_string().contains("negative duration"), "{err}");
    }
}
