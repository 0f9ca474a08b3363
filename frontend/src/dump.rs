//! `bud debug dump-llb`: a Definition as `buildctl debug dump-llb` shows it.
//!
//! JSON: one object per op, one per line: `{"Op": …, "Digest": …, "OpMetadata": …}`, field
//! names as in `ops.proto`, zero values left out (as Go's `omitempty` does), enums by name;
//! an op the source map locates also has `Locations` (the Dockerfile lines it comes from).
//! Dot: a Graphviz digraph with an edge from each input to the op that reads it.

use std::fmt::Write;

use bud_proto::pb::{self, file_action, op, user_opt};
use prost::Message;
use serde_json::{Map, Value, json};
use thiserror::Error;

use crate::llb::digest_of;

/// A definition whose ops cannot be read.
#[derive(Debug, Error)]
#[error("op {index} of the definition cannot be decoded")]
pub struct DumpError {
    /// The op's position in the definition.
    pub index: usize,
    /// Why its bytes are not an op.
    #[source]
    pub source: prost::DecodeError,
}

/// One op of a definition, decoded.
#[derive(Debug, Clone)]
pub struct DumpedOp {
    /// `sha256:…` of the op's bytes, as the definition's edges name it.
    pub digest: String,
    /// The op itself.
    pub op: pb::Op,
    /// What the definition says about the op (description, caps, cache options).
    pub metadata: Option<pb::OpMetadata>,
}

/// Decodes every op, in definition order.
pub fn decode(def: &pb::Definition) -> Result<Vec<DumpedOp>, DumpError> {
    def.def
        .iter()
        .enumerate()
        .map(|(index, bytes)| {
            let op =
                pb::Op::decode(bytes.as_slice()).map_err(|source| DumpError { index, source })?;
            let digest = digest_of(bytes);
            Ok(DumpedOp {
                metadata: def.metadata.get(&digest).cloned(),
                digest,
                op,
            })
        })
        .collect()
}

/// JSON lines, one per op.
pub fn to_json_lines(def: &pb::Definition) -> Result<String, DumpError> {
    let mut out = String::new();
    for d in decode(def)? {
        let mut obj = Map::new();
        obj.insert("Op".into(), op_json(&d.op));
        obj.insert("Digest".into(), json!(d.digest));
        obj.insert(
            "OpMetadata".into(),
            d.metadata.as_ref().map_or(json!({}), metadata_json),
        );
        if let Some(locations) = def
            .source
            .as_ref()
            .and_then(|source| locations_json(source, &d.digest))
        {
            obj.insert("Locations".into(), locations);
        }
        out.push_str(&Value::Object(obj).to_string());
        out.push('\n');
    }
    Ok(out)
}

/// Where the source map says the op comes from: `pb.Location`s (proto field names), each
/// with the file name of the source it points into; `None` when it has none.
fn locations_json(source: &pb::Source, digest: &str) -> Option<Value> {
    let locations = &source.locations.get(digest)?.locations;
    let position = |p: Option<&pb::Position>| {
        p.map(|p| {
            Obj::default()
                .i("line", p.line.into())
                .i("character", p.character.into())
                .done()
        })
    };
    let list = locations
        .iter()
        .map(|l| {
            let filename = usize::try_from(l.source_index)
                .ok()
                .and_then(|i| source.infos.get(i))
                .map_or("", |info| info.filename.as_str());
            let ranges = l
                .ranges
                .iter()
                .map(|r| {
                    Obj::default()
                        .v("start", position(r.start.as_ref()))
                        .v("end", position(r.end.as_ref()))
                        .done()
                })
                .collect();
            Obj::default()
                .i("sourceIndex", l.source_index.into())
                .s("filename", filename)
                .arr("ranges", ranges)
                .done()
        })
        .collect();
    Some(Value::Array(list))
}

