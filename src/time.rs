//! Timestamps and durations: compact inside (seconds + nanoseconds), chrono at the edges.
//!
//! The semantics follow CEL (`google.protobuf.Timestamp` and `google.protobuf.Duration` as
//! described in the CEL language definition):
//!
//! * a [`Timestamp`] is an instant between `0001-01-01T00:00:00Z` and
//!   `9999-12-31T23:59:59.999999999Z` inclusive, with nanosecond precision;
//! * a [`Duration`] is a signed span within ±315,576,000,000.999999999 seconds (the range of
//!   `google.protobuf.Duration`, about ±10,000 years), with nanosecond precision;
//! * all arithmetic is exact (integer nanoseconds) and range-checked: nothing here panics or
//!   silently wraps.
//!
//! Text forms: timestamps are RFC 3339 (`2009-02-13T23:31:30Z`), durations use the Go/CEL
//! syntax on input (`1h2m3.5s`) and CEL's canonical seconds form on output (`3723.5s`).
//!
//! ```
//! use nurture::time::{Duration, TimeComponent, TimeZone, Timestamp};
//!
//! let t = Timestamp::parse("2009-02-13T23:31:30Z").unwrap();
//! let d = Duration::parse("1h30m").unwrap();
//! assert_eq!(t.checked_add(d).unwrap().to_string(), "2009-02-14T01:01:30Z");
//! let sydney = TimeZone::parse("Australia/Sydney").unwrap();
//! assert_eq!(t.component(TimeComponent::Date, Some(sydney)), 14);
//! assert_eq!(d.to_string(), "5400s");
//! ```

use std::fmt;
use std::str::FromStr;

use chrono::{Datelike, Offset as _, TimeZone as _, Timelike};

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
///
/// Stored in floor form: `secs` is the floor of the span in seconds and `nanos` is in
/// `0..1_000_000_000`, so `as_nanos() == secs * 1e9 + nanos` and the derived ordering is the
/// numeric ordering.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Duration {
    secs: i64,
    nanos: u32,
}

impl TimeZone {
    /// A fixed offset east of UTC, in seconds (`-86_399..=86_399`).
    ///
    /// ```
    /// use nurture::TimeZone;
    /// let india = TimeZone::fixed_offset(5 * 3600 + 1800)?;
    /// assert_eq!(india, TimeZone::parse("+05:30")?);
    /// # Ok::<(), nurture::TimeError>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`TimeError::OutOfRange`] for an offset of a day or more.
    pub fn fixed_offset(seconds_east: i32) -> Result<TimeZone, TimeError> {
        chrono::FixedOffset::east_opt(seconds_east)
            .map(|off| TimeZone(Zone::Fixed(off)))
            .ok_or(TimeError::OutOfRange)
    }
}

/// A parsed time zone: an IANA name such as `Europe/Paris`, or a fixed offset such as
/// `+05:30`. Opaque: chrono is the implementation, not part of the API.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimeZone(Zone);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Zone {
    Named(chrono_tz::Tz),
    Fixed(chrono::FixedOffset),
}

/// A calendar or clock component read from a timestamp.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
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

const NANOS_PER_SEC: i128 = 1_000_000_000;
const SECS_PER_DAY: i64 = 86_400;

/// Total nanoseconds of [`Timestamp::MIN`] since the epoch.
const TS_MIN_NANOS: i128 = -62_135_596_800 * NANOS_PER_SEC;
/// Total nanoseconds of [`Timestamp::MAX`] since the epoch.
const TS_MAX_NANOS: i128 = 253_402_300_799 * NANOS_PER_SEC + 999_999_999;
/// Largest magnitude of a duration, in nanoseconds.
const DUR_MAX_NANOS: i128 = 315_576_000_000 * NANOS_PER_SEC + 999_999_999;

/// Longest piece of offending input quoted in an error message.
const QUOTE_LIMIT: usize = 64;

/// Quotes (a prefix of) `text` for an error message.
fn quote(text: &str) -> String {
    if text.len() <= QUOTE_LIMIT {
        return format!("`{text}`");
    }
    let mut end = QUOTE_LIMIT;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("`{}…`", &text[..end])
}

fn invalid(what: &str, text: &str) -> TimeError {
    TimeError::Invalid(format!("{what} in {}", quote(text)))
}

