//! Git references as build contexts name them (BuildKit's `dfgitutil.ParseGitRef`):
//! `https://host/repo.git`, `git@host:repo.git`, `git://…`, `ssh://…`, with `#ref`,
//! `#ref:subdir`, or the query form of BuildKit 0.18 (`?ref=&subdir=&keep-git-dir=`), and
//! what BuildKit's `llb.Git` makes of them (the source identifier and its full URL).

use std::collections::BTreeMap;

use crate::llb::{self, Constraints, GitOptions, State};

/// A git build context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitRef {
    /// The URL to fetch from, without its fragment or query (`git.fullurl`).
    pub full_url: String,
    /// The source identifier's remote: host and path, no scheme or user.
    pub remote: String,
    /// Branch, tag, `refs/…` or commit; the remote's HEAD when absent.
    pub reference: Option<String>,
    /// The directory of the repository the context is, without surrounding slashes.
    pub subdir: Option<String>,
    /// `keep-git-dir=` of the query form; `None` when the URL does not say.
    pub keep_git_dir: Option<bool>,
    /// `checksum=` or `commit=`: the commit the ref must resolve to.
    pub checksum: Option<String>,
}

impl GitRef {
    /// `Ok(None)` when `value` is not a git reference at all; an error when it is one
    /// that cannot be used (a conflicting or unknown query, an unsupported scheme).
    pub fn parse(value: &str) -> Result<Option<GitRef>, String> {
        if value.starts_with("./") || value.starts_with("../") {
            return Ok(None);
        }
        let (url, fragment) = match value.split_once('#') {
            Some((u, f)) => (u, Some(f)),
            None => (value, None),
        };
        let (url, query) = match url.split_once('?') {
            Some((u, q)) => (u, Some(q)),
            None => (url, None),
        };
        let (full_url, remote) = if let Some(rest) = url.strip_prefix("github.com/") {
            // Deprecated, but still a git context for docker build and buildx.
            (
                format!("https://github.com/{rest}"),
                format!("github.com/{rest}"),
            )
        } else if let Some((scheme, rest)) = url.split_once("://") {
            match scheme.to_ascii_lowercase().as_str() {
                "http" | "https" => {
                    if !path_of(rest).ends_with(".git") {
                        return Ok(None);
                    }
                }
                "git" | "ssh" => {}
                _ => return Ok(None),
            }
            let host_path = rest.split_once('@').map_or(rest, |(_, r)| r);
            (url.to_owned(), normalize_remote(host_path))
        } else if let Some((user_host, path)) = scp_style(url) {
            let host = user_host.split_once('@').map_or(user_host, |(_, h)| h);
            (url.to_owned(), normalize_remote(&format!("{host}/{path}")))
        } else {
            return Ok(None);
        };
        let (reference, subdir) = match fragment.filter(|f| !f.is_empty()) {
            Some(f) => {
                let (r, d) = f.split_once(':').unwrap_or((f, ""));
                (non_empty(r), non_empty(d))
            }
            None => (None, None),
        };
        let mut git = GitRef {
            full_url,
            remote,
            reference,
            subdir,
            keep_git_dir: None,
            checksum: None,
        };
        if let Some(query) = query {
            git.load_query(query)?;
        }
        Ok(Some(git))
    }

