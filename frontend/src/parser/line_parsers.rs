//! Per-instruction argument parsing: BuildKit's dispatch table from keyword to the
//! rule that turns the text after the flags into node values.

use super::error::ParseErrorKind;
use super::split::{is_separator, split_separated};

/// What a line parser makes of the arguments of one instruction.
#[derive(Debug, Default)]
pub(crate) struct Args {
    pub values: Vec<String>,
    pub json: bool,
    /// The trigger instruction of ONBUILD, as its keyword and the rest of its line.
    pub sub_command: Option<String>,
}

impl Args {
    fn list(values: Vec<String>) -> Self {
        Args {
            values,
            ..Args::default()
        }
    }
}

/// The argument rules, one per instruction family.
#[derive(Debug, Clone, Copy)]
enum Rule {
    /// JSON array, or the whole text as one value (RUN, CMD, ENTRYPOINT, SHELL).
    MaybeJson,
    /// JSON array, or whitespace-separated values (ADD, COPY, VOLUME).
    MaybeJsonList,
    /// `name=value …` or the old `name value` (ENV, LABEL): value triples.
    NameValue(&'static str),
    /// Words, quotes kept (ARG).
    Words,
    /// Whitespace-separated values (EXPOSE, FROM).
    Separated,
    /// The whole text as one value.
    Whole,
    /// `TYPE rest…` with the rest parsed as [`Rule::MaybeJson`] (HEALTHCHECK).
    Health,
    /// A nested instruction (ONBUILD).
    SubCommand,
}

fn rule_for(keyword: &str) -> Option<Rule> {
    Some(match keyword {
        "add" | "copy" | "volume" => Rule::MaybeJsonList,
        "arg" => Rule::Words,
        "cmd" | "entrypoint" | "run" | "shell" => Rule::MaybeJson,
        "env" => Rule::NameValue("ENV"),
        "label" => Rule::NameValue("LABEL"),
        "expose" | "from" => Rule::Separated,
        "healthcheck" => Rule::Health,
        "maintainer" | "stopsignal" | "user" | "workdir" => Rule::Whole,
        "onbuild" => Rule::SubCommand,
        _ => return None,
    })
}

/// Whether `keyword` (lower case) is a Dockerfile instruction.
pub(crate) fn is_instruction(keyword: &str) -> bool {
    rule_for(keyword).is_some()
}

/// Parses the arguments of `keyword` (lower case, known to be an instruction).
pub(crate) fn parse_args(keyword: &str, rest: &str, escape: char) -> Result<Args, ParseErrorKind> {
    let Some(rule) = rule_for(keyword) else {
        return Err(ParseErrorKind::UnknownInstruction(keyword.to_string()));
    };
    match rule {
        Rule::MaybeJson => maybe_json(rest),
        Rule::MaybeJsonList => match parse_json(rest) {
            Json::Strings(values) => Ok(Args {
                values,
                json: true,
                sub_command: None,
            }),
            Json::NotStrings => Err(ParseErrorKind::NotStringArray),
            Json::Invalid => Ok(Args::list(split_separated(rest))),
        },
        Rule::NameValue(name) => name_value(rest, name, escape).map(Args::list),
        Rule::Words => Ok(Args::list(words(rest, escape))),
        Rule::Separated => Ok(Args::list(split_separated(rest))),
        Rule::Whole if rest.is_empty() => Ok(Args::default()),
        Rule::Whole => Ok(Args::list(vec![rest.to_string()])),
        Rule::Health => health(rest),
        Rule::SubCommand if rest.is_empty() => Ok(Args::default()),
        Rule::SubCommand => Ok(Args {
            sub_command: Some(rest.to_string()),
            ..Args::default()
        }),
    }
}

enum Json {
    Strings(Vec<String>),
    NotStrings,
    Invalid,
}

/// Reads `rest` as a JSON array of strings, as Go's `json.Unmarshal` into `[]any`.
fn parse_json(rest: &str) -> Json {
    let rest = rest.trim_start();
    if !rest.starts_with('[') {
        return Json::Invalid;
    }
    let Ok(items) = serde_json::from_str::<Vec<serde_json::Value>>(rest) else {
        return Json::Invalid;
    };
    items
        .into_iter()
        .map(|v| match v {
            serde_json::Value::String(s) => Some(s),
            _ => None,
        })
        .collect::<Option<Vec<_>>>()
        .map_or(Json::NotStrings, Json::Strings)
}

fn maybe_json(rest: &str) -> Result<Args, ParseErrorKind> {
    if rest.is_empty() {
        return Ok(Args::default());
    }
    match parse_json(rest) {
        Json::Strings(values) => Ok(Args {
            values,
            json: true,
            sub_command: None,
        }),
        Json::NotStrings => Err(ParseErrorKind::NotStringArray),
        // Docker's fallback: text that is not a valid JSON array is shell form.
        Json::Invalid => Ok(Args::list(vec![rest.to_string()])),
    }
}

fn health(rest: &str) -> Result<Args, ParseErrorKind> {
    let Some(typ) = rest
        .split(char::is_whitespace)
        .next()
        .filter(|t| !t.is_empty())
    else {
        return Ok(Args::default());
    };
    let cmd = maybe_json(rest[typ.len()..].trim_start())?;
    let mut values = vec![typ.to_string()];
    values.extend(cmd.values);
    Ok(Args {
        values,
        json: cmd.json,
        sub_command: None,
    })
}

/// ENV and LABEL: `name value` (one pair, the value is the rest of the line) or
/// `name=value …`. Each pair becomes three values: name, value and the separator
/// (`""` for the old form, `"="` for the new one), as BuildKit's node tree has them.
fn name_value(rest: &str, key: &'static str, escape: char) -> Result<Vec<String>, ParseErrorKind> {
    let words = words(rest, escape);
    let Some(first) = words.first() else {
        return Ok(Vec::new());
    };
    if !first.contains('=') {
        let Some(at) = rest.find(is_separator) else {
            return Err(ParseErrorKind::MissingValue(key));
        };
        let value = rest[at..].trim_start_matches(is_separator);
        return Ok(vec![
            rest[..at].to_string(),
            value.to_string(),
            String::new(),
        ]);
    }
    let mut values = Vec::with_capacity(words.len() * 3);
    for word in words {
        let Some((name, value)) = word.split_once('=') else {
            return Err(ParseErrorKind::MissingEquals(word));
        };
        values.extend([name.to_string(), value.to_string(), "=".to_string()]);
    }
    Ok(values)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    Spaces,
    Word,
    Quote(char),
}

/// Splits on whitespace outside quotes, keeping quotes and escapes in the words
/// (they are removed later, by word expansion). An escape at the very end is dropped.
pub(crate) fn words(rest: &str, escape: char) -> Vec<String> {
    let chars: Vec<char> = rest.chars().collect();
    let mut out = Vec::new();
    let mut word = String::new();
    let mut blank_ok = false;
    let mut phase = Phase::Spaces;
    let mut pos = 0;
    while let Some(&ch) = chars.get(pos) {
        pos += 1;
        let at_end = pos == chars.len();
        match phase {
            Phase::Spaces if ch.is_whitespace() => continue,
            Phase::Spaces | Phase::Word => {
                if ch.is_whitespace() {
                    if blank_ok || !word.is_empty() {
                        out.push(std::mem::take(&mut word));
                    }
                    blank_ok = false;
                    phase = Phase::Spaces;
                    continue;
                }
                phase = Phase::Word;
                if ch == '\'' || ch == '"' {
                    blank_ok = true;
                    phase = Phase::Quote(ch);
                } else if ch == escape {
                    if at_end {
                        continue;
                    }
                    word.push(ch);
                    word.push(chars[pos]);
                    pos += 1;
                    continue;
                }
                word.push(ch);
            }
            Phase::Quote(quote) => {
                if ch == quote {
                    phase = Phase::Word;
                } else if ch == escape && quote != '\'' {
                    if at_end {
                        phase = Phase::Word;
                        continue;
                    }
                    word.push(ch);
                    word.push(chars[pos]);
                    pos += 1;
                    continue;
                }
                word.push(ch);
            }
        }
    }
    if phase != Phase::Spaces && (blank_ok || !word.is_empty()) {
        out.push(word);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_keep_quotes() {
        assert_eq!(
            words("foo bar 'abc xyz'", '\\'),
            ["foo", "bar", "'abc xyz'"]
        );
        assert_eq!(words(r#"foo "abc xyz""#, '\\'), ["foo", r#""abc xyz""#]);
        assert_eq!(words(r"foo\ bar", '\\'), [r"foo\ bar"]);
        assert_eq!(words("föo bàr", '\\'), ["föo", "bàr"]);
        assert_eq!(words("a ''", '\\'), ["a", "''"]);
        assert_eq!(words("a`", '`'), ["a"]);
    }

    #[test]
    fn json_fallback_and_errors() {
        let a = maybe_json(r#"["a", "b"]"#).unwrap();
        assert!(a.json);
        assert_eq!(a.values, ["a", "b"]);
        let a = maybe_json("['a']").unwrap();
        assert!(!a.json);
        assert_eq!(a.values, ["['a']"]);
        assert_eq!(
            maybe_json(r#"["a", ["b"]]"#).unwrap_err(),
            ParseErrorKind::NotStringArray
        );
        assert_eq!(
            maybe_json("[1]").unwrap_err(),
            ParseErrorKind::NotStringArray
        );
    }

    #[test]
    fn name_value_forms() {
        assert_eq!(name_value("a b c", "ENV", '\\').unwrap(), ["a", "b c", ""]);
        assert_eq!(
            name_value("a=1 b=\"2 3\"", "ENV", '\\').unwrap(),
            ["a", "1", "=", "b", "\"2 3\"", "="]
        );
        assert_eq!(
            name_value("a", "ENV", '\\').unwrap_err(),
            ParseErrorKind::MissingValue("ENV")
        );
        assert_eq!(
            name_value("a=1 b", "LABEL", '\\').unwrap_err(),
            ParseErrorKind::MissingEquals("b".into())
        );
    }

    #[test]
    fn healthcheck_type_and_command() {
        let a = health("CMD [\"x\"]").unwrap();
        assert_eq!(
            (a.values, a.json),
            (vec!["CMD".to_string(), "x".to_string()], true)
        );
        let a = health("NONE").unwrap();
        assert_eq!(a.values, ["NONE"]);
    }
}
