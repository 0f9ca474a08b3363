//! COPY and ADD: file op copy actions, from the context, a stage, a URL, git or heredocs.

use super::dispatch::{COMMAND_DESCRIPTION, Stage, parse_chown};
use super::error::ConvertErrorKind;
use super::stages::Cmd;
use crate::gopath::clean_abs;
use crate::instructions::{Add, Copy};
use crate::llb::{
    self, Constraints, CopyMode, CopyOptions, FileBuilder, GitOptions, HttpOptions, State,
};
use crate::parser::Heredoc;
use crate::shell::Lexer;

type Result<T, E = ConvertErrorKind> = std::result::Result<T, E>;

/// COPY and ADD after expansion.
struct CopySpec<'a> {
    is_add: bool,
    sources: Vec<String>,
    heredocs: &'a [Heredoc],
    dest: String,
    chown: String,
    chmod: String,
    link: bool,
    parents: bool,
    excludes: Vec<String>,
    checksum: String,
    keep_git_dir: Option<bool>,
    unpack: Option<bool>,
    /// Where local sources come from; `None` for the build context.
    from: Option<State>,
}

impl Stage<'_, '_> {
    pub(super) fn copy(&mut self, c: &Copy, cmd: &Cmd, original: &str) -> Result<()> {
        let from = match cmd.copy_from {
            None => None,
            Some(s) => Some(match self.done.state_of(s) {
                Some(st) => st.state.clone(),
                None if self.graph.stages[s].unregistered => self.graph.stages[s]
                    .resolved
                    .as_ref()
                    .map(|r| r.state.clone())
                    .unwrap_or_default(),
                None => {
                    return Err(ConvertErrorKind::CopyFromLaterStage {
                        from: c.from.clone().unwrap_or_default(),
                        stage: self.node().display.clone(),
                    });
                }
            }),
        };
        let spec = CopySpec {
            is_add: false,
            sources: self.expand_all(&c.sources)?,
            heredocs: &c.heredocs,
            dest: self.expand(&c.dest)?,
            chown: self.expand(c.chown.as_deref().unwrap_or(""))?,
            chmod: self.expand(c.chmod.as_deref().unwrap_or(""))?,
            link: c.link,
            parents: c.parents,
            excludes: c.excludes.clone(),
            checksum: String::new(),
            keep_git_dir: None,
            unpack: None,
            from,
        };
        self.copy_files(spec, cmd, original)
    }

    pub(super) fn add(&mut self, a: &Add, cmd: &Cmd, original: &str) -> Result<()> {
        let spec = CopySpec {
            is_add: true,
            sources: self.expand_all(&a.sources)?,
            heredocs: &a.heredocs,
            dest: self.expand(&a.dest)?,
            chown: self.expand(a.chown.as_deref().unwrap_or(""))?,
            chmod: self.expand(a.chmod.as_deref().unwrap_or(""))?,
            link: a.link,
            parents: false,
            excludes: a.excludes.clone(),
            checksum: self.expand(a.checksum.as_deref().unwrap_or(""))?,
            keep_git_dir: a.keep_git_dir,
            unpack: a.unpack,
            from: None,
        };
        self.copy_files(spec, cmd, original)
    }

    fn expand_all(&self, words: &[String]) -> Result<Vec<String>> {
        words.iter().map(|w| self.expand(w)).collect()
    }

