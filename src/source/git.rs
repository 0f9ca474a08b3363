//! `ADD <git URL>#<ref>:<subdir>`: a checkout of a git repository, made with the `git` CLI.
//!
//! The ref is first resolved with `git ls-remote` (branches win over tags, as in `git
//! checkout`; a full commit ID needs no lookup), and the snapshot is keyed by the commit,
//! so an unchanged remote reuses it without fetching. The fetch is shallow. `.git` is kept
//! only with `git.keepgitdir` and no subdirectory, as in BuildKit. Git runs without the
//! user's configuration or terminal prompts. An http(s) remote is sent an `Authorization`
//! header from the `GIT_AUTH_HEADER` / `GIT_AUTH_TOKEN` secrets (`NAME.HOST` first), as
//! BuildKit's git source takes them, or, when the remote asks for credentials and no secret
//! gives any, from the user's git credential helpers (`git credential fill`, bounded, never
//! prompting). An ssh remote authenticates with the `--ssh` agent the source names
//! (`git.mountsshsock`, `default` for every ssh URL the frontend makes), and only with it; its
//! host key is checked against `git.knownsshhosts` when the source has them and accepted
//! otherwise, as BuildKit's git source does.
//! This module fetches only: the checkout goes into directories it is given, and the solver
//! owns the snapshots (`solver::remote_source`).

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::path::{Component, Path, PathBuf};
use std::process::Stdio;

use bud_proto::pb::attr;
use sha2::{Digest as _, Sha256};

/// Why a git source could not be resolved or checked out.
#[derive(Debug, thiserror::Error)]
pub enum GitError {
    /// The source op's identifier names no remote (`git://#ref`), the identifier as given.
    #[error("invalid git source {0:?}")]
    InvalidIdentifier(String),
    /// The `git` program could not be started (not installed, not executable).
    #[error("running git")]
    Spawn(#[source] std::io::Error),
    /// git exited unsuccessfully; its stderr is the only account of why, so it is part of
    /// the message (git is a program, not a source error to chain).
    #[error("git {command} failed for {url}#{reference}: {stderr}")]
    Command {
        /// The git subcommand (`ls-remote`, `fetch`, `checkout`…).
        command: String,
        /// The remote.
        url: String,
        /// The ref asked for, `HEAD` when none was.
        reference: String,
        /// What git printed on stderr, trimmed.
        stderr: String,
    },
    /// `ls-remote` lists no branch, tag or ref of that name.
    #[error("repository {url} does not contain ref {reference}")]
    NoSuchRef {
        /// The remote.
        url: String,
        /// The ref asked for.
        reference: String,
    },
    /// The ref resolved to a commit that does not start with the source's `git.checksum`
    /// (`ADD --checksum=`, `#ref` with `checksum=`), BuildKit's message.
    #[error("expected checksum to match {expected}, got {got} for {url}#{reference}")]
    Checksum {
        /// The remote.
        url: String,
        /// The ref asked for.
        reference: String,
        /// The checksum (a commit prefix) the source asks for.
        expected: String,
        /// The commit the ref resolved to.
        got: String,
    },
    /// `git.mountsshsock` names an ssh agent the build was not given with `--ssh`.
    #[error("{url}: unset ssh forward key {id}: give it with --ssh {id}[=SOCKET|KEYFILE]")]
    NoSshAgent {
        /// The agent's id (`default` unless the Dockerfile names another).
        id: String,
        /// The ssh remote.
        url: String,
    },
    /// The `:subdir` of the URL leaves the repository, goes through a symlink or is not a
    /// directory of the checkout.
    #[error("invalid subdir {subdir:?} of {url}#{reference}: {reason}")]
    Subdir {
        /// The remote.
        url: String,
        /// The ref asked for, `HEAD` when none was.
        reference: String,
        /// The subdirectory as the URL names it.
        subdir: String,
        /// Which of those it is.
        reason: String,
    },
    /// A file operation on the checkout or its scratch directory failed.
    #[error("{action} {path}")]
    Io {
        /// What was being done, as a verb phrase (`"writing"`, `"moving"`…).
        action: &'static str,
        /// The file or directory it was done to.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
}

impl GitError {
    /// The remote refused anonymous access (git would have prompted for a user name).
    fn asks_for_credentials(&self) -> bool {
        matches!(self, GitError::Command { stderr, .. }
            if stderr.contains("terminal prompts disabled")
                || stderr.contains("Authentication failed"))
    }
}

/// A git source op, as its identifier (`git://REMOTE#REF:SUBDIR`) and attributes describe it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitSource {
    /// What to fetch from: `git.fullurl`, else the identifier's remote (with `https://`
    /// when it names no transport).
    pub url: String,
    /// Branch, tag, `refs/…` or full commit ID; the remote's HEAD when absent.
    reference: Option<String>,
    /// The directory of the repository to keep, without leading or trailing slashes.
    subdir: Option<String>,
    /// `git.keepgitdir`: the checkout keeps `.git` (only without a subdirectory).
    keep_git_dir: bool,
    /// A prefix the resolved commit (or annotated tag) must have.
    checksum: Option<String>,
    /// The `Authorization` header for an http(s) remote.
    pub auth: Option<AuthHeader>,
    /// How ssh reaches an ssh remote; `None` leaves ssh to its defaults.
    pub ssh: Option<SshAccess>,
}

/// The agent an ssh remote authenticates with, and the host keys it may present.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshAccess {
    /// The agent's socket, given to ssh as `SSH_AUTH_SOCK`.
    agent: PathBuf,
    /// A known_hosts file; `None` accepts any host key, as BuildKit does without one.
    known_hosts: Option<PathBuf>,
}

