//! The SLSA provenance v0.2 predicate of one platform's image, as BuildKit's provenance
//! processor writes it (`solver/llbsolver/provenance`): builder, build type, materials (base
//! images by digest, git sources by commit), invocation (config source, frontend
//! parameters, the builder's platform), and metadata (invocation ID, times, completeness).
//! `mode=min` leaves out build argument and label values, secrets and ssh ids; `mode=max`
//! adds the build steps (`buildConfig`, the LLB) and the Dockerfile source map.
//!
//! Like BuildKit's, the predicate records this invocation (its ID and times), so it differs
//! between two builds of one image even when the image itself is reproducible
//! (moby/buildkit#3421).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::SystemTime;

use base64::Engine as _;
use bud_frontend::convert::Platform;
use bud_proto::pb;
use prost::Message as _;
use serde_json::{Map, Value, json};

use super::flags::{ProvenanceMode, ProvenanceRequest};

/// The predicate's `buildType`, BuildKit's, since bud builds what BuildKit would.
const BUILDKIT_BUILD_TYPE: &str = "https://mobyproject.org/buildkit@v1";
pub(crate) const BUILDKIT_METADATA: &str = "https://mobyproject.org/buildkit@v1#metadata";
const BUILDKIT_HERMETIC: &str = "https://mobyproject.org/buildkit@v1#hermetic";

/// A base image the build used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageMaterial {
    /// As the graph names it, without a digest: `docker.io/library/busybox:latest`.
    pub reference: String,
    /// The platform it was resolved for, in the material's package URL; `None` for an
    /// image the graph names without one.
    pub platform: Option<Platform>,
    /// The manifest digest it was pinned to (the config digest for an image only Docker has).
    pub digest: String,
}

/// A git repository the build fetched, at the commit it checked out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitMaterial {
    /// `https://host/repo.git#ref`, as BuildKit records it.
    pub url: String,
    /// The full commit hash it resolved to, the material's `sha1` digest.
    pub commit: String,
}

/// What the predicate says about one build of one platform's image.
pub struct BuildFacts<'a> {
    /// The graph built, read for its local sources, secrets, SSH mounts and network use
    /// (and, in max mode, written whole with its source map).
    pub definition: &'a pb::Definition,
    /// The Dockerfile frontend's attributes as BuildKit receives them from buildx
    /// (`filename`, `context` for a URL, `build-arg:NAME`, `label:NAME`, `target`, ...).
    pub frontend_attrs: BTreeMap<String, String>,
    /// Local sources outside the graph (the Dockerfile's, `dockerfile`).
    pub extra_locals: Vec<String>,
    /// The base images, the predicate's image materials.
    pub images: Vec<ImageMaterial>,
    /// The git repositories fetched, the predicate's git materials.
    pub git: Vec<GitMaterial>,
    /// `metadata.buildInvocationID`: the build's session ID (the daemon's build ref with
    /// `--addr`, as BuildKit writes its own).
    pub invocation_id: String,
    /// `metadata.buildStartedOn`.
    pub started: SystemTime,
    /// `metadata.buildFinishedOn`.
    pub finished: SystemTime,
    /// The machine's platform (`invocation.environment.platform`).
    pub builder_platform: Platform,
}

/// What the graph's ops tell.
#[derive(Default)]
struct Captured {
    locals: BTreeSet<String>,
    secrets: BTreeMap<String, bool>,
    ssh: BTreeMap<String, bool>,
    network: bool,
    /// Sources bud records no digest for (http): the materials are not complete.
    uncaptured: bool,
}