    fn copy_files(&mut self, spec: CopySpec<'_>, cmd: &Cmd, original: &str) -> Result<()> {
        let dest = self.dest_path(&spec.dest);
        let owner = (!spec.chown.is_empty()).then(|| parse_chown(&spec.chown));
        let mode = parse_chmod(&spec.chmod)?;
        if !spec.checksum.is_empty() {
            if spec.sources.len() != 1 {
                return Err(ConvertErrorKind::Copy(
                    "checksum can't be specified for multiple sources",
                ));
            }
            if !is_http(&spec.sources[0]) && git_source(&spec.sources[0]).is_none() {
                return Err(ConvertErrorKind::Copy(
                    "checksum requires HTTP(S) or Git sources",
                ));
            }
        }
        let mut message = String::from(if spec.is_add { "ADD" } else { "COPY" });
        if spec.parents {
            message.push_str(" --parents");
        }
        if !spec.chown.is_empty() {
            message.push_str(&format!(" --chown={}", spec.chown));
        }
        if !spec.chmod.is_empty() {
            message.push_str(&format!(" --chmod={}", spec.chmod));
        }
        let text = self.display_text(original, self.ctx.lexer);
        let name = self.next_name(&text, cmd.onbuild);
        let base_opts = CopyOptions {
            owner: owner.clone(),
            mode: mode.clone(),
            exclude_patterns: spec.excludes.clone(),
            create_dest_path: true,
            ..Default::default()
        };
        // (state, src) pairs, in order.
        let mut copies: Vec<(State, String, CopyOptions)> = Vec::new();
        for src in &spec.sources {
            message.push(' ');
            message.push_str(src);
            if let Some(git) = git_source(src) {
                if !spec.is_add {
                    return Err(ConvertErrorKind::Copy("source can't be a git ref for COPY"));
                }
                let mut opts = GitOptions::new(git.remote.clone());
                opts.full_url = Some(git.full_url.clone());
                opts.reference = git.reference.clone();
                opts.subdir = git.subdir.clone();
                opts.keep_git_dir = spec.keep_git_dir.unwrap_or(false);
                opts.checksum = (!spec.checksum.is_empty()).then(|| spec.checksum.clone());
                opts.constraints = Constraints::default().with_custom_name(name.clone());
                copies.push((llb::git(opts), "/".to_owned(), base_opts.clone()));
            } else if is_http(src) {
                if !spec.is_add {
                    return Err(ConvertErrorKind::Copy("source can't be a URL for COPY"));
                }
                let filename = url_filename(src);
                if !spec.checksum.is_empty() && !is_digest(&spec.checksum) {
                    return Err(ConvertErrorKind::Checksum(spec.checksum.clone()));
                }
                let state = llb::http(
                    src,
                    HttpOptions {
                        checksum: (!spec.checksum.is_empty()).then(|| spec.checksum.clone()),
                        filename: Some(filename.clone()),
                        constraints: Constraints::default()
                            .with_custom_name(name.clone())
                            .with_description(COMMAND_DESCRIPTION, ""),
                        ..Default::default()
                    },
                );
                let opts = CopyOptions {
                    attempt_unpack: spec.unpack.unwrap_or(false),
                    ..base_opts.clone()
                };
                copies.push((state, format!("/{filename}"), opts));
            } else {
                let (src_path, include, required) = if spec.parents {
                    let (parent, pattern) = match src.split_once("/./") {
                        Some((p, pat)) => (p.to_owned(), pat.to_owned()),
                        None => ("/".to_owned(), src.clone()),
                    };
                    let pattern = clean_abs(&pattern).trim_start_matches('/').to_owned();
                    let required = if !has_wildcards(&parent) && !has_wildcards(&pattern) {
                        vec![clean_abs(&format!("{parent}/{pattern}"))]
                    } else {
                        Vec::new()
                    };
                    (clean_abs(&parent), vec![pattern], required)
                } else {
                    (clean_abs(src), Vec::new(), Vec::new())
                };
                let opts = CopyOptions {
                    follow_symlinks: true,
                    copy_dir_contents_only: true,
                    include_patterns: include,
                    required_paths: required,
                    attempt_unpack: spec.unpack.unwrap_or(spec.is_add),
                    allow_wildcard: true,
                    allow_empty_wildcard: true,
                    ..base_opts.clone()
                };
                let from = spec.from.clone().unwrap_or_else(|| self.context.clone());
                copies.push((from, src_path, opts));
            }
        }
        for doc in spec.heredocs {
            message.push_str(&format!(" <<{}", doc.name));
            let mut data = doc.body();
            if doc.expand {
                let lexer = Lexer::new('\\').skip_process_quotes(true);
                data = lexer
                    .process_word(&data, &self.st.env)
                    .map(|w| w.result)
                    .map_err(|e| ConvertErrorKind::Expansion(e.to_string()))?;
            }
            let path = format!("/{}", doc.name.trim_start_matches('/'));
            let state = llb::file(
                FileBuilder::new(State::scratch())
                    .constraints(
                        Constraints::default()
                            .with_custom_name("[internal] preparing inline document"),
                    )
                    .mkfile(path.clone(), 0o644, data, Default::default()),
            )?;
            copies.push((state, path, base_opts.clone()));
        }
        message.push(' ');
        message.push_str(&spec.dest);

        if spec.from.is_none() {
            for src in &spec.sources {
                if !(spec.is_add && is_http(src)) {
                    self.context_paths.insert(clean_abs(src));
                }
            }
        } else if let Some(source) = cmd.copy_from {
            self.copied_from
                .extend(spec.sources.iter().map(|src| (source, clean_abs(src))));
        }

        let use_merge = spec.link && spec.chmod.is_empty() && self.ctx.opts.caps.merge_op;
        let base = if use_merge {
            State::scratch()
        } else {
            self.st.state.clone()
        };
        let mut builder = FileBuilder::new(base);
        for (state, src, opts) in copies {
            builder = builder.copy(&state, src, dest.clone(), opts);
        }
        if use_merge {
            // BuildKit groups the copy and the merge under one progress group; its ID is
            // random there, derived from the step here so that output stays deterministic.
            self.st.cmd_index -= 1;
            let group_name = self.next_name(&text, cmd.onbuild);
            let group_id = format!("{}-{}", self.node().display_name(), self.st.cmd_index);
            let copy_constraints = Constraints {
                progress_group: Some(bud_proto::pb::ProgressGroup {
                    id: group_id.clone(),
                    name: group_name.clone(),
                    weak: true,
                }),
                ..self.constraints().with_custom_name(group_name.clone())
            };
            let copied = llb::file(builder.constraints(copy_constraints))?;
            self.st.cmd_index -= 1;
            let merge_name = self.next_name(&format!("LINK {text}"), cmd.onbuild);
            let merge_constraints = Constraints {
                progress_group: Some(bud_proto::pb::ProgressGroup {
                    id: group_id,
                    name: group_name,
                    weak: false,
                }),
                ..self.constraints().with_custom_name(merge_name)
            };
            self.st.state = llb::merge(&[self.st.state.clone(), copied], &merge_constraints);
        } else {
            self.st.state =
                llb::file(builder.constraints(self.constraints().with_custom_name(name)))?;
        }
        self.st.image.commit(format!("{message} # buildkit"), true);
        Ok(())
    }

