//! `--call=check|outline|targets` (and `--check`): the Dockerfile evaluated instead of built, and
//! the answer printed to stdout as buildx prints it, as text or (`format=json`) as the
//! JSON the frontend's subrequest returns.
#![allow(clippy::print_stdout, reason = "the answer is the command's output")]

use std::sync::Arc;

use anyhow::Context as _;
use base64::Engine as _;
use bud_frontend::convert::ImageResolver;
use bud_frontend::lint::{self, Finding, LintOptions};
use serde_json::{Value, json};

use crate::cli::{BuildOptions, Call, CallMethod};

use super::dockerfile::convert_options;
use super::inputs::BuildInputs;

/// The check found something: bud exits with 1 after printing the findings, as buildx.
#[derive(Debug, thiserror::Error)]
#[error("the build checks found {0} warning(s)")]
pub struct ChecksFailed(pub usize);

/// Evaluates the Dockerfile as `call` asks and prints the answer.
pub(super) async fn run(
    opts: &BuildOptions,
    inputs: &BuildInputs,
    images: Arc<dyn ImageResolver + Send + Sync>,
    call: CallMethod,
) -> anyhow::Result<()> {
    let text = match call.method {
        Call::Check => return check(opts, inputs, images, call.json).await,
        Call::Targets => targets(inputs, call.json)?,
        Call::Outline => outline(opts, inputs, images, call.json).await?,
        Call::Build => unreachable!("not an evaluation"),
    };
    print!("{text}");
    Ok(())
}

async fn check(
    opts: &BuildOptions,
    inputs: &BuildInputs,
    images: Arc<dyn ImageResolver + Send + Sync>,
    json: bool,
) -> anyhow::Result<()> {
    let convert = convert_options(opts, inputs)?;
    let dockerfile = inputs.dockerfile.clone();
    let report = tokio::task::spawn_blocking(move || {
        let lint_opts = LintOptions {
            convert: &convert,
            all_stages: convert.target.is_none(),
        };
        lint::lint(&dockerfile, &lint_opts, images.as_ref())
    })
    .await
    .context("checking the Dockerfile")?
    .map_err(|e| {
        anyhow::anyhow!(
            "{}: {e}",
            inputs.dockerfile_name,
            e = crate::error_chain::error_chain(&e)
        )
    })?;
    let findings = report.findings;
    if json {
        println!("{}", check_json(&findings, opts, inputs));
    } else {
        print!("{}", check_text(&findings, opts, inputs));
    }
    match findings.len() {
        0 => Ok(()),
        n => Err(ChecksFailed(n).into()),
    }
}

/// buildx's text: a count, then each finding with its rule, URL, message and the lines
/// around it, ordered by line.
fn check_text(findings: &[Finding], opts: &BuildOptions, inputs: &BuildInputs) -> String {
    if findings.is_empty() {
        return "Check complete, no warnings found.\n".into();
    }
    let mut out = match findings.len() {
        1 => "Check complete, 1 warning has been found!\n".to_string(),
        n => format!("Check complete, {n} warnings have been found!\n"),
    };
    let mut sorted: Vec<&Finding> = findings.iter().collect();
    sorted.sort_by_key(|f| f.start_line);
    for f in sorted {
        out.push_str(&format!("\nWARNING: {}", f.rule.name));
        if !f.rule.url.is_empty() {
            out.push_str(&format!(" - {}", f.rule.url));
        }
        out.push_str(&format!("\n{}\n", f.message));
        out.push_str(&crate::progress::source_excerpt(
            &frontend_filename(opts),
            &inputs.dockerfile,
            f.start_line,
            f.end_line,
        ));
    }
    out
}

/// The frontend's `result.json` for a check.
fn check_json(findings: &[Finding], opts: &BuildOptions, inputs: &BuildInputs) -> String {
    let warnings: Vec<Value> = findings
        .iter()
        .map(|f| {
            let mut w = json!({
                "ruleName": f.rule.name,
                "description": f.rule.description,
            });
            if !f.rule.url.is_empty() {
                w["url"] = json!(f.rule.url);
            }
            w["detail"] = json!(f.message);
            w["location"] = json!({"ranges": [{
                "start": {"line": f.start_line},
                "end": {"line": f.end_line},
            }]});
            w
        })
        .collect();
    // Go marshals the frontend's empty list as null.
    let warnings = if warnings.is_empty() {
        Value::Null
    } else {
        Value::Array(warnings)
    };
    let value = json!({
        "warnings": warnings,
        "sources": [source_info(opts, inputs)],
    });
    serde_json::to_string_pretty(&value).unwrap_or_default()
}

