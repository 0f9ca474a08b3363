//! The build stages a Dockerfile offers as targets, with the descriptions their comments
//! give (BuildKit's `ListTargets`, what `--call=targets` prints).

use crate::lint::LintError;

/// One stage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// `AS name`, lower-cased; empty for an unnamed stage.
    pub name: String,
    /// The last stage, built when no `--target` is given.
    pub default: bool,
    /// The comment above the FROM that starts with the stage's name, without it.
    pub description: String,
    /// The base as written.
    pub base: String,
    /// `--platform` as written.
    pub platform: String,
    /// 1-based first and last lines of the FROM.
    pub lines: (usize, usize),
}

/// The stages of `dockerfile`, in order.
pub fn targets(dockerfile: &str) -> Result<Vec<Target>, LintError> {
    let parsed = crate::parser::parse(dockerfile)?;
    let file = crate::instructions::parse(&parsed)?;
    let count = file.stages.len();
    Ok(file
        .stages
        .iter()
        .enumerate()
        .map(|(i, stage)| {
            let name = stage.name.clone().unwrap_or_default();
            let comments = parsed
                .nodes
                .iter()
                .find(|n| n.start_line == stage.location.start_line)
                .map_or(&[][..], |n| &n.comments[..]);
            Target {
                description: doc_comment(comments, &name),
                name,
                default: i + 1 == count,
                base: stage.base.clone(),
                platform: stage.platform.clone().unwrap_or_default(),
                lines: (stage.location.start_line, stage.location.end_line),
            }
        })
        .collect())
}

/// The first comment that starts with `name` and a space, without them.
pub fn doc_comment(comments: &[String], name: &str) -> String {
    if name.is_empty() {
        return String::new();
    }
    let prefix = format!("{name} ");
    comments
        .iter()
        .find_map(|c| c.strip_prefix(&prefix))
        .unwrap_or_default()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages_with_descriptions_and_the_default() {
        let t = targets("# build compiles it\nFROM busybox AS build\n\n# other text\nFROM build\n")
            .unwrap();
        assert_eq!(t.len(), 2);
        assert_eq!(
            (t[0].name.as_str(), t[0].description.as_str()),
            ("build", "compiles it")
        );
        assert!(!t[0].default);
        assert_eq!((t[1].name.as_str(), t[1].description.as_str()), ("", ""));
        assert!(t[1].default);
        assert_eq!(t[1].base, "build");
    }
}
