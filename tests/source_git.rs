//! `ADD <git URL>` against a repository this test makes and serves with `git daemon` on
//! 127.0.0.1: branches, annotated tags, commit IDs, subdirectories, `--keep-git-dir`, reuse
//! of the snapshot while the remote is unchanged, and errors naming the URL and the ref.

mod support;

use std::net::TcpListener;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bud::cache::meta::MetaStore;
use bud::executor::{Runtime, RuntimeKind};
use bud::progress::ProgressSink;
use bud::solver::{ImageProvider, Ref, ResolvedImage, SolveOptions, Solver};
use bud::state::StateRoot;
use bud_frontend::llb::{self, GitOptions};
use bud_proto::pb;
use futures_util::future::BoxFuture;
use tokio_util::sync::CancellationToken;

fn git_available() -> bool {
    let daemon = Command::new("git")
        // Usage, exit code 129, when git-daemon is installed; "not a git command" otherwise.
        .args(["daemon", "-h"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.code() == Some(129));
    support::require("git with git-daemon", daemon)
}

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
        .args(["-c", "init.defaultBranch=main", "-c", "tag.gpgSign=false"])
        .args(["-c", "commit.gpgSign=false"])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A repository under `base/repo.git`'s work tree `base/repo`:
/// commit 1 (README "one", sub/inner.txt), annotated tag v1, then commit 2 (README "two").
struct Repo {
    base: tempfile::TempDir,
    first: String,
}

impl Repo {
    fn new() -> Self {
        let base = tempfile::tempdir().unwrap();
        let work = base.path().join("repo");
        std::fs::create_dir_all(work.join("sub")).unwrap();
        git(&work, &["init", "-q"]);
        std::fs::write(work.join("README"), "one\n").unwrap();
        std::fs::write(work.join("sub/inner.txt"), "inner\n").unwrap();
        git(&work, &["add", "."]);
        git(&work, &["commit", "-q", "-m", "first"]);
        let first = git(&work, &["rev-parse", "HEAD"]);
        git(&work, &["tag", "-a", "v1", "-m", "version 1"]);
        let repo = Self { base, first };
        repo.commit("two\n");
        repo
    }

    fn work(&self) -> PathBuf {
        self.base.path().join("repo")
    }

    fn commit(&self, readme: &str) -> String {
        std::fs::write(self.work().join("README"), readme).unwrap();
        git(&self.work(), &["commit", "-q", "-am", "change"]);
        git(&self.work(), &["rev-parse", "HEAD"])
    }
}

/// `git daemon --inetd` on each connection to a listener of this test: no port race, no
/// waiting for readiness. Counts connections (an `ls-remote` is one, a fetch another).
struct Daemon {
    port: u16,
    connections: Arc<AtomicUsize>,
}

impl Daemon {
    fn serve(base: &Path) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let connections = Arc::new(AtomicUsize::new(0));
        let count = connections.clone();
        let base = base.to_path_buf();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                count.fetch_add(1, Ordering::SeqCst);
                let output = OwnedFd::from(stream.try_clone().unwrap());
                let mut child = Command::new("git")
                    .args(["daemon", "--inetd", "--export-all"])
                    .arg(format!("--base-path={}", base.display()))
                    .arg(&base)
                    .stdin(Stdio::from(OwnedFd::from(stream)))
                    .stdout(Stdio::from(output))
                    .stderr(Stdio::null())
                    .spawn()
                    .unwrap();
                std::thread::spawn(move || child.wait());
            }
        });
        Self { port, connections }
    }

    fn url(&self) -> String {
        format!("git://127.0.0.1:{}/repo", self.port)
    }

    fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

struct NoImages;

impl ImageProvider for NoImages {
    fn resolve<'a>(
        &'a self,
        reference: &'a str,
        _platform: Option<&'a pb::Platform>,
    ) -> BoxFuture<'a, Result<ResolvedImage, String>> {
        Box::pin(async move { Err(format!("no image {reference} in this test")) })
    }
}

struct Env {
    _dir: tempfile::TempDir,
    state: StateRoot,
    meta: Arc<MetaStore>,
}

impl Env {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let state = StateRoot::open(dir.path()).unwrap();
        let meta = Arc::new(MetaStore::open(&state.db_path()).unwrap());
        Self {
            _dir: dir,
            state,
            meta,
        }
    }

    async fn solve(&self, def: &pb::Definition) -> Result<(Ref, PathBuf), String> {
        let runtime = Runtime::new(RuntimeKind::Runc, self.state.tmp_dir().join("runc")).unwrap();
        let solver = Arc::new(
            Solver::new(
                self.state.clone(),
                self.meta.clone(),
                runtime,
                Arc::new(NoImages),
                ProgressSink::quiet(),
                SolveOptions::default(),
            )
            .unwrap(),
        );
        let r = solver
            .solve(def, &CancellationToken::new())
            .await
            .map_err(|e| e.to_string())?;
        let id = r.snapshot_id().expect("a committed snapshot").to_string();
        let dir = solver.snapshots().layer_dir(&id);
        Ok((r, dir))
    }
}

/// What the frontend makes of `ADD git://127.0.0.1:PORT/repo#REF:SUBDIR`.
fn definition(
    url: &str,
    reference: Option<&str>,
    subdir: Option<&str>,
    keep: bool,
) -> pb::Definition {
    let mut opts = GitOptions::new(url.trim_start_matches("git://"));
    opts.full_url = Some(url.to_string());
    opts.reference = reference.map(str::to_string);
    opts.subdir = subdir.map(str::to_string);
    opts.keep_git_dir = keep;
    llb::git(opts).marshal()
}

