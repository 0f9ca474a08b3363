//! Each rule on a Dockerfile that trips it, and the same Dockerfile fixed.

use std::collections::BTreeMap;

use serde_json::json;

use super::*;
use crate::convert::{ConvertOptions, Platform, ResolvedImage};

/// Every image resolves to a config with PATH and, for `shell-image`, a SHELL.
struct Images;

impl ImageResolver for Images {
    fn resolve(
        &self,
        reference: &str,
        _: &Platform,
    ) -> Result<ResolvedImage, crate::convert::ResolveError> {
        let mut config = json!({"Env": ["PATH=/usr/bin:/bin"]});
        if reference.contains("shell-image") {
            config["Shell"] = json!(["/bin/sh", "-c"]);
        }
        Ok(ResolvedImage {
            digest: "sha256:00".into(),
            config: json!({ "config": config }),
        })
    }
}

fn run(dockerfile: &str, args: &[(&str, &str)], all: bool, excludes: &[&str]) -> Report {
    let convert = ConvertOptions {
        build_args: args
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<BTreeMap<_, _>>(),
        excludes: excludes.iter().map(|s| s.to_string()).collect(),
        build_platform: Platform::new("linux", "amd64", ""),
        ..ConvertOptions::default()
    };
    let opts = LintOptions {
        convert: &convert,
        all_stages: all,
    };
    lint(dockerfile, &opts, &Images).unwrap()
}

/// `(rule, line)` of each finding.
fn fired(dockerfile: &str) -> Vec<(&'static str, usize)> {
    found(&run(dockerfile, &[], true, &[]))
}

fn found(report: &Report) -> Vec<(&'static str, usize)> {
    report
        .findings
        .iter()
        .map(|f| (f.rule.name, f.start_line))
        .collect()
}

fn messages(dockerfile: &str) -> Vec<String> {
    run(dockerfile, &[], true, &[])
        .findings
        .iter()
        .map(Finding::short)
        .collect()
}

#[test]
fn clean_dockerfile_has_no_findings() {
    let df = "ARG BASE=busybox\nFROM $BASE AS build\nENV A=1\nWORKDIR /src\nCOPY . .\nRUN echo $A\n\
              FROM build\nCMD [\"sh\"]\n";
    assert_eq!(fired(df), []);
}

#[test]
fn stage_name_and_from_as_casing() {
    assert_eq!(
        messages("FROM busybox as Builder\n"),
        [
            "StageNameCasing: Stage name 'Builder' should be lowercase (line 1)",
            "FromAsCasing: 'as' and 'FROM' keywords' casing do not match (line 1)"
        ]
    );
    assert_eq!(fired("from busybox as builder\n"), []);
    // Mixed-case FROM is left to ConsistentInstructionCasing.
    assert_eq!(
        fired("From busybox as builder\n"),
        [("ConsistentInstructionCasing", 1)]
    );
}

#[test]
fn empty_continuation_is_reported_at_the_end_of_its_instruction() {
    assert_eq!(
        fired("FROM busybox\nRUN echo \\\n\n  hi\n"),
        [("NoEmptyContinuation", 4)]
    );
}

#[test]
fn instruction_casing_follows_the_majority() {
    assert_eq!(
        messages("FROM busybox\nrun true\nRUN true\n"),
        [
            "ConsistentInstructionCasing: Command 'run' should match the case of the command majority (uppercase) (line 2)"
        ]
    );
    assert_eq!(
        fired("from busybox\nrun true\nRUN true\n"),
        [("ConsistentInstructionCasing", 3)]
    );
}

#[test]
fn duplicate_and_reserved_stage_names() {
    assert_eq!(
        messages("FROM busybox AS a\nFROM busybox AS a\nFROM busybox AS scratch\n"),
        [
            "DuplicateStageName: Duplicate stage name \"a\", stage names should be unique (line 2)",
            "ReservedStageName: Stage name should not use the same name as reserved stage \"scratch\" (line 3)"
        ]
    );
}

