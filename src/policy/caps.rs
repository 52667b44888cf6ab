//! Frequency caps: at most N marketing sends per rolling window or calendar period, in
//! the contact's zone.

use chrono::{Datelike, NaiveDate};

use crate::def::{CapOver, Channel};
use crate::policy::state::SentRecord;
use crate::time::{Duration, TimeZone, Timestamp};

/// A cap's window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CapWindow {
    /// The last span of time (`"7d"`): a send at `t` counts until `t + span`.
    Rolling(Duration),
    /// The local calendar day.
    Day,
    /// The local calendar week, from Monday.
    Week,
    /// The local calendar month.
    Month,
}

/// A compiled frequency cap.
#[derive(Clone, Debug, PartialEq)]
pub struct Cap {
    pub(crate) id: String,
    pub(crate) max: u32,
    pub(crate) window: CapWindow,
    pub(crate) channel: Option<Channel>,
    pub(crate) campaign: Option<String>,
    pub(crate) over: CapOver,
}

impl Cap {
    /// The cap's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Sends allowed per window.
    pub fn max(&self) -> u32 {
        self.max
    }

    /// The window.
    pub fn window(&self) -> CapWindow {
        self.window
    }

    /// Whether a marketing send on `channel` for `campaign` counts against this cap.
    pub fn applies(&self, channel: Channel, campaign: Option<&str>) -> bool {
        self.channel.is_none_or(|c| c == channel)
            && self.campaign.as_deref().is_none_or(|c| Some(c) == campaign)
    }

    /// How long a send must be remembered for this cap.
    pub(crate) fn retention(&self) -> Duration {
        let days = |n| Duration::from_days(n).unwrap_or(Duration::ZERO);
        match self.window {
            CapWindow::Rolling(d) => d,
            CapWindow::Day => days(2),
            CapWindow::Week => days(8),
            CapWindow::Month => days(32),
        }
    }

    /// Whether a send at `at` is in the window that contains `now` (`at <= now`).
    fn counts(&self, at: Timestamp, zone: TimeZone, now: Timestamp) -> bool {
        if at > now {
            return false;
        }
        match self.window {
            CapWindow::Rolling(d) => now.duration_since(at).is_some_and(|age| age < d),
            _ => period_start(self.window, zone, now).is_some_and(|start| at >= start),
        }
    }

    /// The sends that count against this cap at `now`.
    pub fn count(&self, sent: &[SentRecord], zone: TimeZone, now: Timestamp) -> u32 {
        let n = sent
            .iter()
            .filter(|s| self.applies(s.channel, s.campaign.as_deref()) && self.counts(s.at, zone, now))
            .count();
        u32::try_from(n).unwrap_or(u32::MAX)
    }

    /// When the cap, full at `now`, next allows one more send (`None`: not full).
    pub fn frees_at(&self, sent: &[SentRecord], zone: TimeZone, now: Timestamp) -> Option<Timestamp> {
        let count = self.count(sent, zone, now);
        if count < self.max {
            return None;
        }
        match self.window {
            CapWindow::Rolling(d) => {
                let mut ats: Vec<Timestamp> = sent
                    .iter()
                    .filter(|s| {
                        self.applies(s.channel, s.campaign.as_deref()) && self.counts(s.at, zone, now)
                    })
                    .map(|s| s.at)
                    .collect();
                ats.sort_unstable();
                // The oldest `count - max + 1` must leave the window.
                let leaving = ats.get((count - self.max) as usize)?;
                leaving.checked_add(d)
            }
            window => period_end(window, zone, now),
        }
    }
}

/// The local calendar date on which the period containing `now` starts.
fn start_date(window: CapWindow, zone: TimeZone, now: Timestamp) -> Option<NaiveDate> {
    let date = zone.local_date(now);
    match window {
        CapWindow::Day => Some(date),
        CapWindow::Week => {
            date.checked_sub_signed(chrono::TimeDelta::days(i64::from(date.weekday().num_days_from_monday())))
        }
        CapWindow::Month => date.with_day(1),
        CapWindow::Rolling(_) => None,
    }
}

/// The instant the calendar period containing `now` started (local midnight).
fn period_start(window: CapWindow, zone: TimeZone, now: Timestamp) -> Option<Timestamp> {
    zone.resolve_local(start_date(window, zone, now)?.and_hms_opt(0, 0, 0)?).ok()
}

/// The instant the next calendar period starts.
fn period_end(window: CapWindow, zone: TimeZone, now: Timestamp) -> Option<Timestamp> {
    let start = start_date(window, zone, now)?;
    let next = match window {
        CapWindow::Day => start.succ_opt()?,
        CapWindow::Week => start.checked_add_signed(chrono::TimeDelta::days(7))?,
        CapWindow::Month => start.checked_add_months(chrono::Months::new(1))?,
        CapWindow::Rolling(_) => return None,
    };
    zone.resolve_local(next.and_hms_opt(0, 0, 0)?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cap(max: u32, window: CapWindow) -> Cap {
        Cap { id: "c".into(), max, window, channel: None, campaign: None, over: CapOver::Defer }
    }

    fn sent(at: &str) -> SentRecord {
        SentRecord { at: Timestamp::parse(at).unwrap(), channel: Channel::Email, campaign: None }
    }

    #[test]
    fn a_rolling_cap_frees_when_the_oldest_send_leaves() {
        let c = cap(2, CapWindow::Rolling(Duration::from_days(7).unwrap()));
        let log = [sent("2026-01-01T10:00:00Z"), sent("2026-01-03T10:00:00Z")];
        let now = Timestamp::parse("2026-01-04T00:00:00Z").unwrap();
        assert_eq!(c.count(&log, TimeZone::UTC, now), 2);
        assert_eq!(
            c.frees_at(&log, TimeZone::UTC, now),
            Some(Timestamp::parse("2026-01-08T10:00:00Z").unwrap())
        );
        let later = Timestamp::parse("2026-01-08T10:00:00Z").unwrap();
        assert_eq!(c.count(&log, TimeZone::UTC, later), 1);
    }

    #[test]
    fn a_weekly_cap_counts_from_local_monday_midnight() {
        let c = cap(1, CapWindow::Week);
        let paris = TimeZone::parse("Europe/Paris").unwrap();
        // Sunday 4 January 2026 23:30 UTC is Monday 00:30 in Paris: a new week there.
        let log = [sent("2026-01-04T22:30:00Z")];
        let now = Timestamp::parse("2026-01-04T23:30:00Z").unwrap();
        assert_eq!(c.count(&log, paris, now), 0);
        assert_eq!(c.count(&log, TimeZone::UTC, now), 1);
        assert_eq!(
            c.frees_at(&log, TimeZone::UTC, now),
            Some(Timestamp::parse("2026-01-05T00:00:00Z").unwrap())
        );
        let month = cap(1, CapWindow::Month);
        assert_eq!(
            month.frees_at(&log, TimeZone::UTC, now),
            Some(Timestamp::parse("2026-02-01T00:00:00Z").unwrap())
        );
    }
}
