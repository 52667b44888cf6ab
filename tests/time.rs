//! Public-API checks for `nurture::time`, through the crate's re-exports.

use nurture::time::{TimeComponent, TimeZone};
use nurture::{Duration, TimeError, Timestamp};

#[test]
fn cel_conformance_examples() {
    let t: Timestamp = "2009-02-13T23:31:30Z".parse().unwrap();
    assert_eq!(t.unix_seconds(), 1_234_567_890);
    assert_eq!(t.to_string(), "2009-02-13T23:31:30Z");
    let zone = |s: &str| Some(TimeZone::parse(s).unwrap());
    assert_eq!(t.component(TimeComponent::Date, zone("Australia/Sydney")), 14);
    assert_eq!(t.component(TimeComponent::DayOfYear, zone("US/Central")), 43);
    assert_eq!(t.component(TimeComponent::Hours, zone("02:00")), 1);
    assert_eq!(t.component(TimeComponent::Minutes, zone("Asia/Kathmandu")), 16);
    let early = Timestamp::parse("2009-02-13T02:00:00Z").unwrap();
    assert_eq!(early.component(TimeComponent::DayOfMonth, zone("America/St_Johns")), 11);

    assert_eq!(Timestamp::parse("10000-01-01T00:00:00Z"), Err(TimeError::OutOfRange));
    assert_eq!(Timestamp::MAX.checked_add(Duration::parse("1ns").unwrap()), None);
    assert_eq!(Duration::parse("320000000000s"), Err(TimeError::OutOfRange));
    assert_eq!(Duration::parse("1000000s").unwrap().to_string(), "1000000s");
    assert_eq!(Duration::parse("123.321456789s").unwrap().milliseconds_part(), 321);
    assert_eq!(Duration::parse("3730s").unwrap().minutes(), 62);
}

#[test]
fn serde_through_json() {
    #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
    struct Doc {
        at: Timestamp,
        wait: Duration,
        zone: TimeZone,
    }
    let json = r#"{"at":"2009-02-13T23:31:30.123Z","wait":"1.5s","zone":"Europe/Paris"}"#;
    let doc: Doc = serde_json::from_str(json).unwrap();
    assert_eq!(serde_json::to_string(&doc).unwrap(), json);
    let bad = r#"{"at":"0000-01-01T00:00:00Z","wait":"1s","zone":"UTC"}"#;
    let err = serde_json::from_str::<Doc>(bad).unwrap_err().to_string();
    assert!(err.contains("out of range"), "{err}");
}