impl SshAccess {
    /// `GIT_SSH_COMMAND`: no user configuration or identity files, no prompt, the agent's
    /// keys only.
    fn command(&self) -> String {
        let mut cmd = String::from("ssh -F /dev/null -o BatchMode=yes -o IdentityFile=none");
        match &self.known_hosts {
            Some(file) => {
                cmd.push_str(" -o StrictHostKeyChecking=yes -o UserKnownHostsFile=");
                cmd.push_str(&shell_quote(&file.to_string_lossy()));
            }
            None => cmd.push_str(" -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null"),
        }
        cmd
    }
}

/// `s` as one word for the shell git runs `GIT_SSH_COMMAND` with.
fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// An `Authorization` header value, never shown.
#[derive(Clone, PartialEq, Eq)]
pub struct AuthHeader(String);

impl std::fmt::Debug for AuthHeader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuthHeader(<redacted>)")
    }
}

impl AuthHeader {
    fn basic(user: &str, password: &str) -> AuthHeader {
        use base64::Engine as _;
        let pair = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        AuthHeader(format!("basic {pair}"))
    }
}

/// A ref resolved on the remote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// The commit to check out.
    pub commit: String,
    /// The full ref to fetch (`refs/heads/main`, `refs/tags/v1`); `None` for a commit ID.
    pub fetch_ref: Option<String>,
}

impl GitSource {
    /// `identifier` is the part after `git://`.
    pub fn parse(identifier: &str, attrs: &BTreeMap<String, String>) -> Result<Self, GitError> {
        let (remote, fragment) = match identifier.split_once('#') {
            Some((r, f)) => (r, Some(f)),
            None => (identifier, None),
        };
        if remote.is_empty() {
            return Err(GitError::InvalidIdentifier(identifier.to_string()));
        }
        let (reference, subdir) = match fragment.map(|f| f.split_once(':').unwrap_or((f, ""))) {
            Some((r, d)) => (r, d),
            None => ("", ""),
        };
        let subdir = subdir.trim_matches('/');
        let url = match attrs.get(attr::git::FULL_URL) {
            Some(u) if !u.is_empty() => u.clone(),
            _ if is_transport(remote) => remote.to_string(),
            _ => format!("https://{remote}"),
        };
        Ok(Self {
            url,
            reference: Some(reference.to_string()).filter(|r| !r.is_empty()),
            subdir: Some(subdir.to_string()).filter(|d| !d.is_empty() && *d != "."),
            keep_git_dir: attrs
                .get(attr::git::KEEP_GIT_DIR)
                .is_some_and(|v| v == "true"),
            checksum: attrs
                .get(attr::git::CHECKSUM)
                .filter(|c| !c.is_empty())
                .cloned(),
            auth: None,
            ssh: None,
        })
    }