/// Splits total nanoseconds into floor seconds and nanoseconds in `0..1e9`. The caller
/// guarantees the seconds fit in `i64` (all callers range-check first).
fn split_nanos(total: i128) -> (i64, u32) {
    let secs = total.div_euclid(NANOS_PER_SEC);
    let nanos = total.rem_euclid(NANOS_PER_SEC);
    // Both conversions are lossless for range-checked values.
    (secs as i64, nanos as u32)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (year 0 = 1 BC is allowed).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = i64::from((month + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The proleptic Gregorian date of a day count since 1970-01-01.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

fn is_leap_year(year: i64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if is_leap_year(year) => 29,
        _ => 28,
    }
}

/// Writes the shortest of 0, 3, 6 or 9 fractional digits that represents `nanos` exactly
/// (nothing at all when `nanos` is zero).
fn write_fraction_369(f: &mut fmt::Formatter<'_>, nanos: u32) -> fmt::Result {
    if nanos == 0 {
        Ok(())
    } else if nanos % 1_000_000 == 0 {
        write!(f, ".{:03}", nanos / 1_000_000)
    } else if nanos % 1_000 == 0 {
        write!(f, ".{:06}", nanos / 1_000)
    } else {
        write!(f, ".{nanos:09}")
    }
}

// ---------------------------------------------------------------------------------------
// Timestamp
// ---------------------------------------------------------------------------------------

impl Timestamp {
    /// 0001-01-01T00:00:00Z
    pub const MIN: Timestamp = Timestamp { secs: -62_135_596_800, nanos: 0 };
    /// 9999-12-31T23:59:59.999999999Z
    pub const MAX: Timestamp = Timestamp { secs: 253_402_300_799, nanos: 999_999_999 };
    /// The Unix epoch.
    pub const UNIX_EPOCH: Timestamp = Timestamp { secs: 0, nanos: 0 };

    /// From seconds and nanoseconds since the Unix epoch.
    ///
    /// `nanos` of a second or more carry into `secs`. Fails with
    /// [`TimeError::OutOfRange`] outside [`Timestamp::MIN`] ..= [`Timestamp::MAX`].
    ///
    /// ```
    /// use nurture::time::Timestamp;
    /// let t = Timestamp::from_unix(1_234_567_890, 0).unwrap();
    /// assert_eq!(t.to_string(), "2009-02-13T23:31:30Z");
    /// assert!(Timestamp::from_unix(253_402_300_800, 0).is_err());
    /// ```
    pub fn from_unix(secs: i64, nanos: u32) -> Result<Timestamp, TimeError> {
        Timestamp::from_unix_nanos(i128::from(secs) * NANOS_PER_SEC + i128::from(nanos))
    }
    /// From whole seconds since the Unix epoch, range-checked.
    pub fn from_unix_seconds(secs: i64) -> Result<Timestamp, TimeError> {
        Timestamp::from_unix(secs, 0)
    }
    /// From milliseconds since the Unix epoch, range-checked.
    pub fn from_unix_millis(millis: i64) -> Result<Timestamp, TimeError> {
        Timestamp::from_unix_nanos(i128::from(millis) * 1_000_000)
    }
    /// From nanoseconds since the Unix epoch, range-checked.
    pub fn from_unix_nanos(nanos: i128) -> Result<Timestamp, TimeError> {
        if !(TS_MIN_NANOS..=TS_MAX_NANOS).contains(&nanos) {
            return Err(TimeError::OutOfRange);
        }
        let (secs, nanos) = split_nanos(nanos);
        Ok(Timestamp { secs, nanos })
    }
    /// From a UTC calendar date and clock time (whole seconds).
    ///
    /// Fails with [`TimeError::Invalid`] for an impossible date or time (month 13,
    /// February 30, hour 24, second 60) and with [`TimeError::OutOfRange`] for a year
    /// outside 1..=9999.
    ///
    /// ```
    /// use nurture::time::Timestamp;
    /// let t = Timestamp::from_ymd_hms(2009, 2, 13, 23, 31, 30).unwrap();
    /// assert_eq!(t.unix_seconds(), 1_234_567_890);
    /// ```
    pub fn from_ymd_hms(
        year: i32,
        month: u32,
        day: u32,
        hour: u32,
        minute: u32,
        second: u32,
    ) -> Result<Timestamp, TimeError> {
        let year = i64::from(year);
        if !(1..=12).contains(&month)
            || day == 0
            || day > days_in_month(year, month)
            || hour > 23
            || minute > 59
            || second > 59
        {
            return Err(TimeError::Invalid(format!(
                "no such date and time: {year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}"
            )));
        }
        if !(1..=9999).contains(&year) {
            return Err(TimeError::OutOfRange);
        }
        let secs =
            days_from_civil(year, month, day) * SECS_PER_DAY + i64::from(hour * 3600 + minute * 60 + second);
        Timestamp::from_unix(secs, 0)
    }
    /// Whole seconds since the epoch (floor).
    pub fn unix_seconds(self) -> i64 {
        self.secs
    }
    /// Nanoseconds within the second, 0..1e9.
    pub fn subsec_nanos(self) -> u32 {
        self.nanos
    }
    /// Milliseconds since the epoch (floor).
    pub fn unix_millis(self) -> i128 {
        self.unix_nanos().div_euclid(1_000_000)
    }
    /// Nanoseconds since the epoch.
    pub fn unix_nanos(self) -> i128 {
        i128::from(self.secs) * NANOS_PER_SEC + i128::from(self.nanos)
    }
    /// Parses RFC 3339.
    ///
    /// Accepts `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)`, with `t` and `z` also in lower
    /// case. Fractional digits beyond the ninth are truncated (as Go's parser does); leap
    /// seconds (`:60`) are rejected. The instant must lie within
    /// [`Timestamp::MIN`] ..= [`Timestamp::MAX`] after applying the offset, so
    /// `0000-12-31T23:00:00-01:00` is accepted while `10000-01-01T00:00:00Z` fails with
    /// [`TimeError::OutOfRange`]. Never panics.
    ///
    /// ```
    /// use nurture::time::Timestamp;
    /// let t = Timestamp::parse("2009-02-14T00:31:30.5+01:00").unwrap();
    /// assert_eq!(t.to_string(), "2009-02-13T23:31:30.500Z");
    /// ```
    pub fn parse(text: &str) -> Result<Timestamp, TimeError> {
        let mut p = Cursor { b: text.as_bytes(), i: 0 };

        // Year: exactly four digits in RFC 3339; a longer run of digits is a syntactically
        // plausible year beyond 9999, reported as out of range once the rest checks out.
        let year_digits = p.digit_run();
        if year_digits.len() < 4 {
            return Err(invalid("expected a four-digit year", text));
        }
        let year_too_long = year_digits.len() > 4;
        let year = if year_too_long { 10_000 } else { digits_value(year_digits) as i64 };
        p.expect(b'-', "expected `-` after the year", text)?;
        let month = p.two_digits("expected a two-digit month", text)?;
        if !(1..=12).contains(&month) {
            return Err(invalid("month out of range", text));
        }
        p.expect(b'-', "expected `-` after the month", text)?;
        let day = p.two_digits("expected a two-digit day", text)?;
        if day == 0 || day > days_in_month(year, month) {
            return Err(invalid("day out of range", text));
        }
        if !(p.eat(b'T') || p.eat(b't')) {
            return Err(invalid("expected `T` between date and time", text));
        }
        let hour = p.two_digits("expected a two-digit hour", text)?;
        p.expect(b':', "expected `:` after the hour", text)?;
        let minute = p.two_digits("expected two-digit minutes", text)?;
        p.expect(b':', "expected `:` after the minutes", text)?;
        let second = p.two_digits("expected two-digit seconds", text)?;
        if hour > 23 || minute > 59 || second > 59 {
            return Err(invalid("time of day out of range", text));
        }
        let mut nanos = 0u32;
        if p.eat(b'.') {
            let frac = p.digit_run();
            if frac.is_empty() {
                return Err(invalid("expected digits after `.`", text));
            }
            for k in 0..9 {
                nanos = nanos * 10 + frac.get(k).map_or(0, |d| u32::from(d - b'0'));
            }
        }
        let offset_secs: i64 = if p.eat(b'Z') || p.eat(b'z') {
            0
        } else {
            let sign = if p.eat(b'+') {
                1
            } else if p.eat(b'-') {
                -1
            } else {
                return Err(invalid("expected `Z` or a `±HH:MM` offset", text));
            };
            let oh = p.two_digits("expected a two-digit offset hour", text)?;
            p.expect(b':', "expected `:` in the offset", text)?;
            let om = p.two_digits("expected two-digit offset minutes", text)?;
            if oh > 23 || om > 59 {
                return Err(invalid("offset out of range", text));
            }
            sign * i64::from(oh * 3600 + om * 60)
        };
        if !p.at_end() {
            return Err(invalid("unexpected text after the timestamp", text));
        }
        if year_too_long {
            return Err(TimeError::OutOfRange);
        }
        let secs = days_from_civil(year, month, day) * SECS_PER_DAY
            + i64::from(hour * 3600 + minute * 60 + second)
            - offset_secs;
        Timestamp::from_unix(secs, nanos)
    }
    /// `self + d`, range-checked.
    pub fn checked_add(self, d: Duration) -> Option<Timestamp> {
        Timestamp::from_unix_nanos(self.unix_nanos() + d.as_nanos()).ok()
    }
    /// `self - d`, range-checked.
    pub fn checked_sub(self, d: Duration) -> Option<Timestamp> {
        Timestamp::from_unix_nanos(self.unix_nanos() - d.as_nanos()).ok()
    }
    /// `self - earlier`, range-checked.
    ///
    /// Negative when `earlier` is in fact later. (Any two timestamps are less than 10,000
    /// years apart, so with CEL's duration range this always succeeds.)
    pub fn duration_since(self, earlier: Timestamp) -> Option<Duration> {
        Duration::from_nanos(self.unix_nanos() - earlier.unix_nanos()).ok()
    }
    /// A component in a time zone (UTC when `None`).
    ///
    /// Follows CEL's timestamp accessors: `Month`, `DayOfMonth` and `DayOfYear` are
    /// 0-based, `Date` is 1-based, `DayOfWeek` is 0 for Sunday. Near the ends of the range
    /// a zone may move the local date into year 0 or 10000; the proleptic Gregorian value
    /// is returned (never panics).
    ///
    /// ```
    /// use nurture::time::{TimeComponent, TimeZone, Timestamp};
    /// let t = Timestamp::parse("2009-02-13T23:31:30Z").unwrap();
    /// assert_eq!(t.component(TimeComponent::Hours, None), 23);
    /// let plus2 = TimeZone::parse("02:00").unwrap();
    /// assert_eq!(t.component(TimeComponent::Hours, Some(plus2)), 1);
    /// ```
    pub fn component(self, c: TimeComponent, tz: Option<TimeZone>) -> i64 {
        let local = match tz {
            Some(tz) => tz.local_datetime(self),
            None => self.to_chrono().naive_utc(),
        };
        match c {
            TimeComponent::FullYear => i64::from(local.year()),
            TimeComponent::Month => i64::from(local.month0()),
            TimeComponent::Date => i64::from(local.day()),
            TimeComponent::DayOfMonth => i64::from(local.day0()),
            TimeComponent::DayOfWeek => i64::from(local.weekday().num_days_from_sunday()),
            TimeComponent::DayOfYear => i64::from(local.ordinal0()),
            TimeComponent::Hours => i64::from(local.hour()),
            TimeComponent::Minutes => i64::from(local.minute()),
            TimeComponent::Seconds => i64::from(local.second()),
            TimeComponent::Milliseconds => i64::from(self.nanos / 1_000_000),
        }
    }
    /// This instant as a chrono UTC date-time (chrono is the implementation, not the
    /// API).
    pub(crate) fn to_chrono(self) -> chrono::DateTime<chrono::Utc> {
        // Years 1..=9999 are well within chrono's range.
        chrono::DateTime::from_timestamp(self.secs, self.nanos)
            .unwrap_or(chrono::DateTime::<chrono::Utc>::MIN_UTC)
    }
}

/// A byte cursor for the RFC 3339 parser.
struct Cursor<'a> {
    b: &'a [u8],
    i: usize,
}

impl<'a> Cursor<'a> {
    fn eat(&mut self, c: u8) -> bool {
        if self.b.get(self.i) == Some(&c) {
            self.i += 1;
            true
        } else {
            false
        }
    }
    fn expect(&mut self, c: u8, what: &str, text: &str) -> Result<(), TimeError> {
        if self.eat(c) {
            Ok(())
        } else {
            Err(invalid(what, text))
        }
    }
    fn digit_run(&mut self) -> &'a [u8] {
        let start = self.i;
        while self.b.get(self.i).is_some_and(u8::is_ascii_digit) {
            self.i += 1;
        }
        &self.b[start..self.i]
    }
    fn two_digits(&mut self, what: &str, text: &str) -> Result<u32, TimeError> {
        match self.b.get(self.i..self.i + 2) {
            Some(&[a, b]) if a.is_ascii_digit() && b.is_ascii_digit() => {
                self.i += 2;
                Ok(u32::from(a - b'0') * 10 + u32::from(b - b'0'))
            }
            _ => Err(invalid(what, text)),
        }
    }
    fn at_end(&self) -> bool {
        self.i == self.b.len()
    }
}