/// A Graphviz digraph.
pub fn to_dot(def: &pb::Definition) -> Result<String, DumpError> {
    let mut out = String::from("digraph {\n");
    for d in decode(def)? {
        let (label, shape) = match &d.op.op {
            Some(op::Op::Source(s)) => (s.identifier.clone(), "ellipse"),
            Some(op::Op::Exec(e)) => (
                e.meta
                    .as_ref()
                    .map(|m| m.args.join(" "))
                    .unwrap_or_default(),
                "box",
            ),
            Some(op::Op::File(_)) => ("FileOp".to_owned(), "note"),
            Some(op::Op::Merge(_)) => ("MergeOp".to_owned(), "invtrapezium"),
            Some(op::Op::Diff(_)) => ("DiffOp".to_owned(), "trapezium"),
            Some(op::Op::Build(_)) => ("BuildOp".to_owned(), "box3d"),
            Some(op::Op::Passthrough(_)) => ("PassthroughOp".to_owned(), "box"),
            None => ("terminal".to_owned(), "plaintext"),
        };
        let _ = writeln!(out, "  {:?} [label={:?} shape={shape:?}];", d.digest, label);
        for input in &d.op.inputs {
            let _ = writeln!(
                out,
                "  {:?} -> {:?} [label=\"{}\"];",
                input.digest, d.digest, input.index
            );
        }
    }
    out.push_str("}\n");
    Ok(out)
}

/// An object builder that leaves zero values out.
#[derive(Default)]
struct Obj(Map<String, Value>);

impl Obj {
    fn s(mut self, k: &str, v: &str) -> Self {
        if !v.is_empty() {
            self.0.insert(k.into(), json!(v));
        }
        self
    }
    fn i(mut self, k: &str, v: i64) -> Self {
        if v != 0 {
            self.0.insert(k.into(), json!(v));
        }
        self
    }
    fn b(mut self, k: &str, v: bool) -> Self {
        if v {
            self.0.insert(k.into(), json!(true));
        }
        self
    }
    fn list(mut self, k: &str, v: &[String]) -> Self {
        if !v.is_empty() {
            self.0.insert(k.into(), json!(v));
        }
        self
    }
    fn v(mut self, k: &str, v: Option<Value>) -> Self {
        if let Some(v) = v {
            self.0.insert(k.into(), v);
        }
        self
    }
    fn arr(self, k: &str, v: Vec<Value>) -> Self {
        let v = (!v.is_empty()).then_some(Value::Array(v));
        self.v(k, v)
    }
    fn done(self) -> Value {
        Value::Object(self.0)
    }
}

/// An op as JSON, field names as in `ops.proto`, zero values left out.
pub fn op_json(op: &pb::Op) -> Value {
    let inputs = op
        .inputs
        .iter()
        .map(|i| {
            Obj::default()
                .s("digest", &i.digest)
                .i("index", i.index)
                .done()
        })
        .collect();
    let body = op.op.as_ref().map(|o| match o {
        op::Op::Exec(e) => json!({"exec": exec_json(e)}),
        op::Op::Source(s) => json!({"source": Obj::default()
            .s("identifier", &s.identifier)
            .v("attrs", (!s.attrs.is_empty()).then(|| json!(s.attrs)))
            .done()}),
        op::Op::File(f) => json!({"file": Obj::default()
            .arr("actions", f.actions.iter().map(file_action_json).collect())
            .done()}),
        op::Op::Merge(m) => json!({"merge": Obj::default()
            .arr("inputs", m.inputs.iter().map(|i| Obj::default().i("input", i.input).done()).collect())
            .done()}),
        op::Op::Diff(d) => json!({"diff": Obj::default()
            .v("lower", d.lower.as_ref().map(|l| Obj::default().i("input", l.input).done()))
            .v("upper", d.upper.as_ref().map(|u| Obj::default().i("input", u.input).done()))
            .done()}),
        op::Op::Build(b) => json!({"build": Obj::default().i("builder", b.builder).done()}),
        op::Op::Passthrough(_) => json!({"passthrough": {}}),
    });
    Obj::default()
        .arr("inputs", inputs)
        .v("Op", body)
        .v(
            "platform",
            op.platform.as_ref().map(|p| {
                Obj::default()
                    .s("Architecture", &p.architecture)
                    .s("OS", &p.os)
                    .s("Variant", &p.variant)
                    .s("OSVersion", &p.os_version)
                    .list("OSFeatures", &p.os_features)
                    .done()
            }),
        )
        .v(
            "constraints",
            op.constraints
                .as_ref()
                .map(|c| Obj::default().list("filter", &c.filter).done()),
        )
        .done()
}

