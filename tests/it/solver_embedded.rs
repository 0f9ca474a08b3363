//! The embedded solver on real runc and overlayfs: a graph of an image, a RUN step and a
//! COPY from a local context, solved, cached and invalidated by content.

use crate::support;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bud::cache::meta::MetaStore;
use bud::executor::{Runtime, RuntimeKind};
use bud::progress::{Event, ProgressSink, RecordingRenderer};
use bud::solver::{ImageLayer, ImageProvider, Ref, ResolvedImage, SolveOptions, Solver};
use bud::state::StateRoot;
use bud_frontend::llb::{self, Constraints, CopyOptions, ExecBuilder, FileBuilder};
use bud_proto::pb;
use futures_util::future::BoxFuture;
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

/// One busybox layer made from the busybox-static binary.
struct BusyboxImage {
    tar: Vec<u8>,
}

impl BusyboxImage {
    fn new() -> Self {
        let mut b = tar::Builder::new(Vec::new());
        let mut dir = |path: &str, mode: u32| {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(tar::EntryType::Directory);
            h.set_mode(mode);
            h.set_size(0);
            b.append_data(&mut h, path, std::io::empty()).unwrap();
        };
        for d in ["bin", "etc", "tmp", "root"] {
            dir(d, if d == "tmp" { 0o1777 } else { 0o755 });
        }
        let busybox = std::fs::read("/bin/busybox").unwrap();
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o755);
        h.set_size(busybox.len() as u64);
        b.append_data(&mut h, "bin/busybox", busybox.as_slice())
            .unwrap();
        for applet in ["sh", "echo", "cat", "ls", "id", "mkdir", "false", "touch"] {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(tar::EntryType::Symlink);
            h.set_size(0);
            h.set_mode(0o777);
            b.append_link(&mut h, format!("bin/{applet}"), "busybox")
                .unwrap();
        }
        let passwd = b"root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000::/tmp:/bin/sh\n";
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o644);
        h.set_size(passwd.len() as u64);
        b.append_data(&mut h, "etc/passwd", &passwd[..]).unwrap();
        Self {
            tar: b.into_inner().unwrap(),
        }
    }
}

impl ImageProvider for BusyboxImage {
    fn resolve<'a>(
        &'a self,
        _reference: &'a str,
        _platform: Option<&'a pb::Platform>,
    ) -> BoxFuture<'a, Result<ResolvedImage, bud::solver::ImageProviderError>> {
        let tar = self.tar.clone();
        Box::pin(async move {
            let diff_id = format!("sha256:{}", hex::encode(Sha256::digest(&tar)));
            Ok(ResolvedImage {
                manifest_digest: diff_id.clone(),
                layers: vec![ImageLayer {
                    diff_id,
                    open: Box::new(move || {
                        Ok(Box::new(std::io::Cursor::new(tar)) as Box<dyn std::io::Read + Send>)
                    }),
                }],
            })
        })
    }
}

fn available() -> bool {
    support::require("root", rustix::process::geteuid().is_root())
        && support::require_runc()
        && support::require("busybox-static", Path::new("/bin/busybox").exists())
}

struct Env {
    _state_dir: tempfile::TempDir,
    state: StateRoot,
    meta: Arc<MetaStore>,
    context: tempfile::TempDir,
}

impl Env {
    fn new() -> Self {
        let state_dir = tempfile::tempdir().unwrap();
        let state = StateRoot::open(state_dir.path()).unwrap();
        let meta = Arc::new(MetaStore::open(&state.db_path()).unwrap());
        let context = tempfile::tempdir().unwrap();
        std::fs::write(context.path().join("app.txt"), "version 1\n").unwrap();
        std::fs::write(context.path().join("other.txt"), "other\n").unwrap();
        Self {
            _state_dir: state_dir,
            state,
            meta,
            context,
        }
    }

    fn solver(&self, recorder: &RecordingRenderer) -> Arc<Solver> {
        let runtime = Runtime::new(RuntimeKind::Runc, self.state.tmp_dir().join("runc")).unwrap();
        let mut opts = SolveOptions::default();
        opts.local_dirs
            .insert("context".into(), self.context.path().to_path_buf());
        Arc::new(
            Solver::new(
                self.state.clone(),
                self.meta.clone(),
                runtime,
                Arc::new(BusyboxImage::new()),
                ProgressSink::new(Box::new(recorder.clone())),
                opts,
            )
            .unwrap(),
        )
    }
}

