//! Why a step ran instead of coming from the cache: the parts of each step's cache key are
//! remembered per target (`cache/build_history.rs`) and, when a step misses, compared with
//! what the same step of the last build of that target was made of.
//!
//! A step is "the same" by its place in the Dockerfile, not by its key (the key is what
//! changed): its progress name without the `i/n` position (`[build] RUN make`), numbered
//! when a stage repeats an instruction; failing that (its text changed, as a RUN's does with
//! the build arg it expands), the step at the same index of the same stage last time, unless
//! that one is still there under its own name. The record is read once when the solver starts and
//! written once when the solve ends; in between everything is in memory.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::sync::{Arc, Mutex};

use bud_proto::pb;
use sha2::{Digest as _, Sha256};

use crate::cache::build_history::{
    BuildRecord, ContextRecord, EnvValue, MAX_CONTEXT_FILES, StepRecord,
};
use crate::cache::meta::MetaStore;
use crate::fileop::wildcard;

use super::graph::{Graph, Vertex};
use super::key::{self, KeyMaterial};
use super::snapshots::Ref;
use super::source::LocalContext;

/// Context files named in a reason before "and N more".
const FILES_NAMED: usize = 3;
/// Values longer than this are never shown (nor stored in clear).
const SHOWN_VALUE_MAX: usize = 40;

/// The build a solver remembers its steps for: the next build of the same target compares
/// with it.
#[derive(Debug, Clone)]
pub struct HistoryTarget {
    /// The context, the Dockerfile, the target stage and the platforms, in one string.
    pub id: String,
    /// The `--build-arg` names (a changed variable of one of these is a build arg).
    pub build_args: Vec<String>,
}

/// Why a step ran, said in one short phrase by its `Display`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    /// `--no-cache`: every step runs.
    NoCache,
    /// `--no-cache-filter` names the step's stage.
    NoCacheFilter,
    /// Nothing is remembered of this step of this target.
    NewStep,
    /// Its key is the one remembered, but the result is gone.
    Pruned,
    /// `change` is `(before, after)` when neither value is secret-looking or long.
    BuildArg {
        /// The build arg's name.
        name: String,
        /// Its value before and now, when shown.
        change: Option<(String, String)>,
    },
    /// An environment variable of the step that is not a `--build-arg` (an `ARG` default,
    /// an `ENV` of the base image).
    Variable {
        /// The variable's name.
        name: String,
        /// Its value before and now, when shown (as for [`Reason::BuildArg`]).
        change: Option<(String, String)>,
    },
    /// The instruction itself is different (flags, expanded words).
    Instruction,
    /// These files of the context, read by the step, changed.
    ContextFiles {
        /// The first few changed paths, relative to the context.
        files: Vec<String>,
        /// How many more changed, not named.
        more: usize,
    },
    /// The context files the step reads changed, which ones is not remembered.
    Context,
    /// The step's base image resolved to another digest.
    BaseImage {
        /// The image as the Dockerfile names it.
        reference: String,
    },
    /// An `ADD` URL or git source brought something new.
    Source {
        /// The source as the graph names it (the URL, the git remote and ref).
        identifier: String,
    },
    /// A step this one builds on has another result than last time.
    EarlierStep {
        /// The earlier step, as progress names it.
        name: String,
        /// It ran again (rather than coming from the cache with another result).
        ran: bool,
    },
    /// None of the remembered parts changed, yet the key did (bud's key format changed).
    KeyChanged,
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let change = |c: &Option<(String, String)>| match c {
            Some((before, after)) => format!(" ({before} → {after})"),
            None => String::new(),
        };
        match self {
            Reason::NoCache => f.write_str("--no-cache"),
            Reason::NoCacheFilter => f.write_str("--no-cache-filter"),
            Reason::NewStep => f.write_str("new step"),
            Reason::Pruned => f.write_str("its cache was pruned"),
            Reason::BuildArg { name, change: c } => {
                write!(f, "build arg {name} changed{}", change(c))
            }
            Reason::Variable { name, change: c } => {
                write!(f, "variable {name} changed{}", change(c))
            }
            Reason::Instruction => f.write_str("its instruction changed"),
            Reason::ContextFiles { files, more } => {
                let plural = if files.len() + more > 1 { "s" } else { "" };
                write!(f, "context file{plural} {}", files.join(", "))?;
                if *more > 0 {
                    write!(f, " and {more} more")?;
                }
                f.write_str(" changed")
            }
            Reason::Context => f.write_str("context changed"),
            Reason::BaseImage { reference } => {
                write!(f, "base image {reference} has a new digest")
            }
            Reason::Source { identifier } => write!(f, "{identifier} changed"),
            Reason::EarlierStep { name, ran: true } => write!(f, "earlier step {name} ran again"),
            Reason::EarlierStep { name, ran: false } => {
                write!(f, "earlier step {name} has a new result")
            }
            Reason::KeyChanged => f.write_str("its cache key changed"),
        }
    }
}