    /// The agent of `git.mountsshsock` among the build's `--ssh` agents, and the host keys of
    /// `git.knownsshhosts` written to `scratch`; `None` when the source names no agent.
    pub fn ssh_access(
        &self,
        attrs: &BTreeMap<String, String>,
        agents: &std::collections::HashMap<String, PathBuf>,
        scratch: &Path,
    ) -> Result<Option<SshAccess>, GitError> {
        let Some(id) = attrs
            .get(attr::git::MOUNT_SSH_SOCK)
            .filter(|id| !id.is_empty())
        else {
            return Ok(None);
        };
        let agent = agents.get(id).ok_or_else(|| GitError::NoSshAgent {
            id: id.clone(),
            url: self.url.clone(),
        })?;
        let known_hosts = match attrs
            .get(attr::git::KNOWN_SSH_HOSTS)
            .filter(|h| !h.trim().is_empty())
        {
            Some(hosts) => {
                let file = scratch.join("known_hosts");
                std::fs::write(&file, hosts).map_err(io_err("writing", &file))?;
                Some(file)
            }
            None => None,
        };
        Ok(Some(SshAccess {
            agent: agent.clone(),
            known_hosts,
        }))
    }

    /// The http(s) remote's host, with and without its port.
    fn http_hosts(&self) -> Option<Vec<String>> {
        let rest = self
            .url
            .strip_prefix("https://")
            .or_else(|| self.url.strip_prefix("http://"))?;
        let authority = rest.split('/').next().unwrap_or_default();
        let host = authority.rsplit('@').next().unwrap_or_default().to_owned();
        let mut hosts = vec![host.clone()];
        // Also without the port: `GIT_AUTH_TOKEN.127.0.0.1` for `http://127.0.0.1:8080/…`.
        if let Some((name, port)) = host.rsplit_once(':')
            && !port.is_empty()
            && port.bytes().all(|b| b.is_ascii_digit())
            && (!name.contains(':') || name.ends_with(']'))
        {
            hosts.push(name.to_owned());
        }
        Some(hosts)
    }

    /// The header the build's secrets give, looked up as BuildKit's git source looks them
    /// up: the header secret then the token secret, each `NAME.HOST` before `NAME` (HOST as
    /// in the URL, with its port, then without it).
    pub fn auth_from_secrets(
        &self,
        attrs: &BTreeMap<String, String>,
        secrets: &std::collections::HashMap<String, Vec<u8>>,
    ) -> Option<AuthHeader> {
        let hosts = self.http_hosts()?;
        let name = |key: &str, default: &str| {
            attrs
                .get(key)
                .filter(|v| !v.is_empty())
                .cloned()
                .unwrap_or_else(|| default.to_owned())
        };
        let header = name(attr::git::AUTH_HEADER_SECRET, "GIT_AUTH_HEADER");
        let token = name(attr::git::AUTH_TOKEN_SECRET, "GIT_AUTH_TOKEN");
        let mut candidates = Vec::new();
        for host in &hosts {
            candidates.push((format!("{header}.{host}"), false));
            candidates.push((format!("{token}.{host}"), true));
        }
        candidates.push((header, false));
        candidates.push((token, true));
        candidates.into_iter().find_map(|(id, is_token)| {
            let value = String::from_utf8_lossy(secrets.get(&id)?).trim().to_owned();
            Some(if is_token {
                AuthHeader::basic("x-access-token", &value)
            } else {
                AuthHeader(value)
            })
        })
    }

