//! The issue schedule: standard crontab meaning (POSIX/Vixie cron), in `site.timezone`.
//!
//! Five fields (`min hour dom month dow`) or six with a leading seconds field. Day-of-week
//! `1`/`Mon` is Monday and `0`/`7` Sunday, as in crontab(5). The design card's `cron` crate reads
//! `1` as Sunday and rejects five fields, so this wraps `croner`, whose default is the standard.

use chrono::{DateTime, TimeZone};
use croner::parser::{CronParser, Seconds, Year};

/// A parsed schedule.
#[derive(Debug, Clone)]
pub struct Schedule {
    cron: croner::Cron,
}

/// Why a schedule is not a crontab line. Permanent: the configuration must change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    #[error("`{expr}` has {fields} fields; expected 5 (min hour day month weekday) or 6 (with leading seconds)")]
    Fields { expr: String, fields: usize },
    #[error("`{expr}` is not a crontab line: {reason}")]
    Invalid { expr: String, reason: String },
}

/// Parses a crontab line: 5 fields, or 6 with leading seconds; no year field.
pub fn parse(expr: &str) -> Result<Schedule, ScheduleError> {
    let fields = expr.split_whitespace().count();
    if !(fields == 5 || fields == 6) {
        let expr = expr.to_string();
        return Err(ScheduleError::Fields { expr, fields });
    }
    let parser = CronParser::builder()
        .seconds(Seconds::Optional)
        .year(Year::Disallowed)
        .build();
    parser
        .parse(expr)
        .map(|cron| Schedule { cron })
        .map_err(|e| ScheduleError::Invalid {
            expr: expr.to_string(),
            reason: e.to_string(),
        })
}

impl std::str::FromStr for Schedule {
    type Err = ScheduleError;
    fn from_str(expr: &str) -> Result<Schedule, ScheduleError> {
        parse(expr)
    }
}

impl Schedule {
    /// The first tick strictly after `after`, in `after`'s time zone.
    pub fn next_after<Tz: TimeZone>(&self, after: &DateTime<Tz>) -> Option<DateTime<Tz>>
    where
        DateTime<Tz>: croner::CronDateTime,
    {
        self.cron.find_next_occurrence(after, false).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Datelike, Timelike, Weekday};
    use chrono_tz::Asia::Tokyo;

    #[test]
    fn reads_weekday_one_as_monday() {
        let s = parse("0 9 * * 1").unwrap();
        // 2026-11-26 is a Thursday.
        let from = Tokyo.with_ymd_and_hms(2026, 11, 26, 12, 0, 0).unwrap();
        let next = s.next_after(&from).unwrap();
        assert_eq!(next.weekday(), Weekday::Mon);
        assert_eq!((next.day(), next.hour(), next.minute()), (30, 9, 0));
        let named = parse("0 9 * * Mon").unwrap().next_after(&from).unwrap();
        assert_eq!(named, next);
    }

    #[test]
    fn reads_zero_and_seven_as_sunday() {
        let from = Tokyo.with_ymd_and_hms(2026, 11, 26, 12, 0, 0).unwrap();
        for expr in ["0 9 * * 0", "0 9 * * 7", "0 9 * * Sun"] {
            let next = parse(expr).unwrap().next_after(&from).unwrap();
            assert_eq!(next.weekday(), Weekday::Sun, "{expr}");
        }
    }

    #[test]
    fn six_fields_lead_with_seconds() {
        let s = parse("*/3 * * * * *").unwrap();
        let from = Tokyo.with_ymd_and_hms(2026, 11, 26, 12, 0, 1).unwrap();
        let a = s.next_after(&from).unwrap();
        let b = s.next_after(&a).unwrap();
        assert_eq!(a.second(), 3);
        assert_eq!((b - a).num_seconds(), 3);
    }

    #[test]
    fn rejects_wrong_field_counts_and_values() {
        assert!(parse("0 9 * *").is_err());
        assert!(parse("0 0 9 * * 1 2027").is_err());
        assert!(parse("61 9 * * 1").is_err());
    }
}
