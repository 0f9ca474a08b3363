//! Source ops: where content enters the graph.

use std::collections::BTreeMap;

use bud_proto::pb::{self, attr, caps};

use super::constraints::Constraints;
use super::error::LlbError;
use super::state::{Output, State, Vertex};

/// The empty filesystem.
pub fn scratch() -> State {
    State::scratch()
}

/// How the daemon picks between a local copy of an image and the registry.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ResolveMode {
    /// The daemon's choice; not written to the op.
    #[default]
    Default,
    /// Always ask the registry (`--pull`); declares the capability, a promise the daemon
    /// must keep.
    ForcePull,
    /// Use the daemon's copy when it has one.
    PreferLocal,
}

/// How [`image`] asks for its image.
#[derive(Clone, Debug, Default)]
pub struct ImageOptions {
    /// Local copy or registry.
    pub resolve_mode: ResolveMode,
    /// Use only the image's first N layers (`image.layerlimit`).
    pub layer_limit: Option<u32>,
    /// Expected digest of the resolved image.
    pub checksum: Option<String>,
    /// The image's platform, and the op's progress name and source locations.
    pub constraints: Constraints,
}

/// An image from a registry, e.g. `busybox` or `ghcr.io/o/i:1@sha256:…`.
///
/// The reference is normalised as Docker does (`busybox` becomes
/// `docker.io/library/busybox:latest`) so equal images give equal ops.
pub fn image(reference: &str, opts: ImageOptions) -> Result<State, LlbError> {
    let normalized = normalize_image_ref(reference)?;
    let mut attrs = BTreeMap::new();
    let mut needs = vec![caps::SOURCE_IMAGE];
    match opts.resolve_mode {
        ResolveMode::Default => {}
        ResolveMode::ForcePull => {
            attrs.insert(
                attr::image::RESOLVE_MODE,
                attr::image::RESOLVE_MODE_FORCE_PULL,
            );
            // Only forcing a pull is a promise the daemon must be able to keep.
            needs.push(caps::SOURCE_IMAGE_RESOLVE_MODE);
        }
        ResolveMode::PreferLocal => {
            attrs.insert(
                attr::image::RESOLVE_MODE,
                attr::image::RESOLVE_MODE_PREFER_LOCAL,
            );
        }
    }
    let mut attrs: BTreeMap<String, String> = attrs
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    if let Some(limit) = opts.layer_limit {
        attrs.insert(attr::image::LAYER_LIMIT.to_owned(), limit.to_string());
        needs.push(caps::SOURCE_IMAGE_LAYER_LIMIT);
    }
    if let Some(checksum) = opts.checksum {
        attrs.insert(attr::image::CHECKSUM.to_owned(), checksum);
        needs.push(caps::SOURCE_IMAGE_CHECKSUM);
    }
    Ok(source(
        format!("docker-image://{normalized}"),
        attrs,
        &opts.constraints,
        &needs,
        true,
    ))
}

/// Files the client sends over the session under `name` (e.g. `context`).
///
/// Unlike BuildKit's client, nothing is filled in: BuildKit adds a
/// `local.unique` ID when no session is given; set `unique_id` for that.
/// Pattern lists are written as JSON arrays (serde_json does not escape
/// `<`, `>` and `&` as Go does; the daemon decodes both the same way).
#[derive(Clone, Debug, Default)]
pub struct LocalOptions {
    /// The session that serves the files; `None` is the build's own.
    pub session_id: Option<String>,
    /// Keeps this source apart from other local sources with equal options.
    pub unique_id: Option<String>,
    /// Only paths matching these are sent (`.dockerignore` syntax).
    pub include_patterns: Vec<String>,
    /// Paths matching these are not sent (`.dockerignore`'s patterns).
    pub exclude_patterns: Vec<String>,
    /// Only these paths (and symlinks they pass through) are sent; empty sends all.
    pub follow_paths: Vec<String>,
    /// A name under which the daemon keeps the last transfer, so the next one sends only
    /// what changed.
    pub shared_key_hint: Option<String>,
    /// Platform, progress name and source locations of the op.
    pub constraints: Constraints,
}

