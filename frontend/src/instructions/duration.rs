//! Go's `time.ParseDuration`, for HEALTHCHECK intervals.

/// Parses a Go duration (`1h2m3.5s`, `300ms`, `-1.5h`, `0`) into signed nanoseconds.
/// `None` for anything Go rejects, overflow included.
pub(crate) fn parse_go_duration(s: &str) -> Option<i64> {
    let (negative, mut rest) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    if rest == "0" {
        return Some(0);
    }
    if rest.is_empty() {
        return None;
    }
    const LIMIT: u64 = 1 << 63;
    let mut total: u64 = 0;
    while !rest.is_empty() {
        let int_len = rest.bytes().take_while(u8::is_ascii_digit).count();
        let whole: u64 = if int_len == 0 {
            0
        } else {
            rest[..int_len].parse().ok().filter(|&v| v <= LIMIT)?
        };
        rest = &rest[int_len..];
        let mut fraction = 0u64;
        let mut scale = 1f64;
        let mut frac_len = 0;
        if let Some(after_dot) = rest.strip_prefix('.') {
            frac_len = after_dot.bytes().take_while(u8::is_ascii_digit).count();
            let mut overflow = false;
            for d in after_dot[..frac_len].bytes() {
                // Go stops accumulating (but keeps consuming) once precision runs out.
                if overflow || fraction > (LIMIT - 1) / 10 {
                    overflow = true;
                    continue;
                }
                fraction = fraction * 10 + u64::from(d - b'0');
                scale *= 10.0;
            }
            rest = &after_dot[frac_len..];
        }
        if int_len == 0 && frac_len == 0 {
            return None;
        }
        let unit_len = rest
            .find(|c: char| c == '.' || c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit: u64 = match &rest[..unit_len] {
            "ns" => 1,
            "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => return None,
        };
        rest = &rest[unit_len..];
        if whole > LIMIT / unit {
            return None;
        }
        let mut v = whole * unit;
        if fraction > 0 {
            // Truncating float arithmetic, as Go does.
            v = v.checked_add((fraction as f64 * (unit as f64 / scale)) as u64)?;
            if v > LIMIT {
                return None;
            }
        }
        total = total.checked_add(v).filter(|&t| t <= LIMIT)?;
    }
    if negative {
        // -(1<<63) is representable.
        return Some((total as i128).wrapping_neg() as i64);
    }
    i64::try_from(total).ok()
}

#[cfg(test)]
mod tests {
    use super::parse_go_duration as p;

    #[test]
    fn accepts_go_forms() {
        assert_eq!(p("0"), Some(0));
        assert_eq!(p("-0"), Some(0));
        assert_eq!(p("5s"), Some(5_000_000_000));
        assert_eq!(p("1h2m3s"), Some(3_723_000_000_000));
        assert_eq!(p("1.5h"), Some(5_400_000_000_000));
        assert_eq!(p(".5s"), Some(500_000_000));
        assert_eq!(p("1.s"), Some(1_000_000_000));
        assert_eq!(p("300ms"), Some(300_000_000));
        assert_eq!(p("10us"), Some(10_000));
        assert_eq!(p("10µs"), Some(10_000));
        assert_eq!(p("10μs"), Some(10_000));
        assert_eq!(p("7ns"), Some(7));
        assert_eq!(p("-2s"), Some(-2_000_000_000));
        assert_eq!(p("+2s"), Some(2_000_000_000));
        assert_eq!(p("2562047h"), Some(9_223_369_200_000_000_000));
    }

    #[test]
    fn rejects_what_go_rejects() {
        for bad in [
            "", "5", "s", ".s", "1x", "1.2.3s", "-", "3000000h", "1s5", "1 s",
        ] {
            assert_eq!(p(bad), None, "{bad}");
        }
    }
}
