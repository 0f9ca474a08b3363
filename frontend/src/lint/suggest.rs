//! "Did you mean" suggestions, as BuildKit's `util/suggest` makes them: the closest name
//! fewer than three edits away, none when the name itself is among the options.

/// The suggestion for `value` among `options` (case-sensitive).
pub(super) fn search<'a>(
    value: &str,
    options: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let mut best = None;
    let mut min = 3;
    for option in options {
        if option == value {
            return None;
        }
        let d = distance(value, option);
        if d < min {
            best = Some(option);
            min = d;
        }
    }
    best
}

/// Levenshtein distance over characters.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            let next = (row[j + 1] + 1).min(row[j] + 1).min(prev + cost);
            prev = row[j + 1];
            row[j + 1] = next;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_the_closest_name() {
        assert_eq!(search("VERSON", ["VERSION", "OTHER"]), Some("VERSION"));
        assert_eq!(search("VERSION", ["VERSON", "VERSION"]), None);
        assert_eq!(search("ABCDEF", ["XYZ"]), None);
    }
}