    fn load_query(&mut self, query: &str) -> Result<(), String> {
        let mut seen: BTreeMap<String, Option<String>> = BTreeMap::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = match pair.split_once('=') {
                Some((k, v)) => (percent_decode(k), Some(percent_decode(v))),
                None => (percent_decode(pair), None),
            };
            if seen.insert(key.clone(), value).is_some() {
                return Err(format!("query {key:?} has multiple values"));
            }
        }
        let (mut tag, mut branch) = (None, None);
        for (key, value) in seen {
            let value = value.filter(|v| !v.is_empty());
            let flag = |what: &str| match value.as_deref() {
                None => Ok(true),
                Some(v) => crate::gobool::parse_go_bool(v)
                    .ok_or_else(|| format!("invalid {what} value: {v:?}")),
            };
            match key.as_str() {
                "keep-git-dir" => self.keep_git_dir = Some(flag("keep-git-dir")?),
                "submodules" | "fetch-by-commit" => {
                    flag(&key)?;
                }
                _ if value.is_none() => return Err(format!("query {key:?} has no value")),
                "ref" => set_once(&mut self.reference, value, "ref")?,
                "subdir" => set_once(&mut self.subdir, value, "subdir")?,
                "tag" => tag = value,
                "branch" => branch = value,
                "checksum" | "commit" => self.checksum = value,
                "mtime" => {}
                _ => return Err(format!("unexpected query {key:?}")),
            }
        }
        if let Some(tag) = tag {
            let full = prefixed("refs/tags/", &tag);
            set_once(&mut self.reference, Some(full), "ref")?;
        }
        if let Some(branch) = branch {
            if self
                .reference
                .as_deref()
                .is_some_and(|r| r.starts_with("refs/tags/"))
            {
                return Err("branch conflicts with tag".into());
            }
            let full = prefixed("refs/heads/", &branch);
            set_once(&mut self.reference, Some(full), "ref")?;
        }
        Ok(())
    }

    /// The git source of this context, as BuildKit's frontend makes it; `keep_git_dir`
    /// is BUILDKIT_CONTEXT_KEEP_GIT_DIR's value (the URL's own `keep-git-dir` also counts).
    pub fn state(&self, keep_git_dir: bool, name: &str) -> State {
        let mut opts = GitOptions::new(self.remote.clone());
        opts.full_url = Some(self.full_url.clone());
        opts.reference = self.reference.clone();
        opts.subdir = self.subdir.clone();
        opts.keep_git_dir = keep_git_dir || self.keep_git_dir == Some(true);
        opts.checksum = self.checksum.clone();
        opts.constraints = Constraints::default().with_custom_name(name.to_owned());
        llb::git(opts)
    }
}

/// Whether git reaches `url` over ssh (`ssh://…` or `user@host:path`), as BuildKit's
/// `gitutil.ParseURL` decides the ssh protocol.
pub fn is_ssh_url(url: &str) -> bool {
    let url = url.split(['#', '?']).next().unwrap_or_default();
    url.get(..6)
        .is_some_and(|scheme| scheme.eq_ignore_ascii_case("ssh://"))
        || scp_style(url).is_some()
}

/// The path part of `host/path…`, without a query or fragment.
fn path_of(rest: &str) -> &str {
    rest.split_once('/').map_or("", |(_, p)| p)
}

/// `user@host:path`, as ssh and git take it (the user is required, as in BuildKit).
fn scp_style(url: &str) -> Option<(&str, &str)> {
    let (user_host, path) = url.split_once(':')?;
    let (user, host) = user_host.split_once('@')?;
    let ok_user = !user.is_empty()
        && user
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    let ok_host = !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
    (ok_user && ok_host && !path.is_empty()).then_some((user_host, path))
}

/// `host` + the cleaned path, as `llb.Git` joins them.
fn normalize_remote(host_path: &str) -> String {
    let (host, path) = host_path.split_once('/').unwrap_or((host_path, ""));
    format!("{host}{}", crate::gopath::clean_abs(path))
}

fn non_empty(s: &str) -> Option<String> {
    Some(s.to_owned()).filter(|s| !s.is_empty())
}

fn prefixed(prefix: &str, name: &str) -> String {
    if name.starts_with(prefix) {
        name.to_owned()
    } else {
        format!("{prefix}{name}")
    }
}

fn set_once(slot: &mut Option<String>, value: Option<String>, what: &str) -> Result<(), String> {
    match (slot.as_deref(), value) {
        (Some(old), Some(new)) if old != new => {
            Err(format!("{what} conflicts: {old:?} vs {new:?}"))
        }
        (_, new) => {
            if new.is_some() {
                *slot = new;
            }
            Ok(())
        }
    }
}

