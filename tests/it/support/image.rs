//! What a daemon says about a built image: the config fields a Dockerfile sets, the history,
//! and the filesystem a container of it starts with. Each daemon has its own image store, so
//! every question goes to the daemon that holds the image, through its own client.

use std::process::Output;

use serde_json::Value;

use super::listing::{self, Listing};
use super::{Docker28, docker};

/// The fields of the image config that Dockerfile instructions decide.
pub const CONFIG_FIELDS: &[&str] = &[
    "Env",
    "Cmd",
    "Entrypoint",
    "WorkingDir",
    "User",
    "Labels",
    "ExposedPorts",
    "Volumes",
    "Healthcheck",
    "StopSignal",
    "Shell",
    "OnBuild",
];

/// Which image store an image is in: Docker 20.10's (the default socket, where bud's images
/// go too) or Docker 28.5's.
#[derive(Clone, Copy)]
pub enum Daemon<'a> {
    Docker20,
    Docker28(&'a Docker28),
}

impl Daemon<'_> {
    fn client(&self, args: &[&str]) -> Output {
        match self {
            Daemon::Docker20 => docker(args),
            Daemon::Docker28(d) => d.run(args),
        }
    }

    fn run(&self, args: &[&str]) -> Result<Vec<u8>, String> {
        let out = self.client(args);
        if out.status.success() {
            Ok(out.stdout)
        } else {
            Err(format!(
                "docker {} failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    }

    pub fn remove(&self, tags: &[&str]) {
        let mut args = vec!["image", "rm", "-f"];
        args.extend_from_slice(tags);
        let _ = self.client(&args);
    }
}

/// What is compared of an image.
#[derive(Debug)]
pub struct Image {
    /// The config fields, with an absent field and `null` (or an empty list or map, which
    /// Docker writes for some fields and not others) read as the same thing.
    pub config: Vec<(&'static str, Value)>,
    /// `created_by` of each history entry, newest first.
    pub history: Vec<String>,
    /// How many layers with content the image has (see [`layer_count`]).
    pub layers: usize,
    /// The tree `docker export` of a fresh container gives.
    pub filesystem: Listing,
}

impl Image {
    pub fn read(daemon: Daemon<'_>, tag: &str) -> Result<Image, String> {
        Ok(Image {
            config: config(daemon, tag)?,
            history: history(daemon, tag)?,
            layers: layer_count(daemon, tag)?,
            filesystem: filesystem(daemon, tag)?,
        })
    }
}

fn config(daemon: Daemon<'_>, tag: &str) -> Result<Vec<(&'static str, Value)>, String> {
    let inspected = || -> Result<Value, String> {
        let raw = daemon.run(&["image", "inspect", "--format", "{{json .Config}}", tag])?;
        serde_json::from_slice(&raw).map_err(|e| format!("config of {tag}: {e}"))
    };
    let config = match daemon {
        // Docker 20.10's API drops the config fields it predates (Healthcheck.StartInterval):
        // read the image's own config instead, but for an image without layers, which it
        // cannot save.
        Daemon::Docker20 => match saved_config(daemon, tag) {
            Ok(config) => config,
            Err(e) if e.contains("empty export") => inspected()?,
            Err(e) => return Err(e),
        },
        Daemon::Docker28(_) => inspected()?,
    };
    Ok(CONFIG_FIELDS
        .iter()
        .map(|&field| {
            let value = match config.get(field) {
                Some(Value::Array(a)) if a.is_empty() => Value::Null,
                Some(Value::Object(o)) if o.is_empty() => Value::Null,
                Some(Value::String(s)) if s.is_empty() => Value::Null,
                Some(v) => v.clone(),
                None => Value::Null,
            };
            (field, value)
        })
        .collect())
}

/// The `config` of the image config blob in `docker save`'s archive.
fn saved_config(daemon: Daemon<'_>, tag: &str) -> Result<Value, String> {
    let archive = daemon.run(&["save", tag])?;
    let bad = |e: &dyn std::fmt::Display| format!("docker save {tag}: {e}");
    let mut files = std::collections::HashMap::new();
    let mut entries = tar::Archive::new(archive.as_slice());
    for entry in entries.entries().map_err(|e| bad(&e))? {
        let mut entry = entry.map_err(|e| bad(&e))?;
        let path = entry
            .path()
            .map_err(|e| bad(&e))?
            .to_string_lossy()
            .into_owned();
        if path.ends_with(".json") {
            let mut data = Vec::new();
            std::io::Read::read_to_end(&mut entry, &mut data).map_err(|e| bad(&e))?;
            files.insert(path, data);
        }
    }
    let manifest: Value = files
        .get("manifest.json")
        .ok_or_else(|| bad(&"no manifest.json"))
        .and_then(|m| serde_json::from_slice(m).map_err(|e| bad(&e)))?;
    let config_path = manifest[0]["Config"]
        .as_str()
        .ok_or_else(|| bad(&"no Config in manifest.json"))?;
    let image: Value = files
        .get(config_path)
        .ok_or_else(|| bad(&format!("no {config_path}")))
        .and_then(|c| serde_json::from_slice(c).map_err(|e| bad(&e)))?;
    Ok(image["config"].clone())
}

fn history(daemon: Daemon<'_>, tag: &str) -> Result<Vec<String>, String> {
    let raw = daemon.run(&["history", "--no-trunc", "--format", "{{.CreatedBy}}", tag])?;
    Ok(String::from_utf8_lossy(&raw)
        .lines()
        .map(str::to_string)
        .collect())
}

/// The diff ID of a layer with nothing in it (an end-of-archive tar).
const EMPTY_LAYER: &str = "sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef";

/// How many layers with content the image has. Docker's exporter keeps the layers of steps
/// that changed nothing where BuildKit's own (which bud follows) leaves them out and marks
/// the history entry empty, so those are not counted. Docker's per-layer sizes are not
/// compared either: it counts them differently for layers it built and layers it loaded.
fn layer_count(daemon: Daemon<'_>, tag: &str) -> Result<usize, String> {
    let raw = daemon.run(&[
        "image",
        "inspect",
        "--format",
        "{{json .RootFS.Layers}}",
        tag,
    ])?;
    let layers: Option<Vec<String>> =
        serde_json::from_slice(&raw).map_err(|e| format!("layers of {tag}: {e}"))?;
    Ok(layers
        .unwrap_or_default()
        .iter()
        .filter(|l| *l != EMPTY_LAYER)
        .count())
}

fn filesystem(daemon: Daemon<'_>, tag: &str) -> Result<Listing, String> {
    // The command is never run; it only lets images without Cmd make a container.
    let id = daemon.run(&["create", tag, "/bud-diff-never-run"])?;
    let id = String::from_utf8_lossy(&id).trim().to_string();
    let exported = daemon.run(&["export", &id]);
    let _ = daemon.run(&["rm", &id]);
    listing::from_tar(&exported?).map_err(|e| format!("export of {tag}: {e}"))
}