fn exec_json(e: &pb::ExecOp) -> Value {
    let meta = e.meta.as_ref().map(|m| {
        Obj::default()
            .list("args", &m.args)
            .list("env", &m.env)
            .s("cwd", &m.cwd)
            .s("user", &m.user)
            .v(
                "proxy_env",
                m.proxy_env.as_ref().map(|p| {
                    Obj::default()
                        .s("http_proxy", &p.http_proxy)
                        .s("https_proxy", &p.https_proxy)
                        .s("ftp_proxy", &p.ftp_proxy)
                        .s("no_proxy", &p.no_proxy)
                        .s("all_proxy", &p.all_proxy)
                        .done()
                }),
            )
            .s("hostname", &m.hostname)
            .arr(
                "ulimit",
                m.ulimit
                    .iter()
                    .map(|u| json!({"Name": u.name, "Soft": u.soft, "Hard": u.hard}))
                    .collect(),
            )
            .b("removeMountStubsRecursive", m.remove_mount_stubs_recursive)
            .done()
    });
    let mounts = e
        .mounts
        .iter()
        .map(|m| {
            let mount_type = pb::MountType::try_from(m.mount_type).map_or("", |t| t.as_str_name());
            Obj::default()
                .i("input", m.input)
                .s("selector", &m.selector)
                .s("dest", &m.dest)
                .i("output", m.output)
                .b("readonly", m.readonly)
                .s("mountType", if m.mount_type == 0 { "" } else { mount_type })
                .v(
                    "TmpfsOpt",
                    m.tmpfs_opt.map(|t| Obj::default().i("size", t.size).done()),
                )
                .v(
                    "cacheOpt",
                    m.cache_opt.as_ref().map(|c| {
                        let sharing = pb::CacheSharingOpt::try_from(c.sharing)
                            .map_or("", |s| s.as_str_name());
                        Obj::default()
                            .s("ID", &c.id)
                            .s("sharing", if c.sharing == 0 { "" } else { sharing })
                            .done()
                    }),
                )
                .v(
                    "secretOpt",
                    m.secret_opt.as_ref().map(|s| {
                        Obj::default()
                            .s("ID", &s.id)
                            .i("uid", s.uid.into())
                            .i("gid", s.gid.into())
                            .i("mode", s.mode.into())
                            .b("optional", s.optional)
                            .done()
                    }),
                )
                .v(
                    "SSHOpt",
                    m.ssh_opt.as_ref().map(|s| {
                        Obj::default()
                            .s("ID", &s.id)
                            .i("uid", s.uid.into())
                            .i("gid", s.gid.into())
                            .i("mode", s.mode.into())
                            .b("optional", s.optional)
                            .done()
                    }),
                )
                .done()
        })
        .collect();
    let network = pb::NetMode::try_from(e.network).map_or("", |n| n.as_str_name());
    let security = pb::SecurityMode::try_from(e.security).map_or("", |s| s.as_str_name());
    Obj::default()
        .v("meta", meta)
        .arr("mounts", mounts)
        .s("network", if e.network == 0 { "" } else { network })
        .s("security", if e.security == 0 { "" } else { security })
        .arr(
            "secretenv",
            e.secretenv
                .iter()
                .map(|s| {
                    Obj::default()
                        .s("ID", &s.id)
                        .s("name", &s.name)
                        .b("optional", s.optional)
                        .done()
                })
                .collect(),
        )
        .arr(
            "cdiDevices",
            e.cdi_devices
                .iter()
                .map(|d| {
                    Obj::default()
                        .s("name", &d.name)
                        .b("optional", d.optional)
                        .done()
                })
                .collect(),
        )
        .done()
}