/// The files `name` of the client's session (`local://NAME`).
pub fn local(name: &str, opts: LocalOptions) -> State {
    let mut attrs = BTreeMap::new();
    let mut needs = Vec::new();
    let mut set = |key: &str, value: String, cap: &'static str| {
        attrs.insert(key.to_owned(), value);
        needs.push(cap);
    };
    if let Some(id) = opts.session_id {
        set(attr::local::SESSION_ID, id, caps::SOURCE_LOCAL_SESSION_ID);
    }
    if let Some(id) = opts.unique_id {
        set(attr::local::UNIQUE_ID, id, caps::SOURCE_LOCAL_UNIQUE);
    }
    for (key, list, cap) in [
        (
            attr::local::INCLUDE_PATTERNS,
            &opts.include_patterns,
            caps::SOURCE_LOCAL_INCLUDE_PATTERNS,
        ),
        (
            attr::local::EXCLUDE_PATTERNS,
            &opts.exclude_patterns,
            caps::SOURCE_LOCAL_EXCLUDE_PATTERNS,
        ),
        (
            attr::local::FOLLOW_PATHS,
            &opts.follow_paths,
            caps::SOURCE_LOCAL_FOLLOW_PATHS,
        ),
    ] {
        if !list.is_empty() {
            set(key, json_string_array(list), cap);
        }
    }
    if let Some(hint) = opts.shared_key_hint {
        set(
            attr::local::SHARED_KEY_HINT,
            hint,
            caps::SOURCE_LOCAL_SHARED_KEY_HINT,
        );
    }
    needs.push(caps::SOURCE_LOCAL);
    source(
        format!("local://{name}"),
        attrs,
        &opts.constraints,
        &needs,
        false,
    )
}

/// A file downloaded over HTTP(S).
#[derive(Clone, Debug, Default)]
pub struct HttpOptions {
    /// Expected `sha256:…` of the content.
    pub checksum: Option<String>,
    /// Name of the file in the resulting filesystem.
    pub filename: Option<String>,
    /// Permission bits of the file; `None` (or 0) is 0600, as BuildKit makes it.
    pub perm: Option<u32>,
    /// Owner of the file; `None` (or 0) is root.
    pub uid: Option<u32>,
    /// Group of the file; `None` (or 0) is root's.
    pub gid: Option<u32>,
    /// Platform, progress name and source locations of the op.
    pub constraints: Constraints,
}

/// The file at `url`, alone in an otherwise empty filesystem.
pub fn http(url: &str, opts: HttpOptions) -> State {
    let mut attrs = BTreeMap::new();
    let mut needs = Vec::new();
    if let Some(checksum) = opts.checksum {
        attrs.insert(attr::http::CHECKSUM.to_owned(), checksum);
        needs.push(caps::SOURCE_HTTP_CHECKSUM);
    }
    if let Some(name) = opts.filename {
        attrs.insert(attr::http::FILENAME.to_owned(), name);
    }
    if let Some(perm) = opts.perm.filter(|p| *p != 0) {
        attrs.insert(attr::http::PERM.to_owned(), format!("0{perm:o}"));
        needs.push(caps::SOURCE_HTTP_PERM);
    }
    if let Some(uid) = opts.uid.filter(|id| *id != 0) {
        attrs.insert(attr::http::UID.to_owned(), uid.to_string());
        needs.push(caps::SOURCE_HTTP_UID_GID);
    }
    if let Some(gid) = opts.gid.filter(|id| *id != 0) {
        attrs.insert(attr::http::GID.to_owned(), gid.to_string());
        needs.push(caps::SOURCE_HTTP_UID_GID);
    }
    needs.push(caps::SOURCE_HTTP);
    source(url.to_owned(), attrs, &opts.constraints, &needs, false)
}