fn capture(definition: &pb::Definition) -> Result<Captured, super::AttestError> {
    let mut c = Captured::default();
    for bytes in &definition.def {
        let op = pb::Op::decode(bytes.as_slice()).map_err(super::AttestError::Op)?;
        match op.op {
            Some(pb::op::Op::Source(src)) => {
                if let Some(name) = src.identifier.strip_prefix("local://") {
                    c.locals.insert(name.to_owned());
                } else if src.identifier.starts_with("http://")
                    || src.identifier.starts_with("https://")
                {
                    c.uncaptured = true;
                }
            }
            Some(pb::op::Op::Exec(exec)) => {
                for m in &exec.mounts {
                    if let Some(s) = &m.secret_opt
                        && m.mount_type == pb::MountType::Secret as i32
                    {
                        c.secrets.insert(s.id.clone(), s.optional);
                    }
                    if let Some(s) = &m.ssh_opt
                        && m.mount_type == pb::MountType::Ssh as i32
                    {
                        c.ssh.insert(s.id.clone(), s.optional);
                    }
                }
                for s in &exec.secretenv {
                    c.secrets.insert(s.id.clone(), s.optional);
                }
                if exec.network != pb::NetMode::None as i32 {
                    c.network = true;
                }
            }
            _ => {}
        }
    }
    Ok(c)
}

fn ids(map: &BTreeMap<String, bool>) -> Vec<Value> {
    map.iter()
        .map(|(id, optional)| {
            let mut v = json!({ "id": id });
            if *optional {
                v["optional"] = json!(true);
            }
            v
        })
        .collect()
}

/// The predicate `request` asks for.
pub fn predicate(
    request: &ProvenanceRequest,
    facts: &BuildFacts<'_>,
) -> Result<Value, super::AttestError> {
    let captured = capture(facts.definition)?;
    let mut materials: Vec<Value> = Vec::new();
    for image in &facts.images {
        let (algorithm, hex) =
            image
                .digest
                .split_once(':')
                .ok_or_else(|| super::AttestError::ImageDigest {
                    reference: image.reference.clone(),
                    digest: image.digest.clone(),
                })?;
        materials.push(json!({
            "uri": super::image_purl(&image.reference, image.platform.as_ref())?,
            "digest": { algorithm: hex },
        }));
    }
    for git in &facts.git {
        materials.push(json!({ "uri": git.url, "digest": { "sha1": git.commit } }));
    }

    let mut args = facts.frontend_attrs.clone();
    let mut config_source = Map::new();
    if let Some(context) = args.remove("context").filter(|c| !c.is_empty()) {
        config_source.insert("uri".into(), json!(context));
        // The context's URL as given, or the repository it names at the ref it resolved.
        let repository = |url: &str| url.split('#').next().unwrap_or(url).to_owned();
        let found = facts.git.iter().find(|g| g.url == context).or_else(|| {
            facts
                .git
                .iter()
                .find(|g| repository(&g.url) == repository(&context))
        });
        if let Some(git) = found {
            config_source.insert("digest".into(), json!({ "sha1": git.commit }));
        }
    }
    if let Some(filename) = args.remove("filename").filter(|f| !f.is_empty()) {
        config_source.insert("entryPoint".into(), json!(filename));
    }
    let mut vcs = BTreeMap::new();
    args.retain(|k, v| match k.strip_prefix("vcs:") {
        Some(key) => {
            if !v.is_empty() {
                vcs.insert(key.to_owned(), v.clone());
            }
            false
        }
        None => true,
    });

    let incomplete =
        !captured.locals.is_empty() || !facts.extra_locals.is_empty() || captured.uncaptured;
    let mut parameters_complete = true;
    let (secrets, ssh) = match request.mode {
        ProvenanceMode::Min => {
            args.retain(|k, _| {
                let value = k.starts_with("build-arg:") || k.starts_with("label:");
                if value {
                    parameters_complete = false;
                }
                !value
            });
            (Vec::new(), Vec::new())
        }
        ProvenanceMode::Max => (ids(&captured.secrets), ids(&captured.ssh)),
    };
    let mut locals: BTreeSet<String> = captured.locals.clone();
    locals.extend(facts.extra_locals.iter().cloned());

    let mut parameters = Map::new();
    parameters.insert("frontend".into(), json!("dockerfile.v0"));
    if !args.is_empty() {
        parameters.insert("args".into(), json!(args));
    }
    if !secrets.is_empty() {
        parameters.insert("secrets".into(), json!(secrets));
    }
    if !ssh.is_empty() {
        parameters.insert("ssh".into(), json!(ssh));
    }
    if !locals.is_empty() {
        let locals: Vec<Value> = locals.iter().map(|n| json!({ "name": n })).collect();
        parameters.insert("locals".into(), json!(locals));
    }

    // in-toto's completeness fields are left out when false.
    let mut completeness = Map::new();
    if parameters_complete {
        completeness.insert("parameters".into(), json!(true));
    }
    completeness.insert("environment".into(), json!(true));
    if !incomplete {
        completeness.insert("materials".into(), json!(true));
    }
    let mut buildkit_metadata = Map::new();
    if !vcs.is_empty() {
        buildkit_metadata.insert("vcs".into(), json!(vcs));
    }
    let mut predicate = json!({
        "builder": { "id": request.builder_id },
        "buildType": BUILDKIT_BUILD_TYPE,
        "invocation": {
            "configSource": config_source,
            "parameters": parameters,
            "environment": { "platform": facts.builder_platform.to_string() },
        },
    });
    if !materials.is_empty() {
        predicate["materials"] = json!(materials);
    }
    if request.mode == ProvenanceMode::Max {
        let (steps, indexes) = build_steps(facts.definition)?;
        predicate["buildConfig"] = json!({
            "llbDefinition": steps,
            "digestMapping": digest_mapping(&indexes),
        });
        if let Some(source) = source_map(facts.definition, &indexes)? {
            buildkit_metadata.insert("source".into(), source);
        }
    }
    let mut metadata = json!({
        "buildInvocationID": facts.invocation_id,
        "buildStartedOn": crate::timefmt::rfc3339_of(facts.started),
        "buildFinishedOn": crate::timefmt::rfc3339_of(facts.finished),
        "completeness": completeness,
        "reproducible": request.reproducible,
        BUILDKIT_METADATA: buildkit_metadata,
    });
    if !incomplete && !captured.network {
        metadata[BUILDKIT_HERMETIC] = json!(true);
    }
    predicate["metadata"] = metadata;
    Ok(predicate)
}

