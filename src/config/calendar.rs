//! `calendar:`: days without an issue — `skip` entries (dates, date ranges, or month-day ranges
//! that come back every year) and `holidays: jp`. Parsed here once into [`Skip`] rules; the
//! `calendar` stage decides which days they cover.

use chrono::NaiveDate;
use serde::Deserialize;

/// `calendar:` as written in `tayori.yaml`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Calendar {
    /// `YYYY-MM-DD`, `YYYY-MM-DD..YYYY-MM-DD`, `MM-DD` or `MM-DD..MM-DD` (every year; a range
    /// may run over the new year, e.g. `12-29..01-03`).
    #[serde(default)]
    pub skip: Vec<String>,
    /// `jp`: Japan's national holidays and substitute holidays too.
    #[serde(default)]
    pub holidays: Option<Holidays>,
}

/// Which country's public holidays have no issue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Holidays {
    /// 国民の祝日・休日 (Cabinet Office).
    Jp,
}

/// One `calendar.skip` entry, parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    /// From one date to another, both included.
    Dates(NaiveDate, NaiveDate),
    /// From one (month, day) to another every year, both included; may wrap past 12-31.
    Yearly((u32, u32), (u32, u32)),
}

impl Skip {
    /// Reads one entry; `None` when it is none of the four forms.
    pub fn parse(entry: &str) -> Option<Skip> {
        let (from, to) = match entry.trim().split_once("..") {
            Some((a, b)) => (a.trim(), b.trim()),
            None => (entry.trim(), entry.trim()),
        };
        if let (Some(a), Some(b)) = (date(from), date(to)) {
            return (a <= b).then_some(Skip::Dates(a, b));
        }
        Some(Skip::Yearly(month_day(from)?, month_day(to)?))
    }

    /// Whether `day` is one of this entry's days.
    pub fn covers(&self, day: NaiveDate) -> bool {
        use chrono::Datelike;
        match *self {
            Skip::Dates(a, b) => (a..=b).contains(&day),
            Skip::Yearly(from, to) => {
                let md = (day.month(), day.day());
                if from <= to {
                    from <= md && md <= to
                } else {
                    md >= from || md <= to
                }
            }
        }
    }
}

fn date(s: &str) -> Option<NaiveDate> {
    (s.len() == 10)
        .then(|| NaiveDate::parse_from_str(s, "%Y-%m-%d").ok())
        .flatten()
}

fn month_day(s: &str) -> Option<(u32, u32)> {
    let (m, d) = s.split_once('-')?;
    let (m, d) = (m.parse().ok()?, d.parse().ok()?);
    // Checked against a leap year, so 02-29 is a day some years have.
    NaiveDate::from_ymd_opt(2028, m, d).map(|_| (m, d))
}

impl Calendar {
    /// The `skip` entries parsed; each one that does not parse is a problem, by its text.
    pub fn rules(&self) -> (Vec<Skip>, Vec<String>) {
        let mut rules = Vec::new();
        let mut bad = Vec::new();
        for entry in &self.skip {
            match Skip::parse(entry) {
                Some(r) => rules.push(r),
                None => bad.push(format!(
                    "calendar.skip: `{entry}` is not a day or range (2027-05-06, 2027-05-01..2027-05-06, 12-29..01-03)"
                )),
            }
        }
        (rules, bad)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    #[test]
    fn a_yearly_range_runs_over_the_new_year() {
        let r = Skip::parse("12-29..01-03").unwrap();
        for d in [
            day(2026, 12, 29),
            day(2026, 12, 31),
            day(2027, 1, 1),
            day(2027, 1, 3),
        ] {
            assert!(r.covers(d), "{d}");
        }
        for d in [day(2026, 12, 28), day(2027, 1, 4), day(2027, 6, 1)] {
            assert!(!r.covers(d), "{d}");
        }
    }

    #[test]
    fn dates_and_date_ranges_cover_only_their_days() {
        let one = Skip::parse("2027-05-06").unwrap();
        assert!(one.covers(day(2027, 5, 6)) && !one.covers(day(2028, 5, 6)));
        let gw = Skip::parse("2027-05-01 .. 2027-05-06").unwrap();
        assert!(gw.covers(day(2027, 5, 3)) && !gw.covers(day(2027, 5, 7)));
        let md = Skip::parse("08-13..08-16").unwrap();
        assert!(md.covers(day(2031, 8, 15)) && !md.covers(day(2031, 8, 17)));
    }

    #[test]
    fn entries_that_are_no_day_are_refused() {
        for bad in [
            "13-01",
            "02-30",
            "2027-5-6",
            "2027-05-07..2027-05-01",
            "Mon",
            "",
        ] {
            assert_eq!(Skip::parse(bad), None, "{bad}");
        }
        assert!(Skip::parse("02-29").is_some());
    }
}
