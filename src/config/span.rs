//! Spans of time as `tayori.yaml` writes them: `90s`, `5m`, `24h`, `2d` (a bare number is
//! seconds), and the records' periods, `3y` or `1100d`.

use std::str::FromStr;
use std::time::Duration;

/// A span of time: `90s`, `5m`, `24h`, `2d`; a bare number is seconds; `0` is zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span(pub Duration);

impl FromStr for Span {
    type Err = String;

    fn from_str(text: &str) -> Result<Span, String> {
        let t = text.trim();
        let (n, unit) = t.split_at(t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len()));
        let secs = n.parse::<u64>().ok().and_then(|n| match unit {
            "" | "s" => Some(n),
            "m" => n.checked_mul(60),
            "h" => n.checked_mul(3600),
            "d" => n.checked_mul(86_400),
            _ => None,
        });
        secs.map(|s| Span(Duration::from_secs(s)))
            .ok_or_else(|| format!("`{text}` is not a duration (e.g. 30s, 5m, 24h, 2d)"))
    }
}

/// How long a record is kept: `<n>y` (a year counts 366 days, so nothing is purged early) or
/// `<n>d`, n from 1 to 100,000.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Period(pub chrono::TimeDelta);

impl FromStr for Period {
    type Err = String;

    fn from_str(text: &str) -> Result<Period, String> {
        let k = text.trim();
        let (n, unit) = k.split_at(k.find(|c: char| !c.is_ascii_digit()).unwrap_or(k.len()));
        let n = n.parse::<i64>().ok().filter(|n| (1..=100_000).contains(n));
        match (n, unit) {
            (Some(n), "y") => Ok(Period(chrono::TimeDelta::days(366 * n))),
            (Some(n), "d") => Ok(Period(chrono::TimeDelta::days(n))),
            _ => Err(format!("`{text}` is not a period (e.g. 3y, 5y, 1100d)")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_read_seconds_minutes_hours_and_days() {
        let s = |t: &str| t.parse::<Span>().map(|s| s.0.as_secs());
        assert_eq!(s("24h"), Ok(86_400));
        assert_eq!(s("90m"), Ok(5_400));
        assert_eq!(s("2d"), Ok(172_800));
        assert_eq!(s("45"), Ok(45));
        assert_eq!(s("0"), Ok(0));
        for bad in [
            "",
            "h",
            "1w",
            "-5m",
            "1.5h",
            "99999999999999999999d",
            "18446744073709551615d",
        ] {
            assert!(s(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn periods_count_a_year_as_366_days() {
        assert_eq!("3y".parse::<Period>().unwrap().0.num_days(), 1098);
        assert_eq!("1100d".parse::<Period>().unwrap().0.num_days(), 1100);
        for bad in ["0y", "3", "3m", "100001d"] {
            assert!(bad.parse::<Period>().is_err(), "{bad}");
        }
    }
}