    /// The destination, absolute, relative ones joined to the working directory; a
    /// trailing slash (meaning "into this directory") is kept.
    fn dest_path(&self, dest: &str) -> String {
        let dest = if dest.is_empty() || dest == "." {
            "./"
        } else {
            dest
        };
        let joined = if dest.starts_with('/') {
            clean_abs(dest)
        } else {
            clean_abs(&format!("{}/{dest}", self.st.dir))
        };
        if dest.ends_with('/') && joined != "/" {
            format!("{joined}/")
        } else {
            joined
        }
    }
}

/// `--chmod`: octal up to 07777, or chmod's symbolic syntax.
fn parse_chmod(chmod: &str) -> Result<Option<CopyMode>> {
    if chmod.is_empty() {
        return Ok(None);
    }
    if let Ok(mode) = u32::from_str_radix(chmod, 8) {
        if mode > 0o7777 {
            return Err(ConvertErrorKind::Chmod(chmod.to_owned()));
        }
        return Ok(Some(CopyMode::Octal(mode)));
    }
    if chmod.chars().all(|c| c.is_ascii_digit()) || !is_symbolic_mode(chmod) {
        return Err(ConvertErrorKind::Chmod(chmod.to_owned()));
    }
    Ok(Some(CopyMode::Symbolic(chmod.to_owned())))
}

/// `[ugoa]*([-+=]([rwxXst]*|[ugo]))+` clauses separated by commas.
fn is_symbolic_mode(s: &str) -> bool {
    s.split(',').all(|clause| {
        let rest = clause.trim_start_matches(['u', 'g', 'o', 'a']);
        if rest.is_empty() || !rest.starts_with(['-', '+', '=']) {
            return false;
        }
        rest.chars().all(|c| {
            matches!(
                c,
                '-' | '+' | '=' | 'r' | 'w' | 'x' | 'X' | 's' | 't' | 'u' | 'g' | 'o'
            )
        })
    })
}