/// FROM busybox; RUN echo built > /built; COPY app.txt /app/
fn definition(run: &str) -> pb::Definition {
    let base = llb::image("bud-test/busybox", Default::default()).unwrap();
    let mut meta = pb::Meta {
        args: vec!["/bin/sh".into(), "-c".into(), run.into()],
        cwd: "/".into(),
        ..Default::default()
    };
    meta.env.push("PATH=/bin".into());
    let ran = llb::exec(ExecBuilder {
        meta,
        root: base,
        constraints: Constraints::default().with_custom_name("RUN step"),
        ..Default::default()
    })
    .unwrap()
    .root;
    let context = llb::local("context", Default::default());
    llb::file(
        FileBuilder::new(ran)
            .copy(
                &context,
                "/app.txt",
                "/app/",
                CopyOptions {
                    create_dest_path: true,
                    allow_wildcard: true,
                    ..Default::default()
                },
            )
            .constraints(Constraints::default().with_custom_name("COPY step")),
    )
    .unwrap()
    .marshal()
}

async fn solve(solver: &Arc<Solver>, def: &pb::Definition) -> Result<Ref, bud::solver::StepError> {
    solver.solve(def, &CancellationToken::new()).await
}

fn read(solver: &Solver, r: &Ref, path: &str) -> String {
    let view = solver.snapshots().view(r).unwrap();
    std::fs::read_to_string(view.path.join(path)).unwrap()
}

fn cached_names(rec: &RecordingRenderer) -> Vec<String> {
    rec.events
        .lock()
        .unwrap()
        .iter()
        .filter_map(|e| match e {
            Event::Cached { name, .. } => Some(name.clone()),
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn solves_caches_and_invalidates_by_content() {
    if !available() {
        return;
    }
    let env = Env::new();
    let def = definition("echo built > /built; echo to-the-log");

    let rec = RecordingRenderer::default();
    let solver = env.solver(&rec);
    let result = solve(&solver, &def).await.unwrap();
    assert_eq!(read(&solver, &result, "built"), "built\n");
    assert_eq!(read(&solver, &result, "app/app.txt"), "version 1\n");
    assert!(cached_names(&rec).is_empty());
    let logged = rec.events.lock().unwrap().iter().any(|e| {
        matches!(e, Event::Log { data, .. } if String::from_utf8_lossy(data).contains("to-the-log"))
    });
    assert!(logged, "the step's output reaches progress");
    drop(solver);

    // Same inputs: nothing runs.
    let rec = RecordingRenderer::default();
    let solver = env.solver(&rec);
    solve(&solver, &def).await.unwrap();
    assert_eq!(cached_names(&rec), ["RUN step", "COPY step"]);
    drop(solver);

    // A new mtime, and a change to a file the COPY does not read: still all cached.
    let app = env.context.path().join("app.txt");
    let f = std::fs::File::options().write(true).open(&app).unwrap();
    f.set_modified(std::time::SystemTime::UNIX_EPOCH).unwrap();
    std::fs::write(env.context.path().join("other.txt"), "changed\n").unwrap();
    let rec = RecordingRenderer::default();
    let solver = env.solver(&rec);
    solve(&solver, &def).await.unwrap();
    assert_eq!(cached_names(&rec), ["RUN step", "COPY step"]);
    drop(solver);

    // New content in the copied file: exactly the COPY reruns.
    std::fs::write(&app, "version 2\n").unwrap();
    let rec = RecordingRenderer::default();
    let solver = env.solver(&rec);
    let result = solve(&solver, &def).await.unwrap();
    assert_eq!(cached_names(&rec), ["RUN step"]);
    assert_eq!(read(&solver, &result, "app/app.txt"), "version 2\n");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_step_names_itself_and_shows_its_output() {
    if !available() {
        return;
    }
    let env = Env::new();
    let rec = RecordingRenderer::default();
    let solver = env.solver(&rec);
    let def = definition("echo about to fail; exit 3");
    let err = solve(&solver, &def).await.unwrap_err();
    assert_eq!(err.name, "RUN step");
    match err.source.root() {
        bud::solver::SolveError::ProcessFailed {
            code, output_tail, ..
        } => {
            assert_eq!(*code, 3);
            assert_eq!(output_tail, &["about to fail"]);
        }
        other => panic!("unexpected error: {other}"),
    }
    // Nothing of the failed step is left in flight.
    let leftovers: Vec<PathBuf> = std::fs::read_dir(env.state.tmp_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| !p.ends_with("runc"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}
