//! Days without an issue: `calendar.skip` and, with `calendar.holidays: jp`, Japan's national
//! holidays (国民の祝日・休日). A schedule tick on such a day passes; the pending issue waits
//! for the first tick after (docs/configuration.md, "Days without an issue").
//!
//! The holidays are the Cabinet Office's published list (内閣府「国民の祝日について」,
//! `https://www8.cao.go.jp/chosei/shukujitsu/syukujitsu.csv`), kept as data in
//! `src/calendar/holidays_jp.csv`: it covers 2025 to [`HOLIDAYS_UNTIL`]. The Cabinet Office
//! publishes each next year's list in February; a test fails when the data is about to run
//! out, and past its end `check` says so instead of guessing.

use chrono::{DateTime, NaiveDate, TimeZone};

use crate::config::calendar::{Holidays, Skip};
use crate::config::Config;
use crate::config::Schedule;

/// The Cabinet Office's list, `YYYY-MM-DD,名称` a line.
const HOLIDAYS_JP: &str = include_str!("calendar/holidays_jp.csv");

/// The last day the holiday data is known for.
pub const HOLIDAYS_UNTIL: (i32, u32, u32) = (2027, 12, 31);

/// How many ticks ahead [`Calendar::next_sending_tick`] looks before it gives up (a schedule
/// whose every tick is skipped).
const MAX_SKIPPED_TICKS: usize = 1000;

/// The first tick that sends, if any, and the ticks that pass before it, each with why.
pub type SendingTick<Tz> = (Option<DateTime<Tz>>, Vec<(DateTime<Tz>, String)>);

/// The days the configuration takes out of the schedule.
#[derive(Debug, Clone, Default)]
pub struct Calendar {
    skips: Vec<(Skip, String)>,
    holidays: Option<Holidays>,
}

impl Calendar {
    /// The calendar of a validated configuration (entries that did not parse were refused by
    /// `validate`).
    pub fn of(config: &Config) -> Calendar {
        let Some(c) = &config.calendar else {
            return Calendar::default();
        };
        let skips = c
            .skip
            .iter()
            .filter_map(|e| Skip::parse(e).map(|s| (s, e.trim().to_string())))
            .collect();
        Calendar {
            skips,
            holidays: c.holidays,
        }
    }

    /// Why `day` has no issue (the holiday's name, or the `calendar.skip` entry), if it has none.
    pub fn skipped(&self, day: NaiveDate) -> Option<String> {
        if let Some((_, entry)) = self.skips.iter().find(|(s, _)| s.covers(day)) {
            return Some(format!("calendar.skip {entry}"));
        }
        match self.holidays {
            Some(Holidays::Jp) => holiday_jp(day).map(str::to_string),
            None => None,
        }
    }

    /// The first tick after `after` that is not on a skipped day, with the skipped ticks before
    /// it (each with why).
    pub fn next_sending_tick<Tz: TimeZone>(
        &self,
        schedule: &Schedule,
        after: &DateTime<Tz>,
    ) -> SendingTick<Tz>
    where
        DateTime<Tz>: croner::CronDateTime,
    {
        let mut passed = Vec::new();
        let mut at = after.clone();
        for _ in 0..MAX_SKIPPED_TICKS {
            let Some(tick) = schedule.next_after(&at) else {
                break;
            };
            match self.skipped(tick.date_naive()) {
                None => return (Some(tick), passed),
                Some(why) => passed.push((tick.clone(), why)),
            }
            at = tick;
        }
        (None, passed)
    }

    /// Whether holidays are asked for on a day past the data's end (`check` warns).
    pub fn holidays_unknown_on(&self, day: NaiveDate) -> bool {
        self.holidays.is_some() && day > holidays_until()
    }
}

/// The last day the holiday data covers.
pub fn holidays_until() -> NaiveDate {
    let (y, m, d) = HOLIDAYS_UNTIL;
    NaiveDate::from_ymd_opt(y, m, d).expect("a real date")
}