fn is_http(src: &str) -> bool {
    (src.starts_with("http://") || src.starts_with("https://")) && git_source(src).is_none()
}

fn is_digest(s: &str) -> bool {
    s.split_once(':').is_some_and(|(alg, hex)| {
        !alg.is_empty() && !hex.is_empty() && hex.chars().all(|c| c.is_ascii_hexdigit())
    })
}

fn has_wildcards(s: &str) -> bool {
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '*' | '?' | '[' => return true,
            '\\' => {
                chars.next();
            }
            _ => {}
        }
    }
    false
}

/// The name an ADDed URL gets: its last path segment.
fn url_filename(url: &str) -> String {
    let after_scheme = url.split_once("://").map_or(url, |(_, r)| r);
    let path = after_scheme
        .split(['?', '#'])
        .next()
        .unwrap_or_default()
        .split_once('/')
        .map_or("", |(_, p)| p);
    match path.trim_end_matches('/').rsplit('/').next() {
        Some(base) if !base.is_empty() && base != "." => base.to_owned(),
        _ => "__unnamed__".to_owned(),
    }
}

/// A git source of ADD.
struct GitSource {
    remote: String,
    full_url: String,
    reference: Option<String>,
    subdir: Option<String>,
}

/// Recognises `git@host:path`, `git://…`, `ssh://…` and `http(s)://….git[#ref[:dir]]`.
fn git_source(src: &str) -> Option<GitSource> {
    let (url, fragment) = match src.split_once('#') {
        Some((u, f)) => (u, Some(f)),
        None => (src, None),
    };
    let is_git = url.starts_with("git@")
        || url.starts_with("git://")
        || url.starts_with("ssh://")
        || ((url.starts_with("https://") || url.starts_with("http://")) && url.ends_with(".git"));
    if !is_git {
        return None;
    }
    let remote = if let Some(rest) = url.strip_prefix("git@") {
        rest.replacen(':', "/", 1)
    } else {
        let rest = url.split_once("://").map_or(url, |(_, r)| r);
        rest.split_once('@').map_or(rest, |(_, r)| r).to_owned()
    };
    let (reference, subdir) = match fragment {
        None => (None, None),
        Some(f) => match f.split_once(':') {
            Some((r, d)) => (
                Some(r.to_owned()).filter(|r| !r.is_empty()),
                Some(d.to_owned()),
            ),
            None => (Some(f.to_owned()).filter(|r| !r.is_empty()), None),
        },
    };
    Some(GitSource {
        remote,
        full_url: url.to_owned(),
        reference,
        subdir,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chmod_octal_and_symbolic() {
        assert_eq!(parse_chmod("755").unwrap(), Some(CopyMode::Octal(0o755)));
        assert_eq!(
            parse_chmod("u+x,g-w").unwrap(),
            Some(CopyMode::Symbolic("u+x,g-w".into()))
        );
        assert!(parse_chmod("8").is_err());
        assert!(parse_chmod("17777").is_err());
        assert!(parse_chmod("bogus").is_err());
    }

    #[test]
    fn url_file_names() {
        assert_eq!(url_filename("https://example.com/a/b.tar.gz"), "b.tar.gz");
        assert_eq!(url_filename("https://example.com/"), "__unnamed__");
        assert_eq!(url_filename("https://example.com/x?y=1"), "x");
    }

    #[test]
    fn git_urls() {
        let g = git_source("https://github.com/moby/buildkit.git#v0.8.0:docs").unwrap();
        assert_eq!(g.remote, "github.com/moby/buildkit.git");
        assert_eq!(g.reference.as_deref(), Some("v0.8.0"));
        assert_eq!(g.subdir.as_deref(), Some("docs"));
        assert!(git_source("https://example.com/file.tar").is_none());
        assert_eq!(
            git_source("git@github.com:o/r.git").unwrap().remote,
            "github.com/o/r.git"
        );
    }
}
