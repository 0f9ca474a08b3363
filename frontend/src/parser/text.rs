//! Dockerfile bytes to text.
//!
//! BuildKit reads a Dockerfile as bytes into Go strings, which may hold anything; Docker
//! 20.10 builds a Dockerfile that is not UTF-8, every byte that is not part of a valid UTF-8
//! sequence read as U+FFFD (in ENV values, the image config and RUN commands alike). bud
//! decodes the same way and says where it did.

/// A Dockerfile's text and where it was not UTF-8.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded {
    /// The text, each byte that was not UTF-8 read as U+FFFD.
    pub text: String,
    /// `(line, byte)`, both 1-based: the first byte of each line that was not UTF-8.
    pub invalid: Vec<(usize, usize)>,
}

/// Decodes `bytes` as Go ranges over a string: each byte that does not belong to a valid
/// UTF-8 sequence becomes one U+FFFD.
pub fn decode(bytes: &[u8]) -> Decoded {
    let mut text = String::with_capacity(bytes.len());
    let mut invalid: Vec<(usize, usize)> = Vec::new();
    let mut rest = bytes;
    // Where `rest` starts: its line, and the offset of that line's start in `bytes`.
    let mut line = 1;
    let mut line_start = 0;
    loop {
        let (valid, bad) = match std::str::from_utf8(rest) {
            Ok(valid) => (valid, 0),
            Err(e) => {
                let (valid, after) = rest.split_at(e.valid_up_to());
                // The prefix is valid by construction; an empty one if it somehow is not.
                let valid = std::str::from_utf8(valid).unwrap_or_default();
                (valid, e.error_len().unwrap_or(after.len()))
            }
        };
        text.push_str(valid);
        let at = (bytes.len() - rest.len()) + valid.len();
        for (i, _) in valid.match_indices('\n') {
            line += 1;
            line_start = at - valid.len() + i + 1;
        }
        if bad == 0 {
            break;
        }
        if invalid.last().is_none_or(|&(l, _)| l != line) {
            invalid.push((line, at - line_start + 1));
        }
        text.extend(std::iter::repeat_n('\u{fffd}', bad));
        rest = &rest[valid.len() + bad..];
    }
    Decoded { text, invalid }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utf8_text_is_unchanged() {
        let d = decode("FROM x\n# é 安装\n".as_bytes());
        assert_eq!(d.text, "FROM x\n# é 安装\n");
        assert!(d.invalid.is_empty());
    }

    #[test]
    fn each_invalid_byte_is_one_replacement_character_as_in_go() {
        // Latin-1 é; a truncated three-byte sequence (two bytes, as Go: two U+FFFD);
        // a lone continuation byte at the very end.
        let d = decode(b"FROM x\nENV A=caf\xe9\nRUN a\xe2\x82b \xe9\xe9\n\x80");
        assert_eq!(
            d.text,
            "FROM x\nENV A=caf\u{fffd}\nRUN a\u{fffd}\u{fffd}b \u{fffd}\u{fffd}\n\u{fffd}"
        );
        assert_eq!(d.invalid, [(2, 10), (3, 6), (4, 1)]);
    }
}