/// A git checkout. The caller parses the remote: `remote` is its host and
/// path (`github.com/moby/buildkit.git`), which BuildKit uses as the identity
/// whatever the protocol; `full_url` is what to fetch.
#[derive(Clone, Debug)]
pub struct GitOptions {
    /// Host and path, without scheme or user: the source's identity.
    pub remote: String,
    /// The URL to fetch; `None` fetches `remote` over https.
    pub full_url: Option<String>,
    /// Branch, tag or commit.
    pub reference: Option<String>,
    /// Only this directory of the checkout becomes the result.
    pub subdir: Option<String>,
    /// Keep the `.git` directory (`ADD --keep-git-dir`).
    pub keep_git_dir: bool,
    /// Names of the session secrets used for HTTP authentication.
    pub auth_token_secret: Option<String>,
    /// Name of the secret holding a whole `Authorization` header.
    pub auth_header_secret: Option<String>,
    /// `known_hosts` lines the ssh remote's key must match; `None` accepts its key.
    pub known_ssh_hosts: Option<String>,
    /// The `--ssh` agent an ssh remote authenticates with; `default` when `None` and the
    /// URL is ssh.
    pub mount_ssh_sock: Option<String>,
    /// Expected commit.
    pub checksum: Option<String>,
    /// Platform, progress name and source locations of the op.
    pub constraints: Constraints,
}

impl GitOptions {
    /// BuildKit's defaults: the secrets `GIT_AUTH_TOKEN` and `GIT_AUTH_HEADER`.
    pub fn new(remote: impl Into<String>) -> Self {
        GitOptions {
            remote: remote.into(),
            full_url: None,
            reference: None,
            subdir: None,
            keep_git_dir: false,
            auth_token_secret: Some("GIT_AUTH_TOKEN".to_owned()),
            auth_header_secret: Some("GIT_AUTH_HEADER".to_owned()),
            known_ssh_hosts: None,
            mount_ssh_sock: None,
            checksum: None,
            constraints: Constraints::default(),
        }
    }
}

/// The checkout `opts` describe, identified as BuildKit identifies it
/// (`git://REMOTE#REF:SUBDIR`).
pub fn git(opts: GitOptions) -> State {
    let mut id = format!("git://{}", opts.remote);
    let subdir = opts
        .subdir
        .as_deref()
        .map(|s| s.trim_matches('/'))
        .filter(|s| !s.is_empty());
    if opts.reference.is_some() || subdir.is_some() {
        id.push('#');
        id.push_str(opts.reference.as_deref().unwrap_or_default());
        if let Some(subdir) = subdir {
            id.push(':');
            id.push_str(subdir);
        }
    }
    let over_ssh = opts
        .full_url
        .as_deref()
        .is_some_and(crate::gitref::is_ssh_url);
    let mut attrs = BTreeMap::new();
    let mut needs = Vec::new();
    if opts.keep_git_dir {
        attrs.insert(attr::git::KEEP_GIT_DIR.to_owned(), "true".to_owned());
        needs.push(caps::SOURCE_GIT_KEEP_DIR);
    }
    if let Some(url) = opts.full_url {
        attrs.insert(attr::git::FULL_URL.to_owned(), url);
        needs.push(caps::SOURCE_GIT_FULL_URL);
    }
    // The default secret names are attributes without a capability: a daemon
    // that does not know them simply fetches without authentication.
    if let Some(name) = opts.auth_token_secret {
        attrs.insert(attr::git::AUTH_TOKEN_SECRET.to_owned(), name);
    }
    if let Some(name) = opts.auth_header_secret {
        attrs.insert(attr::git::AUTH_HEADER_SECRET.to_owned(), name);
    }
    if let Some(hosts) = opts.known_ssh_hosts {
        attrs.insert(attr::git::KNOWN_SSH_HOSTS.to_owned(), hosts);
        needs.push(caps::SOURCE_GIT_KNOWN_SSH_HOSTS);
    }
    // As `llb.Git`: a remote reached over ssh authenticates with the session's agent,
    // `default` unless another is named. (BuildKit's frontend also scans the host's key into
    // `git.knownsshhosts`, best effort; this frontend does no I/O, and without known hosts
    // the git source accepts the host's key, as BuildKit's does when the scan failed.)
    let mount_ssh_sock = match opts.mount_ssh_sock {
        None if over_ssh => Some("default".to_owned()),
        sock => sock,
    };
    if let Some(sock) = mount_ssh_sock {
        attrs.insert(attr::git::MOUNT_SSH_SOCK.to_owned(), sock);
        needs.push(caps::SOURCE_GIT_MOUNT_SSH_SOCK);
    }
    if let Some(checksum) = opts.checksum {
        attrs.insert(attr::git::CHECKSUM.to_owned(), checksum);
        needs.push(caps::SOURCE_GIT_CHECKSUM);
    }
    if subdir.is_some() {
        needs.push(caps::SOURCE_GIT_SUBDIR);
    }
    needs.push(caps::SOURCE_GIT);
    source(id, attrs, &opts.constraints, &needs, false)
}

