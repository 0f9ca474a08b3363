//! Rules that need only the text: how instructions and stage names are written, empty
//! continuation lines, MAINTAINER, description comments (BuildKit's parse-time checks and
//! `validateStageNames` / `validateCommandCasing`).

use super::{Linter, keyword_as_written, rules};
use crate::instructions::Dockerfile;
use crate::parser::{Node, Parsed};

/// Stage names BuildKit keeps for itself.
const RESERVED_STAGE_NAMES: [&str; 2] = ["context", "scratch"];

pub(super) fn check(linter: &mut Linter, parsed: &Parsed, file: &Dockerfile) {
    empty_continuations(linter, parsed);
    for node in &parsed.nodes {
        let config = linter.config.under_comments(&node.comments);
        let lines = (node.start_line, node.end_line);
        match node.keyword.as_str() {
            "maintainer" => linter.report(
                &config,
                &rules::MAINTAINER_DEPRECATED,
                "Maintainer instruction is deprecated in favor of using label".into(),
                lines,
            ),
            "from" => {
                from_casing(linter, &config, node);
                if let Some(name) = node.values.get(2) {
                    description(linter, &config, node, "FROM", &[name.to_lowercase()]);
                }
            }
            "arg" => {
                let keys: Vec<String> = node
                    .values
                    .iter()
                    .map(|v| v.split_once('=').map_or(v.as_str(), |(k, _)| k).to_string())
                    .collect();
                description(linter, &config, node, "ARG", &keys);
            }
            _ => {}
        }
    }
    stage_names(linter, file);
    instruction_casing(linter, parsed, file);
}

fn empty_continuations(linter: &mut Linter, parsed: &Parsed) {
    let config = linter.config.clone();
    for w in &parsed.warnings {
        linter.report(
            &config,
            &rules::NO_EMPTY_CONTINUATION,
            "Empty continuation line".into(),
            (w.line, w.line),
        );
    }
}

/// StageNameCasing and FromAsCasing.
fn from_casing(linter: &mut Linter, config: &super::CheckConfig, node: &Node) {
    let lines = (node.start_line, node.end_line);
    let [_, as_word, name] = node.values.as_slice() else {
        return;
    };
    if *name != name.to_lowercase() {
        linter.report(
            config,
            &rules::STAGE_NAME_CASING,
            format!("Stage name '{name}' should be lowercase"),
            lines,
        );
    }
    // Inconsistent casing of FROM itself is ConsistentInstructionCasing's business.
    let from = keyword_as_written(node);
    let expected = if from == from.to_lowercase() {
        as_word.to_lowercase()
    } else if from == from.to_uppercase() {
        as_word.to_uppercase()
    } else {
        return;
    };
    if *as_word != expected {
        linter.report(
            config,
            &rules::FROM_AS_CASING,
            format!("'{as_word}' and '{from}' keywords' casing do not match"),
            lines,
        );
    }
}

/// InvalidDefinitionDescription (experimental): the comment right above a named stage or
/// an ARG starts with the name it describes.
fn description(
    linter: &mut Linter,
    config: &super::CheckConfig,
    node: &Node,
    instruction: &str,
    keys: &[String],
) {
    let (Some(last), Some(first_key)) = (node.comments.last(), keys.first()) else {
        return;
    };
    let first_word = last.split(' ').next().unwrap_or_default();
    if keys.iter().any(|k| k == first_word) {
        return;
    }
    let example = if keys.len() > 1 {
        "<arg_key>"
    } else {
        first_key
    };
    linter.report(
        config,
        &rules::INVALID_DEFINITION_DESCRIPTION,
        format!("Comment for {instruction} should follow the format: `# {example} <description>`"),
        (node.start_line, node.end_line),
    );
}

/// ReservedStageName and DuplicateStageName.
fn stage_names(linter: &mut Linter, file: &Dockerfile) {
    let config = linter.config.clone();
    let mut seen: Vec<&str> = Vec::new();
    for stage in &file.stages {
        let Some(name) = stage.name.as_deref() else {
            continue;
        };
        let lines = (stage.location.start_line, stage.location.end_line);
        if RESERVED_STAGE_NAMES.contains(&name) {
            linter.report(
                &config,
                &rules::RESERVED_STAGE_NAME,
                format!("Stage name should not use the same name as reserved stage {name:?}"),
                lines,
            );
        }
        if seen.contains(&name) {
            linter.report(
                &config,
                &rules::DUPLICATE_STAGE_NAME,
                format!("Duplicate stage name {name:?}, stage names should be unique"),
                lines,
            );
        }
        seen.push(name);
    }
}

/// ConsistentInstructionCasing: every keyword of the stages (global ARGs are not counted)
/// in the casing most of them use; upper case wins a tie.
fn instruction_casing(linter: &mut Linter, parsed: &Parsed, file: &Dockerfile) {
    let mut in_stages: Vec<&Node> = Vec::new();
    let first_from = file.stages.first().map(|s| s.location.start_line);
    for node in &parsed.nodes {
        if first_from.is_some_and(|l| node.start_line >= l) {
            in_stages.push(node);
        }
    }
    let (mut lower, mut upper) = (0, 0);
    for node in &in_stages {
        let word = keyword_as_written(node);
        if word == word.to_lowercase() {
            lower += 1;
        } else if word == word.to_uppercase() {
            upper += 1;
        }
    }
    let majority_lower = lower > upper;
    let config = linter.config.clone();
    for node in in_stages {
        let word = keyword_as_written(node);
        let casing = if majority_lower && word != word.to_lowercase() {
            "lowercase"
        } else if !majority_lower && word != word.to_uppercase() {
            "uppercase"
        } else {
            continue;
        };
        linter.report(
            &config,
            &rules::CONSISTENT_INSTRUCTION_CASING,
            format!("Command '{word}' should match the case of the command majority ({casing})"),
            (node.start_line, node.end_line),
        );
    }
}