/// The value of a short run of ASCII digits (at most 18, so it cannot overflow).
fn digits_value(digits: &[u8]) -> u64 {
    digits.iter().fold(0, |acc, d| acc * 10 + u64::from(d - b'0'))
}

/// `timestamp + duration`, like `std::time::Instant`.
///
/// # Panics
///
/// When the result is outside the supported range; [`Timestamp::checked_add`] returns
/// `None` instead.
impl std::ops::Add<Duration> for Timestamp {
    type Output = Timestamp;
    fn add(self, d: Duration) -> Timestamp {
        self.checked_add(d).expect("timestamp + duration is outside the supported range")
    }
}

/// `timestamp - duration`.
///
/// # Panics
///
/// When the result is outside the supported range; [`Timestamp::checked_sub`] returns
/// `None` instead.
impl std::ops::Sub<Duration> for Timestamp {
    type Output = Timestamp;
    fn sub(self, d: Duration) -> Timestamp {
        self.checked_sub(d).expect("timestamp - duration is outside the supported range")
    }
}

/// `later - earlier`: any two timestamps are less than 10,000 years apart, inside the
/// duration range, so this never fails.
impl std::ops::Sub<Timestamp> for Timestamp {
    type Output = Duration;
    fn sub(self, earlier: Timestamp) -> Duration {
        self.duration_since(earlier).expect("two timestamps are always within the duration range")
    }
}

impl std::ops::AddAssign<Duration> for Timestamp {
    fn add_assign(&mut self, d: Duration) {
        *self = *self + d;
    }
}

impl std::ops::SubAssign<Duration> for Timestamp {
    fn sub_assign(&mut self, d: Duration) {
        *self = *self - d;
    }
}

impl fmt::Display for Timestamp {
    /// CEL's canonical form: RFC 3339 in UTC with `Z`, a four-digit year, and the shortest
    /// of 0, 3, 6 or 9 fractional digits that is exact (as protobuf's JSON mapping does).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let days = self.secs.div_euclid(SECS_PER_DAY);
        let sod = self.secs.rem_euclid(SECS_PER_DAY);
        let (year, month, day) = civil_from_days(days);
        write!(f, "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}", sod / 3600, sod / 60 % 60, sod % 60)?;
        write_fraction_369(f, self.nanos)?;
        f.write_str("Z")
    }
}

impl FromStr for Timestamp {
    type Err = TimeError;
    fn from_str(s: &str) -> Result<Timestamp, TimeError> {
        Timestamp::parse(s)
    }
}

impl Timestamp {
    /// Range-checked. A chrono leap second (`23:59:60.x`) carries into the next second.
    pub(crate) fn from_chrono<Tz: chrono::TimeZone>(
        dt: chrono::DateTime<Tz>,
    ) -> Result<Timestamp, TimeError> {
        Timestamp::from_unix(dt.timestamp(), dt.timestamp_subsec_nanos())
    }
}

