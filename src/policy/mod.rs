//! The send policy, compiled from the document's `policy` section: consent models and
//! send windows per channel, do-not-contact and consent events, suppressions, frequency
//! caps and the control group. [`Policy::evaluate`] is the pure part of the decision on
//! one send; the engine adds the control group and approval and keeps the state
//! (`docs/send-policy.md`).

mod caps;
mod decision;
mod state;
mod window;

use std::collections::BTreeSet;

use chrono::{NaiveDate, NaiveTime, Weekday};

pub use caps::{Cap, CapWindow};
pub use decision::{Reason, SendDecision, Verdict};
pub use state::{
    ChangeRecord, ConsentRecord, DncRecord, PolicyChange, PolicyState, SentRecord, CHANGE_HISTORY,
};
pub use window::{SendWindow, WINDOW_SEARCH_DAYS};

use crate::def::{CapOver, Channel, ConsentModel, ConsentStatus, DncReason, PolicyDef};
use crate::diagnostic::{did_you_mean, Code, Diagnostic};
use crate::id::EventTypeIndex;
use crate::schema::{Contact, Schema};
use crate::time::{Duration, TimeZone, Timestamp};
use crate::trigger::ZoneSource;

/// The purpose of sends that bypass marketing consent, caps, windows and the control
/// group.
pub const TRANSACTIONAL: &str = "transactional";

/// The purpose of a send that names none.
pub const MARKETING: &str = "marketing";

/// The longest deferral by default: 7 days.
pub const DEFAULT_MAX_DELAY_DAYS: i64 = 7;

/// At most this many caps, holidays, events and suppressions each.
pub const MAX_POLICY_ENTRIES: usize = 256;

/// The largest `max` of a cap (a contact's send history is bounded by the sum of the
/// caps' maxima).
pub const MAX_CAP: u32 = 1000;

/// One channel's rule.
#[derive(Clone, Debug, PartialEq)]
struct ChannelRule {
    consent: ConsentModel,
    window: Option<SendWindow>,
}

/// What a suppression matches.
#[derive(Clone, Debug, PartialEq)]
enum Suppressor {
    List(String),
    Segment(String),
}

#[derive(Clone, Debug, PartialEq)]
struct Suppression {
    by: Suppressor,
    channel: Option<Channel>,
    campaign: Option<String>,
}

/// An event that states consent.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct ConsentEvent {
    pub(crate) event_type: EventTypeIndex,
    pub(crate) channel: Channel,
    pub(crate) purpose: String,
    pub(crate) status: ConsentStatus,
}

/// An event that marks do-not-contact.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct DncEvent {
    pub(crate) event_type: EventTypeIndex,
    pub(crate) channel: Option<Channel>,
    pub(crate) reason: DncReason,
}

/// One send, as the policy sees it.
#[derive(Clone, Copy, Debug)]
pub struct SendRequest<'a> {
    /// The channel.
    pub channel: Channel,
    /// The purpose.
    pub purpose: &'a str,
    /// The campaign or journey.
    pub campaign: Option<&'a str>,
}

impl SendRequest<'_> {
    /// Whether the send is transactional.
    pub fn transactional(&self) -> bool {
        self.purpose == TRANSACTIONAL
    }
}

/// What the contact-facing rules say about a send, before the control group and
/// approval.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Evaluation {
    /// It may go now.
    Ready,
    /// Not before `until`.
    Deferred {
        /// The first instant it may go.
        until: Timestamp,
        /// What it waits for (the last obstacle found).
        reason: Reason,
    },
    /// Not at all.
    Suppressed(Reason),
}

/// A compiled send policy.
#[derive(Clone, Debug, PartialEq)]
pub struct Policy {
    channels: Vec<(Channel, ChannelRule)>,
    zone: ZoneSource,
    holidays: BTreeSet<NaiveDate>,
    caps: Vec<Cap>,
    max_delay: Duration,
    /// Basis points (0 to 10,000) and the salt.
    control: Option<(u32, String)>,
    pub(crate) consent_events: Vec<ConsentEvent>,
    pub(crate) dnc_events: Vec<DncEvent>,
    suppress: Vec<Suppression>,
    approval_expires: Option<Duration>,
}

/// What the contact is in, for suppressions.
#[derive(Clone, Copy, Debug)]
pub struct Memberships<'a> {
    /// Static lists.
    pub lists: &'a BTreeSet<String>,
    /// Segments.
    pub segments: &'a BTreeSet<String>,
}