/// The graph as BuildKit's `toBuildSteps` lists it: ops depth first from the result, each
/// `stepN` with its inputs as `stepM:OUTPUT`, local sources without their session.
fn build_steps(
    def: &pb::Definition,
) -> Result<(Vec<Value>, HashMap<String, usize>), super::AttestError> {
    let mut ops: HashMap<String, pb::Op> = HashMap::new();
    let mut last = None;
    for bytes in &def.def {
        let mut op = pb::Op::decode(bytes.as_slice()).map_err(super::AttestError::Op)?;
        if let Some(pb::op::Op::Source(src)) = &mut op.op {
            src.attrs.remove("local.session");
            src.attrs.remove("local.unique");
        }
        let digest = bud_frontend::llb::digest_of(bytes);
        ops.insert(digest.clone(), op);
        last = Some(digest);
    }
    let Some(root) = last else {
        return Ok((Vec::new(), HashMap::new()));
    };
    let mut order = Vec::new();
    let mut visited = BTreeSet::new();
    walk(&ops, &root, &mut visited, &mut order)?;
    let indexes: HashMap<String, usize> = order
        .iter()
        .enumerate()
        .map(|(i, d)| (d.clone(), i))
        .collect();
    let mut steps = Vec::with_capacity(order.len());
    for (i, digest) in order.iter().enumerate() {
        let mut op = ops[digest].clone();
        let inputs: Vec<String> = op
            .inputs
            .iter()
            .map(|inp| format!("step{}:{}", indexes[&inp.digest], inp.index))
            .collect();
        op.inputs.clear();
        let mut step = json!({ "id": format!("step{i}"), "op": bud_frontend::dump::op_json(&op) });
        if !inputs.is_empty() {
            step["inputs"] = json!(inputs);
        }
        steps.push(step);
    }
    Ok((steps, indexes))
}

/// The `stepN:OUTPUT` names of the results in `layers` (op digest → each output and how
/// many image layers it holds), as the predicate's steps number them.
pub fn layer_steps(
    definition: &pb::Definition,
    layers: &BTreeMap<String, Vec<(usize, usize)>>,
) -> Result<BTreeMap<String, usize>, super::AttestError> {
    let (_, indexes) = build_steps(definition)?;
    let mut steps = BTreeMap::new();
    for (digest, outputs) in layers {
        let Some(i) = indexes.get(digest) else {
            continue;
        };
        for (output, count) in outputs {
            steps.insert(format!("step{i}:{output}"), *count);
        }
    }
    Ok(steps)
}