impl serde::Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Timestamp {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Timestamp, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Timestamp;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an RFC 3339 timestamp string between 0001-01-01T00:00:00Z and 9999-12-31T23:59:59.999999999Z")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Timestamp, E> {
                Timestamp::parse(v)
                    .map_err(|e| E::custom(format_args!("invalid timestamp {}: {e}", quote(v))))
            }
        }
        deserializer.deserialize_str(V)
    }
}

/// A [`Timestamp`] in 12 bytes aligned to 4 (the same seconds and nanoseconds, without
/// the 4 bytes of padding a `Timestamp` carries), for per-contact state that is kept for
/// millions of contacts. Exact: every instant converts both ways unchanged.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
#[repr(C, packed(4))]
pub(crate) struct Instant12 {
    secs: i64,
    nanos: u32,
}

impl Instant12 {
    /// The compact form of `t`.
    #[inline]
    pub(crate) const fn new(t: Timestamp) -> Instant12 {
        Instant12 { secs: t.secs, nanos: t.nanos }
    }

    /// The instant.
    #[inline]
    pub(crate) const fn get(self) -> Timestamp {
        Timestamp { secs: self.secs, nanos: self.nanos }
    }

    /// The instant as three words (seconds, low then high, and nanoseconds), for
    /// states that pack instants into a block of `u32`s.
    #[inline]
    pub(crate) const fn to_words(t: Timestamp) -> [u32; 3] {
        [t.secs as u32, (t.secs >> 32) as u32, t.nanos]
    }

    /// The instant [`Instant12::to_words`] gave these words for.
    #[inline]
    pub(crate) const fn from_words(w: [u32; 3]) -> Timestamp {
        Timestamp { secs: (w[0] as u64 | (w[1] as u64) << 32) as i64, nanos: w[2] }
    }
}

impl From<Timestamp> for Instant12 {
    fn from(t: Timestamp) -> Instant12 {
        Instant12::new(t)
    }
}

impl fmt::Debug for Instant12 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.get(), f)
    }
}

/// A [`Timestamp`] in 8 bytes, for per-contact state that is kept for millions of
/// contacts: the seconds since the Unix epoch in the high 34 bits and the nanoseconds in
/// the low 30, so it orders as the instant does and converts with a shift and a mask.
/// Exact to the nanosecond wherever it applies: it covers the seconds strictly between
/// -2^33 and 2^33 (1697-10-17 to 2242-03-16), [`Timestamp::MAX`] (which states use for
/// "never") has its own value, and any other instant is [`Instant8::FAR`], a sentinel
/// telling the state to keep the instant elsewhere (its cold part).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Instant8(i64);

/// Bits of an [`Instant8`] that hold the nanoseconds.
const INSTANT8_NANO_BITS: u32 = 30;
/// The seconds an [`Instant8`] holds are strictly within this magnitude.
const INSTANT8_SECS: i64 = 1 << 33;

impl Instant8 {
    /// [`Timestamp::MAX`] (its nanoseconds field, 2^30 - 1, is no instant's).
    pub(crate) const NEVER: Instant8 = Instant8(i64::MAX);
    /// An instant this form cannot hold: the caller keeps it elsewhere. (Its seconds,
    /// -2^33, are outside the span.)
    pub(crate) const FAR: Instant8 = Instant8(i64::MIN);

    /// The compact form of `t`, or [`Instant8::FAR`] outside the span it covers.
    #[inline]
    pub(crate) const fn new(t: Timestamp) -> Instant8 {
        if t.secs > -INSTANT8_SECS && t.secs < INSTANT8_SECS {
            Instant8(t.secs << INSTANT8_NANO_BITS | t.nanos as i64)
        } else if t.secs == Timestamp::MAX.secs && t.nanos == Timestamp::MAX.nanos {
            Instant8::NEVER
        } else {
            Instant8::FAR
        }
    }

    /// The instant, `None` for [`Instant8::FAR`].
    #[inline]
    pub(crate) const fn get(self) -> Option<Timestamp> {
        match self.0 {
            i64::MIN => None,
            i64::MAX => Some(Timestamp::MAX),
            v => Some(Timestamp {
                secs: v >> INSTANT8_NANO_BITS,
                nanos: (v & ((1 << INSTANT8_NANO_BITS) - 1)) as u32,
            }),
        }
    }

    /// The raw bits (with the sentinels), for states that pack instants into words.
    #[inline]
    pub(crate) const fn to_bits(self) -> i64 {
        self.0
    }

    /// The instant of these raw bits (any `i64` reads as some instant, `FAR` or
    /// [`Timestamp::MAX`]; only bits from [`Instant8::to_bits`] are meaningful).
    #[inline]
    pub(crate) const fn from_bits(bits: i64) -> Instant8 {
        Instant8(bits)
    }
}

impl fmt::Debug for Instant8 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.get() {
            Some(t) => fmt::Debug::fmt(&t, f),
            None => f.write_str("far"),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Duration
// ---------------------------------------------------------------------------------------

impl Duration {
    /// Zero.
    pub const ZERO: Duration = Duration { secs: 0, nanos: 0 };
    /// The longest positive duration: `315576000000.999999999s`.
    pub const MAX: Duration = Duration { secs: 315_576_000_000, nanos: 999_999_999 };
    /// The longest negative duration: `-315576000000.999999999s`.
    pub const MIN: Duration = Duration { secs: -315_576_000_001, nanos: 1 };

