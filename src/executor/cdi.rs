//! Container Device Interface devices (`RUN --device`), as BuildKit >= 0.20 gives them to a
//! step: the CDI spec files in the spec directories name devices `vendor.com/class=name`,
//! and a requested device's container edits (environment, device nodes, mounts, hooks,
//! groups) are applied to the step's runtime spec.

use std::collections::BTreeMap;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::{Value, json};

/// Where BuildKit looks for CDI specs by default (its `cdi.specDirs`); a later directory's
/// device replaces an earlier one's of the same name, as in the CDI cache.
pub const SPEC_DIRS: [&str; 3] = ["/etc/cdi", "/var/run/cdi", "/etc/buildkit/cdi"];

/// The annotation that lets a step use a device without `--allow device`.
const AUTO_ALLOW: &str = "org.mobyproject.buildkit.device.autoallow";
/// The annotation that names a device by a class rather than its CDI name.
const CLASS: &str = "org.mobyproject.buildkit.device.class";

/// Why a step's devices could not be given to it.
#[derive(Debug, thiserror::Error)]
pub enum CdiError {
    /// A spec directory or file could not be read (a missing directory is not an error).
    #[error("read CDI spec {path}")]
    Read {
        /// The directory or spec file.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// A spec file is not a CDI spec bud can read.
    #[error("invalid CDI spec {path}: {message}")]
    Invalid {
        /// The spec file.
        path: PathBuf,
        /// What is wrong with it (the parser's message, or the missing field).
        message: String,
    },
    /// A device the step requires (not `optional`) is in no spec.
    #[error("required device {0:?} is not registered")]
    Missing(String),
    /// The device exists but the build was not granted it (BuildKit's entitlement check).
    #[error("device {0} is requested by the build but not allowed (grant it with --allow device)")]
    NotAllowed(String),
    /// A device node's type or numbers could not be read from the host's node.
    #[error("device node {path} of device {device}")]
    Node {
        /// The device's CDI name.
        device: String,
        /// The node's path in the container.
        path: String,
        /// Why its host node could not be read.
        #[source]
        source: std::io::Error,
    },
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SpecFile {
    #[serde(default)]
    kind: String,
    #[serde(default, deserialize_with = "annotations")]
    annotations: BTreeMap<String, String>,
    #[serde(default)]
    devices: Vec<DeviceEntry>,
    #[serde(default)]
    container_edits: Edits,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct DeviceEntry {
    name: String,
    #[serde(default, deserialize_with = "annotations")]
    annotations: BTreeMap<String, String>,
    #[serde(default)]
    container_edits: Edits,
}

/// A CDI `containerEdits` object.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Edits {
    #[serde(default)]
    env: Vec<String>,
    #[serde(default)]
    device_nodes: Vec<DeviceNode>,
    #[serde(default)]
    mounts: Vec<CdiMount>,
    #[serde(default)]
    hooks: Vec<Hook>,
    #[serde(default)]
    additional_gids: Vec<u32>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
struct DeviceNode {
    path: String,
    host_path: Option<String>,
    #[serde(rename = "type")]
    typ: Option<String>,
    major: Option<i64>,
    minor: Option<i64>,
    file_mode: Option<u32>,
    permissions: Option<String>,
    uid: Option<u32>,
    gid: Option<u32>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
struct CdiMount {
    host_path: String,
    container_path: String,
    #[serde(default)]
    options: Vec<String>,
    #[serde(rename = "type")]
    typ: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
struct Hook {
    hook_name: String,
    path: String,
    #[serde(default)]
    args: Vec<String>,
    #[serde(default)]
    env: Vec<String>,
    timeout: Option<i64>,
}

/// Annotations, whose YAML values may be written unquoted (`autoallow: true`): a scalar is
/// read as its text, as the CDI library's YAML reader does for a string field.
fn annotations<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<BTreeMap<String, String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Scalar {
        Text(String),
        Bool(bool),
        Int(i64),
        Float(f64),
    }
    let map = Option::<BTreeMap<String, Scalar>>::deserialize(d)?.unwrap_or_default();
    Ok(map
        .into_iter()
        .map(|(k, v)| {
            let v = match v {
                Scalar::Text(s) => s,
                Scalar::Bool(b) => b.to_string(),
                Scalar::Int(i) => i.to_string(),
                Scalar::Float(f) => f.to_string(),
            };
            (k, v)
        })
        .collect())
}

/// One registered device: its qualified name, the edits of its spec then its own, and
/// whether a step may use it without `--allow device`.
#[derive(Debug, Clone)]
struct Registered {
    name: String,
    edits: Vec<Edits>,
    auto_allow: bool,
    class: Option<String>,
}

/// The devices of the CDI specs in a set of directories.
#[derive(Debug, Default)]
pub struct Registry {
    devices: Vec<Registered>,
}

/// A device a step asks for.
pub struct Request<'a> {
    /// A CDI name (`vendor.com/class=name`, `=*` for all of a kind, no `=` for the first),
    /// a class annotation's value, or a grant's alias.
    pub name: &'a str,
    /// Skip (with a warning) rather than fail when no spec has the device.
    pub optional: bool,
}

/// What resolving a step's requests gives: the edits to apply, and the optional devices
/// that are not there (to warn about).
#[derive(Debug, Default)]
pub struct Resolved {
    /// Each device's name and edits, in the order asked.
    pub edits: Vec<(String, Vec<Edits>)>,
    /// Optional devices no spec has, by the name asked (after alias resolution).
    pub skipped: Vec<String>,
}

impl Registry {
    /// Reads every `*.json`, `*.yaml` and `*.yml` spec in `dirs`, in name order; a later
    /// device replaces an earlier one of the same name. A missing directory is skipped.
    pub fn load(dirs: &[&Path]) -> Result<Self, CdiError> {
        let mut devices: Vec<Registered> = Vec::new();
        for dir in dirs {
            let entries = match std::fs::read_dir(dir) {
                Ok(entries) => entries,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(source) => {
                    return Err(CdiError::Read {
                        path: dir.to_path_buf(),
                        source,
                    });
                }
            };
            let mut paths: Vec<PathBuf> =
                entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
            paths.sort();
            for path in paths {
                let yaml = match path.extension().and_then(|e| e.to_str()) {
                    Some("json") => false,
                    Some("yaml" | "yml") => true,
                    _ => continue,
                };
                for device in read_spec(&path, yaml)? {
                    devices.retain(|d| d.name != device.name);
                    devices.push(device);
                }
            }
        }
        Ok(Self { devices })
    }

    /// The devices `request` names, as BuildKit's CDI manager finds them: the named one,
    /// every one of a kind (`=*`), the first of a kind (no `=`), else those whose class
    /// annotation is the name.
    fn find(&self, request: &str) -> Vec<&Registered> {
        let (kind, name) = request.split_once('=').unwrap_or((request, ""));
        let of_kind = |d: &&Registered| d.name.split_once('=').is_some_and(|(k, _)| k == kind);
        let mut found: Vec<&Registered> = if kind.contains('/') {
            match name {
                "" => self.devices.iter().filter(of_kind).take(1).collect(),
                "*" => self.devices.iter().filter(of_kind).collect(),
                _ => self.devices.iter().filter(|d| d.name == request).collect(),
            }
        } else {
            Vec::new()
        };
        if found.is_empty() {
            found = self
                .devices
                .iter()
                .filter(|d| d.class.as_deref() == Some(request))
                .collect();
        }
        found
    }

    /// The edits of the devices a step asks for; refuses a required device that is not
    /// registered and a device that is not allowed, as BuildKit's entitlement check does: a
    /// device is allowed by `--allow device`, by a grant naming it (`--allow device=NAME`),
    /// through a grant's alias (a request for the alias gets the granted device), or by its
    /// spec's auto-allow annotation.
    pub fn resolve(&self, requests: &[Request], grants: &Grants) -> Result<Resolved, CdiError> {
        let granted: Vec<&str> = grants
            .devices
            .iter()
            .filter(|g| g.alias.is_none())
            .flat_map(|g| self.find(&g.name))
            .map(|d| d.name.as_str())
            .collect();
        let mut resolved = Resolved::default();
        let mut seen = Vec::new();
        for request in requests {
            let aliased = grants
                .devices
                .iter()
                .find(|g| g.alias.as_deref() == Some(request.name));
            let name = aliased.map_or(request.name, |g| g.name.as_str());
            let found = self.find(name);
            if found.is_empty() {
                if !request.optional {
                    return Err(CdiError::Missing(name.to_owned()));
                }
                resolved.skipped.push(name.to_owned());
            }
            for device in found {
                if seen.contains(&device.name) {
                    continue;
                }
                let allowed = grants.all
                    || aliased.is_some()
                    || device.auto_allow
                    || granted.contains(&device.name.as_str());
                if !allowed {
                    return Err(CdiError::NotAllowed(device.name.clone()));
                }
                seen.push(device.name.clone());
                resolved
                    .edits
                    .push((device.name.clone(), device.edits.clone()));
            }
        }
        Ok(resolved)
    }
}

/// The `device` entitlements a build was granted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grants {
    /// `--allow device`: every device.
    pub all: bool,
    /// `--allow device=NAME[,alias=ALIAS]`.
    pub devices: Vec<Grant>,
}

/// One `--allow device=NAME[,alias=ALIAS]` grant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// The device request the grant allows (any form [`Request::name`] takes but an alias).
    pub name: String,
    /// A name a step may ask for instead; it gets `name`'s devices, allowed by the grant.
    pub alias: Option<String>,
}

impl Grants {
    /// The grants among the build's entitlements (`device`, `device=…`); the values are
    /// checked when the command line is read.
    pub fn from_entitlements(entitlements: &[String]) -> Self {
        let mut grants = Self::default();
        for e in entitlements {
            if e == "device" {
                grants.all = true;
            } else if let Some(Ok(grant)) = e.strip_prefix("device=").map(parse_grant) {
                grants.devices.push(grant);
            }
        }
        grants
    }
}

/// `NAME[,alias=ALIAS]`, the value of `--allow device=`, as BuildKit reads it.
pub fn parse_grant(value: &str) -> Result<Grant, String> {
    let mut fields = value.split(',');
    let name = fields.next().unwrap_or_default();
    if name.is_empty() {
        return Err(format!("device entitlement {value:?} names no device"));
    }
    let mut alias = None;
    for field in fields {
        match field.split_once('=') {
            Some(("alias", a)) if !a.is_empty() => alias = Some(a.to_owned()),
            Some((key, _)) if key != "alias" => {
                return Err(format!("unknown device config key {key:?}"));
            }
            _ => return Err(format!("invalid device config {field:?}")),
        }
    }
    Ok(Grant {
        name: name.to_owned(),
        alias,
    })
}

fn read_spec(path: &Path, yaml: bool) -> Result<Vec<Registered>, CdiError> {
    let invalid = |message: String| CdiError::Invalid {
        path: path.to_path_buf(),
        message,
    };
    let bytes = std::fs::read(path).map_err(|source| CdiError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let spec: SpecFile = if yaml {
        serde_yaml_ng::from_slice(&bytes).map_err(|e| invalid(e.to_string()))?
    } else {
        serde_json::from_slice(&bytes).map_err(|e| invalid(e.to_string()))?
    };
    let well_formed = spec
        .kind
        .split_once('/')
        .is_some_and(|(v, c)| !v.is_empty() && !c.is_empty() && !c.contains('/'));
    if !well_formed {
        return Err(invalid(format!(
            "kind {:?} is not vendor.com/class",
            spec.kind
        )));
    }
    spec.devices
        .iter()
        .map(|device| {
            if device.name.is_empty() || device.name.contains(['=', '/']) {
                return Err(invalid(format!("invalid device name {:?}", device.name)));
            }
            let mut annotations = spec.annotations.clone();
            annotations.extend(device.annotations.clone());
            Ok(Registered {
                name: format!("{}={}", spec.kind, device.name),
                edits: vec![spec.container_edits.clone(), device.container_edits.clone()],
                auto_allow: annotations
                    .get(AUTO_ALLOW)
                    .is_some_and(|v| crate::cli::parse_go_bool(v) == Some(true)),
                class: annotations.get(CLASS).cloned(),
            })
        })
        .collect()
}

/// Applies `edits` to a runtime spec (as JSON), as the CDI library does: variables replace
/// ones of the same name, device nodes are added with a cgroup rule allowing them, mounts
/// are added then ordered by depth, hooks are appended to their stage. A rootless step can
/// make no device node: the host's node is bound in its place (runc would bind one from the
/// same path on the host, which a node with another `hostPath` does not have).
pub fn apply(
    spec: &mut Value,
    devices: &[(String, Vec<Edits>)],
    rootless: bool,
) -> Result<(), CdiError> {
    for (device, e) in devices
        .iter()
        .flat_map(|(d, edits)| edits.iter().map(move |e| (d, e)))
    {
        for var in &e.env {
            let name = var.split_once('=').map_or(var.as_str(), |(n, _)| n);
            let env = array(&mut spec["process"]["env"]);
            env.retain(|v| {
                v.as_str()
                    .is_none_or(|s| s.split_once('=').map_or(s, |(n, _)| n) != name)
            });
            env.push(json!(var));
        }
        for node in &e.device_nodes {
            let (typ, major, minor, mode) =
                node_identity(node).map_err(|source| CdiError::Node {
                    device: device.clone(),
                    path: node.path.clone(),
                    source,
                })?;
            if rootless {
                let host = node.host_path.as_deref().unwrap_or(&node.path);
                let mounts = array(&mut spec["mounts"]);
                mounts.retain(|m| m["destination"] != json!(node.path));
                mounts.push(json!({
                    "destination": node.path,
                    "source": host,
                    "type": "bind",
                    "options": ["bind"],
                }));
                continue;
            }
            let mut dev = json!({"path": node.path, "type": typ, "major": major, "minor": minor});
            if let Some(mode) = node.file_mode.or(mode) {
                dev["fileMode"] = json!(mode);
            }
            if let Some(uid) = node.uid {
                dev["uid"] = json!(uid);
            }
            if let Some(gid) = node.gid {
                dev["gid"] = json!(gid);
            }
            let devices = array(&mut spec["linux"]["devices"]);
            devices.retain(|d| d["path"] != json!(node.path));
            devices.push(dev);
            if typ != "p" && spec["linux"].get("resources").is_some() {
                let access = node.permissions.clone().unwrap_or_else(|| "rwm".to_owned());
                array(&mut spec["linux"]["resources"]["devices"]).push(
                    json!({"allow": true, "type": typ, "major": major, "minor": minor, "access": access}),
                );
            }
        }
        for m in &e.mounts {
            let mut mount = json!({
                "destination": m.container_path,
                "source": m.host_path,
                "options": m.options,
            });
            if let Some(typ) = &m.typ {
                mount["type"] = json!(typ);
            }
            let mounts = array(&mut spec["mounts"]);
            mounts.retain(|x| x["destination"] != json!(m.container_path));
            mounts.push(mount);
        }
        for hook in &e.hooks {
            let mut h = json!({"path": hook.path});
            if !hook.args.is_empty() {
                h["args"] = json!(hook.args);
            }
            if !hook.env.is_empty() {
                h["env"] = json!(hook.env);
            }
            if let Some(t) = hook.timeout {
                h["timeout"] = json!(t);
            }
            array(&mut spec["hooks"][hook.hook_name.as_str()]).push(h);
        }
        for gid in &e.additional_gids {
            let gids = array(&mut spec["process"]["user"]["additionalGids"]);
            if !gids.contains(&json!(gid)) {
                gids.push(json!(gid));
            }
        }
    }
    // As the CDI library: a mount lands after the ones its destination is under.
    if let Some(mounts) = spec["mounts"].as_array_mut() {
        mounts.sort_by_key(|m| {
            m["destination"]
                .as_str()
                .map_or(0, |d| Path::new(d).components().count())
        });
    }
    Ok(())
}

/// The array at `value`, made one if it is null.
fn array(value: &mut Value) -> &mut Vec<Value> {
    if !value.is_array() {
        *value = Value::Array(Vec::new());
    }
    match value {
        Value::Array(a) => a,
        _ => unreachable!("made an array above"),
    }
}

/// The node's type, major and minor numbers, from the spec or else from the host's node
/// (`hostPath`, else `path`), and the host node's mode.
fn node_identity(node: &DeviceNode) -> std::io::Result<(String, i64, i64, Option<u32>)> {
    if let (Some(typ), Some(major), Some(minor)) = (&node.typ, node.major, node.minor) {
        return Ok((typ.clone(), major, minor, None));
    }
    let host = node.host_path.as_deref().unwrap_or(&node.path);
    let meta = std::fs::metadata(host)?;
    let ft = meta.file_type();
    let typ = if ft.is_char_device() {
        "c"
    } else if ft.is_block_device() {
        "b"
    } else if ft.is_fifo() {
        "p"
    } else {
        return Err(std::io::Error::other(format!(
            "{host} is not a device node"
        )));
    };
    let rdev = meta.rdev();
    Ok((
        node.typ.clone().unwrap_or_else(|| typ.to_owned()),
        node.major.unwrap_or(rustix::fs::major(rdev) as i64),
        node.minor.unwrap_or(rustix::fs::minor(rdev) as i64),
        Some(meta.mode() & 0o777),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const YAML: &str = r#"
cdiVersion: "0.6.0"
kind: "vendor1.com/device"
annotations:
  org.mobyproject.buildkit.device.autoallow: true
containerEdits:
  env:
  - SHARED=spec
devices:
- name: foo
  containerEdits:
    env:
    - FOO=injected
- name: bar
  annotations:
    org.mobyproject.buildkit.device.class: gpu
  containerEdits:
    env:
    - BAR=injected
"#;

    const JSON: &str = r#"{
  "cdiVersion": "0.6.0",
  "kind": "vendor2.com/device",
  "devices": [{"name": "baz", "containerEdits": {"env": ["BAZ=1"]}}]
}"#;

    fn registry() -> (tempfile::TempDir, Registry) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("vendor1.yaml"), YAML).unwrap();
        std::fs::write(dir.path().join("vendor2.json"), JSON).unwrap();
        std::fs::write(dir.path().join("README"), "not a spec").unwrap();
        let registry = Registry::load(&[dir.path(), Path::new("/nonexistent/cdi")]).unwrap();
        (dir, registry)
    }

    fn names(requests: &[(&str, bool)], allow_all: bool) -> Result<Vec<String>, CdiError> {
        let grants = Grants {
            all: allow_all,
            devices: Vec::new(),
        };
        names_granted(requests, &grants)
    }

    fn names_granted(requests: &[(&str, bool)], grants: &Grants) -> Result<Vec<String>, CdiError> {
        let (_dir, registry) = registry();
        let requests: Vec<Request> = requests
            .iter()
            .map(|&(name, optional)| Request { name, optional })
            .collect();
        let resolved = registry.resolve(&requests, grants)?;
        Ok(resolved.edits.into_iter().map(|(n, _)| n).collect())
    }

    #[test]
    fn requests_find_devices_as_buildkit_does() {
        let all = |r: &[(&str, bool)]| names(r, true).unwrap();
        assert_eq!(
            all(&[("vendor1.com/device=foo", false)]),
            ["vendor1.com/device=foo"]
        );
        assert_eq!(
            all(&[("vendor1.com/device=*", false)]),
            ["vendor1.com/device=foo", "vendor1.com/device=bar"]
        );
        // A kind alone is its first device.
        assert_eq!(
            all(&[("vendor1.com/device", false)]),
            ["vendor1.com/device=foo"]
        );
        // A class annotation names a device too.
        assert_eq!(all(&[("gpu", false)]), ["vendor1.com/device=bar"]);
        // Asked twice, given once.
        assert_eq!(
            all(&[
                ("vendor1.com/device=foo", false),
                ("vendor1.com/device", false)
            ]),
            ["vendor1.com/device=foo"]
        );
        assert_eq!(
            all(&[("vendor2.com/device=baz", false)]),
            ["vendor2.com/device=baz"]
        );
    }

    #[test]
    fn missing_devices_fail_when_required_and_are_skipped_when_optional() {
        let (_dir, registry) = registry();
        let optional = [Request {
            name: "/dev/kvm",
            optional: true,
        }];
        let resolved = registry.resolve(&optional, &Grants::default()).unwrap();
        assert!(resolved.edits.is_empty());
        assert_eq!(resolved.skipped, ["/dev/kvm"]);

        let err = names(&[("vendor3.com/device=x", false)], true).unwrap_err();
        assert_eq!(
            err.to_string(),
            "required device \"vendor3.com/device=x\" is not registered"
        );
    }

    #[test]
    fn devices_without_auto_allow_need_the_entitlement() {
        // vendor1's spec auto-allows its devices (a YAML bool), vendor2's does not.
        assert!(names(&[("vendor1.com/device=foo", false)], false).is_ok());
        let err = names(&[("vendor2.com/device=baz", false)], false).unwrap_err();
        assert!(err.to_string().contains("--allow device"), "{err}");
        assert!(names(&[("vendor2.com/device=baz", false)], true).is_ok());
    }

    #[test]
    fn device_grants_allow_the_devices_they_name_or_alias() {
        let grants = |values: &[&str]| {
            let entitlements: Vec<String> = values.iter().map(|v| format!("device={v}")).collect();
            Grants::from_entitlements(&entitlements)
        };
        // A grant of the kind allows its devices, and only those.
        let kind = grants(&["vendor2.com/device"]);
        assert!(names_granted(&[("vendor2.com/device=baz", false)], &kind).is_ok());
        let other = grants(&["vendor3.com/device"]);
        assert!(names_granted(&[("vendor2.com/device=baz", false)], &other).is_err());
        // An alias: the step asks for `mygpu` and gets the granted device.
        let alias = grants(&["vendor2.com/device=baz,alias=mygpu"]);
        assert_eq!(
            names_granted(&[("mygpu", false)], &alias).unwrap(),
            ["vendor2.com/device=baz"]
        );

        assert_eq!(
            parse_grant("a.com/b=c,alias=x"),
            Ok(Grant {
                name: "a.com/b=c".into(),
                alias: Some("x".into())
            })
        );
        for bad in ["", "a.com/b,size=1", "a.com/b,alias"] {
            assert!(parse_grant(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn bad_specs_are_refused_naming_the_file() {
        for (file, text, says) in [
            ("a.json", "{", "a.json"),
            (
                "b.json",
                r#"{"kind": "nokind", "devices": []}"#,
                "not vendor.com/class",
            ),
            (
                "c.yaml",
                "kind: v.com/c\ndevices:\n- name: a=b\n",
                "invalid device name \"a=b\"",
            ),
        ] {
            let dir = tempfile::tempdir().unwrap();
            std::fs::write(dir.path().join(file), text).unwrap();
            let err = Registry::load(&[dir.path()]).unwrap_err().to_string();
            assert!(err.contains(file) && err.contains(says), "{err}");
        }
    }

    #[test]
    fn edits_are_applied_to_the_runtime_spec() {
        let edits: Edits = serde_json::from_value(json!({
            "env": ["FOO=new", "BAR=1"],
            "deviceNodes": [
                {"path": "/dev/cdi-null", "hostPath": "/dev/null"},
                {"path": "/dev/fake", "type": "c", "major": 240, "minor": 7, "permissions": "rw"}
            ],
            "mounts": [{"hostPath": "/opt/lib", "containerPath": "/usr/lib/x", "options": ["ro", "bind"]}],
            "hooks": [{"hookName": "createContainer", "path": "/bin/hook", "args": ["hook", "x"]}],
            "additionalGids": [44]
        }))
        .unwrap();
        let mut spec = json!({
            "process": {"env": ["FOO=old", "PATH=/bin"], "user": {"uid": 0, "gid": 0}},
            "mounts": [{"destination": "/usr/lib/x/deeper", "source": "a"}, {"destination": "/proc", "source": "proc"}],
            "linux": {"resources": {"devices": [{"allow": false, "access": "rwm"}]}}
        });
        apply(
            &mut spec,
            &[("v.com/c=d".into(), vec![edits.clone()])],
            false,
        )
        .unwrap();
        assert_eq!(
            spec["process"]["env"],
            json!(["PATH=/bin", "FOO=new", "BAR=1"])
        );
        let null = std::fs::metadata("/dev/null").unwrap().rdev();
        assert_eq!(
            spec["linux"]["devices"],
            json!([
                {"path": "/dev/cdi-null", "type": "c", "major": rustix::fs::major(null),
                 "minor": rustix::fs::minor(null), "fileMode": 0o666},
                {"path": "/dev/fake", "type": "c", "major": 240, "minor": 7}
            ])
        );
        assert_eq!(
            spec["linux"]["resources"]["devices"][2],
            json!({"allow": true, "type": "c", "major": 240, "minor": 7, "access": "rw"})
        );
        let destinations: Vec<&str> = spec["mounts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["destination"].as_str().unwrap())
            .collect();
        assert_eq!(destinations, ["/proc", "/usr/lib/x", "/usr/lib/x/deeper"]);
        assert_eq!(
            spec["hooks"]["createContainer"],
            json!([{"path": "/bin/hook", "args": ["hook", "x"]}])
        );
        assert_eq!(spec["process"]["user"]["additionalGids"], json!([44]));

        // Rootless: the host's nodes bound in place, no device entries.
        let mut spec = json!({"process": {"env": []}});
        apply(&mut spec, &[("v.com/c=d".into(), vec![edits])], true).unwrap();
        assert!(spec["linux"]["devices"].is_null());
        let bound: Vec<(&str, &str)> = spec["mounts"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["type"] == "bind" && m["options"] == json!(["bind"]))
            .map(|m| {
                (
                    m["source"].as_str().unwrap(),
                    m["destination"].as_str().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            bound,
            [("/dev/null", "/dev/cdi-null"), ("/dev/fake", "/dev/fake")]
        );
    }

    #[test]
    fn a_node_that_is_not_a_device_is_refused() {
        let edits: Edits = serde_json::from_value(
            json!({"deviceNodes": [{"path": "/etc/hostname-like", "hostPath": "/"}]}),
        )
        .unwrap();
        let err = apply(&mut json!({}), &[("v.com/c=d".into(), vec![edits])], false).unwrap_err();
        assert!(err.to_string().contains("v.com/c=d"), "{err}");
        assert!(
            std::error::Error::source(&err)
                .unwrap()
                .to_string()
                .contains("not a device node")
        );
    }
}
