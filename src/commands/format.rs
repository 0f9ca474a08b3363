//! How sizes, ages and times are printed, matching docker's go-units so that `bud du`
//! reads like `docker buildx du`.

/// Decimal units with four significant digits: `129.7MB`, `4.096kB`, `0B`.
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 7] = ["B", "kB", "MB", "GB", "TB", "PB", "EB"];
    let mut v = bytes as f64;
    let mut unit = 0;
    while v >= 1000.0 && unit < UNITS.len() - 1 {
        v /= 1000.0;
        unit += 1;
    }
    format!("{}{}", significant(v, 4), UNITS[unit])
}

/// `v` (0 ≤ v < 1000) with `digits` significant digits, trailing zeros dropped, as Go's `%g`.
fn significant(v: f64, digits: i32) -> String {
    if v == 0.0 {
        return "0".to_string();
    }
    let magnitude = v.abs().log10().floor() as i32;
    let decimals = (digits - 1 - magnitude).max(0) as usize;
    let s = format!("{v:.decimals$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// How long ago, as docker prints it: `Less than a second ago`, `About an hour ago`,
/// `3 days ago`.
pub(crate) fn human_age(seconds: i64) -> String {
    let s = seconds.max(0);
    let minutes = (s as f64 / 60.0).round() as i64;
    let hours = (s as f64 / 3600.0).round() as i64;
    let text = if s < 1 {
        "Less than a second".to_string()
    } else if s == 1 {
        "1 second".to_string()
    } else if s < 60 {
        format!("{s} seconds")
    } else if minutes == 1 {
        "About a minute".to_string()
    } else if minutes < 60 {
        format!("{minutes} minutes")
    } else if hours == 1 {
        "About an hour".to_string()
    } else if hours < 48 {
        format!("{hours} hours")
    } else if hours < 24 * 7 * 2 {
        format!("{} days", hours / 24)
    } else if hours < 24 * 30 * 2 {
        format!("{} weeks", hours / 24 / 7)
    } else if hours < 24 * 365 * 2 {
        format!("{} months", hours / 24 / 30)
    } else {
        format!("{} years", s / 3600 / 24 / 365)
    };
    format!("{text} ago")
}

/// `2024-01-02 15:04:05 UTC` for seconds since the epoch.
pub(crate) fn utc_time(epoch_seconds: i64) -> String {
    let (days, rem) = (
        epoch_seconds.div_euclid(86_400),
        epoch_seconds.rem_euclid(86_400),
    );
    let (y, m, d) = crate::timefmt::civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Left-aligned columns separated by at least three spaces, like Go's tabwriter as
/// buildx sets it up.
pub fn table(rows: &[Vec<String>]) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| console::measure_text_width(s))
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (c, cell) in row.iter().enumerate() {
            line.push_str(cell);
            if c + 1 < row.len() {
                let pad = widths[c] - console::measure_text_width(cell) + 3;
                line.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_like_go_units() {
        assert_eq!(human_size(0), "0B");
        assert_eq!(human_size(999), "999B");
        assert_eq!(human_size(1000), "1kB");
        assert_eq!(human_size(4096), "4.096kB");
        assert_eq!(human_size(129_700_000), "129.7MB");
        assert_eq!(human_size(1_234_567_890), "1.235GB");
    }

    #[test]
    fn ages_like_go_units() {
        assert_eq!(human_age(0), "Less than a second ago");
        assert_eq!(human_age(30), "30 seconds ago");
        assert_eq!(human_age(65), "About a minute ago");
        assert_eq!(human_age(3600), "About an hour ago");
        assert_eq!(human_age(5 * 3600), "5 hours ago");
        assert_eq!(human_age(3 * 86_400), "3 days ago");
        assert_eq!(human_age(20 * 86_400), "2 weeks ago");
        assert_eq!(human_age(90 * 86_400), "3 months ago");
        assert_eq!(human_age(800 * 86_400), "2 years ago");
    }

    #[test]
    fn times_and_tables() {
        assert_eq!(utc_time(1_700_000_000), "2023-11-14 22:13:20 UTC");
        let t = table(&[
            vec!["ID".into(), "SIZE".into()],
            vec!["abcdef".into(), "1kB".into()],
        ]);
        assert_eq!(t, "ID       SIZE\nabcdef   1kB\n");
    }
}
