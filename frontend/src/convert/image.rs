//! The image config a build produces, edited the way BuildKit's dispatchers edit
//! `dockerspec.DockerOCIImage`. Kept as JSON so that fields bud does not know about
//! pass through from the base image untouched.

use std::collections::HashMap;

use serde_json::{Map, Value, json};

use super::platform::Platform;

/// `history[].comment` of every entry a Dockerfile adds.
const HISTORY_COMMENT: &str = "buildkit.dockerfile.v0";

/// `PATH` when the base image sets none (BuildKit's `system.DefaultPathEnv` for Unix).
pub(crate) const DEFAULT_PATH: &str =
    "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// An image config under construction.
#[derive(Debug, Clone)]
pub(crate) struct ImageConfig {
    json: Map<String, Value>,
    /// Where each variable of `config.Env` is, by name, once an ENV instruction needed it:
    /// an ENV then costs the same however many variables came before. Dropped whenever
    /// `Env` is changed another way.
    env_index: Option<HashMap<String, usize>>,
    /// How many history entries came from the base image: the ones after them are this
    /// build's, the only ones `SOURCE_DATE_EPOCH` dates (moby/buildkit#4614).
    base_history: usize,
}

impl PartialEq for ImageConfig {
    fn eq(&self, other: &Self) -> bool {
        self.json == other.json
    }
}

impl ImageConfig {
    /// The config of `FROM scratch`.
    pub(crate) fn empty(platform: &Platform) -> Self {
        let mut img = Map::new();
        img.insert("architecture".into(), json!(platform.architecture));
        img.insert("os".into(), json!(platform.os));
        if !platform.variant.is_empty() {
            img.insert("variant".into(), json!(platform.variant));
        }
        img.insert("rootfs".into(), json!({"type": "layers"}));
        img.insert(
            "config".into(),
            json!({"Env": [format!("PATH={DEFAULT_PATH}")], "WorkingDir": "/"}),
        );
        Self::new(img)
    }

    /// A base image's config; a non-object is treated as an empty config.
    pub(crate) fn from_json(value: Value) -> Self {
        let mut map = match value {
            Value::Object(map) => map,
            _ => Map::new(),
        };
        // BuildKit clears the creation time so the result gets its own.
        map.remove("created");
        let base_history = map
            .get("history")
            .and_then(Value::as_array)
            .map_or(0, Vec::len);
        Self {
            base_history,
            ..Self::new(map)
        }
    }

    fn new(json: Map<String, Value>) -> Self {
        Self {
            json,
            env_index: None,
            base_history: 0,
        }
    }

    /// The finished config, as the exporter writes it.
    pub(crate) fn into_json(self) -> Value {
        Value::Object(self.json)
    }

    pub(crate) fn as_json(&self) -> &Map<String, Value> {
        &self.json
    }

    fn config(&self) -> Option<&Map<String, Value>> {
        self.json.get("config").and_then(Value::as_object)
    }

    fn config_mut(&mut self) -> &mut Map<String, Value> {
        config_in(&mut self.json)
    }

    fn strings(&self, key: &str) -> Vec<String> {
        self.config()
            .and_then(|c| c.get(key))
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    }

    fn string(&self, key: &str) -> String {
        self.config()
            .and_then(|c| c.get(key))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    }

    /// Sets a key of the runtime `config` object (`Cmd`, `User`…).
    pub(crate) fn set(&mut self, key: &str, value: Value) {
        if key == "Env" {
            self.env_index = None;
        }
        self.config_mut().insert(key.to_owned(), value);
    }

    pub(crate) fn remove(&mut self, key: &str) {
        if key == "Env" {
            self.env_index = None;
        }
        self.config_mut().remove(key);
    }

    pub(crate) fn env(&self) -> Vec<String> {
        self.strings("Env")
    }

    /// Replaces `key`'s entry in place or appends it, as BuildKit's `addEnv`.
    pub(crate) fn add_env(&mut self, key: &str, value: &str) {
        let entry = Value::String(format!("{key}={value}"));
        // Taken out and put back in the same place, so that the key keeps its position.
        let slot = config_in(&mut self.json)
            .entry("Env")
            .or_insert(Value::Null);
        let (mut env, mut index) = match (std::mem::take(slot), self.env_index.take()) {
            (Value::Array(env), Some(index)) => (env, index),
            (other, _) => indexed_env(other),
        };
        match index.get(key) {
            Some(&at) => env[at] = entry,
            None => {
                index.insert(key.to_owned(), env.len());
                env.push(entry);
            }
        }
        *slot = Value::Array(env);
        self.env_index = Some(index);
    }

    pub(crate) fn shell(&self) -> Vec<String> {
        self.strings("Shell")
    }