impl Policy {
    /// The contact's time zone for windows and calendar caps.
    pub fn zone_of(&self, contact: &Contact) -> TimeZone {
        self.zone.of(contact)
    }

    /// The caps, in document order.
    pub fn caps(&self) -> &[Cap] {
        &self.caps
    }

    /// The longest deferral.
    pub fn max_delay(&self) -> Duration {
        self.max_delay
    }

    /// The control group's share in basis points and its salt.
    pub fn control_group(&self) -> Option<(u32, &str)> {
        self.control.as_ref().map(|(bp, salt)| (*bp, salt.as_str()))
    }

    /// What an unknown consent means on `channel` (`opt_in` unless the policy says).
    pub fn consent_model(&self, channel: Channel) -> ConsentModel {
        self.rule(channel).map_or(ConsentModel::OptIn, |r| r.consent)
    }

    /// The channel's send window.
    pub fn window(&self, channel: Channel) -> Option<&SendWindow> {
        self.rule(channel).and_then(|r| r.window.as_ref())
    }

    /// How long an effect held for approval waits before it expires.
    pub fn approval_expires(&self) -> Option<Duration> {
        self.approval_expires
    }

    /// The holidays.
    pub fn holidays(&self) -> &BTreeSet<NaiveDate> {
        &self.holidays
    }

    fn rule(&self, channel: Channel) -> Option<&ChannelRule> {
        self.channels.iter().find(|(c, _)| *c == channel).map(|(_, r)| r)
    }

    /// The first reason the send may not go at all: do-not-contact, consent,
    /// suppressions (in that order); `None` when none holds.
    pub fn barrier(
        &self,
        send: &SendRequest<'_>,
        state: &PolicyState,
        members: Memberships<'_>,
    ) -> Option<Reason> {
        let transactional = send.transactional();
        for channel in [None, Some(send.channel)] {
            if let Some(mark) = state.do_not_contact(channel) {
                if !transactional || mark.reason.blocks_transactional() {
                    return Some(Reason::DoNotContact { channel, reason: mark.reason });
                }
            }
        }
        if transactional {
            return None;
        }
        let status = state.consent_status(send.channel, send.purpose);
        let allowed = match status {
            ConsentStatus::OptedIn => true,
            ConsentStatus::OptedOut | ConsentStatus::Pending => false,
            ConsentStatus::Unknown => self.consent_model(send.channel) == ConsentModel::OptOut,
        };
        if !allowed {
            return Some(Reason::Consent {
                channel: send.channel,
                purpose: send.purpose.to_string(),
                status,
            });
        }
        self.suppress
            .iter()
            .filter(|s| {
                s.channel.is_none_or(|c| c == send.channel)
                    && s.campaign.as_deref().is_none_or(|c| Some(c) == send.campaign)
            })
            .find_map(|s| match &s.by {
                Suppressor::List(list) if members.lists.contains(list) => {
                    Some(Reason::List { list: list.clone() })
                }
                Suppressor::Segment(segment) if members.segments.contains(segment) => {
                    Some(Reason::Segment { segment: segment.clone() })
                }
                _ => None,
            })
    }

    /// The pure decision on one send at `now`, asked first at `since` (a deferred send
    /// may wait until `since + max_delay`): barriers first, then (for marketing sends)
    /// caps and the channel's window, moved forward together until both allow.
    pub fn evaluate(
        &self,
        send: &SendRequest<'_>,
        state: &PolicyState,
        members: Memberships<'_>,
        zone: TimeZone,
        now: Timestamp,
        since: Timestamp,
    ) -> Evaluation {
        if let Some(reason) = self.barrier(send, state, members) {
            return Evaluation::Suppressed(reason);
        }
        if send.transactional() {
            return Evaluation::Ready;
        }
        let mut t = now;
        let mut why = None;
        // Each pass moves `t` forward past a full cap or a closed window; counts only
        // fall as time passes, so a few passes settle it.
        for _ in 0..16 {
            let mut moved = false;
            for cap in self.caps.iter().filter(|c| c.applies(send.channel, send.campaign)) {
                let Some(free) = cap.frees_at(&state.sent, zone, t) else { continue };
                let reason = Reason::Cap { cap: cap.id.clone(), max: cap.max };
                if cap.over == CapOver::Drop {
                    return Evaluation::Suppressed(reason);
                }
                if free > t {
                    t = free;
                    why = Some(reason);
                    moved = true;
                }
            }
            if let Some(window) = self.window(send.channel) {
                let reason = Reason::Window { channel: send.channel };
                match window.next_open(zone, t, &self.holidays) {
                    Some(open) if open > t => {
                        t = open;
                        why = Some(reason);
                        moved = true;
                    }
                    Some(_) => {}
                    None => return Evaluation::Suppressed(reason),
                }
            }
            if !moved {
                break;
            }
        }
        let Some(reason) = why else {
            return Evaluation::Ready;
        };
        let latest = since.checked_add(self.max_delay);
        if latest.is_none_or(|latest| t > latest) {
            let because = Box::new(reason);
            return Evaluation::Suppressed(Reason::MaxDelay {
                wanted: t,
                max_delay: self.max_delay,
                because,
            });
        }
        Evaluation::Deferred { until: t, reason }
    }

