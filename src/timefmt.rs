//! Times as Go prints them (RFC 3339 in UTC with nanoseconds), without a date-time crate:
//! bud only ever formats, never does calendar arithmetic; the one time it parses is a tar
//! PAX header's, as Go's archive/tar reads it.

use std::time::SystemTime;

/// `2023-11-14T22:13:20.000000005Z`, as Go marshals a `time.Time` in UTC.
pub fn rfc3339(secs: i64, nanos: u32) -> String {
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    let rem = secs.rem_euclid(86_400);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{nanos:09}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// `t` as [`rfc3339`] formats it; a time before the epoch is the epoch.
pub fn rfc3339_of(t: SystemTime) -> String {
    let d = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    rfc3339(d.as_secs() as i64, d.subsec_nanos())
}

/// A PAX `mtime`/`atime` record (`-12.5`, `1700000000.123456789`) as (seconds, nanoseconds
/// in 0..1e9): digits past the ninth are dropped and a negative time counts back from the
/// epoch, as Go's archive/tar reads it. `None` when it is not such a number.
pub(crate) fn pax_time(value: &str) -> Option<(i64, u32)> {
    let (whole, frac) = value.split_once('.').unwrap_or((value, ""));
    let secs: i64 = whole.parse().ok()?;
    if !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let digits = &frac[..frac.len().min(9)];
    let mut nanos: u32 = if digits.is_empty() {
        0
    } else {
        digits.parse().ok()?
    };
    for _ in digits.len()..9 {
        nanos *= 10;
    }
    if whole.starts_with('-') && nanos > 0 {
        Some((secs.checked_sub(1)?, 1_000_000_000 - nanos))
    } else {
        Some((secs, nanos))
    }
}

/// An extracted file's time: one before the epoch or past what nanoseconds in an i64 hold
/// (year 2262) becomes the epoch, as containerd's and moby's extraction bound it (Docker's
/// `ADD` of such an archive shows 1970-01-01).
pub(crate) fn bound_time(secs: i64, nanos: u32) -> (i64, u32) {
    let in_range = secs
        .checked_mul(1_000_000_000)
        .and_then(|n| n.checked_add(i64::from(nanos)))
        .is_some_and(|n| n >= 0);
    if in_range { (secs, nanos) } else { (0, 0) }
}

/// Days since 1970-01-01 to a proleptic Gregorian date.
pub use bud_frontend::convert::epoch::civil_from_days;

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn formats_like_go() {
        let t = SystemTime::UNIX_EPOCH + Duration::new(1_700_000_000, 5);
        assert_eq!(rfc3339_of(t), "2023-11-14T22:13:20.000000005Z");
        assert_eq!(rfc3339(0, 0), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
        assert_eq!(civil_from_days(19_782), (2024, 2, 29));
    }

    #[test]
    fn pax_times_read_like_go() {
        assert_eq!(pax_time("12.5"), Some((12, 500_000_000)));
        assert_eq!(pax_time("7"), Some((7, 0)));
        assert_eq!(pax_time("1.0000000019"), Some((1, 1)));
        assert_eq!(pax_time("-1.25"), Some((-2, 750_000_000)));
        assert_eq!(pax_time("-0.5"), Some((-1, 500_000_000)));
        assert_eq!(pax_time("x"), None);
        assert_eq!(pax_time("1.5e3"), None);
    }

    #[test]
    fn extracted_times_are_bounded_like_go() {
        assert_eq!(bound_time(1_000_000_000, 5), (1_000_000_000, 5));
        assert_eq!(bound_time(-1, 500_000_000), (0, 0));
        assert_eq!(
            bound_time(9_223_372_036, 854_775_807),
            (9_223_372_036, 854_775_807)
        );
        assert_eq!(bound_time(9_223_372_036, 854_775_808), (0, 0));
        assert_eq!(bound_time(i64::MAX, 0), (0, 0));
    }
}