/// An image from an OCI layout the client serves as a content store of the session
/// (`--build-context NAME=oci-layout://…`).
#[derive(Clone, Debug, Default)]
pub struct OciLayoutOptions {
    /// The session serving the layout; empty is the build's own.
    pub session_id: String,
    /// The session's name for the layout.
    pub store_id: String,
    /// The image's platform, and the op's progress name and source locations.
    pub constraints: Constraints,
}

/// `reference` is `NAME@DIGEST`, normalised; only the digest is looked up in the store.
pub fn oci_layout(reference: &str, opts: OciLayoutOptions) -> Result<State, LlbError> {
    let normalized = normalize_image_ref(reference)?;
    let mut attrs = BTreeMap::from([(attr::oci::STORE_ID.to_owned(), opts.store_id)]);
    if !opts.session_id.is_empty() {
        attrs.insert(attr::oci::SESSION_ID.to_owned(), opts.session_id);
    }
    Ok(source(
        format!("oci-layout://{normalized}"),
        attrs,
        &opts.constraints,
        &[caps::SOURCE_OCI_LAYOUT],
        true,
    ))
}

fn source(
    identifier: String,
    attrs: BTreeMap<String, String>,
    constraints: &Constraints,
    needs: &[&str],
    platform_specific: bool,
) -> State {
    let op = pb::op::Op::Source(pb::SourceOp { identifier, attrs });
    let vertex = Vertex::new(Vec::new(), op, constraints, needs, platform_specific);
    State::from_output(Output::new(vertex, 0))
}

fn json_string_array(items: &[String]) -> String {
    // Serialising a list of strings cannot fail.
    serde_json::to_string(items).unwrap_or_default()
}

/// Docker's normalisation of an image reference: default registry
/// `docker.io`, `library/` for its official images, tag `latest` when neither
/// a tag nor a digest is given.
pub fn normalize_image_ref(reference: &str) -> Result<String, LlbError> {
    let invalid = |reason| LlbError::InvalidImageRef {
        reference: reference.to_owned(),
        reason,
    };
    if reference.is_empty() {
        return Err(invalid("empty"));
    }
    if reference
        .chars()
        .any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(invalid("contains whitespace"));
    }
    let (name, digest) = match reference.split_once('@') {
        Some((name, digest)) => (name, Some(digest)),
        None => (reference, None),
    };
    // A tag follows the last colon after the last slash (a colon before it is a port).
    let last_component = name.rsplit('/').next().unwrap_or(name);
    let (repo, tag) = match last_component.rsplit_once(':') {
        Some((_, tag)) => (&name[..name.len() - tag.len() - 1], Some(tag)),
        None => (name, None),
    };
    if repo.is_empty() || repo.ends_with('/') || tag == Some("") || digest == Some("") {
        return Err(invalid("missing a name, tag or digest part"));
    }
    let (domain, path) = match repo.split_once('/') {
        Some((first, rest)) if first.contains(['.', ':']) || first == "localhost" => {
            (first, rest.to_owned())
        }
        _ => ("docker.io", repo.to_owned()),
    };
    if path.chars().any(|c| c.is_ascii_uppercase()) {
        return Err(invalid("repository names must be lowercase"));
    }
    let domain = if domain == "index.docker.io" {
        "docker.io"
    } else {
        domain
    };
    let path = if domain == "docker.io" && !path.contains('/') {
        format!("library/{path}")
    } else {
        path
    };
    let mut out = format!("{domain}/{path}");
    match (tag, digest) {
        (Some(tag), _) => {
            out.push(':');
            out.push_str(tag);
        }
        (None, None) => out.push_str(":latest"),
        (None, Some(_)) => {}
    }
    if let Some(digest) = digest {
        out.push('@');
        out.push_str(digest);
    }
    Ok(out)
}