    /// From total nanoseconds, range-checked.
    pub fn from_nanos(nanos: i128) -> Result<Duration, TimeError> {
        if !(-DUR_MAX_NANOS..=DUR_MAX_NANOS).contains(&nanos) {
            return Err(TimeError::OutOfRange);
        }
        let (secs, nanos) = split_nanos(nanos);
        Ok(Duration { secs, nanos })
    }
    /// From whole seconds, range-checked.
    pub fn from_secs(secs: i64) -> Result<Duration, TimeError> {
        Duration::from_nanos(i128::from(secs) * NANOS_PER_SEC)
    }
    /// From milliseconds, range-checked.
    pub fn from_millis(millis: i64) -> Result<Duration, TimeError> {
        Duration::from_nanos(i128::from(millis) * 1_000_000)
    }
    /// From minutes, range-checked.
    pub fn from_minutes(minutes: i64) -> Result<Duration, TimeError> {
        Duration::from_nanos(i128::from(minutes) * 60 * NANOS_PER_SEC)
    }
    /// From hours, range-checked.
    pub fn from_hours(hours: i64) -> Result<Duration, TimeError> {
        Duration::from_nanos(i128::from(hours) * 3_600 * NANOS_PER_SEC)
    }
    /// From days of exactly 86,400 seconds, range-checked.
    pub fn from_days(days: i64) -> Result<Duration, TimeError> {
        Duration::from_nanos(i128::from(days) * i128::from(SECS_PER_DAY) * NANOS_PER_SEC)
    }
    /// Total nanoseconds.
    pub fn as_nanos(self) -> i128 {
        i128::from(self.secs) * 1_000_000_000 + i128::from(self.nanos)
    }
    /// Seconds as a float (approximate for very long spans).
    pub fn as_secs_f64(self) -> f64 {
        self.secs as f64 + f64::from(self.nanos) / 1e9
    }
    /// Whether the span is below zero.
    pub fn is_negative(self) -> bool {
        self.secs < 0
    }
    /// `self + other`, range-checked.
    pub fn checked_add(self, other: Duration) -> Option<Duration> {
        Duration::from_nanos(self.as_nanos() + other.as_nanos()).ok()
    }
    /// `self - other`, range-checked.
    pub fn checked_sub(self, other: Duration) -> Option<Duration> {
        Duration::from_nanos(self.as_nanos() - other.as_nanos()).ok()
    }
    /// `-self`. The range is symmetric, so this always succeeds; the `Option` mirrors the
    /// other checked operations.
    pub fn checked_neg(self) -> Option<Duration> {
        Duration::from_nanos(-self.as_nanos()).ok()
    }
    /// CEL `getHours()` on a duration: whole hours, truncated toward zero.
    pub fn hours(self) -> i64 {
        (self.as_nanos() / (3_600 * NANOS_PER_SEC)) as i64
    }
    /// CEL `getMinutes()` on a duration: whole minutes, truncated toward zero.
    pub fn minutes(self) -> i64 {
        (self.as_nanos() / (60 * NANOS_PER_SEC)) as i64
    }
    /// CEL `getSeconds()` on a duration: whole seconds, truncated toward zero.
    pub fn seconds(self) -> i64 {
        (self.as_nanos() / NANOS_PER_SEC) as i64
    }
    /// CEL `getMilliseconds()` on a duration, as the conformance suite and cel-cpp define
    /// it: the millisecond part of the fraction, `-999..=999`, carrying the duration's sign
    /// (`123.321456789s` → 321, `-123.321456789s` → -321; cel-cpp computes
    /// `ToInt64Milliseconds(d) % 1000`, older cel-go `nanos / 1e6` on the protobuf form).
    pub fn milliseconds_part(self) -> i64 {
        (self.as_nanos() / 1_000_000 % 1_000) as i64
    }
    /// Whole milliseconds, truncated toward zero (what current cel-go returns for
    /// `getMilliseconds()` on a duration).
    pub fn total_milliseconds(self) -> i64 {
        (self.as_nanos() / 1_000_000) as i64
    }
    /// Parses `"1.5s"`, `"1h2m3s"`, `"-1ns"`.
    ///
    /// The Go / CEL syntax: an optional sign, then either `0` or one or more decimal numbers
    /// (`12`, `1.5`, `.5`, `5.`) each followed by a unit: `h`, `m`, `s`, `ms`, `us`, `µs`,
    /// `μs` or `ns`. The arithmetic is exact; the part of a fraction below one nanosecond
    /// is truncated. Fails with [`TimeError::OutOfRange`] beyond ±315,576,000,000.999999999
    /// seconds. Never panics.
    ///
    /// ```
    /// use nurture::time::Duration;
    /// assert_eq!(Duration::parse("1h2m3.5s").unwrap().to_string(), "3723.5s");
    /// assert_eq!(Duration::parse("-1ns").unwrap().as_nanos(), -1);
    /// ```
    pub fn parse(text: &str) -> Result<Duration, TimeError> {
        let b = text.as_bytes();
        let mut i = 0;
        let mut negative = false;
        if let Some(&c) = b.first() {
            if c == b'-' || c == b'+' {
                negative = c == b'-';
                i = 1;
            }
        }
        match &b[i..] {
            b"0" => return Ok(Duration::ZERO),
            b"" => return Err(invalid("empty duration", text)),
            _ => {}
        }
        let mut total: i128 = 0;
        let mut overflow = false;
        while i < b.len() {
            let start = i;
            while b.get(i).is_some_and(u8::is_ascii_digit) {
                i += 1;
            }
            let int_digits = &b[start..i];
            let mut frac_digits: &[u8] = &[];
            if b.get(i) == Some(&b'.') {
                i += 1;
                let fstart = i;
                while b.get(i).is_some_and(u8::is_ascii_digit) {
                    i += 1;
                }
                frac_digits = &b[fstart..i];
            }
            if int_digits.is_empty() && frac_digits.is_empty() {
                return Err(invalid("expected a number", text));
            }
            let ustart = i;
            while b.get(i).is_some_and(|&c| c != b'.' && !c.is_ascii_digit()) {
                i += 1;
            }
            // A unit is `c * 10^e` nanoseconds.
            let (c, e): (u32, u32) = match &b[ustart..i] {
                b"" => return Err(invalid("missing unit", text)),
                b"ns" => (1, 0),
                // `µs` (U+00B5 micro sign) and `μs` (U+03BC Greek mu), as in Go.
                b"us" | [0xC2, 0xB5, b's'] | [0xCE, 0xBC, b's'] => (1, 3),
                b"ms" => (1, 6),
                b"s" => (1, 9),
                b"m" => (6, 10),
                b"h" => (36, 11),
                _ => return Err(invalid("unknown unit", text)),
            };
            if overflow {
                // Keep validating the syntax, so junk is reported as invalid.
                continue;
            }
            match component_nanos(int_digits, frac_digits, c, e) {
                Some(n) if total + n <= DUR_MAX_NANOS => total += n,
                _ => overflow = true,
            }
        }
        if overflow {
            return Err(TimeError::OutOfRange);
        }
        Duration::from_nanos(if negative { -total } else { total })
    }
}

/// Exact value in nanoseconds of `int.frac` units of `c * 10^e` ns, with the fraction
/// below a nanosecond truncated. `None` when larger than any valid duration.
fn component_nanos(int_digits: &[u8], frac_digits: &[u8], c: u32, e: u32) -> Option<i128> {
    let c = i128::from(c);
    let unit = c * 10i128.pow(e);
    // Integer part: more than 21 significant digits cannot be a valid duration (and
    // keeps the multiplication below within i128).
    let significant = match int_digits.iter().position(|&d| d != b'0') {
        Some(p) => &int_digits[p..],
        None => &[],
    };
    if significant.len() > 21 {
        return None;
    }
    let int_value = significant.iter().fold(0i128, |acc, d| acc * 10 + i128::from(d - b'0'));
    let mut n = int_value * unit;
    // Fraction: the first `e` digits scale to whole nanoseconds exactly...
    let e = e as usize;
    let mut head: i128 = 0;
    for k in 0..e {
        head = head * 10 + frac_digits.get(k).map_or(0, |d| i128::from(d - b'0'));
    }
    n += head * c;
    // ...and the rest contributes floor(c * 0.rest), the carry out of multiplying the
    // remaining digit string by `c`, computed exactly from the right.
    if frac_digits.len() > e && c > 1 {
        let carry =
            frac_digits[e..].iter().rev().fold(0i128, |carry, d| (i128::from(d - b'0') * c + carry) / 10);
        n += carry;
    }
    Some(n)
}

impl fmt::Display for Duration {
    /// CEL's canonical form: seconds with a `s` suffix and a fractional part only when
    /// non-zero, without trailing zeros (`3600s`, `1.5s`, `-0.000000001s`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let total = self.as_nanos();
        let abs = total.unsigned_abs();
        let whole = abs / 1_000_000_000;
        let mut frac = (abs % 1_000_000_000) as u32;
        if total < 0 {
            f.write_str("-")?;
        }
        write!(f, "{whole}")?;
        if frac != 0 {
            let mut width = 9;
            while frac % 10 == 0 {
                frac /= 10;
                width -= 1;
            }
            write!(f, ".{frac:0width$}")?;
        }
        f.write_str("s")
    }
}