    pub(crate) fn onbuild(&self) -> Vec<String> {
        self.strings("OnBuild")
    }

    pub(crate) fn working_dir(&self) -> String {
        self.string("WorkingDir")
    }

    pub(crate) fn user(&self) -> String {
        self.string("User")
    }

    pub(crate) fn os(&self) -> String {
        self.json
            .get("os")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    }

    /// Whether the image has no layers (BuildKit then starts from scratch).
    pub(crate) fn has_no_layers(&self) -> bool {
        let diff_ids = self
            .json
            .get("rootfs")
            .and_then(|r| r.get("diff_ids"))
            .and_then(Value::as_array)
            .map_or(0, Vec::len);
        if diff_ids > 0 {
            return false;
        }
        // Schema 1 images have no diff IDs: their history says whether layers exist.
        let history = self.json.get("history").and_then(Value::as_array);
        history.is_none_or(|h| {
            h.iter()
                .all(|e| e.get("empty_layer").and_then(Value::as_bool) == Some(true))
        })
    }

    /// Adds or replaces labels.
    pub(crate) fn add_labels<'a>(&mut self, labels: impl IntoIterator<Item = (&'a str, &'a str)>) {
        let config = self.config_mut();
        let entry = config
            .entry("Labels")
            .or_insert_with(|| Value::Object(Map::new()));
        if !entry.is_object() {
            *entry = Value::Object(Map::new());
        }
        if let Value::Object(map) = entry {
            for (k, v) in labels {
                map.insert(k.to_owned(), json!(v));
            }
        }
    }

    /// Adds keys to a set-like object (`ExposedPorts`, `Volumes`).
    pub(crate) fn add_set_members(&mut self, key: &str, members: &[String]) {
        let config = self.config_mut();
        let entry = config
            .entry(key)
            .or_insert_with(|| Value::Object(Map::new()));
        if !entry.is_object() {
            *entry = Value::Object(Map::new());
        }
        if let Value::Object(map) = entry {
            for m in members {
                map.insert(m.clone(), json!({}));
            }
        }
    }

    /// Sets a top-level key of the image (`config`, `os`…), beside `config`'s own keys.
    pub(crate) fn set_top(&mut self, key: &str, value: Value) {
        if key == "config" {
            self.env_index = None;
        }
        self.json.insert(key.to_owned(), value);
    }

    /// Dates the image and the history entries this build added (not the base image's),
    /// as BuildKit does with `SOURCE_DATE_EPOCH`.
    pub(crate) fn stamp_created(&mut self, created: &str) {
        if let Some(Value::Array(history)) = self.json.get_mut("history") {
            for entry in history.iter_mut().skip(self.base_history) {
                if let Value::Object(entry) = entry {
                    entry.insert("created".into(), json!(created));
                }
            }
        }
        self.json.insert("created".into(), json!(created));
    }

    pub(crate) fn remove_top(&mut self, key: &str) {
        self.json.remove(key);
    }

    /// Adds a history entry; `with_layer` entries are the ones that change the filesystem.
    pub(crate) fn commit(&mut self, created_by: String, with_layer: bool) {
        let mut entry = Map::new();
        entry.insert("created_by".into(), json!(created_by));
        entry.insert("comment".into(), json!(HISTORY_COMMENT));
        if !with_layer {
            entry.insert("empty_layer".into(), json!(true));
        }
        let history = self.json.entry("history").or_insert_with(|| json!([]));
        if !history.is_array() {
            *history = json!([]);
        }
        if let Value::Array(list) = history {
            list.push(Value::Object(entry));
        }
    }
}

/// The `config` object of an image config, made an empty one if it is missing or not one.
fn config_in(json: &mut Map<String, Value>) -> &mut Map<String, Value> {
    let entry = json
        .entry("config")
        .or_insert_with(|| Value::Object(Map::new()));
    if !entry.is_object() {
        *entry = Value::Object(Map::new());
    }
    match entry {
        Value::Object(map) => map,
        _ => unreachable!("replaced by an object above"),
    }
}

/// `Env`'s string entries (others go, as in BuildKit's `[]string`) and where each name
/// first appears.
fn indexed_env(env: Value) -> (Vec<Value>, HashMap<String, usize>) {
    let entries: Vec<Value> = match env {
        Value::Array(entries) => entries.into_iter().filter(Value::is_string).collect(),
        _ => Vec::new(),
    };
    let mut index = HashMap::with_capacity(entries.len());
    for (at, e) in entries.iter().enumerate() {
        let e = e.as_str().unwrap_or_default();
        let name = e.split_once('=').map_or(e, |(k, _)| k);
        index.entry(name.to_owned()).or_insert(at);
    }
    (entries, index)
}