fn read(dir: &Path, file: &str) -> String {
    std::fs::read_to_string(dir.join(file)).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn branches_are_checked_out_and_reused_until_they_move() {
    if !git_available() {
        return;
    }
    let repo = Repo::new();
    let daemon = Daemon::serve(repo.base.path());
    let env = Env::new();
    let def = definition(&daemon.url(), Some("main"), None, false);

    let (first, dir) = env.solve(&def).await.unwrap();
    assert_eq!(read(&dir, "README"), "two\n");
    assert_eq!(read(&dir, "sub/inner.txt"), "inner\n");
    assert!(!dir.join(".git").exists(), "no .git without keep-git-dir");

    let before = daemon.connections();
    let (again, _) = env.solve(&def).await.unwrap();
    assert_eq!(again.snapshot_id(), first.snapshot_id());
    assert_eq!(daemon.connections(), before + 1, "only ls-remote, no fetch");

    repo.commit("three\n");
    let (moved, dir) = env.solve(&def).await.unwrap();
    assert_ne!(moved.snapshot_id(), first.snapshot_id());
    assert_eq!(read(&dir, "README"), "three\n");

    let (head, dir) = env
        .solve(&definition(&daemon.url(), None, None, false))
        .await
        .unwrap();
    assert_eq!(read(&dir, "README"), "three\n", "no ref: the remote's HEAD");
    assert_eq!(head.snapshot_id(), moved.snapshot_id());
}

#[tokio::test(flavor = "multi_thread")]
async fn tags_commits_and_subdirectories() {
    if !git_available() {
        return;
    }
    let repo = Repo::new();
    let daemon = Daemon::serve(repo.base.path());
    let env = Env::new();

    let (tag, dir) = env
        .solve(&definition(&daemon.url(), Some("v1"), None, false))
        .await
        .unwrap();
    assert_eq!(read(&dir, "README"), "one\n");

    let (commit, dir) = env
        .solve(&definition(&daemon.url(), Some(&repo.first), None, false))
        .await
        .unwrap();
    assert_eq!(read(&dir, "README"), "one\n");
    assert_eq!(
        commit.snapshot_id(),
        tag.snapshot_id(),
        "the same commit is the same snapshot"
    );

    let (_, dir) = env
        .solve(&definition(&daemon.url(), Some("v1"), Some("/sub/"), false))
        .await
        .unwrap();
    let names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names, ["inner.txt"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn keep_git_dir_gives_a_repository_on_the_branch() {
    if !git_available() {
        return;
    }
    let repo = Repo::new();
    let daemon = Daemon::serve(repo.base.path());
    let env = Env::new();
    let (_, dir) = env
        .solve(&definition(&daemon.url(), Some("main"), None, true))
        .await
        .unwrap();
    assert_eq!(read(&dir, "README"), "two\n");
    let head = git(&repo.work(), &["rev-parse", "HEAD"]);
    assert_eq!(git(&dir, &["rev-parse", "HEAD"]), head);
    assert_eq!(git(&dir, &["symbolic-ref", "--short", "HEAD"]), "main");
    assert_eq!(
        git(&dir, &["status", "--porcelain"]),
        "",
        "a clean checkout"
    );
    assert_eq!(git(&dir, &["remote", "get-url", "origin"]), daemon.url());
}

#[tokio::test(flavor = "multi_thread")]
async fn errors_name_the_url_and_the_ref() {
    if !git_available() {
        return;
    }
    let repo = Repo::new();
    let daemon = Daemon::serve(repo.base.path());
    let env = Env::new();
    let url = daemon.url();

    let err = env
        .solve(&definition(&url, Some("no-such-branch"), None, false))
        .await
        .unwrap_err();
    assert!(
        err.contains(&url) && err.contains("no-such-branch"),
        "{err}"
    );

    let err = env
        .solve(&definition(&url, Some("main"), Some("missing"), false))
        .await
        .unwrap_err();
    assert!(err.contains(&url) && err.contains("missing"), "{err}");

    let pinned = |checksum: &str| {
        let mut opts = GitOptions::new(url.trim_start_matches("git://"));
        opts.full_url = Some(url.clone());
        opts.reference = Some("v1".into());
        opts.checksum = Some(checksum.to_string());
        llb::git(opts).marshal()
    };
    let err = env.solve(&pinned("0000000")).await.unwrap_err();
    assert!(
        err.contains("expected checksum") && err.contains(&repo.first) && err.contains(&url),
        "{err}"
    );
    let (_, dir) = env.solve(&pinned(&repo.first[..12])).await.unwrap();
    assert_eq!(read(&dir, "README"), "one\n");

    let gone = format!("git://127.0.0.1:{}/nothing-here", daemon.port);
    let err = env
        .solve(&definition(&gone, Some("main"), None, false))
        .await
        .unwrap_err();
    assert!(err.contains(&gone), "{err}");
}

#[test]
fn bud_adds_a_repository_into_a_local_export() {
    if !(git_available() && support::require("root", rustix::process::geteuid().is_root())) {
        return;
    }
    let repo = Repo::new();
    let daemon = Daemon::serve(repo.base.path());
    let root = tempfile::tempdir().unwrap();
    let dest = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_bud"))
        .arg("--root")
        .arg(root.path())
        .args(["--progress", "plain", "--build-arg"])
        .arg(format!("REPO={}", daemon.url()))
        .arg("-o")
        .arg(format!("type=local,dest={}", dest.path().display()))
        .arg(support::testdata("add-git"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(read(dest.path(), "src/inner.txt"), "inner\n");
    assert_eq!(read(dest.path(), "all/README"), "two\n");
    assert!(dest.path().join("all/.git").is_dir(), "--keep-git-dir");
}
