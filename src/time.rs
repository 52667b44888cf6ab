//! Timestamps and durations: compact inside (seconds + nanoseconds), chrono at the edges.
//!
//! STUB: the implementation is being written; signatures are fixed.

use std::fmt;

/// Errors from building, parsing or computing with times.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TimeError {
    /// Outside 0001-01-01T00:00:00Z ..= 9999-12-31T23:59:59.999999999Z, or a duration
    /// outside CEL's range.
    #[error("time value out of range")]
    OutOfRange,
    /// Text that is not an RFC 3339 timestamp or a duration.
    #[error("invalid time text: {0}")]
    Invalid(String),
    /// An unknown time-zone name or malformed offset.
    #[error("unknown time zone `{0}`")]
    UnknownTimeZone(String),
}

/// An instant with nanosecond precision, within CEL's range (years 1 to 9999, UTC).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp {
    secs: i64,
    nanos: u32,
}

/// A signed span of time with nanosecond precision, within CEL's range (about ±10,000
/// years).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Duration {
    secs: i64,
    nanos: u32,
}

/// A parsed time zone: an IANA name or a fixed offset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimeZone {
    /// An IANA zone such as `Europe/Paris`.
    Named(chrono_tz::Tz),
    /// A fixed offset such as `+05:30`.
    Fixed(chrono::FixedOffset),
}

/// A calendar or clock component read from a timestamp.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TimeComponent {
    /// `getFullYear`
    FullYear,
    /// `getMonth` (0-11)
    Month,
    /// `getDate` (1-31)
    Date,
    /// `getDayOfMonth` (0-30)
    DayOfMonth,
    /// `getDayOfWeek` (0 = Sunday)
    DayOfWeek,
    /// `getDayOfYear` (0-365)
    DayOfYear,
    /// `getHours`
    Hours,
    /// `getMinutes`
    Minutes,
    /// `getSeconds`
    Seconds,
    /// `getMilliseconds`
    Milliseconds,
}

impl Timestamp {
    /// 0001-01-01T00:00:00Z
    pub const MIN: Timestamp = Timestamp { secs: -62_135_596_800, nanos: 0 };
    /// 9999-12-31T23:59:59.999999999Z
    pub const MAX: Timestamp = Timestamp { secs: 253_402_300_799, nanos: 999_999_999 };
    /// The Unix epoch.
    pub const UNIX_EPOCH: Timestamp = Timestamp { secs: 0, nanos: 0 };

    /// From seconds and nanoseconds since the Unix epoch.
    pub fn from_unix(secs: i64, nanos: u32) -> Result<Timestamp, TimeError> {
        let _ = (secs, nanos);
        todo!()
    }
    /// Whole seconds since the epoch (floor).
    pub fn unix_seconds(self) -> i64 {
        self.secs
    }
    /// Nanoseconds within the second, 0..1e9.
    pub fn subsec_nanos(self) -> u32 {
        self.nanos
    }
    /// Parses RFC 3339.
    pub fn parse(text: &str) -> Result<Timestamp, TimeError> {
        let _ = text;
        todo!()
    }
    /// `self + d`, range-checked.
    pub fn checked_add(self, d: Duration) -> Option<Timestamp> {
        let _ = d;
        todo!()
    }
    /// `self - d`, range-checked.
    pub fn checked_sub(self, d: Duration) -> Option<Timestamp> {
        let _ = d;
        todo!()
    }
    /// `self - earlier`, range-checked.
    pub fn duration_since(self, earlier: Timestamp) -> Option<Duration> {
        let _ = earlier;
        todo!()
    }
    /// A component in a time zone (UTC when `None`).
    pub fn component(self, c: TimeComponent, tz: Option<TimeZone>) -> i64 {
        let _ = (c, tz);
        todo!()
    }
}

impl Duration {
    /// Zero.
    pub const ZERO: Duration = Duration { secs: 0, nanos: 0 };
    /// From total nanoseconds, range-checked.
    pub fn from_nanos(nanos: i128) -> Result<Duration, TimeError> {
        let _ = nanos;
        todo!()
    }
    /// Total nanoseconds.
    pub fn as_nanos(self) -> i128 {
        i128::from(self.secs) * 1_000_000_000 + i128::from(self.nanos)
    }
    /// Parses `"1.5s"`, `"1h2m3s"`, `"-1ns"`.
    pub fn parse(text: &str) -> Result<Duration, TimeError> {
        let _ = text;
        todo!()
    }
}

impl TimeZone {
    /// Parses an IANA name or `[+-]HH:MM`.
    pub fn parse(text: &str) -> Result<TimeZone, TimeError> {
        let _ = text;
        todo!()
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.secs, self.nanos)
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}s", self.secs, self.nanos)
    }
}