#[test]
fn json_args_unless_a_shell_is_set() {
    assert_eq!(
        fired("FROM busybox\nCMD echo\nENTRYPOINT echo\n"),
        [("JSONArgsRecommended", 2), ("JSONArgsRecommended", 3)]
    );
    assert_eq!(
        fired("FROM busybox\nSHELL [\"/bin/sh\", \"-c\"]\nCMD echo\n"),
        []
    );
    assert_eq!(fired("FROM shell-image\nCMD echo\n"), []);
}

#[test]
fn maintainer_is_deprecated() {
    assert_eq!(
        fired("FROM busybox\nMAINTAINER me\n"),
        [("MaintainerDeprecated", 2)]
    );
}

#[test]
fn undefined_arg_in_from_with_a_suggestion() {
    assert_eq!(
        messages("ARG VERSION=1\nFROM busybox$VERSON\n"),
        [
            "UndefinedArgInFrom: FROM argument 'VERSON' is not declared (did you mean VERSION?) (line 2)"
        ]
    );
    assert_eq!(fired("ARG VERSION\nFROM busybox:${VERSION:-1}\n"), []);
    assert_eq!(fired("FROM --platform=$BUILDPLATFORM busybox\n"), []);
}

#[test]
fn workdir_relative_only_before_an_absolute_one() {
    assert_eq!(
        messages("FROM busybox\nWORKDIR app\nWORKDIR sub\n"),
        [
            "WorkdirRelativePath: Relative workdir \"app\" can have unexpected results if the base image changes (line 2)"
        ]
    );
    assert_eq!(fired("FROM busybox\nWORKDIR /app\nWORKDIR sub\n"), []);
}

#[test]
fn undefined_var_in_expanded_words_only() {
    assert_eq!(
        messages("FROM busybox\nENV A=$PATHH\nRUN echo $NOPE\nCOPY $SRC /x\n"),
        [
            "UndefinedVar: Usage of undefined variable '$PATHH' (did you mean $PATH?) (line 2)",
            "UndefinedVar: Usage of undefined variable '$SRC' (line 4)"
        ]
    );
    // Declared ARGs without a value count as defined; base-stage variables carry over.
    assert_eq!(
        fired("FROM busybox AS a\nARG X\nENV Y=$X\nFROM a\nWORKDIR /$Y$X\n"),
        []
    );
}

#[test]
fn multiple_cmd_entrypoint_healthcheck() {
    assert_eq!(
        messages("FROM busybox\nCMD [\"a\"]\nCMD [\"b\"]\nHEALTHCHECK NONE\nHEALTHCHECK NONE\n"),
        [
            "MultipleInstructionsDisallowed: Multiple CMD instructions should not be used in the same stage because only the last one will be used (line 2)",
            "MultipleInstructionsDisallowed: Multiple HEALTHCHECK instructions should not be used in the same stage because only the last one will be used (line 4)"
        ]
    );
    assert_eq!(
        fired("FROM busybox\nCMD [\"a\"]\nFROM busybox\nCMD [\"b\"]\n"),
        []
    );
}

#[test]
fn legacy_key_value_format() {
    assert_eq!(
        messages("FROM busybox\nENV A 1\nLABEL b 2\nENV C=3\n"),
        [
            "LegacyKeyValueFormat: \"ENV key=value\" should be used instead of legacy \"ENV key value\" format (line 2)",
            "LegacyKeyValueFormat: \"LABEL key=value\" should be used instead of legacy \"LABEL key value\" format (line 3)"
        ]
    );
}

#[test]
fn redundant_and_constant_platforms() {
    assert_eq!(
        fired("FROM --platform=$TARGETPLATFORM busybox\n"),
        [("RedundantTargetPlatform", 1)]
    );
    assert_eq!(
        messages("FROM --platform=linux/amd64 busybox\n"),
        [
            "FromPlatformFlagConstDisallowed: FROM --platform flag should not use constant value \"linux/amd64\" (line 1)"
        ]
    );
    assert_eq!(
        fired("FROM --platform=linux/amd64 busybox AS build-amd64\n"),
        []
    );
}