fn walk(
    ops: &HashMap<String, pb::Op>,
    digest: &str,
    visited: &mut BTreeSet<String>,
    order: &mut Vec<String>,
) -> Result<(), super::AttestError> {
    if !visited.insert(digest.to_owned()) {
        return Ok(());
    }
    let op = ops
        .get(digest)
        .ok_or_else(|| super::AttestError::NoOp(digest.to_string()))?;
    for input in &op.inputs {
        walk(ops, &input.digest, visited, order)?;
    }
    order.push(digest.to_owned());
    Ok(())
}

fn digest_mapping(indexes: &HashMap<String, usize>) -> BTreeMap<String, String> {
    indexes
        .iter()
        .map(|(d, i)| (d.clone(), format!("step{i}")))
        .collect()
}

/// The Dockerfile and where each step came from in it (`source`), as BuildKit's
/// `AddBuildConfig` maps the definition's source map onto the steps.
fn source_map(
    def: &pb::Definition,
    indexes: &HashMap<String, usize>,
) -> Result<Option<Value>, super::AttestError> {
    let Some(source) = &def.source else {
        return Ok(None);
    };
    if source.infos.is_empty() {
        return Ok(None);
    }
    let mut infos = Vec::new();
    for info in &source.infos {
        let mut v = json!({
            "filename": info.filename,
            "data": base64::engine::general_purpose::STANDARD.encode(&info.data),
        });
        if !info.language.is_empty() {
            v["language"] = json!(info.language);
        }
        if let Some(d) = &info.definition
            && !d.def.is_empty()
        {
            let (steps, idx) = build_steps(d)?;
            v["llbDefinition"] = json!(steps);
            v["digestMapping"] = json!(digest_mapping(&idx));
        }
        infos.push(v);
    }
    let mut locations = BTreeMap::new();
    for (digest, locs) in &source.locations {
        let Some(i) = indexes.get(digest) else {
            continue;
        };
        let locs: Vec<Value> = locs
            .locations
            .iter()
            .map(|l| {
                let ranges: Vec<Value> = l
                    .ranges
                    .iter()
                    .map(|r| json!({ "start": position(r.start.as_ref()), "end": position(r.end.as_ref()) }))
                    .collect();
                let mut v = json!({ "ranges": ranges });
                if l.source_index != 0 {
                    v["sourceIndex"] = json!(l.source_index);
                }
                v
            })
            .collect();
        locations.insert(format!("step{i}"), json!({ "locations": locs }));
    }
    Ok(Some(json!({ "locations": locations, "infos": infos })))
}