fn source_info(opts: &BuildOptions, inputs: &BuildInputs) -> Value {
    json!({
        "filename": frontend_filename(opts),
        "data": base64::engine::general_purpose::STANDARD.encode(&inputs.dockerfile),
        "language": "Dockerfile",
    })
}

/// The name buildx shows the Dockerfile by: `-f` as given, else `Dockerfile`.
fn frontend_filename(opts: &BuildOptions) -> String {
    match opts.file.as_deref() {
        Some(file) if file != "-" => file.to_string(),
        _ => "Dockerfile".to_string(),
    }
}

/// `--call=targets`: a table of stages, or the frontend's JSON.
fn targets(inputs: &BuildInputs, json: bool) -> anyhow::Result<String> {
    let targets = bud_frontend::targets::targets(&inputs.dockerfile).map_err(|e| {
        anyhow::anyhow!(
            "{}: {e}",
            inputs.dockerfile_name,
            e = crate::error_chain::error_chain(&e)
        )
    })?;
    if json {
        let list: Vec<Value> = targets
            .iter()
            .map(|t| {
                let mut v = serde_json::Map::new();
                let mut put = |k: &str, s: &str| {
                    if !s.is_empty() {
                        v.insert(k.into(), json!(s));
                    }
                };
                put("name", &t.name);
                put("description", &t.description);
                put("base", &t.base);
                put("platform", &t.platform);
                if t.default {
                    v.insert("default".into(), json!(true));
                }
                v.insert(
                    "location".into(),
                    json!({"ranges": [{"start": {"line": t.lines.0}, "end": {"line": t.lines.1}}]}),
                );
                Value::Object(v)
            })
            .collect();
        let value = json!({
            "targets": list,
            "sources": [base64::engine::general_purpose::STANDARD.encode(&inputs.dockerfile)],
        });
        return Ok(format!("{}\n", serde_json::to_string_pretty(&value)?));
    }
    let rows: Vec<(String, &str)> = targets
        .iter()
        .map(|t| {
            let name = match (t.name.is_empty(), t.default) {
                (true, true) => "(default)".to_string(),
                (false, true) => format!("{} (default)", t.name),
                _ => t.name.clone(),
            };
            (name, t.description.as_str())
        })
        .collect();
    let width = rows
        .iter()
        .map(|(n, _)| n.chars().count())
        .chain(["TARGET".len()])
        .max()
        .unwrap_or_default();
    let mut out = format!("{:<width$} DESCRIPTION\n", "TARGET");
    for (name, description) in rows {
        // tabwriter pads every cell but the last, so a row without description keeps them.
        out.push_str(&format!("{name:<width$} {description}\n"));
    }
    Ok(out)
}

/// `--call=outline`: the target's build args, secrets and SSH sockets, as tables or as the
/// frontend's JSON.
async fn outline(
    opts: &BuildOptions,
    inputs: &BuildInputs,
    images: Arc<dyn ImageResolver + Send + Sync>,
    json: bool,
) -> anyhow::Result<String> {
    let convert = convert_options(opts, inputs)?;
    let dockerfile = inputs.dockerfile.clone();
    let outline = tokio::task::spawn_blocking(move || {
        bud_frontend::outline::outline(&dockerfile, &convert, images.as_ref())
    })
    .await
    .context("outlining the Dockerfile")?
    .map_err(|e| {
        anyhow::anyhow!(
            "{}: {e}",
            inputs.dockerfile_name,
            e = crate::error_chain::error_chain(&e)
        )
    })?;
    if json {
        let value = outline_json(&outline, &inputs.dockerfile);
        return Ok(format!("{}\n", serde_json::to_string_pretty(&value)?));
    }
    Ok(outline_text(&outline))
}

