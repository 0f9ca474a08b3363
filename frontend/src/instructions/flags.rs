//! Flag validation for instructions, as BuildKit's `BFlags`.

use super::error::InstructionErrorKind;

/// What a flag accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// `--flag`, `--flag=true`, `--flag=false`.
    Bool,
    /// `--flag=value`, once.
    String,
    /// `--flag=value`, any number of times.
    Strings,
}

/// The values given to one flag.
#[derive(Debug, Default)]
struct Given {
    values: Vec<String>,
    used: bool,
}

/// The flags an instruction defines, filled from a node's flag words.
#[derive(Debug)]
pub(crate) struct Flags {
    defs: Vec<(&'static str, Kind, Given)>,
}

impl Flags {
    /// Validates `words` against `defs`. A `--` word ends the flags.
    pub(crate) fn parse(
        defs: &[(&'static str, Kind)],
        words: &[String],
    ) -> Result<Self, InstructionErrorKind> {
        let mut flags = Flags {
            defs: defs
                .iter()
                .map(|&(name, kind)| (name, kind, Given::default()))
                .collect(),
        };
        for word in words {
            if word == "--" {
                break;
            }
            let (flag, value) = match word.split_once('=') {
                Some((f, v)) => (f, Some(v)),
                None => (word.as_str(), None),
            };
            let name = flag.strip_prefix("--").unwrap_or(flag);
            let Some((_, kind, given)) = flags.defs.iter_mut().find(|(n, _, _)| *n == name) else {
                return Err(InstructionErrorKind::UnknownFlag(flag.to_string()));
            };
            if given.used && *kind != Kind::Strings {
                return Err(InstructionErrorKind::DuplicateFlag(flag.to_string()));
            }
            given.used = true;
            let value = match (*kind, value) {
                (Kind::Bool, None) => "true".to_string(),
                (Kind::Bool, Some("")) => {
                    return Err(InstructionErrorKind::MissingFlagValue(flag.to_string()));
                }
                (Kind::Bool, Some(v)) => match v.to_ascii_lowercase().as_str() {
                    "true" => "true".to_string(),
                    "false" => "false".to_string(),
                    _ => {
                        return Err(InstructionErrorKind::BadBoolFlag {
                            flag: flag.to_string(),
                            value: v.to_string(),
                        });
                    }
                },
                (_, None) => return Err(InstructionErrorKind::MissingFlagValue(flag.to_string())),
                (_, Some(v)) => v.to_string(),
            };
            given.values.push(value);
        }
        Ok(flags)
    }

    fn given(&self, name: &str) -> Option<&Given> {
        self.defs
            .iter()
            .find(|(n, _, _)| *n == name)
            .map(|(_, _, g)| g)
            .filter(|g| g.used)
    }

    /// Whether the flag was given at all.
    pub(crate) fn is_given(&self, name: &str) -> bool {
        self.given(name).is_some()
    }

    /// A string flag's value; `None` when absent or empty (BuildKit treats both alike).
    pub(crate) fn string(&self, name: &str) -> Option<String> {
        self.given(name)
            .and_then(|g| g.values.last())
            .filter(|v| !v.is_empty())
            .cloned()
    }

    /// A boolean flag's value when given.
    pub(crate) fn bool_given(&self, name: &str) -> Option<bool> {
        self.given(name)
            .and_then(|g| g.values.last())
            .map(|v| v == "true")
    }

    /// A boolean flag's value, false when absent.
    pub(crate) fn bool(&self, name: &str) -> bool {
        self.bool_given(name).unwrap_or(false)
    }

    /// All values of a repeatable flag, in order.
    pub(crate) fn strings(&self, name: &str) -> Vec<String> {
        self.given(name)
            .map(|g| g.values.clone())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEFS: &[(&str, Kind)] = &[
        ("link", Kind::Bool),
        ("from", Kind::String),
        ("exclude", Kind::Strings),
    ];

    fn parse(words: &[&str]) -> Result<Flags, InstructionErrorKind> {
        let words: Vec<String> = words.iter().map(|s| s.to_string()).collect();
        Flags::parse(DEFS, &words)
    }

    #[test]
    fn reads_each_kind() {
        let f = parse(&["--link", "--from=a", "--exclude=x", "--exclude=y"]).unwrap();
        assert!(f.bool("link"));
        assert_eq!(f.string("from").as_deref(), Some("a"));
        assert_eq!(f.strings("exclude"), ["x", "y"]);
        let f = parse(&["--link=FALSE"]).unwrap();
        assert_eq!(f.bool_given("link"), Some(false));
        assert_eq!(parse(&[]).unwrap().bool_given("link"), None);
    }

    #[test]
    fn rejects_misuse() {
        use InstructionErrorKind::*;
        assert_eq!(
            parse(&["--nope=1"]).unwrap_err(),
            UnknownFlag("--nope".into())
        );
        assert_eq!(
            parse(&["--from=a", "--from=b"]).unwrap_err(),
            DuplicateFlag("--from".into())
        );
        assert_eq!(
            parse(&["--from"]).unwrap_err(),
            MissingFlagValue("--from".into())
        );
        assert_eq!(
            parse(&["--exclude"]).unwrap_err(),
            MissingFlagValue("--exclude".into())
        );
        assert_eq!(
            parse(&["--link="]).unwrap_err(),
            MissingFlagValue("--link".into())
        );
        assert_eq!(
            parse(&["--link=yes"]).unwrap_err(),
            BadBoolFlag {
                flag: "--link".into(),
                value: "yes".into()
            }
        );
    }
}
