//! `ADD <git URL>` against a repository this test makes and serves with `git daemon` on
//! 127.0.0.1: branches, annotated tags, commit IDs, subdirectories, `--keep-git-dir`, reuse
//! of the snapshot while the remote is unchanged, and errors naming the URL and the ref; git
//! over ssh (an sshd of the test's own on 127.0.0.1) with the `--ssh` agent.

use crate::support;
use crate::support::context_servers;
use crate::support::same_image;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use bud::cache::meta::MetaStore;
use bud::executor::{Runtime, RuntimeKind};
use bud::progress::ProgressSink;
use bud::solver::{ImageProvider, Ref, ResolvedImage, SolveOptions, Solver};
use bud::state::StateRoot;
use bud_frontend::llb::{self, GitOptions};
use bud_proto::pb;
use context_servers::{
    GitDaemon, GitHttp, GitSsh, Repos, SshAgent, git, git_servers_available, ssh_keygen,
    ssh_servers_available,
};
use futures_util::future::BoxFuture;
use same_image::{Builder, assert_same_image};
use tokio_util::sync::CancellationToken;

fn git_available() -> bool {
    support::require(
        "git with git-daemon and git-http-backend",
        git_servers_available(),
    )
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

struct NoImages;

impl ImageProvider for NoImages {
    fn resolve<'a>(
        &'a self,
        reference: &'a str,
        _platform: Option<&'a pb::Platform>,
    ) -> BoxFuture<'a, Result<ResolvedImage, bud::solver::ImageProviderError>> {
        Box::pin(async move { Err(format!("no image {reference} in this test").into()) })
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
            .map_err(|e| bud::error_chain::error_chain(&e))?;
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
    let daemon = GitDaemon::serve(repo.base.path());
    let env = Env::new();
    let def = definition(&daemon.url("repo"), Some("main"), None, false);

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
        .solve(&definition(&daemon.url("repo"), None, None, false))
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
    let daemon = GitDaemon::serve(repo.base.path());
    let env = Env::new();

    let (tag, dir) = env
        .solve(&definition(&daemon.url("repo"), Some("v1"), None, false))
        .await
        .unwrap();
    assert_eq!(read(&dir, "README"), "one\n");

    let (commit, dir) = env
        .solve(&definition(
            &daemon.url("repo"),
            Some(&repo.first),
            None,
            false,
        ))
        .await
        .unwrap();
    assert_eq!(read(&dir, "README"), "one\n");
    assert_eq!(
        commit.snapshot_id(),
        tag.snapshot_id(),
        "the same commit is the same snapshot"
    );

    let (_, dir) = env
        .solve(&definition(
            &daemon.url("repo"),
            Some("v1"),
            Some("/sub/"),
            false,
        ))
        .await
        .unwrap();
    let names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names, ["inner.txt"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn keep_git_dir_gives_a_repository_detached_at_the_commit() {
    if !git_available() {
        return;
    }
    let repo = Repo::new();
    let daemon = GitDaemon::serve(repo.base.path());
    let env = Env::new();
    let (_, dir) = env
        .solve(&definition(&daemon.url("repo"), Some("main"), None, true))
        .await
        .unwrap();
    assert_eq!(read(&dir, "README"), "two\n");
    let head = git(&repo.work(), &["rev-parse", "HEAD"]);
    assert_eq!(git(&dir, &["rev-parse", "HEAD"]), head);
    // Detached, as BuildKit's `git checkout FETCH_HEAD` leaves it; the branch beside it.
    assert_eq!(read(&dir, ".git/HEAD"), format!("{head}\n"));
    assert_eq!(git(&dir, &["rev-parse", "refs/heads/main"]), head);
    assert_eq!(
        git(&dir, &["status", "--porcelain"]),
        "",
        "a clean checkout"
    );
    assert_eq!(
        git(&dir, &["remote", "get-url", "origin"]),
        daemon.url("repo")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn errors_name_the_url_and_the_ref() {
    if !git_available() {
        return;
    }
    let repo = Repo::new();
    let daemon = GitDaemon::serve(repo.base.path());
    let env = Env::new();
    let url = daemon.url("repo");

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
    let daemon = GitDaemon::serve(repo.base.path());
    let root = tempfile::tempdir().unwrap();
    let dest = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_bud"))
        .arg("--root")
        .arg(root.path())
        .args(["--progress", "plain", "--build-arg"])
        .arg(format!("REPO={}", daemon.url("repo")))
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

/// The repository the git context tests build.
const CONTEXT_FILES: &[(&str, &str)] = &[
    (
        "Dockerfile",
        "FROM bud-test/busybox:latest\nCOPY . /ctx/\nRUN cat /ctx/a.txt > /copied\n",
    ),
    // BuildKit applies no .dockerignore to a git context: ignored.txt is copied.
    (".dockerignore", "ignored.txt\n"),
    ("ignored.txt", "copied all the same\n"),
    ("a.txt", "a\n"),
    (
        "sub/Dockerfile",
        "FROM bud-test/busybox:latest\nCOPY . /sub/\n",
    ),
    ("sub/b.txt", "b\n"),
    (
        "alt.Dockerfile",
        "FROM bud-test/busybox:latest\nCOPY sub /alt/\n",
    ),
];

fn context_env() -> bool {
    git_available()
        && support::require_docker()
        && support::require_base_image()
        && support::require_runc()
}

/// A git URL as the context, in each form, over `git daemon` and git's smart HTTP: bud
/// (embedded, and on Docker 20.10's BuildKit with --addr) builds the image Docker 28.5
/// builds from the same URL, and Docker 20.10 too where it takes the form (it checks out
/// `master` when no ref is given, and knows neither `:subdir` nor the query form; bud
/// scopes a subdirectory itself there).
#[test]
fn git_contexts_build_the_image_docker_builds() {
    if !context_env() {
        return;
    }
    let Some(docker28) = support::require_docker28() else {
        return;
    };
    let repos = Repos::new();
    repos.create("ctx.git", CONTEXT_FILES);
    let daemon = GitDaemon::serve(repos.base.path());
    let http = GitHttp::serve(repos.base.path());
    let every = [Builder::Docker20, Builder::Bud, Builder::BudAddr];
    let bud = [Builder::Bud, Builder::BudAddr];
    let on_main = format!("{}#main", daemon.url("ctx.git"));
    assert_same_image(&docker28, &every, &[&on_main]);
    assert_same_image(&docker28, &every, &["-f", "alt.Dockerfile", &on_main]);
    // An absolute -f is the client's file, as buildx reads it.
    let local = tempfile::tempdir().unwrap();
    let client_file = local.path().join("Client.Dockerfile");
    std::fs::write(
        &client_file,
        "FROM bud-test/busybox:latest\nCOPY sub/ /from-client/\n",
    )
    .unwrap();
    assert_same_image(
        &docker28,
        &[Builder::Bud, Builder::BudAddr],
        &["-f", client_file.to_str().unwrap(), &on_main],
    );
    assert_same_image(
        &docker28,
        &every,
        &[&format!("{}#main", http.url("ctx.git"))],
    );
    // With no ref, BuildKit 0.8 (Docker 20.10's, and so --addr there) checks out `master`,
    // not the remote's HEAD: the daemon's git source decides, as for docker build.
    assert_same_image(&docker28, &[Builder::Bud], &[&http.url("ctx.git")]);
    assert_same_image(
        &docker28,
        &bud,
        &[&format!("{}#main:sub", http.url("ctx.git"))],
    );
    assert_same_image(
        &docker28,
        &bud,
        &[&format!("{}?ref=main&subdir=sub", daemon.url("ctx.git"))],
    );
}

/// A git URL as a named context (`--build-context NAME=URL`) in place of a stage: the
/// image Docker 28.5 builds (Docker 20.10's CLI has no --build-context). On Docker 20.10's
/// BuildKit (--addr), whose git source knows no subdirectory, only the whole repository.
#[test]
fn git_build_contexts_build_the_image_docker_builds() {
    if !context_env() {
        return;
    }
    let Some(docker28) = support::require_docker28() else {
        return;
    };
    let repos = Repos::new();
    repos.create("ctx.git", CONTEXT_FILES);
    let daemon = GitDaemon::serve(repos.base.path());
    let http = GitHttp::serve(repos.base.path());
    let local = tempfile::tempdir().unwrap();
    std::fs::write(
        local.path().join("Dockerfile"),
        "FROM bud-test/busybox:latest\nCOPY --from=repo / /repo/\n",
    )
    .unwrap();
    let dir = local.path().to_str().unwrap();
    let whole = format!("repo={}#main", daemon.url("ctx.git"));
    assert_same_image(
        &docker28,
        &[Builder::Bud, Builder::BudAddr],
        &["--build-context", &whole, dir],
    );
    let sub = format!("repo={}#main:sub", http.url("ctx.git"));
    assert_same_image(&docker28, &[Builder::Bud], &["--build-context", &sub, dir]);
}

/// BUILDKIT_CONTEXT_KEEP_GIT_DIR, or the URL's `keep-git-dir=true`, keeps `.git` in the
/// context, HEAD detached at the ref's commit; without them there is none.
#[test]
fn a_git_context_keeps_its_git_dir_when_asked() {
    if !context_env() {
        return;
    }
    let repos = Repos::new();
    let work = repos.create(
        "ctx.git",
        &[
            ("Dockerfile", "FROM scratch\nCOPY . /ctx/\n"),
            ("a.txt", "a\n"),
        ],
    );
    let commit = git(&work, &["rev-parse", "HEAD"]);
    let daemon = GitDaemon::serve(repos.base.path());
    let root = tempfile::tempdir().unwrap();
    let on_main = format!("{}#main", daemon.url("ctx.git"));
    let by_query = format!("{}?branch=main&keep-git-dir=true", daemon.url("ctx.git"));
    for addr in [None, Some("docker://")] {
        for (args, kept) in [
            (vec![on_main.as_str()], false),
            (
                vec!["--build-arg", "BUILDKIT_CONTEXT_KEEP_GIT_DIR=1", &on_main],
                true,
            ),
            (vec![by_query.as_str()], true),
        ] {
            let dest = tempfile::tempdir().unwrap();
            let out_arg = format!("type=local,dest={}", dest.path().display());
            let mut all: Vec<&str> = Vec::new();
            if let Some(addr) = addr {
                all.extend(["--addr", addr]);
            }
            all.extend(["-o", &out_arg]);
            all.extend(&args);
            let out = support::bud_at(root.path(), &all);
            assert!(
                out.status.success(),
                "{all:?}: {}",
                support::stderr_of(&out)
            );
            assert_eq!(read(dest.path(), "ctx/a.txt"), "a\n");
            let head = dest.path().join("ctx/.git/HEAD");
            assert_eq!(head.is_file(), kept, "{all:?}: .git kept");
            // HEAD detached at the commit, as every BuildKit leaves it (Docker 28.5's is
            // compared in add_checksum_and_keep_git_dir_follow_docker28).
            let want_head = format!("{commit}\n");
            if kept {
                assert_eq!(read(dest.path(), "ctx/.git/HEAD"), want_head, "{all:?}");
            }
        }
    }
}

/// Each build asks the remote where the ref is; only a ref that moved is fetched again.
#[test]
fn a_git_context_is_fetched_again_only_when_its_ref_moves() {
    if !(git_available() && support::require("root", rustix::process::geteuid().is_root())) {
        return;
    }
    let repos = Repos::new();
    let work = repos.create(
        "ctx.git",
        &[
            ("Dockerfile", "FROM scratch\nCOPY a.txt /\n"),
            ("a.txt", "one\n"),
        ],
    );
    let daemon = GitDaemon::serve(repos.base.path());
    let root = tempfile::tempdir().unwrap();
    let url = format!("{}#main", daemon.url("ctx.git"));
    let build = || {
        let dest = tempfile::tempdir().unwrap();
        let before = daemon.connections();
        let out = support::bud_at(
            root.path(),
            &[
                "-o",
                &format!("type=local,dest={}", dest.path().display()),
                &url,
            ],
        );
        assert!(out.status.success(), "{}", support::stderr_of(&out));
        (daemon.connections() - before, read(dest.path(), "a.txt"))
    };
    let (first, content) = build();
    assert_eq!(content, "one\n");
    let (again, content) = build();
    assert_eq!(content, "one\n");
    assert!(
        again < first,
        "an unmoved ref is not fetched again: {first} connections, then {again}"
    );
    std::fs::write(work.join("a.txt"), "two\n").unwrap();
    git(&work, &["commit", "-q", "-am", "two"]);
    let (moved, content) = build();
    assert_eq!(content, "two\n");
    assert_eq!(moved, first, "a moved ref is fetched");
}

/// A missing ref, subdirectory or repository fails the build, embedded or with --addr, with
/// an error that names the URL.
#[test]
fn git_context_errors_name_the_url() {
    if !context_env() {
        return;
    }
    let repos = Repos::new();
    repos.create("ctx.git", CONTEXT_FILES);
    let daemon = GitDaemon::serve(repos.base.path());
    let http = GitHttp::serve(repos.base.path());
    let root = tempfile::tempdir().unwrap();
    for (url, why) in [
        (format!("{}#nope", daemon.url("ctx.git")), "nope"),
        (format!("{}#main:nosub", http.url("ctx.git")), "nosub"),
        (daemon.url("missing.git"), "missing.git"),
        (
            format!("{}#main", daemon.url("ctx.git")),
            "Dockerfile.absent not found",
        ),
    ] {
        for addr in [None, Some("docker://")] {
            let mut args: Vec<&str> = Vec::new();
            if let Some(addr) = addr {
                args.extend(["--addr", addr]);
            }
            if why.starts_with("Dockerfile.absent") {
                args.extend(["-f", "Dockerfile.absent"]);
            }
            args.extend(["-o", "type=tar,dest=/dev/null", &url]);
            let out = support::bud_at(root.path(), &args);
            let stderr = support::stderr_of(&out);
            assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
            let last = stderr.lines().last().unwrap_or_default();
            assert!(
                last.contains(&url) && last.contains(why),
                "{args:?}: the error names the URL and what is wrong: {stderr}"
            );
        }
    }
}

/// A repository behind basic auth, as the embedded solver fetches it for a git context:
/// without credentials, a clear error naming the URL, and no prompt or hang; with a
/// credential helper in the user's git configuration, or with BuildKit's
/// `GIT_AUTH_TOKEN.<host>` secret (a token sent as `x-access-token`), the build works. The
/// token is never printed.
#[test]
fn private_git_contexts_take_credentials_from_helpers_and_secrets() {
    if !context_env() {
        return;
    }
    const TOKEN: &str = "tok-3b1f9c0d-never-shown";
    let repos = Repos::new();
    repos.create("private.git", CONTEXT_FILES);
    let http = GitHttp::serve_with_auth(repos.base.path(), "x-access-token", TOKEN);
    let url = format!("{}#main", http.url("private.git"));
    let root = tempfile::tempdir().unwrap();
    let build = |home: &Path, extra: &[&str]| {
        let mut args = extra.to_vec();
        args.extend(["-o", "type=tar,dest=/dev/null", &url]);
        let out = support::bud_within(
            root.path(),
            &args,
            &[("HOME", home)],
            std::time::Duration::from_secs(300),
        );
        let stderr = support::stderr_of(&out);
        assert!(!stderr.contains(TOKEN), "the token was printed: {stderr}");
        (out.status.code(), stderr)
    };

    let empty_home = tempfile::tempdir().unwrap();
    let (code, stderr) = build(empty_home.path(), &[]);
    assert_eq!(code, Some(1), "{stderr}");
    let last = stderr.lines().last().unwrap_or_default();
    assert!(
        last.contains(&http.url("private.git")) && last.contains("terminal prompts disabled"),
        "the error names the URL and why: {stderr}"
    );

    let helper_home = tempfile::tempdir().unwrap();
    std::fs::write(
        helper_home.path().join(".gitconfig"),
        format!(
            "[credential]\n\thelper = \"!f() {{ echo username=x-access-token; echo password={TOKEN}; }}; f\"\n"
        ),
    )
    .unwrap();
    let (code, stderr) = build(helper_home.path(), &["--no-cache"]);
    assert_eq!(code, Some(0), "with a credential helper: {stderr}");

    let secret = tempfile::tempdir().unwrap();
    let token_file = secret.path().join("token");
    std::fs::write(&token_file, TOKEN).unwrap();
    let flag = format!("id=GIT_AUTH_TOKEN.127.0.0.1,src={}", token_file.display());
    let (code, stderr) = build(empty_home.path(), &["--no-cache", "--secret", &flag]);
    assert_eq!(code, Some(0), "with a GIT_AUTH_TOKEN secret: {stderr}");
}

fn ssh_env() -> bool {
    context_env() && support::require("openssh-server and ssh-agent", ssh_servers_available())
}

/// A git context over ssh authenticates with the `--ssh` agent, as BuildKit's git source does:
/// given a key file (served by bud's own agent), bud builds the image Docker 28.5 builds from
/// the same URL. Without `--ssh`, the agent of SSH_AUTH_SOCK is implied, as buildx implies it
/// for an ssh context; and with neither, the build says what is missing. (Docker 20.10, and
/// its BuildKit 0.8 behind --addr, know no `ssh://` URL: only `user@host:path`, which cannot
/// name the test server's port.)
#[test]
fn ssh_git_contexts_authenticate_with_the_forwarded_agent() {
    if !ssh_env() {
        return;
    }
    let Some(docker28) = support::require_docker28() else {
        return;
    };
    let repos = Repos::new();
    repos.create("ctx.git", CONTEXT_FILES);
    let ssh = GitSsh::serve(repos.base.path());
    let url = format!("{}#main", ssh.url("ctx.git"));
    let key = format!("default={}", ssh.client_key().display());
    assert_same_image(&docker28, &[Builder::Bud], &["--ssh", &key, &url]);

    let agent = SshAgent::with_keys(&[&ssh.client_key()]);
    let root = tempfile::tempdir().unwrap();
    let empty_home = tempfile::tempdir().unwrap();
    let dest = tempfile::tempdir().unwrap();
    let out_arg = format!("type=local,dest={}", dest.path().display());
    let out = support::bud_within(
        root.path(),
        &["-o", &out_arg, &url],
        &[
            ("SSH_AUTH_SOCK", &agent.socket),
            ("HOME", empty_home.path()),
        ],
        std::time::Duration::from_secs(300),
    );
    assert!(
        out.status.success(),
        "with SSH_AUTH_SOCK: {}\nsshd: {}",
        support::stderr_of(&out),
        ssh.log()
    );
    assert_eq!(read(dest.path(), "ctx/a.txt"), "a\n");

    let out = Command::new(env!("CARGO_BIN_EXE_bud"))
        .arg("--root")
        .arg(root.path())
        .args(["-o", "type=tar,dest=/dev/null", &url])
        .env_remove("SSH_AUTH_SOCK")
        .output()
        .unwrap();
    let stderr = support::stderr_of(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("SSH_AUTH_SOCK is not set"), "{stderr}");
}

/// `ADD <ssh git URL>` authenticates with the agent `--ssh default` gives, and only with it:
/// bud adds what Docker 28.5 adds (not Docker 20.10: see above); without `--ssh`
/// the build fails, as Docker 28.5's does, because no agent was forwarded; with an agent
/// whose key the server does not accept, it fails with the server's refusal and the URL.
#[test]
fn add_of_an_ssh_git_url_authenticates_with_the_ssh_agent() {
    if !ssh_env() {
        return;
    }
    let Some(docker28) = support::require_docker28() else {
        return;
    };
    let repos = Repos::new();
    repos.create("ctx.git", CONTEXT_FILES);
    let ssh = GitSsh::serve(repos.base.path());
    let local = tempfile::tempdir().unwrap();
    std::fs::write(
        local.path().join("Dockerfile"),
        "FROM bud-test/busybox:latest\nARG REPO\nADD ${REPO}#main:sub /sub/\nADD ${REPO}#main /all/\n",
    )
    .unwrap();
    let dir = local.path().to_str().unwrap();
    let repo = format!("REPO={}", ssh.url("ctx.git"));
    let key = format!("default={}", ssh.client_key().display());
    assert_same_image(
        &docker28,
        &[Builder::Bud],
        &["--ssh", &key, "--build-arg", &repo, dir],
    );

    let reference = docker28.build(&["--no-cache", "--build-arg", &repo, dir]);
    let reference_err = support::stderr_of(&reference);
    assert!(!reference.status.success(), "{reference_err}");
    assert!(
        reference_err.contains("unset ssh forward key default"),
        "{reference_err}"
    );
    let root = tempfile::tempdir().unwrap();
    let build = |extra: &[&str]| {
        let mut args = extra.to_vec();
        args.extend(["--build-arg", &repo, "-o", "type=tar,dest=/dev/null", dir]);
        let out = support::bud_at(root.path(), &args);
        let stderr = support::stderr_of(&out);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        stderr
    };
    let stderr = build(&[]);
    let last = stderr.lines().last().unwrap_or_default();
    assert!(
        last.contains("unset ssh forward key default") && last.contains(&ssh.url("ctx.git")),
        "{last}"
    );
    let stranger = tempfile::tempdir().unwrap();
    let stranger_key = stranger.path().join("key");
    ssh_keygen(&stranger_key);
    let refused = format!("default={}", stranger_key.display());
    let stderr = build(&["--ssh", &refused]);
    assert!(
        stderr.contains("Permission denied (publickey)") && stderr.contains(&ssh.url("ctx.git")),
        "{stderr}"
    );
}

/// `ADD --checksum=<commit>` and `ADD --keep-git-dir=true` of a git URL, as Docker 28.5 takes
/// them: a checksum the ref's commit starts with adds the image Docker 28.5 adds, another
/// fails both builds with "expected checksum to match"; a kept `.git` is, in both, a
/// repository with HEAD detached at the commit, the branch fetched beside it, and a clean
/// work tree.
/// (Docker 20.10's BuildKit knows neither flag.)
#[test]
fn add_checksum_and_keep_git_dir_follow_docker28() {
    if !context_env() {
        return;
    }
    let Some(docker28) = support::require_docker28() else {
        return;
    };
    let repos = Repos::new();
    let work = repos.create("ctx.git", CONTEXT_FILES);
    let commit = git(&work, &["rev-parse", "HEAD"]);
    let http = GitHttp::serve(repos.base.path());
    let repo = format!("REPO={}", http.url("ctx.git"));
    let local = tempfile::tempdir().unwrap();
    let dir = local.path().to_str().unwrap();
    let dockerfile = |checksum: &str| {
        std::fs::write(
            local.path().join("Dockerfile"),
            format!(
                "FROM bud-test/busybox:latest\nARG REPO\nADD --checksum={checksum} ${{REPO}}#main /src/\n"
            ),
        )
        .unwrap();
    };
    dockerfile(&commit[..12]);
    assert_same_image(&docker28, &[Builder::Bud], &["--build-arg", &repo, dir]);

    dockerfile(&"0".repeat(40));
    let reference = docker28.build(&["--no-cache", "--build-arg", &repo, dir]);
    let reference_err = support::stderr_of(&reference);
    assert!(!reference.status.success(), "{reference_err}");
    assert!(
        reference_err.contains("expected checksum to match"),
        "{reference_err}"
    );
    let root = tempfile::tempdir().unwrap();
    let out = support::bud_at(
        root.path(),
        &["--build-arg", &repo, "-o", "type=tar,dest=/dev/null", dir],
    );
    let stderr = support::stderr_of(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let last = stderr.lines().last().unwrap_or_default();
    assert!(
        last.contains("expected checksum to match") && last.contains(&commit),
        "{stderr}"
    );

    std::fs::write(
        local.path().join("Dockerfile"),
        "FROM scratch\nARG REPO\nADD --keep-git-dir=true ${REPO}#main /all/\n",
    )
    .unwrap();
    let kept = |dest: &Path| {
        let all = dest.join("all");
        assert_eq!(read(&all, "a.txt"), "a\n");
        (
            git(&all, &["rev-parse", "HEAD"]),
            read(&all, ".git/HEAD"),
            git(&all, &["status", "--porcelain"]),
            git(&all, &["rev-parse", "refs/heads/main"]),
        )
    };
    let want_dest = tempfile::tempdir().unwrap();
    let want_out = format!("type=local,dest={}", want_dest.path().display());
    let reference = docker28.build(&["--build-arg", &repo, "-o", &want_out, dir]);
    assert!(
        reference.status.success(),
        "{}",
        support::stderr_of(&reference)
    );
    let got_dest = tempfile::tempdir().unwrap();
    let got_out = format!("type=local,dest={}", got_dest.path().display());
    let out = support::bud_at(root.path(), &["--build-arg", &repo, "-o", &got_out, dir]);
    assert!(out.status.success(), "{}", support::stderr_of(&out));
    let want = kept(want_dest.path());
    assert_eq!(
        want,
        (
            commit.clone(),
            format!("{commit}\n"),
            String::new(),
            commit.clone()
        )
    );
    assert_eq!(kept(got_dest.path()), want);
}

/// A git context's provenance through `--addr` (dockerd fetches the repository): the
/// repository at the commit its ref names is a material and the config source's digest, as
/// in the embedded build's provenance.
#[test]
fn a_git_context_s_commit_is_in_the_provenance_through_addr() {
    if !context_env() {
        return;
    }
    let repos = Repos::new();
    let work = repos.create(
        "ctx.git",
        &[
            ("Dockerfile", "FROM bud-test/busybox:latest\nCOPY a.txt /\n"),
            ("a.txt", "one\n"),
        ],
    );
    let commit = git(&work, &["rev-parse", "HEAD"]).trim().to_string();
    let daemon = GitDaemon::serve(repos.base.path());
    let url = format!("{}#main", daemon.url("ctx.git"));
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let repository = format!("bud-test/h-attest-git-{}-{nanos}", std::process::id());
    let provenance = |extra: &[&str], tag: &str| -> serde_json::Value {
        let root = tempfile::tempdir().unwrap();
        let name = format!("{}/{repository}:{tag}", support::OPEN_REGISTRY);
        let mut args = extra.to_vec();
        args.extend(["--provenance=mode=min", "--push", "-t", &name, &url]);
        let out = support::bud_at(root.path(), &args);
        assert!(out.status.success(), "{}", support::stderr_of(&out));
        let index = support::registry_json(&format!("{repository}/manifests/{tag}"));
        let manifest = support::registry_json(&format!(
            "{repository}/manifests/{}",
            index["manifests"][1]["digest"].as_str().unwrap()
        ));
        let statement = support::registry_json(&format!(
            "{repository}/blobs/{}",
            manifest["layers"][0]["digest"].as_str().unwrap()
        ));
        statement["predicate"].clone()
    };
    let embedded = provenance(&[], "embedded");
    let remote = provenance(&["--addr", "docker://"], "remote");
    for predicate in [&embedded, &remote] {
        let git = predicate["materials"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["uri"] == url.as_str())
            .unwrap_or_else(|| panic!("no material {url}: {predicate}"));
        assert_eq!(git["digest"]["sha1"], commit.as_str(), "{predicate}");
        assert_eq!(
            predicate["invocation"]["configSource"]["digest"]["sha1"],
            commit.as_str(),
            "{}",
            predicate["invocation"]
        );
    }
    assert_eq!(remote["materials"], embedded["materials"]);
    assert_eq!(
        remote["invocation"]["configSource"],
        embedded["invocation"]["configSource"]
    );
    support::remove_images(&[&format!("{}/{repository}:remote", support::OPEN_REGISTRY)]);
}
