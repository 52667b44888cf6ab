//! Send windows (quiet hours): when a channel's marketing sends may go out, in the
//! contact's local time, with holidays closed.

use std::collections::BTreeSet;

use chrono::{Datelike, NaiveDate, NaiveTime, Timelike};

use crate::time::{TimeZone, Timestamp};

/// How many days ahead a window is searched for its next opening: a year of holidays
/// and closed weekdays is treated as "never opens".
pub const WINDOW_SEARCH_DAYS: i64 = 400;

/// A daily send window: open from `from` (inclusive) to `to` (exclusive), local time,
/// on the allowed weekdays, closed on holidays.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SendWindow {
    from: NaiveTime,
    to: NaiveTime,
    /// Monday first.
    days: [bool; 7],
}

impl SendWindow {
    /// A window from `from` to `to` (`from < to`) on the weekdays marked in `days`
    /// (Monday first).
    pub fn new(from: NaiveTime, to: NaiveTime, days: [bool; 7]) -> Option<SendWindow> {
        (from < to && days.iter().any(|d| *d)).then_some(SendWindow { from, to, days })
    }

    fn day_open(&self, date: NaiveDate, holidays: &BTreeSet<NaiveDate>) -> bool {
        self.days[date.weekday().num_days_from_monday() as usize] && !holidays.contains(&date)
    }

    /// Whether the window is open at instant `t` in `zone`.
    pub fn is_open(&self, zone: TimeZone, t: Timestamp, holidays: &BTreeSet<NaiveDate>) -> bool {
        let local = zone.local_datetime(t);
        let time = local.time().with_nanosecond(0).unwrap_or(local.time());
        self.day_open(local.date(), holidays) && self.from <= time && time < self.to
    }

    /// The first instant at or after `now` at which the window is open; `None` when it
    /// does not open within [`WINDOW_SEARCH_DAYS`] days. Daylight-saving changes are
    /// resolved by the zone: an opening time skipped by the clocks moves forward by the
    /// gap.
    pub fn next_open(
        &self,
        zone: TimeZone,
        now: Timestamp,
        holidays: &BTreeSet<NaiveDate>,
    ) -> Option<Timestamp> {
        if self.is_open(zone, now, holidays) {
            return Some(now);
        }
        let today = zone.local_date(now);
        for d in 0..=WINDOW_SEARCH_DAYS {
            let date = today.checked_add_signed(chrono::TimeDelta::days(d))?;
            if !self.day_open(date, holidays) {
                continue;
            }
            let Ok(t) = zone.resolve_local(date.and_time(self.from)) else {
                continue;
            };
            if t > now && self.is_open(zone, t, holidays) {
                return Some(t);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hm(h: u32, m: u32) -> NaiveTime {
        NaiveTime::from_hms_opt(h, m, 0).unwrap()
    }

    #[test]
    fn a_closed_window_opens_at_the_next_allowed_morning_across_dst() {
        let weekdays = [true, true, true, true, true, false, false];
        let window = SendWindow::new(hm(8, 0), hm(21, 0), weekdays).unwrap();
        let ny = TimeZone::parse("America/New_York").unwrap();
        // Saturday 7 March 2026, 22:00 local: next opening is Monday 9 March 08:00 EDT
        // (clocks went forward on Sunday 8 March).
        let sat = ny.resolve_local(NaiveDate::from_ymd_opt(2026, 3, 7).unwrap().and_time(hm(22, 0))).unwrap();
        let open = window.next_open(ny, sat, &BTreeSet::new()).unwrap();
        assert_eq!(open, Timestamp::parse("2026-03-09T12:00:00Z").unwrap());
        // A holiday on that Monday moves it to Tuesday.
        let holidays: BTreeSet<_> = [NaiveDate::from_ymd_opt(2026, 3, 9).unwrap()].into();
        let open = window.next_open(ny, sat, &holidays).unwrap();
        assert_eq!(open, Timestamp::parse("2026-03-10T12:00:00Z").unwrap());
        // Inside the window: now.
        let noon = Timestamp::parse("2026-03-10T16:00:00Z").unwrap();
        assert_eq!(window.next_open(ny, noon, &BTreeSet::new()), Some(noon));
        // 21:00 sharp is closed (the end is exclusive).
        let nine = Timestamp::parse("2026-03-10T01:00:00Z").unwrap();
        assert!(!window.is_open(ny, nine, &BTreeSet::new()));
    }
}