/// The national holiday (or substitute holiday) on `day`, by its Japanese name.
pub fn holiday_jp(day: NaiveDate) -> Option<&'static str> {
    let key = day.format("%Y-%m-%d").to_string();
    HOLIDAYS_JP
        .lines()
        .filter_map(|l| l.split_once(','))
        .find(|(d, _)| *d == key)
        .map(|(_, name)| name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono_tz::Asia::Tokyo;

    fn day(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    fn calendar(yaml: &str) -> Calendar {
        let text = format!(
            "site:\n  title: T\n  url: https://example.jp/\nsender:\n  from: T <n@example.jp>\ncalendar:\n{yaml}"
        );
        let mut c = crate::config::parse(&text, std::path::Path::new("tayori.yaml")).unwrap();
        assert!(c.validate(std::path::Path::new("tayori.yaml")).is_empty());
        Calendar::of(&c)
    }

    #[test]
    fn national_and_substitute_holidays_are_known_by_name() {
        assert_eq!(holiday_jp(day(2027, 1, 1)), Some("元日"));
        assert_eq!(holiday_jp(day(2027, 3, 22)), Some("休日"), "振替休日");
        assert_eq!(holiday_jp(day(2026, 9, 22)), Some("休日"), "国民の休日");
        assert_eq!(holiday_jp(day(2027, 1, 4)), None);
    }

    #[test]
    fn the_holiday_data_lasts_at_least_sixty_days_from_today() {
        // Fails when the Cabinet Office list in src/calendar/holidays_jp.csv is about to run
        // out: add the next year's list (published each February) and move HOLIDAYS_UNTIL.
        let today = chrono::Utc::now().with_timezone(&Tokyo).date_naive();
        let last = HOLIDAYS_JP
            .lines()
            .last()
            .unwrap()
            .split(',')
            .next()
            .unwrap();
        assert_eq!(last[..4].parse::<i32>().unwrap(), HOLIDAYS_UNTIL.0);
        assert!(
            holidays_until() - today >= chrono::TimeDelta::days(60),
            "holiday data ends {}",
            holidays_until()
        );
    }

    #[test]
    fn a_monday_tick_on_new_years_day_passes_to_the_next_monday() {
        let c = calendar("  skip: [\"12-29..01-03\"]\n  holidays: jp\n");
        let schedule = crate::config::schedule::parse("0 9 * * Mon").unwrap();
        // 2026-12-27 is a Sunday: Mon 12-28 is a working day, so it sends.
        let from = Tokyo.with_ymd_and_hms(2026, 12, 27, 12, 0, 0).unwrap();
        let (next, passed) = c.next_sending_tick(&schedule, &from);
        assert_eq!(next.unwrap().date_naive(), day(2026, 12, 28));
        assert!(passed.is_empty());
        // From Tuesday 12-29: Mon 01-04 is 2027's first working Monday; Mon 01-11 is 成人の日.
        let from = Tokyo.with_ymd_and_hms(2026, 12, 29, 0, 0, 0).unwrap();
        let (next, passed) = c.next_sending_tick(&schedule, &from);
        assert_eq!(next.unwrap().date_naive(), day(2027, 1, 4));
        assert!(passed.is_empty());
        let from = Tokyo.with_ymd_and_hms(2027, 1, 5, 0, 0, 0).unwrap();
        let (next, passed) = c.next_sending_tick(&schedule, &from);
        assert_eq!(next.unwrap().date_naive(), day(2027, 1, 18));
        assert_eq!(passed.len(), 1);
        assert_eq!(passed[0].0.date_naive(), day(2027, 1, 11));
        assert_eq!(passed[0].1, "成人の日");
    }

    #[test]
    fn a_daily_tick_skips_the_office_closure_by_its_entry() {
        let c = calendar("  skip: [\"12-29..01-03\", \"2027-01-05\"]\n");
        let schedule = crate::config::schedule::parse("0 9 * * *").unwrap();
        let from = Tokyo.with_ymd_and_hms(2026, 12, 28, 12, 0, 0).unwrap();
        let (next, passed) = c.next_sending_tick(&schedule, &from);
        assert_eq!(next.unwrap().date_naive(), day(2027, 1, 4));
        assert_eq!(passed.len(), 6);
        assert!(passed
            .iter()
            .all(|(_, why)| why == "calendar.skip 12-29..01-03"));
        assert_eq!(
            c.skipped(day(2027, 1, 5)).as_deref(),
            Some("calendar.skip 2027-01-05")
        );
        assert_eq!(
            c.skipped(day(2027, 1, 1)).as_deref(),
            Some("calendar.skip 12-29..01-03")
        );
        assert_eq!(c.skipped(day(2027, 5, 3)), None, "no holidays: jp");
    }
}