/// BuildKit's `outline.Outline` as Go marshals it: empty strings, false and empty lists
/// left out.
fn outline_json(o: &bud_frontend::outline::Outline, dockerfile: &str) -> Value {
    // BuildKit's `parser.Node.Location`: one range for each line of the instruction.
    let location = |(start, end): (usize, usize)| {
        let ranges: Vec<Value> = (start..=end.max(start))
            .map(|line| json!({"start": {"line": line}, "end": {"line": line}}))
            .collect();
        json!({ "ranges": ranges })
    };
    let mut v = serde_json::Map::new();
    let put = |v: &mut serde_json::Map<String, Value>, k: &str, s: &str| {
        if !s.is_empty() {
            v.insert(k.into(), json!(s));
        }
    };
    put(&mut v, "name", &o.name);
    put(&mut v, "description", &o.description);
    let args: Vec<Value> = o
        .args
        .iter()
        .map(|a| {
            let mut m = serde_json::Map::new();
            m.insert("name".into(), json!(a.name));
            put(&mut m, "description", &a.description);
            put(&mut m, "value", &a.value);
            m.insert("location".into(), location(a.lines));
            Value::Object(m)
        })
        .collect();
    let requirements = |list: &[bud_frontend::outline::Requirement]| -> Vec<Value> {
        list.iter()
            .map(|r| {
                let mut m = serde_json::Map::new();
                m.insert("name".into(), json!(r.name));
                if r.required {
                    m.insert("required".into(), json!(true));
                }
                m.insert("location".into(), location(r.lines));
                Value::Object(m)
            })
            .collect()
    };
    for (key, list) in [
        ("args", args),
        ("secrets", requirements(&o.secrets)),
        ("ssh", requirements(&o.ssh)),
    ] {
        if !list.is_empty() {
            v.insert(key.into(), Value::Array(list));
        }
    }
    v.insert(
        "sources".into(),
        json!([base64::engine::general_purpose::STANDARD.encode(dockerfile)]),
    );
    Value::Object(v)
}

/// buildx's tables (BuildKit's `PrintOutline`): the target, then build args, secrets and
/// SSH sockets, each followed by an empty line and left out when empty.
fn outline_text(o: &bud_frontend::outline::Outline) -> String {
    let mut out = String::new();
    if !o.name.is_empty() || !o.description.is_empty() {
        let name = if o.name.is_empty() {
            "(default)"
        } else {
            &o.name
        };
        let mut rows = vec![vec!["TARGET:".to_string(), name.to_string()]];
        if !o.description.is_empty() {
            rows.push(vec!["DESCRIPTION:".into(), o.description.clone()]);
        }
        out.push_str(&tabulate(&rows, 1));
        out.push('\n');
    }
    let required = |r: bool| if r { "true" } else { "" }.to_string();
    let mut tables: Vec<Vec<Vec<String>>> = Vec::new();
    if !o.args.is_empty() {
        let mut rows = vec![vec![
            "BUILD ARG".into(),
            "VALUE".into(),
            "DESCRIPTION".into(),
        ]];
        rows.extend(
            o.args
                .iter()
                .map(|a| vec![a.name.clone(), a.value.clone(), a.description.clone()]),
        );
        tables.push(rows);
    }
    for (header, list) in [("SECRET", &o.secrets), ("SSH", &o.ssh)] {
        if !list.is_empty() {
            let mut rows = vec![vec![header.to_string(), "REQUIRED".into()]];
            rows.extend(
                list.iter()
                    .map(|r| vec![r.name.clone(), required(r.required)]),
            );
            tables.push(rows);
        }
    }
    for rows in tables {
        out.push_str(&tabulate(&rows, 3));
        out.push('\n');
    }
    out
}

/// Go's tabwriter with `padding` spaces: every cell but a row's last padded to its
/// column's widest.
fn tabulate(rows: &[Vec<String>], padding: usize) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or_default();
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or_default()
                + padding
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        for (c, cell) in row.iter().enumerate() {
            if c + 1 == row.len() {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<width$}", width = widths[c]));
            }
        }
        out.push('\n');
    }
    out
}