#[test]
fn secrets_in_arg_or_env() {
    assert_eq!(
        messages("FROM busybox\nARG API_TOKEN\nENV password=x\nARG PUBLIC_KEY\nARG KEYS\n"),
        [
            "SecretsUsedInArgOrEnv: Do not use ARG or ENV instructions for sensitive data (ARG \"API_TOKEN\") (line 2)",
            "SecretsUsedInArgOrEnv: Do not use ARG or ENV instructions for sensitive data (ENV \"password\") (line 3)"
        ]
    );
}

#[test]
fn invalid_default_arg_in_from() {
    assert_eq!(
        messages("ARG IMAGE\nFROM $IMAGE\n"),
        [
            "InvalidDefaultArgInFrom: Default value for ARG $IMAGE results in empty or invalid base image name (line 2)"
        ]
    );
    // A build arg does not hide it: the check is about the defaults.
    let report = run(
        "ARG IMAGE\nFROM $IMAGE\n",
        &[("IMAGE", "busybox")],
        true,
        &[],
    );
    assert_eq!(found(&report), [("InvalidDefaultArgInFrom", 2)]);
}

#[test]
fn copy_ignored_file() {
    let report = run(
        "# check=experimental=CopyIgnoredFile\nFROM busybox\nCOPY secret.txt app /\nADD ./app/x /\n",
        &[],
        true,
        &["secret.txt", "app"],
    );
    assert_eq!(
        report
            .findings
            .iter()
            .map(Finding::short)
            .collect::<Vec<_>>(),
        [
            "CopyIgnoredFile: Attempting to Copy file \"secret.txt\" that is excluded by .dockerignore (line 3)",
            "CopyIgnoredFile: Attempting to Copy file \"app\" that is excluded by .dockerignore (line 3)",
            "CopyIgnoredFile: Attempting to Add file \"app/x\" that is excluded by .dockerignore (line 4)"
        ]
    );
    // With an exclusion (`!`), BuildKit does not guess.
    let report = run(
        "FROM busybox\nCOPY secret.txt /\n",
        &[],
        true,
        &["*.txt", "!a.txt"],
    );
    assert_eq!(found(&report), []);
}

#[test]
fn expose_protocol_and_format() {
    assert_eq!(
        fired("FROM busybox\nEXPOSE 80/TCP 8080:80 127.0.0.1:81:81\n"),
        // Ports come sorted as strings, as BuildKit sorts them.
        [
            ("ExposeInvalidFormat", 2),
            ("ExposeProtoCasing", 2),
            ("ExposeInvalidFormat", 2)
        ]
    );
}

#[test]
fn invalid_definition_description_is_experimental() {
    let df = "# check=experimental=InvalidDefinitionDescription\nFROM busybox\n# the base\nARG foo\n# foo is fine\nARG foo\n";
    assert_eq!(fired(df), [("InvalidDefinitionDescription", 4)]);
    assert_eq!(fired("FROM busybox\n# the base\nARG foo\n"), []);
}

#[test]
fn skip_directive_comment_and_build_arg() {
    assert_eq!(
        fired("# check=skip=MaintainerDeprecated\nFROM busybox\nMAINTAINER me\n"),
        []
    );
    assert_eq!(
        fired("FROM busybox\n# check=skip=MaintainerDeprecated\nMAINTAINER me\nMAINTAINER you\n"),
        [("MaintainerDeprecated", 4)]
    );
    let report = run(
        "# check=skip=all\nFROM busybox\nMAINTAINER me\n",
        &[(CHECK_BUILD_ARG, "error=true")],
        true,
        &[],
    );
    assert_eq!(found(&report), [("MaintainerDeprecated", 3)]);
    assert_eq!(
        report.error().as_deref(),
        Some("lint violation found for rules: MaintainerDeprecated")
    );
}

#[test]
fn a_build_checks_only_the_stages_it_needs() {
    let df = "FROM busybox AS unused\nMAINTAINER me\nFROM busybox\nCMD [\"x\"]\n";
    assert_eq!(
        found(&run(df, &[], false, &[])),
        [("MaintainerDeprecated", 2)]
    );
    let df = "FROM busybox AS unused\nCMD echo\nFROM busybox\nCMD [\"x\"]\n";
    assert_eq!(found(&run(df, &[], false, &[])), []);
    assert_eq!(
        found(&run(df, &[], true, &[])),
        [("JSONArgsRecommended", 2)]
    );
}