    /// Whether a marketing send counts against some cap (and must be remembered).
    pub fn capped(&self, send: &SendRequest<'_>) -> bool {
        !send.transactional() && self.caps.iter().any(|c| c.applies(send.channel, send.campaign))
    }

    /// Remembers a marketing send decided at `at`, forgetting sends no cap counts any
    /// more: the history holds at most the sum of the caps' maxima.
    pub fn record_send(&self, state: &mut PolicyState, send: &SendRequest<'_>, at: Timestamp) {
        if !self.capped(send) {
            return;
        }
        state.sent.push(SentRecord {
            at,
            channel: send.channel,
            campaign: send.campaign.map(str::to_string),
        });
        let caps = &self.caps;
        state.sent.retain(|s| {
            caps.iter().any(|c| {
                c.applies(s.channel, s.campaign.as_deref())
                    && at.duration_since(s.at).is_none_or(|age| age < c.retention())
            })
        });
    }
}

// ---------------------------------------------------------------------------------------
// Compiling
// ---------------------------------------------------------------------------------------

fn invalid(message: String, path: String, help: &str) -> Diagnostic {
    Diagnostic::new(Code::InvalidDocument, message).with_path(path).with_help(help.to_string())
}

fn local_time(text: &str, path: String, diagnostics: &mut Vec<Diagnostic>) -> Option<NaiveTime> {
    let parsed = NaiveTime::parse_from_str(text, "%H:%M").ok();
    if parsed.is_none() {
        diagnostics.push(invalid(
            format!("`{text}` is not a time of day"),
            path,
            "write a 24-hour local time such as \"08:00\"",
        ));
    }
    parsed
}

fn days_of(names: &[String], path: &str, diagnostics: &mut Vec<Diagnostic>) -> [bool; 7] {
    if names.is_empty() {
        return [true; 7];
    }
    let mut days = [false; 7];
    for (i, name) in names.iter().enumerate() {
        match name.as_str() {
            "weekdays" => days[..5].iter_mut().for_each(|d| *d = true),
            "weekends" => days[5..].iter_mut().for_each(|d| *d = true),
            other => match other.parse::<Weekday>() {
                Ok(day) if other.len() > 3 => days[day.num_days_from_monday() as usize] = true,
                _ => {
                    const DAYS: [&str; 9] = [
                        "monday",
                        "tuesday",
                        "wednesday",
                        "thursday",
                        "friday",
                        "saturday",
                        "sunday",
                        "weekdays",
                        "weekends",
                    ];
                    diagnostics.push(
                        invalid(
                            format!("`{other}` is not a day"),
                            format!("{path}/{i}"),
                            "write \"monday\" to \"sunday\", \"weekdays\" or \"weekends\"",
                        )
                        .with_did_you_mean(did_you_mean(other, DAYS)),
                    );
                }
            },
        }
    }
    days
}

fn cap_window(text: &str, path: String, diagnostics: &mut Vec<Diagnostic>) -> Option<CapWindow> {
    match text {
        "day" => Some(CapWindow::Day),
        "week" => Some(CapWindow::Week),
        "month" => Some(CapWindow::Month),
        _ => match crate::def::parse_period(text) {
            Some(d) => Some(CapWindow::Rolling(d)),
            None => {
                diagnostics.push(invalid(
                    format!("`{text}` is neither a calendar period nor a positive span"),
                    path,
                    "write \"day\", \"week\" or \"month\" (in the contact's zone), or a span such as \"7d\"",
                ));
                None
            }
        },
    }
}

fn too_many(what: &str, n: usize, path: String) -> Option<Diagnostic> {
    (n > MAX_POLICY_ENTRIES).then(|| {
        Diagnostic::new(
            Code::LimitExceeded,
            format!("{n} {what}, more than the limit of {MAX_POLICY_ENTRIES}"),
        )
        .with_path(path)
        .with_help("merge entries; the policy is read on every send")
    })
}

