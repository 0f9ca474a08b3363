//! The syntax check of Go's `filepath.Match` (Unix), which moby runs on each pattern.
//!
//! `Match` splits a pattern into chunks at each `*` outside brackets and parses every chunk,
//! so the same walk here rejects exactly the patterns it rejects: a trailing `\`, and bracket
//! expressions that are empty, unclosed, or start a range with `-` or `]`.

/// Why `pattern` is not a valid `filepath.Match` pattern, if it is not.
pub(crate) fn check(pattern: &str) -> Result<(), &'static str> {
    let mut rest = pattern.as_bytes();
    while !rest.is_empty() {
        let (chunk, after) = split_chunk(rest);
        check_chunk(chunk)?;
        rest = after;
    }
    Ok(())
}

/// Skips leading stars and returns the text up to the next `*` outside brackets.
fn split_chunk(pattern: &[u8]) -> (&[u8], &[u8]) {
    let stars = pattern.iter().take_while(|&&b| b == b'*').count();
    let pattern = &pattern[stars..];
    let mut in_range = false;
    let mut i = 0;
    while i < pattern.len() {
        match pattern[i] {
            b'\\' if i + 1 < pattern.len() => i += 1,
            b'[' => in_range = true,
            b']' => in_range = false,
            b'*' if !in_range => break,
            _ => {}
        }
        i += 1;
    }
    pattern.split_at(i)
}

fn check_chunk(mut chunk: &[u8]) -> Result<(), &'static str> {
    while let Some(&b) = chunk.first() {
        chunk = &chunk[1..];
        match b {
            b'[' => {
                if chunk.first() == Some(&b'^') {
                    chunk = &chunk[1..];
                }
                let mut ranges = 0;
                loop {
                    if ranges > 0 && chunk.first() == Some(&b']') {
                        chunk = &chunk[1..];
                        break;
                    }
                    chunk = range_char(chunk)?;
                    if chunk.first() == Some(&b'-') {
                        chunk = range_char(&chunk[1..])?;
                    }
                    ranges += 1;
                }
            }
            b'\\' => match chunk.split_first() {
                Some((_, after)) => chunk = after,
                None => return Err("trailing backslash"),
            },
            _ => {}
        }
    }
    Ok(())
}

/// One (possibly escaped) character of a bracket expression; something must follow it.
fn range_char(chunk: &[u8]) -> Result<&[u8], &'static str> {
    let chunk = match chunk.first() {
        None => return Err("unterminated bracket expression"),
        Some(b'-' | b']') => return Err("bad range in bracket expression"),
        Some(b'\\') => &chunk[1..],
        Some(_) => chunk,
    };
    let Some(&lead) = chunk.first() else {
        return Err("unterminated bracket expression");
    };
    let len = match lead {
        0xF0.. => 4,
        0xE0.. => 3,
        0xC0.. => 2,
        _ => 1,
    };
    match chunk.get(len..) {
        Some(rest) if !rest.is_empty() => Ok(rest),
        _ => Err("unterminated bracket expression"),
    }
}

#[cfg(test)]
mod tests {
    use super::check;

    #[test]
    fn accepts_what_go_accepts() {
        for ok in [
            "", "*", "a*b?c", "[a-z]", "[^a]", "[!a]", "[\\]]", "a\\*", "[*]", "[é-ü]x", "**/x",
        ] {
            assert_eq!(check(ok), Ok(()), "{ok:?}");
        }
    }

    #[test]
    fn rejects_what_go_rejects() {
        for bad in [
            "[", "[a", "[]", "[^]", "[a-]", "[-a]", "a\\", "[a-b", "[\\", "x[a*", "[]*]", "*[é",
            "[]a]x]",
        ] {
            assert!(check(bad).is_err(), "{bad:?}");
        }
    }
}
