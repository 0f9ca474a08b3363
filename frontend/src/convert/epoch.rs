//! `SOURCE_DATE_EPOCH`, as BuildKit's Dockerfile frontend (>= 0.11) reads it from the build
//! args: the time the history entries a build adds, and the image itself, were created.

use std::collections::BTreeMap;

use super::error::ConvertError;

/// The build arg BuildKit takes the epoch from (buildx sets it from the environment).
pub const SOURCE_DATE_EPOCH: &str = "SOURCE_DATE_EPOCH";

/// The epoch in seconds, if the build args set one; an empty value sets none, as in BuildKit.
pub fn from_build_args(args: &BTreeMap<String, String>) -> Result<Option<i64>, ConvertError> {
    match args.get(SOURCE_DATE_EPOCH).map(String::as_str) {
        None | Some("") => Ok(None),
        Some(v) => v
            .parse::<i64>()
            .map(Some)
            .map_err(|_| ConvertError::SourceDateEpoch(v.to_owned())),
    }
}

/// `secs` as Go marshals `time.Unix(secs, 0).UTC()`: RFC 3339 without a fraction.
pub fn rfc3339(secs: i64) -> String {
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    let rem = secs.rem_euclid(86_400);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(v: &str) -> BTreeMap<String, String> {
        BTreeMap::from([(SOURCE_DATE_EPOCH.to_owned(), v.to_owned())])
    }

    #[test]
    fn read_as_buildkit_reads_it() {
        assert_eq!(from_build_args(&BTreeMap::new()).unwrap(), None);
        assert_eq!(from_build_args(&args("")).unwrap(), None);
        assert_eq!(from_build_args(&args("0")).unwrap(), Some(0));
        assert_eq!(
            from_build_args(&args("1700000000")).unwrap(),
            Some(1_700_000_000)
        );
        let err = from_build_args(&args("yesterday")).unwrap_err();
        assert_eq!(err.to_string(), "invalid SOURCE_DATE_EPOCH: yesterday");
    }

    #[test]
    fn formatted_as_go_marshals_a_whole_second() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(rfc3339(-1), "1969-12-31T23:59:59Z");
        assert_eq!(civil_from_days(19_782), (2024, 2, 29));
    }
}