/// A position as Go's JSON of the protobuf writes it: zero fields left out.
fn position(p: Option<&pb::Position>) -> Value {
    let mut v = json!({});
    if let Some(p) = p {
        if p.line != 0 {
            v["line"] = json!(p.line);
        }
        if p.character != 0 {
            v["character"] = json!(p.character);
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attest::flags::{Attest, Attestations};

    fn request(value: &str) -> ProvenanceRequest {
        let a = Attest::shorthand("provenance", value).unwrap();
        Attestations::resolve(&[], Some(&a), None, None, true)
            .unwrap()
            .provenance
            .unwrap()
    }

    fn definition() -> pb::Definition {
        use bud_frontend::llb;
        let image = pb::Op {
            op: Some(pb::op::Op::Source(pb::SourceOp {
                identifier: "docker-image://docker.io/library/busybox:latest".into(),
                ..Default::default()
            })),
            ..Default::default()
        };
        let local = pb::Op {
            op: Some(pb::op::Op::Source(pb::SourceOp {
                identifier: "local://context".into(),
                attrs: [("local.session".to_owned(), "s1".to_owned())].into(),
            })),
            ..Default::default()
        };
        let (image_bytes, local_bytes) = (image.encode_to_vec(), local.encode_to_vec());
        let exec = pb::Op {
            inputs: vec![
                pb::Input {
                    digest: llb::digest_of(&image_bytes),
                    index: 0,
                },
                pb::Input {
                    digest: llb::digest_of(&local_bytes),
                    index: 0,
                },
            ],
            op: Some(pb::op::Op::Exec(pb::ExecOp {
                mounts: vec![pb::Mount {
                    mount_type: pb::MountType::Secret as i32,
                    secret_opt: Some(pb::SecretOpt {
                        id: "token".into(),
                        ..Default::default()
                    }),
                    ..Default::default()
                }],
                ..Default::default()
            })),
            ..Default::default()
        };
        let exec_bytes = exec.encode_to_vec();
        let root = pb::Op {
            inputs: vec![pb::Input {
                digest: llb::digest_of(&exec_bytes),
                index: 0,
            }],
            ..Default::default()
        };
        pb::Definition {
            def: vec![image_bytes, local_bytes, exec_bytes, root.encode_to_vec()],
            ..Default::default()
        }
    }

    fn facts(def: &pb::Definition) -> BuildFacts<'_> {
        BuildFacts {
            definition: def,
            frontend_attrs: BTreeMap::from([
                ("filename".to_owned(), "Dockerfile".to_owned()),
                ("build-arg:TOKEN_NAME".to_owned(), "x".to_owned()),
                ("label:team".to_owned(), "a".to_owned()),
                ("target".to_owned(), "final".to_owned()),
            ]),
            extra_locals: vec!["dockerfile".into()],
            images: vec![ImageMaterial {
                reference: "docker.io/library/busybox:latest".into(),
                platform: Some(Platform::parse("linux/amd64").unwrap()),
                digest: format!("sha256:{}", "b".repeat(64)),
            }],
            git: Vec::new(),
            invocation_id: "id1".into(),
            started: SystemTime::UNIX_EPOCH,
            finished: SystemTime::UNIX_EPOCH,
            builder_platform: Platform::parse("linux/amd64").unwrap(),
        }
    }

    #[test]
    fn min_leaves_out_values_and_max_adds_the_steps() {
        let def = definition();
        let min = predicate(&request("mode=min"), &facts(&def)).unwrap();
        assert_eq!(min["buildType"], BUILDKIT_BUILD_TYPE);
        assert_eq!(
            min["invocation"]["configSource"]["entryPoint"],
            "Dockerfile"
        );
        assert_eq!(
            min["invocation"]["parameters"]["args"],
            json!({"target": "final"})
        );
        assert_eq!(min["invocation"]["parameters"].get("secrets"), None);
        assert_eq!(
            min["invocation"]["parameters"]["locals"],
            json!([{"name": "context"}, {"name": "dockerfile"}])
        );
        assert_eq!(
            min["materials"][0]["uri"],
            "pkg:docker/busybox@latest?platform=linux%2Famd64"
        );
        assert_eq!(min["materials"][0]["digest"]["sha256"], "b".repeat(64));
        assert_eq!(
            min["metadata"]["completeness"],
            json!({"environment": true})
        );
        assert_eq!(min["metadata"]["reproducible"], false);
        assert_eq!(min.get("buildConfig"), None);

        let max = predicate(&request("mode=max"), &facts(&def)).unwrap();
        assert_eq!(
            max["invocation"]["parameters"]["args"]["build-arg:TOKEN_NAME"],
            "x"
        );
        assert_eq!(
            max["invocation"]["parameters"]["secrets"],
            json!([{"id": "token"}])
        );
        let steps = max["buildConfig"]["llbDefinition"].as_array().unwrap();
        assert_eq!(steps.len(), 4);
        assert_eq!(steps[2]["inputs"], json!(["step0:0", "step1:0"]));
        assert_eq!(steps[3]["inputs"], json!(["step2:0"]));
        // The session a local source was read through is not part of the build.
        assert!(!steps[1].to_string().contains("local.session"));
        assert_eq!(
            max["metadata"]["completeness"],
            json!({"parameters": true, "environment": true})
        );
    }
}
