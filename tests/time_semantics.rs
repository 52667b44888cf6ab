//! The semantics of `nurture::time`: construction and range, arithmetic, parsing and
//! printing, time zones and calendar components, through the public API.

use chrono::{Datelike, Timelike};
use nurture::time::*;
use nurture::{Duration, TimeError, Timestamp};

const NANOS_PER_SEC: i128 = 1_000_000_000;
/// CEL's duration range: about ten thousand years either way.
const DUR_MAX_NANOS: i128 = 315_576_000_000 * NANOS_PER_SEC + 999_999_999;
use proptest::prelude::*;

fn ts(s: &str) -> Timestamp {
    Timestamp::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
}
fn dur(s: &str) -> Duration {
    Duration::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
}
fn tz(s: &str) -> Option<TimeZone> {
    Some(TimeZone::parse(s).unwrap_or_else(|e| panic!("{s}: {e}")))
}

// ----- Timestamp construction and range -------------------------------------------

#[test]
fn min_max_constants_match_their_text() {
    assert_eq!(Timestamp::MIN.to_string(), "0001-01-01T00:00:00Z");
    assert_eq!(Timestamp::MAX.to_string(), "9999-12-31T23:59:59.999999999Z");
    assert_eq!(ts("0001-01-01T00:00:00Z"), Timestamp::MIN);
    assert_eq!(ts("9999-12-31T23:59:59.999999999Z"), Timestamp::MAX);
    assert_eq!(Timestamp::UNIX_EPOCH.to_string(), "1970-01-01T00:00:00Z");
    assert_eq!(Timestamp::from_ymd_hms(1, 1, 1, 0, 0, 0), Ok(Timestamp::MIN));
    assert_eq!(
        Timestamp::from_ymd_hms(9999, 12, 31, 23, 59, 59).unwrap().unix_seconds(),
        Timestamp::MAX.unix_seconds()
    );
}

#[test]
fn from_unix_range_checks() {
    let min = Timestamp::MIN.unix_seconds();
    let max = Timestamp::MAX.unix_seconds();
    assert_eq!(Timestamp::from_unix(min, 0), Ok(Timestamp::MIN));
    assert_eq!(Timestamp::from_unix(min - 1, 999_999_999), Err(TimeError::OutOfRange));
    assert_eq!(Timestamp::from_unix(max, 999_999_999), Ok(Timestamp::MAX));
    assert_eq!(Timestamp::from_unix(max + 1, 0), Err(TimeError::OutOfRange));
    assert_eq!(Timestamp::from_unix(i64::MAX, u32::MAX), Err(TimeError::OutOfRange));
    assert_eq!(Timestamp::from_unix(i64::MIN, 0), Err(TimeError::OutOfRange));
    // Nanoseconds carry.
    let t = Timestamp::from_unix(10, 2_500_000_000).unwrap();
    assert_eq!((t.unix_seconds(), t.subsec_nanos()), (12, 500_000_000));
    assert_eq!(Timestamp::from_unix(max, 1_000_000_000), Err(TimeError::OutOfRange));
    assert_eq!(Timestamp::from_unix_seconds(1_234_567_890).unwrap(), ts("2009-02-13T23:31:30Z"));
    assert_eq!(Timestamp::from_unix_seconds(max + 1), Err(TimeError::OutOfRange));
    assert_eq!(Timestamp::from_unix_millis(-1).unwrap().to_string(), "1969-12-31T23:59:59.999Z");
    assert_eq!(Timestamp::from_unix_nanos(Timestamp::MAX.unix_nanos() + 1), Err(TimeError::OutOfRange));
    assert_eq!(Timestamp::from_unix_nanos(Timestamp::MIN.unix_nanos() - 1), Err(TimeError::OutOfRange));
}

#[test]
fn unix_accessors() {
    let t = ts("1969-12-31T23:59:59.9995Z");
    assert_eq!(t.unix_seconds(), -1);
    assert_eq!(t.subsec_nanos(), 999_500_000);
    assert_eq!(t.unix_millis(), -1);
    assert_eq!(t.unix_nanos(), -500_000);
    assert_eq!(ts("2009-02-13T23:31:30.123Z").unix_millis(), 1_234_567_890_123);
    assert_eq!(int_of(ts("2009-02-13T23:31:30Z")), 1_234_567_890);
}

fn int_of(t: Timestamp) -> i64 {
    t.unix_seconds()
}