fn event_type(
    schema: &Schema,
    name: &str,
    path: String,
    diagnostics: &mut Vec<Diagnostic>,
) -> Option<EventTypeIndex> {
    let found = schema.event_type_index(name);
    if found.is_none() {
        let known: Vec<String> = schema.event_types().map(|t| t.name().as_str().to_string()).collect();
        diagnostics.push(
            Diagnostic::new(Code::UnknownEventType, format!("no event type `{name}`"))
                .with_path(path)
                .with_did_you_mean(did_you_mean(name, known.iter().map(String::as_str)))
                .with_help("declare the event type in `schema.events`"),
        );
    }
    found
}

/// Checks a purpose named in the document: not empty.
pub(crate) fn check_purpose(purpose: Option<&str>, path: String, diagnostics: &mut Vec<Diagnostic>) {
    if purpose.is_some_and(|p| p.trim().is_empty() || p.len() > 64) {
        diagnostics.push(invalid(
            "a purpose is a name of 1 to 64 characters".to_string(),
            path,
            "write \"marketing\", \"transactional\" or a purpose of your own",
        ));
    }
}

/// Compiles the `policy` section at `/policy`, recording every problem; `None` when
/// there was one.
pub(crate) fn compile_policy(
    def: &PolicyDef,
    schema: &Schema,
    segments: &[&str],
    diagnostics: &mut Vec<Diagnostic>,
) -> Option<Policy> {
    let before = diagnostics.len();
    let path = "/policy";
    for (what, n, key) in [
        ("channel policies", def.channels.len(), "channels"),
        ("holidays", def.holidays.len(), "holidays"),
        ("caps", def.caps.len(), "caps"),
        ("consent events", def.consent_events.len(), "consent_events"),
        ("do-not-contact events", def.dnc_events.len(), "dnc_events"),
        ("suppressions", def.suppress.len(), "suppress"),
    ] {
        if let Some(d) = too_many(what, n, format!("{path}/{key}")) {
            diagnostics.push(d);
            return None;
        }
    }
    let mut channels: Vec<(Channel, ChannelRule)> = Vec::new();
    for (i, c) in def.channels.iter().enumerate() {
        let at = format!("{path}/channels/{i}");
        if channels.iter().any(|(seen, _)| *seen == c.channel) {
            diagnostics.push(
                Diagnostic::new(Code::DuplicateId, format!("channel `{}` has two policies", c.channel))
                    .with_path(format!("{at}/channel"))
                    .with_help("give each channel one entry"),
            );
            continue;
        }
        let window = c.window.as_ref().and_then(|w| {
            let from = local_time(&w.from, format!("{at}/window/from"), diagnostics);
            let to = local_time(&w.to, format!("{at}/window/to"), diagnostics);
            let days = days_of(&w.days, &format!("{at}/window/days"), diagnostics);
            let window = SendWindow::new(from?, to?, days);
            if window.is_none() {
                diagnostics.push(invalid(
                    format!("the window from {} to {} never opens", w.from, w.to),
                    format!("{at}/window"),
                    "`from` must come before `to` on the same day, with at least one day",
                ));
            }
            window
        });
        channels.push((c.channel, ChannelRule { consent: c.consent.unwrap_or(ConsentModel::OptIn), window }));
    }
    // Every channel the other sections name is built in or declared above.
    let declared = crate::def::declared_channels(Some(def));
    let named = [
        def.caps.iter().map(|c| ("caps", c.channel)).collect::<Vec<_>>(),
        def.consent_events.iter().map(|e| ("consent_events", Some(e.channel))).collect(),
        def.dnc_events.iter().map(|e| ("dnc_events", e.channel)).collect(),
        def.suppress.iter().map(|e| ("suppress", e.channel)).collect(),
    ];
    for section in named {
        for (i, (key, channel)) in section.into_iter().enumerate() {
            if let Some(channel) = channel {
                crate::def::check_declared(
                    &channel,
                    &declared,
                    format!("{path}/{key}/{i}/channel"),
                    diagnostics,
                );
            }
        }
    }
    let zone = crate::trigger::zone_source(def.zone.as_deref(), schema, path, diagnostics);
    let mut holidays = BTreeSet::new();
    for (i, h) in def.holidays.iter().enumerate() {
        match NaiveDate::parse_from_str(h, "%Y-%m-%d") {
            Ok(date) => {
                holidays.insert(date);
            }
            Err(_) => diagnostics.push(invalid(
                format!("`{h}` is not a date"),
                format!("{path}/holidays/{i}"),
                "write a date such as \"2026-12-25\"",
            )),
        }
    }
    let mut caps = Vec::new();
    let mut ids = BTreeSet::new();
    for (i, c) in def.caps.iter().enumerate() {
        let at = format!("{path}/caps/{i}");
        if !ids.insert(c.id.as_str()) {
            diagnostics.push(
                Diagnostic::new(Code::DuplicateId, format!("two caps have the id `{}`", c.id))
                    .with_path(format!("{at}/id"))
                    .with_help("give every cap a unique id"),
            );
        }
        if !(1..=MAX_CAP).contains(&c.max) {
            diagnostics.push(invalid(
                format!("a cap's `max` is 1 to {MAX_CAP}, not {}", c.max),
                format!("{at}/max"),
                "to stop every send, use a suppression or a do-not-contact mark",
            ));
        }
        let Some(window) = cap_window(&c.per, format!("{at}/per"), diagnostics) else { continue };
        caps.push(Cap {
            id: c.id.clone(),
            max: c.max,
            window,
            channel: c.channel,
            campaign: c.campaign.clone(),
            over: c.over.unwrap_or(CapOver::Defer),
        });
    }
    let max_delay = match &def.max_delay {
        Some(text) => crate::def::period_or_report(text, format!("{path}/max_delay"), diagnostics),
        None => Duration::from_days(DEFAULT_MAX_DELAY_DAYS).ok(),
    };
    let control = def.control_group.as_ref().and_then(|g| {
        let bp = g.percent * 100.0;
        if !(g.percent.is_finite() && (0.0..=100.0).contains(&g.percent) && (bp - bp.round()).abs() < 1e-6) {
            diagnostics.push(invalid(
                format!(
                    "a control group's `percent` is 0 to 100 with at most two decimals, not {}",
                    g.percent
                ),
                format!("{path}/control_group/percent"),
                "write a share such as 5 or 2.5",
            ));
            return None;
        }
        Some((bp.round() as u32, g.salt.clone().unwrap_or_default()))
    });
    let mut consent_events = Vec::new();
    for (i, e) in def.consent_events.iter().enumerate() {
        let at = format!("{path}/consent_events/{i}");
        check_purpose(e.purpose.as_deref(), format!("{at}/purpose"), diagnostics);
        if let Some(event_type) = event_type(schema, &e.on, format!("{at}/on"), diagnostics) {
            let purpose = e.purpose.clone().unwrap_or_else(|| MARKETING.to_string());
            consent_events.push(ConsentEvent { event_type, channel: e.channel, purpose, status: e.status });
        }
    }
    let mut dnc_events = Vec::new();
    for (i, e) in def.dnc_events.iter().enumerate() {
        if let Some(event_type) = event_type(schema, &e.on, format!("{path}/dnc_events/{i}/on"), diagnostics)
        {
            dnc_events.push(DncEvent { event_type, channel: e.channel, reason: e.reason });
        }
    }
    let mut suppress = Vec::new();
    for (i, s) in def.suppress.iter().enumerate() {
        let at = format!("{path}/suppress/{i}");
        let by = match (&s.list, &s.segment) {
            (Some(list), None) => Suppressor::List(list.clone()),
            (None, Some(segment)) => {
                if !segments.contains(&segment.as_str()) {
                    diagnostics.push(
                        Diagnostic::new(Code::UnknownName, format!("no segment `{segment}`"))
                            .with_path(format!("{at}/segment"))
                            .with_did_you_mean(did_you_mean(segment, segments.iter().copied()))
                            .with_help("declare the segment in `segments`"),
                    );
                    continue;
                }
                Suppressor::Segment(segment.clone())
            }
            _ => {
                diagnostics.push(invalid(
                    "a suppression names exactly one of `list` and `segment`".to_string(),
                    at,
                    "write {\"list\": \"competitors\"} or {\"segment\": \"churned\"}",
                ));
                continue;
            }
        };
        suppress.push(Suppression { by, channel: s.channel, campaign: s.campaign.clone() });
    }
    let approval_expires = def
        .approval_expires
        .as_ref()
        .map(|text| crate::def::period_or_report(text, format!("{path}/approval_expires"), diagnostics));
    if diagnostics.len() > before {
        return None;
    }
    Some(Policy {
        channels,
        zone: zone?,
        holidays,
        caps,
        max_delay: max_delay?,
        control,
        consent_events,
        dnc_events,
        suppress,
        approval_expires: approval_expires.flatten(),
    })
}