impl FromStr for Duration {
    type Err = TimeError;
    fn from_str(s: &str) -> Result<Duration, TimeError> {
        Duration::parse(s)
    }
}

impl TryFrom<std::time::Duration> for Duration {
    type Error = TimeError;
    /// Range-checked.
    fn try_from(d: std::time::Duration) -> Result<Duration, TimeError> {
        Duration::from_nanos(i128::from(d.as_secs()) * NANOS_PER_SEC + i128::from(d.subsec_nanos()))
    }
}

impl TryFrom<Duration> for std::time::Duration {
    type Error = TimeError;
    /// Fails with [`TimeError::OutOfRange`] for a negative duration.
    fn try_from(d: Duration) -> Result<std::time::Duration, TimeError> {
        if d.secs < 0 {
            return Err(TimeError::OutOfRange);
        }
        Ok(std::time::Duration::new(d.secs as u64, d.nanos))
    }
}

impl serde::Serialize for Duration {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Duration {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Duration;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(
                    "a duration string such as \"1.5s\" or \"1h30m\", within ±315576000000.999999999s",
                )
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Duration, E> {
                Duration::parse(v).map_err(|e| E::custom(format_args!("invalid duration {}: {e}", quote(v))))
            }
        }
        deserializer.deserialize_str(V)
    }
}

// ---------------------------------------------------------------------------------------
// TimeZone
// ---------------------------------------------------------------------------------------

impl TimeZone {
    /// Coordinated Universal Time (the IANA zone `UTC`).
    pub const UTC: TimeZone = TimeZone(Zone::Named(chrono_tz::Tz::UTC));

    /// Parses an IANA name or `[+-]HH:MM`.
    ///
    /// Names are looked up (case-sensitively) in the IANA database bundled with
    /// `chrono-tz`, including backward-compatible links such as `US/Central`. Offsets are
    /// `[+|-]H[H]:MM` with hours up to 23 and minutes up to 59; without a sign the offset
    /// is east of UTC (`02:00` means `+02:00`), and `-00:00` is UTC.
    pub fn parse(text: &str) -> Result<TimeZone, TimeError> {
        let unknown = || TimeError::UnknownTimeZone(text.chars().take(QUOTE_LIMIT).collect());
        if text.contains(':') {
            return parse_offset(text)
                .and_then(chrono::FixedOffset::east_opt)
                .map(|off| TimeZone(Zone::Fixed(off)))
                .ok_or_else(unknown);
        }
        text.parse::<chrono_tz::Tz>().map(|tz| TimeZone(Zone::Named(tz))).map_err(|_| unknown())
    }
    /// The zone's offset from UTC at instant `t`, in seconds east of UTC.
    pub fn offset_at(self, t: Timestamp) -> i32 {
        match self.0 {
            Zone::Fixed(off) => off.local_minus_utc(),
            Zone::Named(tz) => {
                let utc = t.to_chrono().naive_utc();
                tz.offset_from_utc_datetime(&utc).fix().local_minus_utc()
            }
        }
    }
    /// The wall-clock date and time in this zone at instant `t` (proleptic Gregorian; may
    /// fall in year 0 or 10000 at the ends of the range).
    pub(crate) fn local_datetime(self, t: Timestamp) -> chrono::NaiveDateTime {
        let utc = t.to_chrono().naive_utc();
        let offset = chrono::TimeDelta::seconds(i64::from(self.offset_at(t)));
        utc.checked_add_signed(offset).expect("within chrono's range")
    }
    /// The calendar date in this zone at instant `t`.
    pub(crate) fn local_date(self, t: Timestamp) -> chrono::NaiveDate {
        self.local_datetime(t).date()
    }
    /// The instant at which this zone's wall clock shows `local`.
    ///
    /// When the wall-clock time occurs twice (clocks going back) the earlier instant is
    /// chosen; when it is skipped (clocks going forward) it is moved forward by the length
    /// of the gap, so `02:30` on a spring-forward night becomes `03:30` local time. Fails
    /// with [`TimeError::OutOfRange`] outside the timestamp range.
    pub(crate) fn resolve_local(self, local: chrono::NaiveDateTime) -> Result<Timestamp, TimeError> {
        use chrono::LocalResult;
        // Year and range check first, so chrono sees only sane values.
        if !(0..=10_000).contains(&local.year()) {
            return Err(TimeError::OutOfRange);
        }
        let to_ts = |utc: chrono::NaiveDateTime| {
            Timestamp::from_chrono(chrono::DateTime::<chrono::Utc>::from_naive_utc_and_offset(
                utc,
                chrono::Utc,
            ))
        };
        let offset = match self.0 {
            Zone::Fixed(off) => off.local_minus_utc(),
            Zone::Named(tz) => match tz.offset_from_local_datetime(&local) {
                LocalResult::Single(off) => off.fix().local_minus_utc(),
                LocalResult::Ambiguous(a, b) => {
                    // The earlier instant has the larger offset.
                    a.fix().local_minus_utc().max(b.fix().local_minus_utc())
                }
                LocalResult::None => {
                    // In a gap: use the offset in force a day before, i.e. before the
                    // transition, which lands after the gap by exactly its length.
                    let before = local - chrono::TimeDelta::days(1);
                    tz.offset_from_utc_datetime(&before).fix().local_minus_utc()
                }
            },
        };
        let utc = local - chrono::TimeDelta::seconds(i64::from(offset));
        to_ts(utc)
    }
}

/// Parses `[+|-]H[H]:MM` into seconds east of UTC.
fn parse_offset(text: &str) -> Option<i32> {
    let (sign, rest) = match text.as_bytes().first()? {
        b'+' => (1, &text[1..]),
        b'-' => (-1, &text[1..]),
        _ => (1, text),
    };
    let (h, m) = rest.split_once(':')?;
    let all_digits = |s: &str| s.bytes().all(|c| c.is_ascii_digit());
    if !(1..=2).contains(&h.len()) || m.len() != 2 || !all_digits(h) || !all_digits(m) {
        return None;
    }
    let (h, m): (i32, i32) = (h.parse().ok()?, m.parse().ok()?);
    if h > 23 || m > 59 {
        return None;
    }
    Some(sign * (h * 3600 + m * 60))
}