fn percent_decode(s: &str) -> String {
    let hex = |b: u8| (b as char).to_digit(16);
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = match bytes.get(i..i + 3) {
            Some([b'%', hi, lo]) => hex(*hi).zip(hex(*lo)),
            _ => None,
        };
        match (escaped, bytes[i]) {
            (Some((hi, lo)), _) => {
                // Two hex digits make one byte.
                out.push((hi * 16 + lo) as u8);
                i += 3;
                continue;
            }
            (None, b'+') => out.push(b' '),
            (None, b) => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn git(value: &str) -> GitRef {
        GitRef::parse(value).unwrap().unwrap()
    }

    #[test]
    fn urls_and_fragments() {
        let g = git("https://github.com/moby/buildkit.git#v0.8.0:docs");
        assert_eq!(g.full_url, "https://github.com/moby/buildkit.git");
        assert_eq!(g.remote, "github.com/moby/buildkit.git");
        assert_eq!(g.reference.as_deref(), Some("v0.8.0"));
        assert_eq!(g.subdir.as_deref(), Some("docs"));
        let g = git("git@host.example:org/repo.git#main");
        assert_eq!(g.full_url, "git@host.example:org/repo.git");
        assert_eq!(g.remote, "host.example/org/repo.git");
        assert_eq!(g.reference.as_deref(), Some("main"));
        let g = git("ssh://git@127.0.0.1:2222/srv/r.git#:sub/dir");
        assert_eq!(g.remote, "127.0.0.1:2222/srv/r.git");
        assert_eq!((g.reference, g.subdir.as_deref()), (None, Some("sub/dir")));
        assert_eq!(git("git://127.0.0.1/r.git").remote, "127.0.0.1/r.git");
        assert!(is_ssh_url("git@host.example:org/repo.git#main"));
        assert!(is_ssh_url("SSH://git@127.0.0.1:2222/srv/r.git"));
        assert!(!is_ssh_url("https://user@host/r.git"));
        assert!(!is_ssh_url("git://127.0.0.1/r.git"));
        assert_eq!(
            git("github.com/o/r").full_url,
            "https://github.com/o/r",
            "the deprecated form"
        );
        for not_git in [
            "https://example.com/ctx.tar.gz",
            "http://example.com/Dockerfile",
            "./r.git",
            "dir",
            "oci-layout:///x",
            "/abs/path",
        ] {
            assert_eq!(GitRef::parse(not_git), Ok(None), "{not_git}");
        }
    }

    #[test]
    fn the_query_form() {
        let g = git("https://h/r.git?ref=v1&subdir=a/b&keep-git-dir=true");
        assert_eq!(g.full_url, "https://h/r.git");
        assert_eq!(g.reference.as_deref(), Some("v1"));
        assert_eq!(g.subdir.as_deref(), Some("a/b"));
        assert_eq!(g.keep_git_dir, Some(true));
        assert_eq!(git("https://h/r.git?keep-git-dir").keep_git_dir, Some(true));
        assert_eq!(
            git("https://h/r.git?tag=v2").reference.as_deref(),
            Some("refs/tags/v2")
        );
        assert_eq!(
            git("https://h/r.git?branch=dev").reference.as_deref(),
            Some("refs/heads/dev")
        );
        assert_eq!(
            git("https://h/r.git?commit=abc").checksum.as_deref(),
            Some("abc")
        );
        assert_eq!(
            git("https://h/r.git?ref=a#a").reference.as_deref(),
            Some("a")
        );
        for bad in [
            "https://h/r.git?ref=a#b",
            "https://h/r.git?ref=a&ref=b",
            "https://h/r.git?ref=",
            "https://h/r.git?bogus=1",
            "https://h/r.git?keep-git-dir=maybe",
            "https://h/r.git?tag=a&branch=b",
        ] {
            assert!(GitRef::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn decoding() {
        assert_eq!(percent_decode("a%2Fb+c%zz"), "a/b c%zz");
    }
}
