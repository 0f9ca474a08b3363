//! The warnings summary buildx prints once the progress has ended, and the Dockerfile
//! excerpt BuildKit's errors and warnings show.

use super::WarningInfo;

/// The summary: a yellow count, then one line per warning; with `expand` (`--debug`, as
/// `docker --debug` expands buildx's) each warning's detail, URL and source lines too.
pub(super) fn summary(warnings: &[(String, Option<&WarningInfo>)], expand: bool) -> String {
    if warnings.is_empty() {
        return String::new();
    }
    let mut head = match warnings.len() {
        1 => "1 warning found".to_string(),
        n => format!("{n} warnings found"),
    };
    if !expand {
        head.push_str(" (use --debug to expand)");
    }
    // buildx colours the count whatever its output is.
    let mut out = format!("\n \x1b[33m{head}:\n\x1b[0m");
    for (message, info) in warnings {
        out.push_str(&format!(" - {message}\n"));
        if !expand {
            continue;
        }
        if let Some(info) = info {
            for d in &info.detail {
                out.push_str(&format!("{d}\n"));
            }
            if !info.url.is_empty() {
                out.push_str(&format!("More info: {}\n", info.url));
            }
            if let Some(src) = &info.source {
                if let Some(&(start, end)) = src.lines.first() {
                    out.push_str(&source_excerpt(&src.filename, &src.data, start, end));
                }
            }
        }
        out.push('\n');
    }
    out
}

/// Whether `--debug` (or `RUST_LOG` at debug) is on.
pub(super) fn expanded() -> bool {
    tracing::level_filters::LevelFilter::current() >= tracing::level_filters::LevelFilter::DEBUG
}

/// The Dockerfile lines around `start..=end`, as BuildKit's `errdefs.Source.Print` shows
/// them: four lines of context around one line, two around several.
pub fn source_excerpt(filename: &str, data: &str, start: usize, end: usize) -> String {
    excerpt(filename, data, &[(start, end)])
}

/// The lines a location of a source map marks, as BuildKit prints an error's source.
pub fn source_excerpt_of(
    info: &bud_proto::pb::SourceInfo,
    ranges: &[bud_proto::pb::Range],
) -> String {
    let line =
        |p: Option<&bud_proto::pb::Position>| p.map_or(0, |p| usize::try_from(p.line).unwrap_or(0));
    let lines: Vec<(usize, usize)> = ranges
        .iter()
        .map(|r| (line(r.start.as_ref()), line(r.end.as_ref())))
        .collect();
    excerpt(&info.filename, &String::from_utf8_lossy(&info.data), &lines)
}

/// `ranges` of 1-based lines (`end` before `start` meaning `start`), marked, with context:
/// BuildKit's `Source.Print`.
fn excerpt(filename: &str, data: &str, ranges: &[(usize, usize)]) -> String {
    let ranges: Vec<(usize, usize)> = ranges.iter().map(|&(s, e)| (s, e.max(s))).collect();
    let (Some(start), Some(end)) = (
        ranges.iter().map(|r| r.0).min(),
        ranges.iter().map(|r| r.1).max(),
    ) else {
        return String::new();
    };
    let lines: Vec<&str> = data.split('\n').collect();
    if start < 1 || start > lines.len() {
        return String::new();
    }
    let (mut first, mut last) = (start, end.min(lines.len()));
    let pad = if last == first { 4 } else { 2 };
    let mut p = 0;
    while p < pad {
        if first > 1 {
            first -= 1;
            p += 1;
        }
        if last != lines.len() {
            last += 1;
            p += 1;
        }
        p += 1;
    }
    let mut out = format!("{filename}:{start}\n--------------------\n");
    for (i, line) in lines.iter().enumerate().take(last).skip(first - 1) {
        let n = i + 1;
        let mark = if ranges.iter().any(|&(s, e)| s <= n && n <= e) {
            ">>>"
        } else {
            "   "
        };
        out.push_str(&format!(" {n:>3} | {mark} {line}\n"));
    }
    out.push_str("--------------------\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excerpt_as_buildkit_prints_it() {
        let data = "FROM a\nRUN b\nRUN c\nRUN d\nRUN e\nRUN f\n";
        assert_eq!(
            source_excerpt("Dockerfile", data, 1, 1),
            "Dockerfile:1\n--------------------\n   1 | >>> FROM a\n   2 |     RUN b\n   3 |     RUN c\n--------------------\n"
        );
        assert_eq!(
            source_excerpt("Dockerfile", data, 6, 6),
            "Dockerfile:6\n--------------------\n   4 |     RUN d\n   5 |     RUN e\n   6 | >>> RUN f\n   7 |     \n--------------------\n"
        );
    }

    #[test]
    fn summary_as_buildx_prints_it() {
        let info = WarningInfo {
            detail: vec!["Stage names should be lowercase".into()],
            url: "https://docs.docker.com/go/dockerfile/rule/stage-name-casing/".into(),
            source: Some(super::super::WarningSource {
                filename: "Dockerfile".into(),
                data: "FROM a AS B\n".into(),
                lines: vec![(1, 1)],
            }),
        };
        let one = [(
            "StageNameCasing: Stage name 'B' should be lowercase (line 1)".to_string(),
            Some(&info),
        )];
        assert_eq!(
            summary(&one, false),
            "\n \x1b[33m1 warning found (use --debug to expand):\n\x1b[0m \
             - StageNameCasing: Stage name 'B' should be lowercase (line 1)\n"
        );
        assert_eq!(
            summary(&one, true),
            "\n \x1b[33m1 warning found:\n\x1b[0m \
             - StageNameCasing: Stage name 'B' should be lowercase (line 1)\n\
             Stage names should be lowercase\n\
             More info: https://docs.docker.com/go/dockerfile/rule/stage-name-casing/\n\
             Dockerfile:1\n--------------------\n   1 | >>> FROM a AS B\n   2 |     \n\
             --------------------\n\n"
        );
        assert_eq!(summary(&[], false), "");
    }
}