impl fmt::Display for TimeZone {
    /// The IANA name, or the offset as `±HH:MM` (`±HH:MM:SS` if it has seconds).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Zone::Named(tz) => f.write_str(tz.name()),
            Zone::Fixed(off) => {
                let secs = off.local_minus_utc();
                let sign = if secs < 0 { '-' } else { '+' };
                let secs = secs.unsigned_abs();
                write!(f, "{sign}{:02}:{:02}", secs / 3600, secs / 60 % 60)?;
                if secs % 60 != 0 {
                    write!(f, ":{:02}", secs % 60)?;
                }
                Ok(())
            }
        }
    }
}

impl FromStr for TimeZone {
    type Err = TimeError;
    fn from_str(s: &str) -> Result<TimeZone, TimeError> {
        TimeZone::parse(s)
    }
}

impl serde::Serialize for TimeZone {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for TimeZone {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<TimeZone, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = TimeZone;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an IANA time-zone name or a `±HH:MM` offset")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<TimeZone, E> {
                TimeZone::parse(v).map_err(E::custom)
            }
        }
        deserializer.deserialize_str(V)
    }
}

/// Checks of private arithmetic; the public semantics are tested in `tests/time_semantics.rs`.
#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Datelike;

    fn dur(s: &str) -> Duration {
        Duration::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    proptest::proptest! {
        /// An 8-byte instant gives back exactly the instant it was made of, is `FAR`
        /// only outside its span, and orders as the instants do.
        #[test]
        fn instant8_is_exact_or_far(
            secs in proptest::prop_oneof![
                Timestamp::MIN.secs..=Timestamp::MAX.secs,
                -(1i64 << 33) - 2..=-(1i64 << 33) + 2,
                (1i64 << 33) - 2..=(1i64 << 33) + 2,
                -3i64..3,
            ],
            nanos in proptest::prop_oneof![0u32..1_000_000_000, 0u32..2, 999_999_998u32..1_000_000_000],
            other in Timestamp::MIN.secs..=Timestamp::MAX.secs,
        ) {
            let t = Timestamp::from_unix(secs, nanos).unwrap();
            let inside = secs.abs() < 1 << 33;
            let i = Instant8::new(t);
            proptest::prop_assert_eq!(i.get(), (inside || t == Timestamp::MAX).then_some(t));
            proptest::prop_assert_eq!(Instant8::from_bits(i.to_bits()), i);
            let u = Timestamp::from_unix(other, nanos / 2).unwrap();
            let j = Instant8::new(u);
            if i != Instant8::FAR && j != Instant8::FAR {
                proptest::prop_assert_eq!(i.to_bits().cmp(&j.to_bits()), t.cmp(&u));
            }
        }
    }

    #[test]
    fn instant8_edges() {
        assert_eq!(Instant8::new(Timestamp::MAX), Instant8::NEVER);
        assert_eq!(Instant8::NEVER.get(), Some(Timestamp::MAX));
        assert_eq!(Instant8::new(Timestamp::MIN), Instant8::FAR);
        assert_eq!(Instant8::FAR.get(), None);
        let last = Timestamp::from_unix((1 << 33) - 1, 999_999_999).unwrap();
        assert_eq!(Instant8::new(last).get(), Some(last));
        assert_eq!(last.to_string(), "2242-03-16T12:56:31.999999999Z");
        assert_eq!(Instant8::new(Timestamp::from_unix(1 << 33, 0).unwrap()), Instant8::FAR);
        let first = Timestamp::from_unix(1 - (1 << 33), 0).unwrap();
        assert_eq!(Instant8::new(first).get(), Some(first));
        assert_eq!(first.to_string(), "1697-10-17T11:03:29Z");
        assert_eq!(Instant8::new(Timestamp::from_unix(-(1 << 33), 999_999_999).unwrap()), Instant8::FAR);
        let t = Timestamp::from_unix(-1, 999_999_999).unwrap();
        assert_eq!(Instant8::new(t).get(), Some(t));
    }
    fn ts(s: &str) -> Timestamp {
        Timestamp::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }
    fn tz(s: &str) -> Option<TimeZone> {
        Some(TimeZone::parse(s).unwrap_or_else(|e| panic!("{s}: {e}")))
    }

    #[test]
    fn civil_conversion_agrees_with_chrono() {
        // Every 997 days across the whole range, plus both ends.
        let first = Timestamp::MIN.unix_seconds().div_euclid(SECS_PER_DAY);
        let last = Timestamp::MAX.unix_seconds().div_euclid(SECS_PER_DAY);
        let mut day = first;
        loop {
            let (y, m, d) = civil_from_days(day);
            let c = chrono::DateTime::from_timestamp(day * SECS_PER_DAY, 0).unwrap().date_naive();
            assert_eq!((y, m, d), (i64::from(c.year()), c.month(), c.day()));
            assert_eq!(days_from_civil(y, m, d), day);
            if day == last {
                break;
            }
            day = (day + 997).min(last);
        }
    }

    #[test]
    fn duration_constructors_and_range() {
        assert_eq!(Duration::MAX.to_string(), "315576000000.999999999s");
        assert_eq!(Duration::MIN.to_string(), "-315576000000.999999999s");
        assert_eq!(Duration::MIN.as_nanos(), -Duration::MAX.as_nanos());
        assert_eq!(Duration::from_nanos(Duration::MAX.as_nanos()), Ok(Duration::MAX));
        assert_eq!(Duration::from_nanos(Duration::MAX.as_nanos() + 1), Err(TimeError::OutOfRange));
        assert_eq!(Duration::from_nanos(Duration::MIN.as_nanos()), Ok(Duration::MIN));
        assert_eq!(Duration::from_nanos(Duration::MIN.as_nanos() - 1), Err(TimeError::OutOfRange));
        assert_eq!(Duration::from_nanos(i128::MAX), Err(TimeError::OutOfRange));
        assert_eq!(Duration::from_nanos(i128::MIN), Err(TimeError::OutOfRange));
        assert_eq!(Duration::from_secs(315_576_000_000).unwrap().to_string(), "315576000000s");
        assert_eq!(Duration::from_secs(315_576_000_001), Err(TimeError::OutOfRange));
        assert_eq!(Duration::from_secs(i64::MIN), Err(TimeError::OutOfRange));
        assert_eq!(Duration::from_millis(-1500).unwrap().to_string(), "-1.5s");
        assert_eq!(Duration::from_millis(i64::MAX), Err(TimeError::OutOfRange));
        assert_eq!(Duration::from_minutes(2).unwrap().to_string(), "120s");
        assert_eq!(Duration::from_hours(-1).unwrap().to_string(), "-3600s");
        assert_eq!(Duration::from_days(1).unwrap().to_string(), "86400s");
        assert_eq!(Duration::from_days(3_652_500).unwrap().to_string(), "315576000000s");
        assert_eq!(Duration::from_days(3_652_501), Err(TimeError::OutOfRange));
        assert_eq!(Duration::from_days(i64::MIN), Err(TimeError::OutOfRange));
        // Floor representation.
        let d = Duration::from_nanos(-1).unwrap();
        assert_eq!((d.secs, d.nanos), (-1, 999_999_999));
        assert!(d.is_negative());
        assert!(!Duration::ZERO.is_negative());
        assert!(d < Duration::ZERO && Duration::ZERO < dur("1ns"));
        assert!(dur("-1.5s") < dur("-1.4s"));
        assert_eq!(dur("-1.5s").as_secs_f64(), -1.5);
        assert_eq!(dur("123.321456789s").as_secs_f64(), 123.321456789);
    }

    #[test]
    fn time_zone_offsets_and_local_dates() {
        let utc = TimeZone::UTC;
        assert_eq!(TimeZone::parse("UTC"), Ok(utc));
        let t = ts("2009-02-13T23:31:30Z");
        assert_eq!(utc.offset_at(t), 0);
        let sydney = tz("Australia/Sydney").unwrap();
        assert_eq!(sydney.offset_at(t), 11 * 3600); // daylight saving in February
        assert_eq!(sydney.offset_at(ts("2009-07-01T00:00:00Z")), 10 * 3600);
        assert_eq!(tz("Asia/Kathmandu").unwrap().offset_at(t), 5 * 3600 + 45 * 60);
        assert_eq!(sydney.local_date(t), chrono::NaiveDate::from_ymd_opt(2009, 2, 14).unwrap());
        assert_eq!(utc.local_date(t), chrono::NaiveDate::from_ymd_opt(2009, 2, 13).unwrap());
        assert_eq!(
            sydney.local_datetime(t),
            chrono::NaiveDate::from_ymd_opt(2009, 2, 14).unwrap().and_hms_opt(10, 31, 30).unwrap()
        );
        let far = tz("-12:00").unwrap();
        assert_eq!(far.local_date(Timestamp::MIN), chrono::NaiveDate::from_ymd_opt(0, 12, 31).unwrap());
    }

    #[test]
    fn resolve_local_handles_gaps_and_overlaps() {
        let paris = tz("Europe/Paris").unwrap();
        let at = |y, mo, d, h, mi| {
            chrono::NaiveDate::from_ymd_opt(y, mo, d).unwrap().and_hms_opt(h, mi, 0).unwrap()
        };
        // Ordinary winter time.
        assert_eq!(paris.resolve_local(at(2024, 1, 15, 9, 0)).unwrap(), ts("2024-01-15T08:00:00Z"));
        // Spring forward: 02:30 does not exist, moved to 03:30 CEST.
        assert_eq!(paris.resolve_local(at(2024, 3, 31, 2, 30)).unwrap(), ts("2024-03-31T01:30:00Z"));
        // Fall back: 02:30 happens twice, the earlier (CEST) is chosen.
        assert_eq!(paris.resolve_local(at(2024, 10, 27, 2, 30)).unwrap(), ts("2024-10-27T00:30:00Z"));
        // Fixed offsets.
        assert_eq!(
            tz("-09:30").unwrap().resolve_local(at(2009, 2, 13, 14, 1)).unwrap(),
            ts("2009-02-13T23:31:00Z")
        );
        // Round trip with local_datetime.
        let t = ts("2024-06-01T12:34:56Z");
        assert_eq!(paris.resolve_local(paris.local_datetime(t)).unwrap(), t);
        // Range.
        assert_eq!(TimeZone::UTC.resolve_local(at(0, 12, 31, 23, 59)), Err(TimeError::OutOfRange));
        assert_eq!(tz("-01:00").unwrap().resolve_local(at(0, 12, 31, 23, 0)), Ok(Timestamp::MIN));
        assert_eq!(TimeZone::UTC.resolve_local(at(10_000, 1, 1, 0, 0)), Err(TimeError::OutOfRange));
        assert_eq!(TimeZone::UTC.resolve_local(chrono::NaiveDateTime::MAX), Err(TimeError::OutOfRange));
        assert_eq!(TimeZone::UTC.resolve_local(chrono::NaiveDateTime::MIN), Err(TimeError::OutOfRange));
    }

    #[test]
    fn chrono_conversions() {
        let t = ts("2009-02-13T23:31:30.123456789Z");
        let c = t.to_chrono();
        assert_eq!(c.to_rfc3339(), "2009-02-13T23:31:30.123456789+00:00");
        assert_eq!(Timestamp::from_chrono(c), Ok(t));
        assert_eq!(t.to_chrono(), c);
        let fixed = c.with_timezone(&chrono::FixedOffset::east_opt(3600).unwrap());
        assert_eq!(Timestamp::from_chrono(fixed), Ok(t));
        let named = c.with_timezone(&chrono_tz::Tz::Australia__Sydney);
        assert_eq!(Timestamp::from_chrono(named), Ok(t));
        assert_eq!(Timestamp::from_chrono((Timestamp::MIN).to_chrono()), Ok(Timestamp::MIN));
        assert_eq!(Timestamp::from_chrono((Timestamp::MAX).to_chrono()), Ok(Timestamp::MAX));
        let too_late = chrono::DateTime::from_timestamp(Timestamp::MAX.unix_seconds() + 1, 0).unwrap();
        assert_eq!(Timestamp::from_chrono(too_late), Err(TimeError::OutOfRange));
        assert_eq!(
            Timestamp::from_chrono(chrono::DateTime::<chrono::Utc>::MIN_UTC),
            Err(TimeError::OutOfRange)
        );
        assert_eq!(
            Timestamp::from_chrono(chrono::DateTime::<chrono::Utc>::MAX_UTC),
            Err(TimeError::OutOfRange)
        );
        // A chrono leap second carries into the next second.
        let leap = chrono::NaiveDate::from_ymd_opt(2016, 12, 31)
            .unwrap()
            .and_hms_nano_opt(23, 59, 59, 1_500_000_000)
            .unwrap()
            .and_utc();
        assert_eq!(Timestamp::from_chrono(leap), Ok(ts("2017-01-01T00:00:00.5Z")));
    }

    #[test]
    fn duration_conversions() {
        let d = dur("-1.5s");
        assert_eq!(d.as_nanos(), -1_500_000_000);
        let std_d = std::time::Duration::new(3, 5);
        assert_eq!(Duration::try_from(std_d), Ok(Duration::from_nanos(3_000_000_005).unwrap()));
        assert_eq!(std::time::Duration::try_from(dur("3.000000005s")), Ok(std_d));
        assert_eq!(std::time::Duration::try_from(dur("-1ns")), Err(TimeError::OutOfRange));
        assert_eq!(std::time::Duration::try_from(Duration::ZERO), Ok(std::time::Duration::ZERO));
        assert_eq!(Duration::try_from(std::time::Duration::MAX), Err(TimeError::OutOfRange));
    }
}