    /// Asks the user's git credential helpers for the remote's credentials: no terminal, no
    /// askpass program, at most 10 seconds. `None` when they have none.
    async fn credential_fill(&self) -> Option<AuthHeader> {
        self.http_hosts()?;
        let mut cmd = tokio::process::Command::new("git");
        cmd.args(["credential", "fill"])
            .env("GIT_TERMINAL_PROMPT", "0")
            .env_remove("GIT_ASKPASS")
            .env_remove("SSH_ASKPASS")
            .env("LC_ALL", "C")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = cmd.spawn().ok()?;
        let mut stdin = child.stdin.take()?;
        let request = format!("url={}\n\n", self.url);
        let ask = async move {
            use tokio::io::AsyncWriteExt as _;
            stdin.write_all(request.as_bytes()).await.ok()?;
            drop(stdin);
            child.wait_with_output().await.ok()
        };
        let out = tokio::time::timeout(std::time::Duration::from_secs(10), ask)
            .await
            .ok()??;
        if !out.status.success() {
            tracing::debug!(
                "git credential fill for {}: {}",
                self.url,
                String::from_utf8_lossy(&out.stderr).trim()
            );
            return None;
        }
        let text = String::from_utf8_lossy(&out.stdout);
        let field = |name: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix('='))
                .map(str::to_owned)
        };
        Some(AuthHeader::basic(&field("username")?, &field("password")?))
    }

    /// The ref asked for, `HEAD` when none was.
    pub fn reference_name(&self) -> &str {
        self.reference.as_deref().unwrap_or("HEAD")
    }

    /// Resolves the ref as `resolve` does; when the remote asks for credentials and no
    /// secret gave any, asks the user's credential helpers and, given some, tries again
    /// with them (kept for the checkout).
    pub async fn resolve_with_credentials(&mut self) -> Result<Resolved, GitError> {
        match self.resolve().await {
            Err(e) if self.auth.is_none() && e.asks_for_credentials() => {
                match self.credential_fill().await {
                    Some(auth) => {
                        self.auth = Some(auth);
                        self.resolve().await
                    }
                    None => Err(e),
                }
            }
            r => r,
        }
    }

    /// What provenance records of the checkout of `resolved`.
    pub fn fetched(&self, resolved: &Resolved) -> Fetched {
        Fetched {
            url: match &self.reference {
                Some(r) => format!("{}#{r}", self.url),
                None => self.url.clone(),
            },
            commit: resolved.commit.clone(),
        }
    }

    /// Resolves the ref to a commit with `git ls-remote`, unless it is a commit ID.
    pub async fn resolve(&self) -> Result<Resolved, GitError> {
        let reference = self.reference_name();
        let resolved = if is_commit_id(reference) {
            Resolved {
                commit: reference.to_ascii_lowercase(),
                fetch_ref: None,
            }
        } else {
            let peeled = format!("{reference}^{{}}");
            let out = self
                .git(
                    None,
                    &["ls-remote", "--symref", "--", &self.url, reference, &peeled],
                )
                .await?;
            pick_ref(&out, reference).ok_or_else(|| GitError::NoSuchRef {
                url: self.url.clone(),
                reference: reference.to_string(),
            })?
        };
        if let Some(expected) = &self.checksum
            && !resolved.commit.starts_with(expected.as_str())
        {
            return Err(GitError::Checksum {
                url: self.url.clone(),
                reference: reference.to_string(),
                expected: expected.clone(),
                got: resolved.commit.clone(),
            });
        }
        Ok(resolved)
    }

    /// The cache key of the checkout of `resolved`: the commit and what shapes the tree.
    pub fn snapshot_key(&self, resolved: &Resolved) -> String {
        let mut id = serde_json::json!({
            "commit": resolved.commit,
            "subdir": self.subdir,
        });
        if self.keep_git_dir && self.subdir.is_none() {
            // .git names the remote and the branch; `head` tells these checkouts from the
            // earlier ones that left HEAD on the branch.
            id["git"] = serde_json::json!({
                "url": self.url,
                "ref": resolved.fetch_ref,
                "head": "detached",
            });
        }
        format!("git:sha256:{}", hex::encode(Sha256::digest(id.to_string())))
    }

    /// Fetches `resolved` and writes its tree (or the subdirectory's) into `dest`, an empty
    /// directory; `scratch` is an empty directory for the work that is not kept.
    pub async fn checkout(
        &self,
        resolved: &Resolved,
        scratch: &Path,
        dest: &Path,
    ) -> Result<(), GitError> {
        let keep = self.keep_git_dir && self.subdir.is_none();
        let (git_dir, work_tree) = if keep {
            (dest.join(".git"), dest.to_path_buf())
        } else {
            let work = if self.subdir.is_some() {
                scratch.join("checkout")
            } else {
                dest.to_path_buf()
            };
            (scratch.join("repo.git"), work)
        };
        std::fs::create_dir_all(&work_tree).map_err(io_err("creating", &work_tree))?;
        let git_dir_arg = git_dir.as_os_str();
        let mut init: Vec<&OsStr> = vec!["init".as_ref(), "-q".as_ref()];
        if keep {
            init.push(dest.as_os_str());
        } else {
            init.extend(["--bare".as_ref(), git_dir_arg]);
        }
        self.git(None, &init).await?;
        let repo = Some(git_dir.as_path());
        self.git(repo, &["remote", "add", "origin", &self.url])
            .await?;
        self.fetch(repo, resolved).await?;
        let commit = format!("{}^{{commit}}", resolved.commit);
        self.git(repo, &["rev-parse", "-q", "--verify", &commit])
            .await
            .map_err(|_| GitError::Command {
                command: "fetch".into(),
                url: self.url.clone(),
                reference: self.reference_name().to_string(),
                stderr: format!(
                    "the remote did not provide commit {} (did the ref move?)",
                    resolved.commit
                ),
            })?;
        let tree_args = [
            OsStr::new("--work-tree"),
            work_tree.as_os_str(),
            OsStr::new("checkout"),
            OsStr::new("-q"),
        ];
        if keep {
            // HEAD detached at the commit, the branch or tag fetched beside it, as BuildKit's
            // `git checkout FETCH_HEAD` leaves it.
            self.git(
                repo,
                &["update-ref", "--no-deref", "HEAD", &resolved.commit],
            )
            .await?;
            self.git_in(&work_tree, &["reset", "-q", "--hard"]).await?;
            let fetch_head = git_dir.join("FETCH_HEAD");
            if fetch_head.exists() {
                std::fs::remove_file(&fetch_head).map_err(io_err("removing", &fetch_head))?;
            }
        } else {
            let mut args: Vec<&OsStr> = tree_args.to_vec();
            args.extend([OsStr::new(&commit), OsStr::new("--"), OsStr::new(".")]);
            self.git(repo, &args).await?;
        }
        if work_tree.join(".gitmodules").is_file() {
            let mut args: Vec<&OsStr> = vec![OsStr::new("--work-tree"), work_tree.as_os_str()];
            args.extend(
                ["submodule", "update", "--init", "--recursive", "--depth=1"].map(OsStr::new),
            );
            self.run(Some(&work_tree), repo, &args).await?;
        }
        if let Some(subdir) = &self.subdir {
            self.move_subdir(&work_tree, subdir, dest)?;
        }
        Ok(())
    }

    async fn fetch(&self, repo: Option<&Path>, resolved: &Resolved) -> Result<(), GitError> {
        match &resolved.fetch_ref {
            Some(r) => {
                let spec = if r.starts_with("refs/") {
                    format!("+{r}:{r}")
                } else {
                    r.clone()
                };
                self.git(
                    repo,
                    &[
                        "fetch",
                        "-q",
                        "-u",
                        "--depth=1",
                        "--no-tags",
                        "origin",
                        &spec,
                    ],
                )
                .await?;
            }
            None => {
                // Servers need not let a client fetch a commit by ID; then fetch every
                // branch and tag and look for it among them.
                let by_id = self
                    .git(
                        repo,
                        &[
                            "fetch",
                            "-q",
                            "--depth=1",
                            "--no-tags",
                            "origin",
                            &resolved.commit,
                        ],
                    )
                    .await;
                if by_id.is_err() {
                    self.git(
                        repo,
                        &[
                            "fetch",
                            "-q",
                            "--tags",
                            "origin",
                            "+refs/heads/*:refs/remotes/origin/*",
                        ],
                    )
                    .await?;
                }
            }
        }
        Ok(())
    }

    /// Moves the entries of `work_tree/subdir` into `dest`, refusing paths that leave the
    /// tree or go through symlinks.
    fn move_subdir(&self, work_tree: &Path, subdir: &str, dest: &Path) -> Result<(), GitError> {
        let invalid = |reason: &str| GitError::Subdir {
            url: self.url.clone(),
            reference: self.reference_name().to_string(),
            subdir: subdir.to_string(),
            reason: reason.to_string(),
        };
        let mut dir = work_tree.to_path_buf();
        for component in Path::new(subdir).components() {
            match component {
                Component::Normal(name) => dir.push(name),
                Component::CurDir => {}
                _ => return Err(invalid("it must stay inside the repository")),
            }
            match std::fs::symlink_metadata(&dir) {
                Ok(md) if md.is_dir() => {}
                Ok(_) => return Err(invalid("not a directory")),
                Err(_) => return Err(invalid("no such directory")),
            }
        }
        let entries = std::fs::read_dir(&dir).map_err(io_err("reading", &dir))?;
        for entry in entries {
            let entry = entry.map_err(io_err("reading", &dir))?;
            let to = dest.join(entry.file_name());
            std::fs::rename(entry.path(), &to).map_err(io_err("moving to", &to))?;
        }
        Ok(())
    }

    async fn git_in(&self, work_tree: &Path, args: &[&str]) -> Result<String, GitError> {
        self.run(Some(work_tree), None, args).await
    }

    async fn git<S: AsRef<OsStr>>(
        &self,
        git_dir: Option<&Path>,
        args: &[S],
    ) -> Result<String, GitError> {
        self.run(None, git_dir, args).await
    }

    async fn run<S: AsRef<OsStr>>(
        &self,
        cwd: Option<&Path>,
        git_dir: Option<&Path>,
        args: &[S],
    ) -> Result<String, GitError> {
        let mut cmd = tokio::process::Command::new("git");
        // No user or system configuration (credential helpers, URL rewrites, hooks paths),
        // no SSH agent but the one the source names, no prompts: the same fetch whoever runs
        // the build.
        cmd.env_clear()
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_TERMINAL_PROMPT", "0")
            .env("LC_ALL", "C");
        match &self.ssh {
            Some(ssh) => {
                cmd.env("GIT_SSH_COMMAND", ssh.command())
                    .env("SSH_AUTH_SOCK", &ssh.agent);
            }
            None => {
                cmd.env("GIT_SSH_COMMAND", "ssh -o BatchMode=yes");
            }
        }
        for var in [
            "PATH",
            "HTTP_PROXY",
            "HTTPS_PROXY",
            "NO_PROXY",
            "ALL_PROXY",
            "http_proxy",
            "https_proxy",
            "no_proxy",
            "all_proxy",
        ] {
            if let Some(v) = std::env::var_os(var) {
                cmd.env(var, v);
            }
        }
        // The header goes through the environment, not the command line other users can read.
        if let Some(AuthHeader(value)) = &self.auth {
            cmd.env("GIT_CONFIG_COUNT", "1")
                .env("GIT_CONFIG_KEY_0", "http.extraHeader")
                .env("GIT_CONFIG_VALUE_0", format!("Authorization: {value}"));
        }
        cmd.args([
            "-c",
            "init.defaultBranch=main",
            "-c",
            "advice.detachedHead=false",
        ]);
        if let Some(dir) = git_dir {
            cmd.arg("--git-dir").arg(dir);
        }
        if let Some(dir) = cwd {
            cmd.current_dir(dir);
        }
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let out = cmd.output().await.map_err(GitError::Spawn)?;
        if !out.status.success() {
            let command = subcommand(args);
            return Err(GitError::Command {
                command,
                url: self.url.clone(),
                reference: self.reference_name().to_string(),
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            });
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

/// A repository as a build checked it out, for provenance: its URL (`URL#REF` when a ref
/// was asked for, as BuildKit records it) and the commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    /// The remote, `#REF` appended when the source asked for a ref.
    pub url: String,
    /// The full commit ID checked out, lower-case hex.
    pub commit: String,
}

/// Picks the commit `ls-remote --symref` output gives for `reference`: an exact `refs/…`
/// match, else the branch, else the tag (peeled when annotated), as BuildKit does.
fn pick_ref(ls_remote: &str, reference: &str) -> Option<Resolved> {
    let trimmed = reference.trim_start_matches("refs/");
    let exact = format!("refs/{trimmed}");
    let head = format!("refs/heads/{}", trimmed.trim_start_matches("heads/"));
    let tag = format!("refs/tags/{}", trimmed.trim_start_matches("tags/"));
    let peeled = format!("{tag}^{{}}");
    let mut found: BTreeMap<&str, &str> = BTreeMap::new();
    let mut head_target = None;
    for line in ls_remote.lines() {
        let Some((sha, name)) = line.split_once('\t') else {
            continue;
        };
        if let Some(target) = sha.strip_prefix("ref: ") {
            if name == "HEAD" {
                head_target = Some(target);
            }
            continue;
        }
        found.insert(name, sha);
    }
    let resolved = |sha: &str, fetch_ref: &str| Resolved {
        commit: sha.to_ascii_lowercase(),
        fetch_ref: Some(fetch_ref.to_string()),
    };
    if reference == "HEAD" {
        let sha = found.get("HEAD")?;
        return Some(resolved(sha, head_target.unwrap_or("HEAD")));
    }
    if let Some(sha) = found
        .get(exact.as_str())
        .or_else(|| found.get(head.as_str()))
    {
        let name = if found.contains_key(exact.as_str()) {
            &exact
        } else {
            &head
        };
        return Some(resolved(sha, name));
    }
    let sha = found
        .get(peeled.as_str())
        .or_else(|| found.get(tag.as_str()))?;
    Some(resolved(sha, &tag))
}

/// The git subcommand among `args`, for messages.
fn subcommand<S: AsRef<OsStr>>(args: &[S]) -> String {
    let mut args = args.iter().map(|a| a.as_ref().to_string_lossy());
    while let Some(arg) = args.next() {
        if arg == "--work-tree" {
            args.next();
        } else if !arg.starts_with('-') {
            return arg.into_owned();
        }
    }
    String::new()
}

fn is_commit_id(s: &str) -> bool {
    (s.len() == 40 || s.len() == 64) && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Whether a remote already names its protocol (`https://`, `ssh://`, `git@host:path`).
fn is_transport(remote: &str) -> bool {
    ["http://", "https://", "git://", "ssh://", "file://"]
        .iter()
        .any(|p| remote.starts_with(p))
        || remote
            .split_once(':')
            .is_some_and(|(user_host, _)| user_host.contains('@') && !user_host.contains('/'))
}

fn io_err(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> GitError + use<> {
    let path = path.to_path_buf();
    move |source| GitError::Io {
        action,
        path,
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attrs(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn errors_name_their_own_layer_and_keep_the_cause() {
        let cause = std::io::Error::from(std::io::ErrorKind::PermissionDenied);
        let cause_text = cause.to_string();
        let e = io_err("creating", Path::new("/x/checkout"))(cause);
        assert_eq!(e.to_string(), "creating /x/checkout");
        let chain = crate::error_chain::error_chain(&e);
        assert_eq!(chain, format!("creating /x/checkout: {cause_text}"));
        let spawn = GitError::Spawn(std::io::Error::from(std::io::ErrorKind::NotFound));
        assert_eq!(spawn.to_string(), "running git");
        assert!(std::error::Error::source(&spawn).is_some());
    }

    #[test]
    fn identifiers_and_urls() {
        let s =
            GitSource::parse("github.com/moby/buildkit.git#v0.8.0:/docs/", &attrs(&[])).unwrap();
        assert_eq!(s.url, "https://github.com/moby/buildkit.git");
        assert_eq!(s.reference.as_deref(), Some("v0.8.0"));
        assert_eq!(s.subdir.as_deref(), Some("docs"));
        let s = GitSource::parse(
            "127.0.0.1:9418/r.git#:sub",
            &attrs(&[
                ("git.fullurl", "git://127.0.0.1:9418/r.git"),
                ("git.keepgitdir", "true"),
            ]),
        )
        .unwrap();
        assert_eq!(s.url, "git://127.0.0.1:9418/r.git");
        assert_eq!((s.reference, s.subdir.as_deref()), (None, Some("sub")));
        assert!(s.keep_git_dir);
        assert!(is_transport("git@github.com:o/r.git"));
        assert!(!is_transport("github.com/o/r.git"));
        assert!(GitSource::parse("#main", &attrs(&[])).is_err());
    }

    const LS_REMOTE: &str = "ref: refs/heads/main\tHEAD\n\
        1111111111111111111111111111111111111111\tHEAD\n\
        2222222222222222222222222222222222222222\trefs/heads/v1\n\
        3333333333333333333333333333333333333333\trefs/tags/v1\n\
        4444444444444444444444444444444444444444\trefs/tags/v2\n\
        5555555555555555555555555555555555555555\trefs/tags/v2^{}\n";

    #[test]
    fn refs_resolve_as_git_checkout_would() {
        let head = pick_ref(LS_REMOTE, "HEAD").unwrap();
        assert_eq!(head.commit, "1".repeat(40));
        assert_eq!(head.fetch_ref.as_deref(), Some("refs/heads/main"));
        let branch = pick_ref(LS_REMOTE, "v1").unwrap();
        assert_eq!(branch.commit, "2".repeat(40), "branches win over tags");
        let tag = pick_ref(LS_REMOTE, "refs/tags/v1").unwrap();
        assert_eq!(tag.commit, "3".repeat(40));
        let annotated = pick_ref(LS_REMOTE, "v2").unwrap();
        assert_eq!(
            annotated.commit,
            "5".repeat(40),
            "annotated tags are peeled"
        );
        assert_eq!(annotated.fetch_ref.as_deref(), Some("refs/tags/v2"));
        assert_eq!(pick_ref(LS_REMOTE, "nope"), None);
    }

    #[test]
    fn keys_follow_the_commit_and_the_layout() {
        let s = GitSource::parse("h/r.git#main", &attrs(&[])).unwrap();
        let a = Resolved {
            commit: "a".repeat(40),
            fetch_ref: Some("refs/heads/main".into()),
        };
        let b = Resolved {
            commit: "b".repeat(40),
            ..a.clone()
        };
        assert_ne!(s.snapshot_key(&a), s.snapshot_key(&b));
        let sub = GitSource::parse("h/r.git#main:d", &attrs(&[])).unwrap();
        assert_ne!(s.snapshot_key(&a), sub.snapshot_key(&a));
        let keep = GitSource::parse("h/r.git#main", &attrs(&[("git.keepgitdir", "true")])).unwrap();
        assert_ne!(s.snapshot_key(&a), keep.snapshot_key(&a));
    }

    #[test]
    fn auth_secrets_are_looked_up_as_buildkit_looks_them_up() {
        let s = GitSource::parse(
            "127.0.0.1:8080/r.git",
            &attrs(&[("git.fullurl", "http://127.0.0.1:8080/r.git")]),
        )
        .unwrap();
        let secrets = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
                .collect::<std::collections::HashMap<_, _>>()
        };
        let header = |pairs: &[(&str, &str)]| {
            s.auth_from_secrets(&attrs(&[]), &secrets(pairs))
                .map(|AuthHeader(v)| v)
        };
        assert_eq!(header(&[]), None);
        // A token is sent as x-access-token's password.
        assert_eq!(
            header(&[("GIT_AUTH_TOKEN", "t")]).as_deref(),
            Some("basic eC1hY2Nlc3MtdG9rZW46dA==")
        );
        // The host's secret wins, with its port first, and a header over a token.
        assert_eq!(
            header(&[("GIT_AUTH_TOKEN", "t"), ("GIT_AUTH_HEADER.127.0.0.1", "h")]).as_deref(),
            Some("h")
        );
        assert_eq!(
            header(&[
                ("GIT_AUTH_HEADER.127.0.0.1", "h"),
                ("GIT_AUTH_TOKEN.127.0.0.1:8080", "t")
            ])
            .as_deref(),
            Some("basic eC1hY2Nlc3MtdG9rZW46dA==")
        );
        assert!(!format!("{:?}", AuthHeader("secret".into())).contains("secret"));
        // Not for git:// or ssh remotes.
        let daemon = GitSource::parse("git://h/r.git", &attrs(&[])).unwrap();
        assert!(
            daemon
                .auth_from_secrets(&attrs(&[]), &secrets(&[("GIT_AUTH_TOKEN", "t")]))
                .is_none()
        );
    }
}