#[test]
fn from_ymd_hms_validates() {
    assert_eq!(Timestamp::from_ymd_hms(2024, 2, 29, 12, 0, 0).unwrap().to_string(), "2024-02-29T12:00:00Z");
    for (y, mo, d, h, mi, s) in [
        (2023, 2, 29, 0, 0, 0),
        (2024, 13, 1, 0, 0, 0),
        (2024, 0, 1, 0, 0, 0),
        (2024, 1, 0, 0, 0, 0),
        (2024, 4, 31, 0, 0, 0),
        (2024, 1, 1, 24, 0, 0),
        (2024, 1, 1, 0, 60, 0),
        (2024, 1, 1, 0, 0, 60),
        (1900, 2, 29, 0, 0, 0),
    ] {
        assert!(
            matches!(Timestamp::from_ymd_hms(y, mo, d, h, mi, s), Err(TimeError::Invalid(_))),
            "{y}-{mo}-{d} {h}:{mi}:{s}"
        );
    }
    assert_eq!(Timestamp::from_ymd_hms(2000, 2, 29, 0, 0, 0).unwrap().to_string(), "2000-02-29T00:00:00Z");
    assert_eq!(Timestamp::from_ymd_hms(0, 1, 1, 0, 0, 0), Err(TimeError::OutOfRange));
    assert_eq!(Timestamp::from_ymd_hms(10_000, 1, 1, 0, 0, 0), Err(TimeError::OutOfRange));
    assert_eq!(Timestamp::from_ymd_hms(i32::MIN, 1, 1, 0, 0, 0), Err(TimeError::OutOfRange));
    assert_eq!(Timestamp::from_ymd_hms(i32::MAX, 12, 31, 0, 0, 0), Err(TimeError::OutOfRange));
}

// ----- Timestamp parsing --------------------------------------------------------

#[test]
fn parse_rfc3339_forms() {
    assert_eq!(ts("2009-02-13T23:31:30Z").unix_seconds(), 1_234_567_890);
    assert_eq!(ts("2009-02-13t23:31:30z").unix_seconds(), 1_234_567_890);
    assert_eq!(ts("2009-02-14T00:31:30+01:00").unix_seconds(), 1_234_567_890);
    assert_eq!(ts("2009-02-13T14:01:30-09:30").unix_seconds(), 1_234_567_890);
    assert_eq!(ts("2009-02-13T23:31:30-00:00").unix_seconds(), 1_234_567_890);
    assert_eq!(ts("2009-02-13T23:31:30.5Z").subsec_nanos(), 500_000_000);
    assert_eq!(ts("2009-02-13T23:31:30.000000001Z").subsec_nanos(), 1);
    assert_eq!(ts("2009-02-13T23:31:30.123456789Z").subsec_nanos(), 123_456_789);
    // Beyond nanoseconds: truncated, as Go does.
    assert_eq!(ts("2009-02-13T23:31:30.1234567899999Z").subsec_nanos(), 123_456_789);
    // Offsets may bring an out-of-range local date into range.
    assert_eq!(ts("0000-12-31T23:00:00-01:00"), Timestamp::MIN);
    assert_eq!(ts("9999-12-31T23:59:59.999999999Z"), Timestamp::MAX);
    assert_eq!(ts("2024-02-29T00:00:00Z").to_string(), "2024-02-29T00:00:00Z");
}

#[test]
fn parse_rejects_out_of_range() {
    for s in [
        "10000-01-01T00:00:00Z",
        "0000-01-01T00:00:00Z",
        "0001-01-01T00:00:00+00:01",
        "9999-12-31T23:59:59-00:01",
        "99999999999999999999999999-01-01T00:00:00Z",
    ] {
        assert_eq!(Timestamp::parse(s), Err(TimeError::OutOfRange), "{s}");
    }
    // The last representable nanosecond on either side.
    assert_eq!(ts("0001-01-01T00:00:00.000000000Z"), Timestamp::MIN);
    assert_eq!(ts("0001-01-01T01:00:00+01:00"), Timestamp::MIN);
    assert_eq!(Timestamp::parse("0000-12-31T23:59:59.999999999Z"), Err(TimeError::OutOfRange));
}