fn chown_json(c: &pb::ChownOpt) -> Value {
    let user = |u: &pb::UserOpt| match &u.user {
        Some(user_opt::User::ById(id)) => json!({"ByID": id}),
        Some(user_opt::User::ByName(n)) => {
            json!({"ByName": Obj::default().s("name", &n.name).i("input", n.input).done()})
        }
        None => json!({}),
    };
    Obj::default()
        .v("user", c.user.as_ref().map(user))
        .v("group", c.group.as_ref().map(user))
        .done()
}

fn file_action_json(a: &pb::FileAction) -> Value {
    let action = a.action.as_ref().map(|act| match act {
        file_action::Action::Copy(c) => json!({"copy": Obj::default()
            .s("src", &c.src)
            .s("dest", &c.dest)
            .v("owner", c.owner.as_ref().map(chown_json))
            .i("mode", c.mode.into())
            .b("followSymlink", c.follow_symlink)
            .b("dirCopyContents", c.dir_copy_contents)
            .b("attemptUnpackDockerCompatibility", c.attempt_unpack_docker_compatibility)
            .b("createDestPath", c.create_dest_path)
            .b("allowWildcard", c.allow_wildcard)
            .b("allowEmptyWildcard", c.allow_empty_wildcard)
            .i("timestamp", c.timestamp)
            .list("include_patterns", &c.include_patterns)
            .list("exclude_patterns", &c.exclude_patterns)
            .b("alwaysReplaceExistingDestPaths", c.always_replace_existing_dest_paths)
            .s("modeStr", &c.mode_str)
            .list("required_paths", &c.required_paths)
            .done()}),
        file_action::Action::Mkfile(m) => json!({"mkfile": Obj::default()
            .s("path", &m.path)
            .i("mode", m.mode.into())
            .s("data", &base64(&m.data))
            .v("owner", m.owner.as_ref().map(chown_json))
            .i("timestamp", m.timestamp)
            .done()}),
        file_action::Action::Mkdir(m) => json!({"mkdir": Obj::default()
            .s("path", &m.path)
            .i("mode", m.mode.into())
            .b("makeParents", m.make_parents)
            .v("owner", m.owner.as_ref().map(chown_json))
            .i("timestamp", m.timestamp)
            .done()}),
        file_action::Action::Rm(r) => json!({"rm": Obj::default()
            .s("path", &r.path)
            .b("allowNotFound", r.allow_not_found)
            .b("allowWildcard", r.allow_wildcard)
            .done()}),
        file_action::Action::Symlink(s) => json!({"symlink": Obj::default()
            .s("oldpath", &s.oldpath)
            .s("newpath", &s.newpath)
            .v("owner", s.owner.as_ref().map(chown_json))
            .i("timestamp", s.timestamp)
            .done()}),
    });
    Obj::default()
        .i("input", a.input)
        .i("secondaryInput", a.secondary_input)
        .i("output", a.output)
        .v("Action", action)
        .done()
}

fn metadata_json(m: &pb::OpMetadata) -> Value {
    Obj::default()
        .b("ignore_cache", m.ignore_cache)
        .v(
            "description",
            (!m.description.is_empty()).then(|| json!(m.description)),
        )
        .v(
            "export_cache",
            m.export_cache
                .map(|e| Obj::default().b("Value", e.value).done()),
        )
        .v("caps", (!m.caps.is_empty()).then(|| json!(m.caps)))
        .v(
            "progress_group",
            m.progress_group.as_ref().map(|g| {
                Obj::default()
                    .s("id", &g.id)
                    .s("name", &g.name)
                    .b("weak", g.weak)
                    .done()
            }),
        )
        .done()
}

/// Standard base64 (Go marshals `[]byte` this way).
fn base64(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_pads() {
        assert_eq!(base64(b"hi\n"), "aGkK");
        assert_eq!(base64(b"a"), "YQ==");
        assert_eq!(base64(b"ab"), "YWI=");
    }
}
