//! The error convention, checked over the source tree: a `#[error("…")]` message names its own
//! layer only. A field that is the error's source (`#[source]`, `#[from]`, or named `source`)
//! is printed by `error_chain` as the next cause; formatting it into the message as well
//! prints it twice. A variant that only forwards its source is `#[error(transparent)]`.

use std::path::{Path, PathBuf};

/// Every `#[error]` message below `src/` and `frontend/src/` that formats its own source.
#[test]
fn no_error_message_formats_its_own_source() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    for dir in ["src", "frontend/src"] {
        rust_files(&root.join(dir), &mut files);
    }
    assert!(
        files.len() > 100,
        "the walk found the sources: {}",
        files.len()
    );
    let mut found = Vec::new();
    for file in files {
        let relative = file
            .strip_prefix(root)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        // This file's own examples break the rule on purpose.
        if file.ends_with(file!()) {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        for (line, message) in violations(&text) {
            found.push(format!("{relative}:{line}: {message}"));
        }
    }
    assert!(
        found.is_empty(),
        "messages that also format their #[source]/#[from] field (drop it from the message, \
         or make the variant #[error(transparent)]):\n{}",
        found.join("\n")
    );
}

#[test]
fn the_check_finds_a_source_in_the_message_and_nothing_else() {
    let bad = r##"
        enum E {
            #[error("{action} {path}: {source}")]
            Io { action: &'static str, path: PathBuf, source: std::io::Error },
            #[error("reading: {0}")]
            Read(#[from] std::io::Error),
            /// Doc.
            #[error("reading {}: {}", path.display(), cause)]
            Shown { path: PathBuf, #[source] cause: Inner },
            #[error(
                "long {0:?}"
            )]
            Long(#[source] X, String),
        }
        #[error("op {index}: {source}")]
        pub struct Op { index: usize, source: D }
    "##;
    let lines: Vec<usize> = violations(bad).into_iter().map(|(line, _)| line).collect();
    assert_eq!(lines, [3, 5, 8, 10, 15]);

    let good = r##"
        enum E {
            #[error("{action} {path}")]
            Io { action: &'static str, path: PathBuf, source: std::io::Error },
            #[error(transparent)]
            Read(#[from] std::io::Error),
            #[error("invalid {0:?}: {1}")]
            Invalid(String, String),
            #[error("{0} {{source}}")]
            Braces(String, #[source] X),
            #[error("line {line}")]
            Line { line: usize, #[source] cause: Y, source_text: String },
        }
    "##;
    assert_eq!(violations(good), []);
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// (line, message) of each `#[error(…)]` in `text` that formats the item's source field.
fn violations(text: &str) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    let mut from = 0;
    while let Some(at) = text[from..].find("#[error(") {
        let start = from + at;
        let args_start = start + "#[error(".len();
        let Some(args_end) = group_end(text, args_start - 1) else {
            break;
        };
        from = args_end;
        let args = &text[args_start..args_end];
        let Some((message, rest)) = split_message(args) else {
            continue;
        };
        let fields = item_fields(&text[args_end..]);
        let Some(source) = source_field(&fields) else {
            continue;
        };
        let in_message = placeholders(&message).contains(&source);
        let in_args = mentions(rest, &source);
        if in_message || in_args {
            found.push((text[..start].matches('\n').count() + 1, message));
        }
    }
    found
}

/// The byte index of the bracket closing the one at `open`, skipping string literals.
fn group_end(text: &str, open: usize) -> Option<usize> {
    let bytes = text.as_bytes();
    let mut depth = 0usize;
    let mut i = open;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => i = string_end(bytes, i)?,
            b'\'' if bytes.get(i + 2) == Some(&b'\'') => i += 2,
            b'(' | b'[' | b'{' => depth += 1,
            b')' | b']' | b'}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
        i += 1;
    }
    None
}

/// The index of the quote closing the string literal opened at `open`.
fn string_end(bytes: &[u8], open: usize) -> Option<usize> {
    let mut i = open + 1;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 1,
            b'"' => return Some(i),
            _ => {}
        }
        i += 1;
    }
    None
}

/// The format string of `#[error("…", args)]` (escapes left as written) and the args after it.
fn split_message(args: &str) -> Option<(String, &str)> {
    let args = args.trim_start();
    if !args.starts_with('"') {
        return None; // transparent
    }
    let end = string_end(args.as_bytes(), 0)?;
    Some((args[1..end].to_string(), &args[end + 1..]))
}

/// The argument names a format string uses: `{path}`, `{0:?}` give `path`, `0`.
fn placeholders(message: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut chars = message.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if c != '{' {
            continue;
        }
        if chars.peek().is_some_and(|&(_, next)| next == '{') {
            chars.next();
            continue;
        }
        let rest = &message[i + 1..];
        let end = rest.find('}').unwrap_or(rest.len());
        let name = rest[..end].split(':').next().unwrap_or_default().trim();
        names.push(name.to_string());
    }
    names
}

/// Whether the extra format arguments name the field `name` (`source`, `.0`).
fn mentions(args: &str, name: &str) -> bool {
    let is_ident = |c: char| c.is_alphanumeric() || c == '_';
    args.match_indices(name).any(|(i, _)| {
        let before = args[..i].chars().next_back();
        let after = args[i + name.len()..].chars().next();
        let starts = match before {
            Some('.') => {
                name.chars().all(|c| c.is_ascii_digit()) || !args[..i - 1].ends_with(is_ident)
            }
            Some(c) => !is_ident(c),
            None => true,
        };
        starts && !after.is_some_and(is_ident)
    })
}

/// One field of an error item: its name (the index for a tuple field) and attributes.
struct Field {
    name: String,
    attributes: String,
}

/// The fields of the struct or variant that follows an `#[error]` attribute.
fn item_fields(after: &str) -> Vec<Field> {
    let bytes = after.as_bytes();
    let mut i = 0;
    // Past `)]`, further attributes, doc comments and the item's name.
    i += after[i..].find(']').map_or(after.len(), |end| end + 1);
    loop {
        let rest = after[i..].trim_start();
        i = after.len() - rest.len();
        if rest.starts_with("#[") {
            match group_end(after, i + 1) {
                Some(end) => i = end + 1,
                None => return Vec::new(),
            }
        } else if rest.starts_with("//") {
            i += rest.find('\n').unwrap_or(rest.len());
        } else {
            break;
        }
    }
    while i < bytes.len() && !matches!(bytes[i], b'(' | b'{' | b',' | b';' | b'}') {
        i += 1;
    }
    if i >= bytes.len() || !matches!(bytes[i], b'(' | b'{') {
        return Vec::new();
    }
    let tuple = bytes[i] == b'(';
    let Some(end) = group_end(after, i) else {
        return Vec::new();
    };
    split_top_level(&after[i + 1..end])
        .into_iter()
        .enumerate()
        .map(|(index, field)| field_of(field, index, tuple))
        .collect()
}

fn field_of(text: &str, index: usize, tuple: bool) -> Field {
    let mut rest = text.trim();
    let mut attributes = String::new();
    loop {
        if rest.starts_with("#[") {
            let end = group_end(rest, 1).unwrap_or(rest.len() - 1);
            attributes.push_str(&rest[..=end]);
            rest = rest[end + 1..].trim_start();
        } else if rest.starts_with("//") {
            rest = rest[rest.find('\n').unwrap_or(rest.len())..].trim_start();
        } else {
            break;
        }
    }
    let name = if tuple {
        index.to_string()
    } else {
        let rest = rest.strip_prefix("pub ").unwrap_or(rest);
        rest.split(':')
            .next()
            .unwrap_or_default()
            .trim()
            .to_string()
    };
    Field { name, attributes }
}

/// `text` split at the commas outside any bracket.
fn split_top_level(text: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0i32, 0);
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => i = string_end(bytes, i).unwrap_or(bytes.len()),
            b'(' | b'[' | b'{' | b'<' => depth += 1,
            b')' | b']' | b'}' => depth -= 1,
            b'>' if i > 0 && bytes[i - 1] != b'-' => depth -= 1,
            b',' if depth == 0 => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
        i += 1;
    }
    if !text[start..].trim().is_empty() {
        parts.push(&text[start..]);
    }
    parts
}

/// The name of the field thiserror takes as the source: `#[source]`/`#[from]`, else `source`.
fn source_field(fields: &[Field]) -> Option<String> {
    let marked = fields
        .iter()
        .find(|f| f.attributes.contains("#[source]") || f.attributes.contains("#[from]"));
    marked
        .or_else(|| fields.iter().find(|f| f.name == "source"))
        .map(|f| f.name.clone())
}