#[test]
fn parse_rejects_junk() {
    for s in [
        "",
        "2009",
        "2009-02-13",
        "2009-02-13T23:31",
        "2009-02-13T23:31:30",
        "2009-02-13 23:31:30Z",
        "2009-02-13T23:31:30ZZ",
        "2009-02-13T23:31:30Z ",
        " 2009-02-13T23:31:30Z",
        "2009-2-13T23:31:30Z",
        "209-02-13T23:31:30Z",
        "2009-02-30T00:00:00Z",
        "2009-13-01T00:00:00Z",
        "2009-00-01T00:00:00Z",
        "2009-02-00T00:00:00Z",
        "2009-02-13T24:00:00Z",
        "2009-02-13T23:60:00Z",
        "2009-02-13T23:59:60Z",
        "2009-02-13T23:31:30.Z",
        "2009-02-13T23:31:30+0100",
        "2009-02-13T23:31:30+1:00",
        "2009-02-13T23:31:30+24:00",
        "2009-02-13T23:31:30+01:60",
        "2009-02-13T23:31:30+01:00:00",
        "2009-02-13T23:31:30UTC",
        "+2009-02-13T23:31:30Z",
        "-2009-02-13T23:31:30Z",
        "２００９-02-13T23:31:30Z",
        "2009-02-13T23:31:30.１Z",
        "2009-02-13T23:31:30é",
        "1234567890",
        "10000-13-01T00:00:00Z",
    ] {
        assert!(matches!(Timestamp::parse(s), Err(TimeError::Invalid(_))), "{s}: {:?}", Timestamp::parse(s));
    }
    // Messages quote the input, shortened when long.
    let long = "x".repeat(1000);
    match Timestamp::parse(&long) {
        Err(TimeError::Invalid(m)) => assert!(m.len() < 200, "{m}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn display_uses_shortest_exact_fraction() {
    for (input, shown) in [
        ("2009-02-13T23:31:30Z", "2009-02-13T23:31:30Z"),
        ("2009-02-13T23:31:30.1Z", "2009-02-13T23:31:30.100Z"),
        ("2009-02-13T23:31:30.123Z", "2009-02-13T23:31:30.123Z"),
        ("2009-02-13T23:31:30.1234Z", "2009-02-13T23:31:30.123400Z"),
        ("2009-02-13T23:31:30.123456Z", "2009-02-13T23:31:30.123456Z"),
        ("2009-02-13T23:31:30.1234567Z", "2009-02-13T23:31:30.123456700Z"),
        ("2009-02-13T23:31:30.000000001Z", "2009-02-13T23:31:30.000000001Z"),
        ("0001-01-01T00:00:00.001Z", "0001-01-01T00:00:00.001Z"),
        ("0099-03-01T00:00:00Z", "0099-03-01T00:00:00Z"),
        ("1969-12-31T23:59:59.999999999Z", "1969-12-31T23:59:59.999999999Z"),
        ("2009-02-14T10:31:30+11:00", "2009-02-13T23:31:30Z"),
    ] {
        assert_eq!(ts(input).to_string(), shown, "{input}");
    }
}

// ----- Timestamp arithmetic -----------------------------------------------------

#[test]
fn timestamp_arithmetic_cel_conformance() {
    assert_eq!(ts("2009-02-13T23:00:00Z").checked_add(dur("240s")), Some(ts("2009-02-13T23:04:00Z")));
    assert_eq!(
        ts("0001-01-01T00:00:01.000000001Z").checked_add(dur("-999999999ns")),
        Some(ts("0001-01-01T00:00:00.000000002Z"))
    );
    assert_eq!(
        ts("0001-01-01T00:00:01.999999999Z").checked_add(dur("999999999ns")),
        Some(ts("0001-01-01T00:00:02.999999998Z"))
    );
    assert_eq!(ts("2009-02-13T23:10:00Z").checked_sub(dur("600s")), Some(ts("2009-02-13T23:00:00Z")));
    assert_eq!(ts("2009-02-13T23:31:00Z").duration_since(ts("2009-02-13T23:29:00Z")), Some(dur("120s")));
    assert_eq!(ts("2009-02-13T23:29:00Z").duration_since(ts("2009-02-13T23:31:00Z")), Some(dur("-120s")));
}

#[test]
fn timestamp_arithmetic_range() {
    let ns = dur("1ns");
    assert_eq!(Timestamp::MAX.checked_add(ns), None);
    assert_eq!(Timestamp::MIN.checked_sub(ns), None);
    assert_eq!(Timestamp::MIN.checked_add(dur("-1ns")), None);
    assert_eq!(Timestamp::MAX.checked_sub(dur("-1ns")), None);
    assert_eq!(ts("9999-12-31T23:59:59Z").checked_add(dur("1s")), None);
    assert_eq!(Timestamp::MAX.checked_sub(ns).unwrap().checked_add(ns), Some(Timestamp::MAX));
    assert_eq!(Timestamp::MIN.checked_add(ns).unwrap().checked_sub(ns), Some(Timestamp::MIN));
    // Ten thousand years is more than the whole timestamp range.
    assert_eq!(Timestamp::MIN.checked_add(Duration::MAX), None);
    assert_eq!(Timestamp::MAX.checked_add(Duration::MIN), None);
    assert_eq!(Timestamp::MIN.checked_add(Duration::MIN), None);
    // Any two timestamps are within CEL's duration range.
    let span = Timestamp::MAX.duration_since(Timestamp::MIN).unwrap();
    assert_eq!(span.to_string(), "315537897599.999999999s");
    assert_eq!(Timestamp::MIN.duration_since(Timestamp::MAX), span.checked_neg());
    assert_eq!(Timestamp::MIN.checked_add(span), Some(Timestamp::MAX));
    assert_eq!(Timestamp::MAX.checked_sub(span), Some(Timestamp::MIN));
}

// ----- Components --------------------------------------------------------------

#[test]
fn components_utc_cel_conformance() {
    let t = ts("2009-02-13T23:31:30Z");
    let get = |c| t.component(c, None);
    assert_eq!(get(TimeComponent::Date), 13);
    assert_eq!(get(TimeComponent::DayOfMonth), 12);
    assert_eq!(get(TimeComponent::DayOfWeek), 5);
    assert_eq!(get(TimeComponent::DayOfYear), 43);
    assert_eq!(get(TimeComponent::FullYear), 2009);
    assert_eq!(get(TimeComponent::Hours), 23);
    assert_eq!(get(TimeComponent::Minutes), 31);
    assert_eq!(get(TimeComponent::Month), 1);
    assert_eq!(get(TimeComponent::Seconds), 30);
    assert_eq!(ts("2009-02-13T23:31:20.123456789Z").component(TimeComponent::Milliseconds, None), 123);
    assert_eq!(ts("2009-02-15T00:00:00Z").component(TimeComponent::DayOfWeek, None), 0);
    assert_eq!(ts("2024-12-31T00:00:00Z").component(TimeComponent::DayOfYear, None), 365);
}

#[test]
fn components_with_zones_cel_conformance() {
    let t = ts("2009-02-13T23:31:30Z");
    let early = ts("2009-02-13T02:00:00Z");
    assert_eq!(t.component(TimeComponent::Date, tz("Australia/Sydney")), 14);
    assert_eq!(t.component(TimeComponent::DayOfMonth, tz("US/Central")), 12);
    assert_eq!(t.component(TimeComponent::DayOfMonth, tz("+11:00")), 13);
    assert_eq!(early.component(TimeComponent::DayOfMonth, tz("-02:30")), 11);
    assert_eq!(early.component(TimeComponent::DayOfMonth, tz("America/St_Johns")), 11);
    assert_eq!(t.component(TimeComponent::DayOfWeek, tz("UTC")), 5);
    assert_eq!(t.component(TimeComponent::DayOfYear, tz("US/Central")), 43);
    assert_eq!(t.component(TimeComponent::FullYear, tz("-09:30")), 2009);
    assert_eq!(t.component(TimeComponent::Hours, tz("02:00")), 1);
    assert_eq!(t.component(TimeComponent::Minutes, tz("Asia/Kathmandu")), 16);
    assert_eq!(t.component(TimeComponent::Month, tz("UTC")), 1);
    assert_eq!(t.component(TimeComponent::Seconds, tz("-00:00")), 30);
    assert_eq!(
        ts("2009-02-13T23:31:30.987Z").component(TimeComponent::Milliseconds, tz("Asia/Kathmandu")),
        987
    );
}

#[test]
fn components_at_the_ends_of_the_range_do_not_panic() {
    let all = [
        TimeComponent::FullYear,
        TimeComponent::Month,
        TimeComponent::Date,
        TimeComponent::DayOfMonth,
        TimeComponent::DayOfWeek,
        TimeComponent::DayOfYear,
        TimeComponent::Hours,
        TimeComponent::Minutes,
        TimeComponent::Seconds,
        TimeComponent::Milliseconds,
    ];
    let zones = ["Pacific/Kiritimati", "Pacific/Pago_Pago", "America/St_Johns", "-23:59", "+23:59", "UTC"];
    for t in [Timestamp::MIN, Timestamp::MAX] {
        for z in zones {
            for c in all {
                let _ = t.component(c, tz(z));
            }
        }
    }
    assert_eq!(Timestamp::MIN.component(TimeComponent::FullYear, tz("-05:00")), 0);
    assert_eq!(Timestamp::MIN.component(TimeComponent::Month, tz("-05:00")), 11);
    assert_eq!(Timestamp::MIN.component(TimeComponent::Date, tz("-05:00")), 31);
    assert_eq!(Timestamp::MAX.component(TimeComponent::FullYear, tz("+05:00")), 10_000);
    assert_eq!(Timestamp::MIN.component(TimeComponent::DayOfWeek, None), 1);
    // a Monday
}

// ----- Time zones --------------------------------------------------------------

#[test]
fn time_zone_parsing() {
    for name in
        ["Australia/Sydney", "US/Central", "UTC", "America/St_Johns", "Asia/Kathmandu", "Europe/Paris"]
    {
        assert_eq!(TimeZone::parse(name).unwrap().to_string(), name);
    }
    let off = |s| TimeZone::parse(s).unwrap().offset_at(Timestamp::UNIX_EPOCH);
    assert_eq!(off("+11:00"), 11 * 3600);
    assert_eq!(off("-09:30"), -(9 * 3600 + 30 * 60));
    assert_eq!(off("02:00"), 2 * 3600);
    assert_eq!(off("-00:00"), 0);
    assert_eq!(off("+00:00"), 0);
    assert_eq!(off("5:45"), 5 * 3600 + 45 * 60);
    assert_eq!(off("+23:59"), 23 * 3600 + 59 * 60);
    assert_eq!(TimeZone::parse("02:00").unwrap().to_string(), "+02:00");
    assert_eq!(TimeZone::parse("-00:00").unwrap().to_string(), "+00:00");
    for bad in [
        "",
        "Mars/Olympus",
        "utc",
        "australia/sydney",
        "+24:00",
        "+01:60",
        "+1:5",
        "+001:00",
        "01:00:00",
        "+-01:00",
        "++01:00",
        ":",
        "+:",
        "01:",
        ":30",
        "+01:0a",
        "Europe/Paris ",
        "１:00",
        "é:00",
    ] {
        assert!(matches!(TimeZone::parse(bad), Err(TimeError::UnknownTimeZone(_))), "{bad}");
    }
    assert_eq!("Europe/Paris".parse::<TimeZone>(), TimeZone::parse("Europe/Paris"));
}

// ----- chrono and std conversions ------------------------------------------------

// ----- Durations ------------------------------------------------------------------

#[test]
fn duration_arithmetic() {
    assert_eq!(dur("600s").checked_add(dur("50s")), Some(dur("650s")));
    assert_eq!(dur("900s").checked_sub(dur("42s")), Some(dur("858s")));
    assert_eq!(dur("200000000000s").checked_add(dur("200000000000s")), None);
    assert_eq!(dur("-200000000000s").checked_add(dur("-200000000000s")), None);
    assert_eq!(dur("-200000000000s").checked_sub(dur("200000000000s")), None);
    assert_eq!(dur("200000000000s").checked_sub(dur("-200000000000s")), None);
    assert_eq!(Duration::MAX.checked_add(dur("1ns")), None);
    assert_eq!(Duration::MIN.checked_sub(dur("1ns")), None);
    assert_eq!(Duration::MAX.checked_add(Duration::MIN), Some(Duration::ZERO));
    assert_eq!(Duration::MAX.checked_neg(), Some(Duration::MIN));
    assert_eq!(Duration::MIN.checked_neg(), Some(Duration::MAX));
    assert_eq!(dur("1.5s").checked_neg(), Some(dur("-1.5s")));
    assert_eq!(Duration::ZERO.checked_neg(), Some(Duration::ZERO));
}

#[test]
fn duration_selectors() {
    assert_eq!(dur("10000s").hours(), 2);
    assert_eq!(dur("3730s").minutes(), 62);
    assert_eq!(dur("3730s").seconds(), 3730);
    assert_eq!(dur("123.321456789s").milliseconds_part(), 321);
    assert_eq!(dur("-123.321456789s").milliseconds_part(), -321);
    assert_eq!(dur("123.321456789s").total_milliseconds(), 123_321);
    assert_eq!(dur("-123.321456789s").total_milliseconds(), -123_321);
    assert_eq!(dur("-10000s").hours(), -2);
    assert_eq!(dur("-3730s").minutes(), -62);
    assert_eq!(dur("-1.5s").seconds(), -1);
    assert_eq!(dur("-0.5s").seconds(), 0);
    assert_eq!(dur("-0.0005s").milliseconds_part(), 0);
    assert_eq!(Duration::MAX.seconds(), 315_576_000_000);
    assert_eq!(Duration::MIN.seconds(), -315_576_000_000);
    assert_eq!(Duration::MAX.hours(), 87_660_000);
    assert_eq!(Duration::MIN.milliseconds_part(), -999);
    assert_eq!(Duration::MAX.total_milliseconds(), 315_576_000_000_999);
}

#[test]
fn duration_parse_forms() {
    let n = |s| dur(s).as_nanos();
    assert_eq!(n("1h2m3.5s"), 3_723_500_000_000);
    assert_eq!(n("1500ms"), 1_500_000_000);
    assert_eq!(n("-1ns"), -1);
    assert_eq!(n("+1ns"), 1);
    assert_eq!(n("123.321456789s"), 123_321_456_789);
    assert_eq!(n("0"), 0);
    assert_eq!(n("-0"), 0);
    assert_eq!(n("+0"), 0);
    assert_eq!(n("0s"), 0);
    assert_eq!(n("-0s"), 0);
    assert_eq!(n("1.5h"), 5_400_000_000_000);
    assert_eq!(n("1.5m"), 90_000_000_000);
    assert_eq!(n(".5s"), 500_000_000);
    assert_eq!(n("5.s"), 5_000_000_000);
    assert_eq!(n("1us"), 1_000);
    assert_eq!(n("1µs"), 1_000);
    assert_eq!(n("1μs"), 1_000);
    assert_eq!(n("1.5us"), 1_500);
    assert_eq!(n("2h45m"), 9_900_000_000_000);
    assert_eq!(n("1s1s"), 2_000_000_000);
    assert_eq!(n("1m1h"), 3_660_000_000_000);
    assert_eq!(n("-1h30m"), -5_400_000_000_000);
    assert_eq!(n("000000000000000000000000000000000001s"), 1_000_000_000);
    // Below a nanosecond: truncated.
    assert_eq!(n("1.9ns"), 1);
    assert_eq!(n("0.0000000019s"), 1);
    assert_eq!(n("-0.0000000019s"), -1);
    assert_eq!(n("0.123456789999s"), 123_456_789);
    // Exact, even where floats would round: 1/3 of a minute.
    assert_eq!(n("0.33333333333333333333333333333333333333m"), 19_999_999_999);
    assert_eq!(n("0.33333333333333333333333333333333333334m"), 20_000_000_000);
    assert_eq!(n("0.000277777777777777777777777777778h"), 1_000_000_000);
    assert_eq!(n("0.000277777777777777777777777777777h"), 999_999_999);
    // The ends of the range.
    assert_eq!(dur("315576000000.999999999s"), Duration::MAX);
    assert_eq!(dur("-315576000000.999999999s"), Duration::MIN);
    assert_eq!(dur("87660000h0.999999999s"), Duration::MAX);
    assert_eq!(n(&format!("0.{}s", "9".repeat(10_000))), 999_999_999);
}

#[test]
fn duration_parse_range() {
    for s in [
        "320000000000s",
        "-320000000000s",
        "315576000001s",
        "315576000000.999999999s1ns",
        "-315576000001s",
        "9999999999999999999999999999999999999999999999999999h",
        "87660001h",
        "5259600001m",
        "99999999999999999999999999999999999ns",
        "100000000000000000000s",
    ] {
        assert_eq!(Duration::parse(s), Err(TimeError::OutOfRange), "{s}");
    }
    let huge = "9".repeat(100_000);
    assert_eq!(Duration::parse(&format!("{huge}s")), Err(TimeError::OutOfRange));
    assert_eq!(Duration::parse(&format!("{huge}.{huge}h")), Err(TimeError::OutOfRange));
    assert!(matches!(Duration::parse(&huge), Err(TimeError::Invalid(_))));
    assert!(matches!(Duration::parse("315576000001s-"), Err(TimeError::Invalid(_))));
    assert!(matches!(Duration::parse(&format!("{huge}s{huge}x")), Err(TimeError::Invalid(_))));
}

#[test]
fn duration_parse_rejects_junk() {
    for s in [
        "", "-", "+", "s", "1", "1.5", "-1", "00", "1sec", "1S", "1H", "1 s", " 1s", "1s ", "1d", "1w", ".s",
        "-.s", "1..5s", "1.5.s", "--1s", "+-1s", "1s-1s", "1e3s", "0x10s", "1_000s", "１s", "1ｓ", "1µ",
        "μs", "1mss", "1h 2m", "infs", "NaNs", "1ms1", "é",
    ] {
        assert!(matches!(Duration::parse(s), Err(TimeError::Invalid(_))), "{s}: {:?}", Duration::parse(s));
    }
}

#[test]
fn duration_display_is_canonical() {
    for (input, shown) in [
        ("3600s", "3600s"),
        ("1h", "3600s"),
        ("1.5s", "1.5s"),
        ("-1ns", "-0.000000001s"),
        ("123.321456789s", "123.321456789s"),
        ("1000000s", "1000000s"),
        ("0", "0s"),
        ("-0.5s", "-0.5s"),
        ("-1.5s", "-1.5s"),
        ("1.10s", "1.1s"),
        ("100ms", "0.1s"),
        ("1us", "0.000001s"),
    ] {
        assert_eq!(dur(input).to_string(), shown, "{input}");
    }
    assert_eq!("1h".parse::<Duration>(), Ok(dur("3600s")));
}

// ----- serde ----------------------------------------------------------------------

#[test]
fn serde_round_trips_and_range_checks() {
    let t = ts("2009-02-13T23:31:30.5Z");
    assert_eq!(serde_json::to_string(&t).unwrap(), "\"2009-02-13T23:31:30.500Z\"");
    assert_eq!(serde_json::from_str::<Timestamp>("\"2009-02-14T00:31:30.5+01:00\"").unwrap(), t);
    let err = serde_json::from_str::<Timestamp>("\"10000-01-01T00:00:00Z\"").unwrap_err().to_string();
    assert!(err.contains("out of range") && err.contains("10000-01-01"), "{err}");
    let err = serde_json::from_str::<Timestamp>("\"yesterday\"").unwrap_err().to_string();
    assert!(err.contains("invalid timestamp"), "{err}");
    assert!(serde_json::from_str::<Timestamp>("1234567890").is_err());

    let d = dur("-1.5s");
    assert_eq!(serde_json::to_string(&d).unwrap(), "\"-1.5s\"");
    assert_eq!(serde_json::from_str::<Duration>("\"-1s500ms\"").unwrap(), d);
    let err = serde_json::from_str::<Duration>("\"320000000000s\"").unwrap_err().to_string();
    assert!(err.contains("out of range"), "{err}");
    assert!(serde_json::from_str::<Duration>("\"soon\"").is_err());
    assert!(serde_json::from_str::<Duration>("1.5").is_err());

    let z = tz("America/St_Johns").unwrap();
    assert_eq!(serde_json::to_string(&z).unwrap(), "\"America/St_Johns\"");
    assert_eq!(serde_json::from_str::<TimeZone>("\"America/St_Johns\"").unwrap(), z);
    assert_eq!(serde_json::from_str::<TimeZone>("\"-09:30\"").unwrap(), tz("-09:30").unwrap());
    assert!(serde_json::from_str::<TimeZone>("\"Nowhere\"").is_err());

    // Owned strings (not borrowed) deserialize too.
    let v = serde_json::json!({"at": "2009-02-13T23:31:30Z"});
    let back: std::collections::HashMap<String, Timestamp> = serde_json::from_value(v).unwrap();
    assert_eq!(back["at"], ts("2009-02-13T23:31:30Z"));
}

// ----- properties ------------------------------------------------------------------

fn any_timestamp() -> impl Strategy<Value = Timestamp> {
    let secs = Timestamp::MIN.unix_seconds()..=Timestamp::MAX.unix_seconds();
    let nanos = prop_oneof![
        Just(0u32),
        (0u32..1000).prop_map(|m| m * 1_000_000),
        (0u32..1_000_000).prop_map(|u| u * 1_000),
        0u32..1_000_000_000,
    ];
    (secs, nanos).prop_map(|(s, n)| Timestamp::from_unix(s, n).unwrap())
}

fn any_duration() -> impl Strategy<Value = Duration> {
    prop_oneof![
        (-DUR_MAX_NANOS..=DUR_MAX_NANOS),
        (-315_576_000_000i128..=315_576_000_000).prop_map(|s| s * NANOS_PER_SEC),
        (-1_000_000_000i128..=1_000_000_000),
    ]
    .prop_map(|n| Duration::from_nanos(n).unwrap())
}

/// What the time parsers accept (`s` as an instant or zone, `d` as a duration) prints
/// as text they read back to the same value.
fn parses_back(s: &str, d: &str) -> Result<(), TestCaseError> {
    if let Ok(t) = Timestamp::parse(s) {
        prop_assert_eq!(Timestamp::parse(&t.to_string()), Ok(t), "{}", s);
    }
    if let Ok(span) = Duration::parse(d) {
        prop_assert_eq!(Duration::parse(&span.to_string()), Ok(span), "{}", d);
    }
    if let Ok(zone) = TimeZone::parse(s) {
        prop_assert_eq!(TimeZone::parse(&zone.to_string()), Ok(zone), "{}", s);
    }
    Ok(())
}

proptest! {
    #[test]
    fn timestamp_display_parse_round_trip(t in any_timestamp()) {
        let text = t.to_string();
        prop_assert_eq!(Timestamp::parse(&text), Ok(t));
        let c = chrono::DateTime::from_timestamp(t.unix_seconds(), t.subsec_nanos()).unwrap();
        // Agrees with chrono's own formatting of the date and time.
        prop_assert_eq!(&text[..19], c.format("%Y-%m-%dT%H:%M:%S").to_string());
    }

    #[test]
    fn duration_display_parse_round_trip(d in any_duration()) {
        let text = d.to_string();
        prop_assert_eq!(Duration::parse(&text), Ok(d));
        prop_assert_eq!(d.checked_neg().and_then(|n| n.checked_neg()), Some(d));
    }

    #[test]
    fn timestamp_arithmetic_is_exact(t in any_timestamp(), d in any_duration()) {
        match t.checked_add(d) {
            Some(u) => {
                prop_assert_eq!(u.duration_since(t), Some(d));
                prop_assert_eq!(u.checked_sub(d), Some(t));
            }
            None => {
                let n = t.unix_nanos() + d.as_nanos();
                prop_assert!(n < Timestamp::MIN.unix_nanos() || n > Timestamp::MAX.unix_nanos());
            }
        }
    }

    #[test]
    fn components_match_chrono(t in any_timestamp(), off in -86_399i32..86_400) {
        let zone = TimeZone::fixed_offset(off).unwrap();
        let local = chrono::DateTime::from_timestamp(t.unix_seconds(), t.subsec_nanos())
            .unwrap()
            .with_timezone(&chrono::FixedOffset::east_opt(off).unwrap());
        prop_assert_eq!(t.component(TimeComponent::FullYear, Some(zone)), i64::from(local.year()));
        prop_assert_eq!(t.component(TimeComponent::DayOfYear, Some(zone)), i64::from(local.ordinal0()));
        prop_assert_eq!(t.component(TimeComponent::Seconds, Some(zone)), i64::from(local.second()));
        prop_assert_eq!(t.component(TimeComponent::Date, Some(zone)), i64::from(local.day()));
    }

    #[test]
    fn whatever_parsers_accept_they_print_back(s in "\\PC{0,40}") {
        parses_back(&s, &s)?;
    }

    #[test]
    fn whatever_parsers_accept_they_print_back_near_misses(
        s in "[0-9+\\-:.TtZz]{0,30}",
        d in "[-+]?([0-9.]{0,25}(h|m|s|ms|us|µs|ns|x)?){0,4}",
    ) {
        parses_back(&s, &d)?;
    }

    #[test]
    fn duration_parse_matches_simple_decimal(secs in -315_576_000_000i64..=315_576_000_000, frac in 0u32..1_000_000_000) {
        let text = if secs < 0 { format!("-{}.{frac:09}s", secs.unsigned_abs()) } else { format!("{secs}.{frac:09}s") };
        let mag = i128::from(secs.unsigned_abs()) * NANOS_PER_SEC + i128::from(frac);
        let expected = if secs < 0 { -mag } else { mag };
        prop_assert_eq!(Duration::parse(&text).map(Duration::as_nanos), Ok(expected));
    }
}
