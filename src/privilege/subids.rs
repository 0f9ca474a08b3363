//! Subordinate id ranges from `/etc/subuid` and `/etc/subgid` (shadow's format,
//! `NAME_OR_ID:START:COUNT` a line), as `newuidmap` reads them.

use std::path::Path;

/// One range of subordinate ids: `count` ids from `start`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubIdRange {
    /// The first id of the range, on the host.
    pub start: u32,
    /// How many ids.
    pub count: u32,
}

/// The ranges `file` grants to the user named `name` or numbered `id`, in file order; an
/// unreadable or missing file grants none.
pub fn ranges(file: &Path, name: Option<&str>, id: u32) -> Vec<SubIdRange> {
    std::fs::read_to_string(file)
        .map(|text| parse(&text, name, id))
        .unwrap_or_default()
}

/// Parses the lines of a subid file; malformed lines are skipped, as shadow's tools skip them.
pub fn parse(text: &str, name: Option<&str>, id: u32) -> Vec<SubIdRange> {
    let id = id.to_string();
    text.lines()
        .filter_map(|line| {
            let line = line.trim();
            if line.starts_with('#') {
                return None;
            }
            let mut fields = line.split(':');
            let owner = fields.next()?;
            let start = fields.next()?.parse().ok()?;
            let count: u32 = fields.next()?.parse().ok()?;
            if fields.next().is_some() || count == 0 {
                return None;
            }
            (Some(owner) == name || owner == id).then_some(SubIdRange { start, count })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn by_name_and_by_id_in_file_order() {
        let text = "# comment\nbob:200000:65536\nalice:100000:65536\n1001:300000:10\n\
                    alice:bad:1\nalice:1:0\nalice:5:5:5\n";
        assert_eq!(
            parse(text, Some("alice"), 1001),
            [
                SubIdRange {
                    start: 100000,
                    count: 65536
                },
                SubIdRange {
                    start: 300000,
                    count: 10
                }
            ]
        );
        assert_eq!(parse(text, None, 1002), []);
    }
}