/// The solver's memory of a target's builds.
pub(super) struct History {
    meta: Arc<MetaStore>,
    target: HistoryTarget,
    previous: BuildRecord,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Vertex digest → step identity.
    identities: HashMap<String, String>,
    /// Vertex digest → stage and index.
    positions: HashMap<String, String>,
    /// What this build solved, by identity.
    solved: BTreeMap<String, StepRecord>,
    /// Vertices that ran in this build.
    ran: HashSet<String>,
    /// Local contexts by source name, with their checksums.
    contexts: BTreeMap<String, (Arc<LocalContext>, String)>,
    /// Each context's files as the last build saw them, read when first needed.
    old_files: HashMap<String, Option<Arc<BTreeMap<String, u64>>>>,
    /// Each context's files now.
    new_files: HashMap<String, Arc<HashMap<String, u64>>>,
}

impl History {
    /// The memory of `target`; a record that cannot be read is reported and forgotten.
    pub(super) fn open(meta: Arc<MetaStore>, target: HistoryTarget) -> Self {
        let previous = match meta.build_record(&target.id) {
            Ok(record) => record.unwrap_or_default(),
            Err(e) => {
                tracing::warn!(
                    "reading the last build's record: {e}",
                    e = crate::error_chain::error_chain(&e)
                );
                BuildRecord::default()
            }
        };
        Self {
            meta,
            target,
            previous,
            state: Mutex::default(),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Names the steps of a graph about to be solved.
    pub(super) fn identify(&self, graph: &Graph) {
        let (identities, positions) = identities(graph.vertices.values());
        let mut state = self.state();
        state.identities.extend(identities);
        state.positions.extend(positions);
    }

    /// What the last build remembered of the step `digest`: by identity, else by position.
    fn previous_step(&self, state: &State, digest: &str) -> Option<&StepRecord> {
        if let Some(step) = state
            .identities
            .get(digest)
            .and_then(|id| self.previous.steps.get(id))
        {
            return Some(step);
        }
        let position = state.positions.get(digest)?;
        let current: HashSet<&String> = state.identities.values().collect();
        self.previous.steps.iter().find_map(|(id, step)| {
            (step.generation == self.previous.generation
                && &step.position == position
                && !current.contains(id))
            .then_some(step)
        })
    }

    /// A local context as this build walked it.
    pub(super) fn context_solved(&self, ctx: &Arc<LocalContext>, checksum: &str) {
        self.state()
            .contexts
            .insert(ctx.name.clone(), (ctx.clone(), checksum.to_string()));
    }

    /// A step solved (run or from the cache): remembered for the next build.
    pub(super) fn solved(&self, vertex: &Vertex, material: &KeyMaterial) {
        let mut state = self.state();
        let Some(identity) = state.identities.get(&vertex.digest).cloned() else {
            return;
        };
        let position = state
            .positions
            .get(&vertex.digest)
            .cloned()
            .unwrap_or_default();
        state
            .solved
            .insert(identity, step_record(vertex, material, position));
    }

    /// Why `vertex`, whose key is `material.key`, was not found in the cache; notes that it
    /// runs.
    pub(super) fn explain(
        &self,
        graph: &Graph,
        vertex: &Vertex,
        material: &KeyMaterial,
        inputs: &[Ref],
        no_cache: bool,
    ) -> Reason {
        let mut state = self.state();
        state.ran.insert(vertex.digest.clone());
        if no_cache {
            return Reason::NoCache;
        }
        if vertex.ignore_cache {
            return Reason::NoCacheFilter;
        }
        let Some(before) = self.previous_step(&state, &vertex.digest) else {
            return Reason::NewStep;
        };
        if before.key == material.key {
            return Reason::Pruned;
        }
        let now = step_record(vertex, material, String::new());
        if before.op != now.op {
            return self.changed_op(before, &now);
        }
        if before.inputs.len() != now.inputs.len() {
            return Reason::Instruction;
        }
        // What the step reads from outside the build first, then the steps it follows.
        let mut earlier = None;
        for (i, (was, is)) in before.inputs.iter().zip(&now.inputs).enumerate() {
            if was == is {
                continue;
            }
            let Some(input) = vertex.op.inputs.get(i) else {
                continue;
            };
            let Some(from) = graph.vertices.get(&input.digest) else {
                continue;
            };
            match &from.op.op {
                Some(pb::op::Op::Source(src)) => {
                    if let Some(Ref::Context(ctx)) = inputs.get(i) {
                        return self.changed_context(&mut state, vertex, i, ctx);
                    }
                    return match src.identifier.strip_prefix("docker-image://") {
                        Some(reference) => Reason::BaseImage {
                            reference: reference.to_string(),
                        },
                        None => Reason::Source {
                            identifier: src.identifier.clone(),
                        },
                    };
                }
                _ if earlier.is_none() => {
                    earlier = Some(Reason::EarlierStep {
                        name: from.name.clone(),
                        ran: state.ran.contains(&from.digest),
                    });
                }
                _ => {}
            }
        }
        earlier.unwrap_or(Reason::KeyChanged)
    }

    /// The op changed: a variable of a RUN step, else the instruction.
    fn changed_op(&self, before: &StepRecord, now: &StepRecord) -> Reason {
        let names = before.env.keys().chain(now.env.keys());
        let changed: Vec<&String> = names
            .filter(|n| before.env.get(*n) != now.env.get(*n))
            .collect();
        let is_arg = |n: &str| {
            self.target.build_args.iter().any(|a| a == n)
                || self.previous.build_args.iter().any(|a| a == n)
        };
        let Some(name) = changed
            .iter()
            .find(|n| is_arg(n))
            .or_else(|| changed.first())
        else {
            return Reason::Instruction;
        };
        let shown = |env: &BTreeMap<String, EnvValue>| match env.get(*name) {
            Some(v) => v.shown.clone(),
            None => Some("unset".to_string()),
        };
        let change = shown(&before.env).zip(shown(&now.env));
        let name = name.to_string();
        if is_arg(&name) {
            Reason::BuildArg { name, change }
        } else {
            Reason::Variable { name, change }
        }
    }

    /// The files of a context the step reads changed: which ones, if the last build's files
    /// are remembered.
    fn changed_context(
        &self,
        state: &mut State,
        vertex: &Vertex,
        input: usize,
        ctx: &LocalContext,
    ) -> Reason {
        let source = ctx.name.clone();
        let old = state
            .old_files
            .entry(source.clone())
            .or_insert_with(
                || match self.meta.build_record_files(&self.target.id, &source) {
                    Ok(files) => files.map(Arc::new),
                    Err(e) => {
                        tracing::warn!(
                            "reading the last build's context files: {e}",
                            e = crate::error_chain::error_chain(&e)
                        );
                        None
                    }
                },
            )
            .clone();
        let Some(old) = old else {
            return Reason::Context;
        };
        let new = state
            .new_files
            .entry(source)
            .or_insert_with(|| Arc::new(fingerprints(ctx).into_iter().collect()))
            .clone();
        let selectors = key::context_selectors(&vertex.op, input as i64);
        let mut changed: Vec<&str> = new
            .iter()
            .filter(|(path, f)| old.get(*path) != Some(*f))
            .map(|(path, _)| path.as_str())
            .chain(
                old.keys()
                    .filter(|path| !new.contains_key(*path))
                    .map(String::as_str),
            )
            .filter(|path| reads(selectors.as_deref(), path))
            .collect();
        // A new directory is named by what it holds.
        let parents: HashSet<&str> = changed
            .iter()
            .flat_map(|p| p.match_indices('/').map(move |(i, _)| &p[..i]))
            .collect();
        changed.retain(|p| !parents.contains(p));
        changed.sort_unstable();
        if changed.is_empty() {
            return Reason::Context;
        }
        let more = changed.len().saturating_sub(FILES_NAMED);
        Reason::ContextFiles {
            files: changed
                .into_iter()
                .take(FILES_NAMED)
                .map(str::to_string)
                .collect(),
            more,
        }
    }

    /// Writes what this build was made of, for the next one: the steps it solved over the
    /// ones it did not reach, and the contexts that changed.
    pub(super) fn store(&self) {
        let state = self.state();
        let generation = self.previous.generation + 1;
        let mut record = BuildRecord {
            generation,
            build_args: self.target.build_args.clone(),
            steps: self.previous.steps.clone(),
            contexts: BTreeMap::new(),
        };
        for (identity, step) in &state.solved {
            let mut step = step.clone();
            step.generation = generation;
            record.steps.insert(identity.clone(), step);
        }
        record.bound();
        let contexts: Vec<ContextRecord> = state
            .contexts
            .iter()
            .filter(|(name, (_, sum))| self.previous.contexts.get(*name) != Some(sum))
            .map(|(name, (ctx, sum))| ContextRecord {
                source: name.clone(),
                checksum: sum.clone(),
                files: (ctx.snapshot.entries.len() <= MAX_CONTEXT_FILES).then(|| fingerprints(ctx)),
            })
            .collect();
        if let Err(e) = self
            .meta
            .put_build_record(&self.target.id, &record, &contexts)
        {
            tracing::warn!(
                "recording the build for the next one's explanations: {e}",
                e = crate::error_chain::error_chain(&e)
            );
        }
    }
}

fn fingerprints(ctx: &LocalContext) -> Vec<(String, u64)> {
    ctx.snapshot
        .entries
        .iter()
        .map(|e| (e.path.clone(), e.short_fingerprint()))
        .collect()
}

/// Whether a step whose context selectors are `selectors` (None: the whole context) reads
/// `path`.
fn reads(selectors: Option<&[(String, bool)]>, path: &str) -> bool {
    let Some(selectors) = selectors else {
        return true;
    };
    selectors.iter().any(|(src, wildcard)| {
        let sel = src.trim_matches('/');
        if *wildcard && wildcard::contains_wildcards(sel) {
            // A match copies what is under it too.
            let mut p = path;
            loop {
                if wildcard::matches(sel, p).unwrap_or(false) {
                    return true;
                }
                match p.rsplit_once('/') {
                    Some((parent, _)) => p = parent,
                    None => return false,
                }
            }
        }
        sel.is_empty()
            || sel == "."
            || path == sel
            || path.strip_prefix(sel).is_some_and(|r| r.starts_with('/'))
    })
}

fn short_hash(text: &str) -> String {
    hex::encode(&Sha256::digest(text.as_bytes())[..8])
}

/// A step as remembered: every part hashed; a variable's value also in clear when it may
/// be shown (not secret-looking by the SecretsUsedInArgOrEnv rule, short, printable).
fn step_record(vertex: &Vertex, material: &KeyMaterial, position: String) -> StepRecord {
    let mut env = BTreeMap::new();
    if let Some(pb::op::Op::Exec(e)) = &vertex.op.op
        && let Some(meta) = &e.meta
    {
        for entry in &meta.env {
            let (name, value) = entry.split_once('=').unwrap_or((entry, ""));
            let shown = (!bud_frontend::lint::looks_secret(name)
                && value.chars().count() <= SHOWN_VALUE_MAX
                && !value.chars().any(char::is_control))
            .then(|| value.to_string());
            env.insert(
                name.to_string(),
                EnvValue {
                    hash: short_hash(entry),
                    shown,
                },
            );
        }
    }
    StepRecord {
        position,
        key: material.key.clone(),
        op: short_hash(&material.op),
        inputs: material.inputs.iter().map(|i| short_hash(i)).collect(),
        env,
        generation: 0,
    }
}

/// Each step's identity: its name without the position (`[build  2/5] RUN make` →
/// `[build] RUN make`), with ` #2`, ` #3`… for the later of steps that share it; and its
/// position (`[build] 2`) when its name has one.
fn identities<'a>(
    vertices: impl Iterator<Item = &'a Vertex>,
) -> (HashMap<String, String>, HashMap<String, String>) {
    let mut groups: HashMap<String, Vec<(usize, &'a Vertex)>> = HashMap::new();
    let mut positions = HashMap::new();
    for v in vertices {
        if matches!(v.op.op, Some(pb::op::Op::Source(_))) {
            continue;
        }
        let (identity, position) = split_name(&v.name);
        if position > 0
            && let Some((stage, _)) = identity.split_once("] ")
        {
            positions.insert(v.digest.clone(), format!("{stage}] {position}"));
        }
        groups.entry(identity).or_default().push((position, v));
    }
    let mut identities = HashMap::new();
    for (identity, mut members) in groups {
        members.sort_by(|(pa, a), (pb, b)| pa.cmp(pb).then_with(|| a.digest.cmp(&b.digest)));
        for (i, (_, v)) in members.into_iter().enumerate() {
            let id = match i {
                0 => identity.clone(),
                n => format!("{identity} #{}", n + 1),
            };
            // Kept hashed: a name shows the values its instruction expands.
            identities.insert(v.digest.clone(), short_hash(&id));
        }
    }
    (identities, positions)
}

/// A progress name's identity and position: `[stage  2/5] RUN x` → (`[stage] RUN x`, 2).
fn split_name(name: &str) -> (String, usize) {
    let bracketed = name
        .strip_prefix('[')
        .and_then(|rest| rest.split_once("] "));
    let Some((label, text)) = bracketed else {
        return (name.to_string(), 0);
    };
    let label = label.trim_end();
    let (stage, position) = match label.rsplit_once(' ') {
        Some((stage, pos)) => (stage.trim_end(), pos),
        None => ("", label),
    };
    match position
        .split_once('/')
        .and_then(|(i, _)| i.parse::<usize>().ok())
    {
        Some(i) => (format!("[{stage}] {text}"), i),
        None => (name.to_string(), 0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exec_vertex(name: &str, env: &[&str]) -> Vertex {
        let op = pb::Op {
            op: Some(pb::op::Op::Exec(pb::ExecOp {
                meta: Some(pb::Meta {
                    args: vec!["/bin/sh".into()],
                    env: env.iter().map(|e| e.to_string()).collect(),
                    ..Default::default()
                }),
                ..Default::default()
            })),
            ..Default::default()
        };
        let bytes = prost::Message::encode_to_vec(&op);
        Vertex {
            digest: format!("sha256:{}", hex::encode(Sha256::digest(&bytes))),
            bytes,
            op,
            name: name.into(),
            ignore_cache: false,
        }
    }

    fn material(v: &Vertex) -> KeyMaterial {
        KeyMaterial {
            key: format!("key of {}", v.digest),
            op: v.digest.clone(),
            inputs: Vec::new(),
        }
    }

    fn history(previous: BuildRecord, build_args: &[&str]) -> (tempfile::TempDir, History) {
        let dir = tempfile::tempdir().unwrap();
        let meta = Arc::new(MetaStore::open(&dir.path().join("meta.db")).unwrap());
        let target = HistoryTarget {
            id: "t".into(),
            build_args: build_args.iter().map(|a| a.to_string()).collect(),
        };
        let h = History {
            meta,
            target,
            previous,
            state: Mutex::default(),
        };
        (dir, h)
    }

    fn explain_change(before: &[&str], after: &[&str], build_args: &[&str]) -> (Reason, String) {
        // A RUN's name shows the values it expands: found again by its place.
        let old = exec_vertex(&format!("[2/3] RUN make {}", before.join(" ")), before);
        let new = exec_vertex(&format!("[2/3] RUN make {}", after.join(" ")), after);
        let mut previous = BuildRecord::default();
        let (old_id, _) = split_name(&old.name);
        previous.steps.insert(
            short_hash(&old_id),
            step_record(&old, &material(&old), "[] 2".into()),
        );
        let (_dir, h) = history(previous, build_args);
        let graph = Graph {
            vertices: HashMap::from([(new.digest.clone(), new.clone())]),
            target: None,
        };
        h.identify(&graph);
        let reason = h.explain(&graph, &new, &material(&new), &[], false);
        h.solved(&new, &material(&new));
        h.store();
        let stored = h.meta.build_record("t").unwrap().unwrap();
        (reason, serde_json::to_string(&stored).unwrap())
    }

    #[test]
    fn a_changed_build_arg_is_named_with_its_values() {
        let (reason, _) = explain_change(
            &["VERSION=1.0", "A=x"],
            &["VERSION=1.1", "A=x"],
            &["VERSION"],
        );
        assert_eq!(reason.to_string(), "build arg VERSION changed (1.0 → 1.1)");
        let (reason, _) = explain_change(&["MODE=a"], &["MODE=b"], &[]);
        assert_eq!(reason.to_string(), "variable MODE changed (a → b)");
    }

    #[test]
    fn secret_looking_values_never_appear_in_the_reason_or_the_record() {
        for name in [
            "API_TOKEN",
            "password",
            "AWS_SECRET_ACCESS_KEY",
            "GITHUB_AUTH",
        ] {
            let before = format!("{name}=hunter2-old");
            let after = format!("{name}=hunter2-new");
            let (reason, stored) = explain_change(&[&before], &[&after], &[name]);
            assert_eq!(reason.to_string(), format!("build arg {name} changed"));
            assert!(!stored.contains("hunter2"), "{stored}");
        }
        // Nor long values, whatever their name.
        let long = format!("NOTE={}", "x".repeat(SHOWN_VALUE_MAX + 1));
        let (reason, stored) = explain_change(&["NOTE=short"], &[&long], &["NOTE"]);
        assert_eq!(reason.to_string(), "build arg NOTE changed");
        assert!(!stored.contains(&"x".repeat(SHOWN_VALUE_MAX + 1)));
    }

    #[test]
    fn steps_are_known_by_place_without_their_position() {
        assert_eq!(
            split_name("[build  2/12] RUN make"),
            ("[build] RUN make".to_string(), 2)
        );
        assert_eq!(
            split_name("[3/4] COPY . /app"),
            ("[] COPY . /app".into(), 3)
        );
        assert_eq!(split_name("mkfile /x"), ("mkfile /x".into(), 0));
        let a = exec_vertex("[1/3] RUN x", &["A=1"]);
        let b = exec_vertex("[3/3] RUN x", &["A=2"]);
        let (ids, positions) = identities([&b, &a].into_iter());
        assert_eq!(ids[&a.digest], short_hash("[] RUN x"));
        assert_eq!(ids[&b.digest], short_hash("[] RUN x #2"));
        assert_eq!(positions[&b.digest], "[] 3");
    }

    #[test]
    fn phrases() {
        let files = |n: usize| Reason::ContextFiles {
            files: ["a", "b", "c"][..n.min(3)]
                .iter()
                .map(|s| s.to_string())
                .collect(),
            more: n.saturating_sub(3),
        };
        assert_eq!(files(1).to_string(), "context file a changed");
        assert_eq!(
            files(5).to_string(),
            "context files a, b, c and 2 more changed"
        );
        let earlier = Reason::EarlierStep {
            name: "[2/3] COPY . /app".into(),
            ran: true,
        };
        assert_eq!(
            earlier.to_string(),
            "earlier step [2/3] COPY . /app ran again"
        );
    }

    #[test]
    fn selectors_cover_what_a_copy_reads() {
        let sel = vec![("/app".to_string(), false), ("/*.txt".to_string(), true)];
        assert!(reads(Some(&sel), "app/main.go"));
        assert!(reads(Some(&sel), "notes.txt"));
        assert!(!reads(Some(&sel), "application"));
        assert!(!reads(Some(&sel), "docs/a.txt"));
        assert!(reads(None, "anything"));
    }
}
