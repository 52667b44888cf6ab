//! Rule-set document format, version 1: the serde data types.
//!
//! A document is JSON or TOML (any serde format works through
//! [`RuleSetDef`]'s `Deserialize`). [`crate::Program::from_json`] and
//! [`crate::Program::from_toml`] read text, reporting every problem at once with
//! JSON-pointer paths; deserializing these types directly stops at the first problem, as
//! serde does.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A whole rule-set document.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct RuleSetDef {
    /// Format version; only `1` exists.
    pub version: u32,
    /// A name for humans and logs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The contact fields, event types and scores.
    pub schema: SchemaDef,
    /// The rules, in evaluation order.
    #[serde(default)]
    pub rules: Vec<RuleDef>,
    /// Score models.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scoring: Option<ScoringDef>,
    /// Windowed event counters, read in conditions as `counter.ID`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub counters: Vec<CounterDoc>,
    /// Dynamic segments, read in conditions as `segment.ID`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub segments: Vec<SegmentDef>,
    /// The send policy: consent, do-not-contact, suppression, caps, send windows and the
    /// control group (`docs/send-policy.md`). Without one, every send is ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<PolicyDef>,
    /// Journeys: multi-step nurture sequences (`docs/journeys.md`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub journeys: Vec<JourneyDef>,
}

/// A dynamic segment: the contacts whose condition holds. The condition may read
/// contact attributes, `score.NAME`, `counter.NAME`, `segment.NAME` (of other segments;
/// no cycles) and `now`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct SegmentDef {
    /// The segment's id; conditions read `segment.ID`.
    pub id: String,
    /// What the segment is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// A CEL condition. Exactly one of `when` and `filter`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when: Option<String>,
    /// A structured filter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<FilterDef>,
}

/// What starts a rule.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
#[non_exhaustive]
pub enum TriggerDef {
    /// An event of this type (its name).
    Event(String),
    /// A score crossing a threshold.
    Threshold {
        /// The score.
        score: String,
        /// The threshold's id.
        threshold: String,
        /// `"up"` (default) or `"down"`.
        #[serde(default)]
        direction: Direction,
    },
    /// A score entering or leaving a band.
    Band {
        /// The score.
        score: String,
        /// The band's name.
        band: String,
        /// `"enter"` (default) or `"exit"`.
        #[serde(default)]
        direction: Direction,
    },
    /// A contact entering or leaving a segment.
    Segment {
        /// The segment's id.
        segment: String,
        /// `"enter"` (default) or `"exit"`.
        #[serde(default)]
        direction: Direction,
    },
    /// A contact attribute changing, optionally from and to given values.
    Attribute {
        /// The contact field.
        attribute: String,
        /// Only changes from this value.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        from: Option<serde_json::Value>,
        /// Only changes to this value.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        to: Option<serde_json::Value>,
    },
    /// A tag added to the contact (`"enter"`, the default) or removed from it
    /// (`"exit"`) by an action; `"*"` for any tag.
    Tag {
        /// The tag, or `"*"`.
        tag: String,
        /// `"enter"` (added, default) or `"exit"` (removed).
        #[serde(default)]
        direction: Direction,
    },
    /// The contact added to a static list (`"enter"`) or removed from it (`"exit"`);
    /// `"*"` for any list.
    List {
        /// The list, or `"*"`.
        list: String,
        /// `"enter"` (default) or `"exit"`.
        #[serde(default)]
        direction: Direction,
    },
    /// The lifecycle stage becoming this one (`"enter"`) or changing away from it
    /// (`"exit"`); `"*"` for any change.
    Stage {
        /// The stage, or `"*"`.
        stage: String,
        /// `"enter"` (default) or `"exit"`.
        #[serde(default)]
        direction: Direction,
    },
    /// The owner becoming this one (`"enter"`) or changing away from it (`"exit"`);
    /// `"*"` for any change.
    Owner {
        /// The owner, or `"*"`.
        owner: String,
        /// `"enter"` (default) or `"exit"`.
        #[serde(default)]
        direction: Direction,
    },
    /// A date relative to a contact's timestamp attribute: `offset` days after it
    /// (`"-7d"`: a week before), at local time `at` (default `"09:00"`) in `zone` (an
    /// IANA name, `"contact.FIELD"` for a string attribute holding one, default UTC);
    /// with `every_year`, on every anniversary (29 February falls on 28 February in
    /// other years).
    Date {
        /// The contact's timestamp field.
        date: String,
        /// Days after (negative: before), such as `"-7d"`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        offset: Option<String>,
        /// Local time of day, `"HH:MM"`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        at: Option<String>,
        /// The time zone: an IANA name or `"contact.FIELD"`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        zone: Option<String>,
        /// Every year, on the anniversary.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        every_year: bool,
    },
    /// A schedule on the host's clock: `"daily"`, `"weekly"` (on `weekday`, default
    /// Monday) or `"monthly"` (on `day`, default 1; clamped to the month's last day), at
    /// local time `at` (default `"09:00"`) in `zone`, for every contact.
    Schedule {
        /// `"daily"`, `"weekly"` or `"monthly"`.
        schedule: String,
        /// Local time of day, `"HH:MM"`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        at: Option<String>,
        /// For weekly schedules: `"monday"` to `"sunday"`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        weekday: Option<String>,
        /// For monthly schedules: the day of the month.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        day: Option<u32>,
        /// The time zone: an IANA name or `"contact.FIELD"`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        zone: Option<String>,
    },
    /// No event of a type (or of any type, `"*"`) for a period, such as `"60d"`; fires
    /// once per quiet spell, and activity starts the count again.
    Inactivity {
        /// The event type, or `"*"`.
        inactive: String,
        /// The quiet period.
        #[serde(rename = "for")]
        period: String,
    },
}

impl TriggerDef {
    /// The event type name, for an event trigger.
    pub fn event_type(&self) -> Option<&str> {
        match self {
            TriggerDef::Event(name) => Some(name),
            _ => None,
        }
    }
}

impl From<&str> for TriggerDef {
    fn from(event_type: &str) -> TriggerDef {
        TriggerDef::Event(event_type.to_string())
    }
}

/// Up or down through a threshold; into or out of a band or segment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Upward, or entering.
    #[default]
    #[serde(alias = "enter")]
    Up,
    /// Downward, or leaving.
    #[serde(alias = "exit")]
    Down,
}

/// A windowed event counter: events of type `on` whose condition holds, within the last
/// `window`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct CounterDoc {
    /// The counter's id; conditions read `counter.ID`.
    pub id: String,
    /// The event type counted.
    pub on: String,
    /// A CEL condition on the event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when: Option<String>,
    /// A structured filter on the event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<FilterDef>,
    /// The window, such as `"7d"`.
    pub window: String,
    /// Counts are exact up to this many events per window (default 1,000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<u32>,
}

/// The schema section: names mapped to type names (`string`, `int`, `double`, `bool`,
/// `timestamp`, `duration`, `list(T)`, `map(K, V)`, `dyn`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct SchemaDef {
    /// Contact fields.
    #[serde(default)]
    pub contact: BTreeMap<String, String>,
    /// Event types and their properties.
    #[serde(default)]
    pub events: BTreeMap<String, BTreeMap<String, String>>,
    /// Scores readable as `score.NAME`.
    #[serde(default)]
    pub scores: Vec<String>,
    /// Keyed event types: event type name to the property (a string or int) that
    /// identifies one real-world instance, such as `{"purchase": "order_id"}`. Among a
    /// contact's recent events of the type, at most one per key counts; the others are
    /// duplicates.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub keys: BTreeMap<String, String>,
}

/// One rule: when an event of type `on` arrives and the condition holds, the actions
/// follow.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct RuleDef {
    /// Stable id, unique in the rule set.
    pub id: String,
    /// What the rule is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// What starts the rule: an event type's name, or a trigger object.
    pub on: TriggerDef,
    /// A CEL condition. At most one of `when` and `filter`; neither means "always".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when: Option<String>,
    /// A structured filter, as UIs produce.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<FilterDef>,
    /// What to do.
    #[serde(default)]
    pub actions: Vec<ActionDef>,
    /// How often the rule may fire per contact: `"every_time"` (default), `"once"`, or
    /// `{"max": N, "per": "1d"}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repeat: Option<RepeatDef>,
    /// A disabled rule is compiled and checked but never matches.
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub enabled: bool,
}

fn yes() -> bool {
    true
}

fn is_true(b: &bool) -> bool {
    *b
}

/// A structured filter tree.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
#[non_exhaustive]
pub enum FilterDef {
    /// Every child holds.
    All {
        /// The children.
        all: Vec<FilterDef>,
    },
    /// At least one child holds.
    Any {
        /// The children.
        any: Vec<FilterDef>,
    },
    /// The child does not hold.
    Not {
        /// The child.
        not: Box<FilterDef>,
    },
    /// A test of one field.
    Test(FilterTest),
}

/// A test of one field, such as `{"field": "contact.country", "op": "in", "value":
/// ["US", "CA"]}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct FilterTest {
    /// `contact.NAME`, `event.NAME` or `score.NAME`.
    pub field: String,
    /// The operator.
    pub op: FilterOp,
    /// The operand; absent for `is_empty` / `is_not_empty`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<serde_json::Value>,
}

/// Marketers' operators. Each one's meaning on a missing field is fixed and documented
/// in `docs/expressions.md`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum FilterOp {
    /// Equal to the value; missing: false.
    Equals,
    /// Not equal to the value; missing: true.
    NotEquals,
    /// Greater than; missing: false.
    Gt,
    /// Greater than or equal; missing: false.
    Gte,
    /// Less than; missing: false.
    Lt,
    /// Less than or equal; missing: false.
    Lte,
    /// Within `[low, high]`, both inclusive; missing: false.
    Between,
    /// One of the listed values; missing: false.
    In,
    /// None of the listed values; missing: true.
    NotIn,
    /// Missing, `""`, or an empty list or map.
    IsEmpty,
    /// Present and not empty.
    IsNotEmpty,
    /// Contains the substring (strings) or element (lists); missing: false.
    Contains,
    /// Starts with; missing: false.
    StartsWith,
    /// Ends with; missing: false.
    EndsWith,
    /// Matches the regular expression anywhere; missing: false.
    Matches,
    /// A timestamp within the last N days (an int) or the last duration (`"36h"`),
    /// and not in the future; missing: false.
    WithinLast,
    /// A timestamp strictly before the given instant; missing: false.
    Before,
    /// A timestamp strictly after the given instant; missing: false.
    After,
}

impl FilterOp {
    /// The operator's name in documents.
    pub fn name(self) -> &'static str {
        match self {
            FilterOp::Equals => "equals",
            FilterOp::NotEquals => "not_equals",
            FilterOp::Gt => "gt",
            FilterOp::Gte => "gte",
            FilterOp::Lt => "lt",
            FilterOp::Lte => "lte",
            FilterOp::Between => "between",
            FilterOp::In => "in",
            FilterOp::NotIn => "not_in",
            FilterOp::IsEmpty => "is_empty",
            FilterOp::IsNotEmpty => "is_not_empty",
            FilterOp::Contains => "contains",
            FilterOp::StartsWith => "starts_with",
            FilterOp::EndsWith => "ends_with",
            FilterOp::Matches => "matches",
            FilterOp::WithinLast => "within_last",
            FilterOp::Before => "before",
            FilterOp::After => "after",
        }
    }

    /// Every operator, in documentation order.
    pub const ALL: [FilterOp; 18] = [
        FilterOp::Equals,
        FilterOp::NotEquals,
        FilterOp::Gt,
        FilterOp::Gte,
        FilterOp::Lt,
        FilterOp::Lte,
        FilterOp::Between,
        FilterOp::In,
        FilterOp::NotIn,
        FilterOp::IsEmpty,
        FilterOp::IsNotEmpty,
        FilterOp::Contains,
        FilterOp::StartsWith,
        FilterOp::EndsWith,
        FilterOp::Matches,
        FilterOp::WithinLast,
        FilterOp::Before,
        FilterOp::After,
    ];
}

/// A delivery channel: one of the five built in, or one the host defines.
///
/// A host-defined channel (WhatsApp, direct mail, a call-centre queue) is named in
/// documents like a built-in one and must be declared in the policy's `channels`, where
/// it gets its consent rule and send window; caps, suppressions, consent and
/// do-not-contact then apply to it as to any other channel. Its name is 1 to
/// [`ChannelName::MAX_LEN`] characters of lowercase letters, digits and `_`, starting
/// with a letter, so that a channel stays a small `Copy` value.
///
/// ```
/// use nurture::def::Channel;
///
/// let whatsapp: Channel = "whatsapp".parse()?;
/// assert_eq!(whatsapp.name(), "whatsapp");
/// assert!(!whatsapp.is_built_in());
/// assert_eq!("sms".parse::<Channel>()?, Channel::Sms);
/// assert!("WhatsApp".parse::<Channel>().is_err());
/// # Ok::<(), nurture::def::ChannelNameError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Channel {
    /// Email.
    Email,
    /// SMS.
    Sms,
    /// Mobile push.
    Push,
    /// In-app message.
    InApp,
    /// An HTTP webhook.
    Webhook,
    /// A channel the host defines, declared in the policy's `channels`.
    Custom(ChannelName),
}

impl Channel {
    /// The channel's name in documents: `email`, `sms`, `push`, `in_app`, `webhook`, or
    /// the host-defined name.
    ///
    /// ```
    /// assert_eq!(nurture::def::Channel::InApp.name(), "in_app");
    /// ```
    pub fn name(&self) -> &str {
        match self {
            Channel::Email => "email",
            Channel::Sms => "sms",
            Channel::Push => "push",
            Channel::InApp => "in_app",
            Channel::Webhook => "webhook",
            Channel::Custom(name) => name.as_str(),
        }
    }

    /// Whether this is one of the five built-in channels.
    pub fn is_built_in(&self) -> bool {
        !matches!(self, Channel::Custom(_))
    }

    /// The built-in channels, in documentation order.
    pub const ALL: [Channel; 5] =
        [Channel::Email, Channel::Sms, Channel::Push, Channel::InApp, Channel::Webhook];
}

impl std::str::FromStr for Channel {
    type Err = ChannelNameError;

    /// A built-in channel by its name, else a host-defined one.
    fn from_str(name: &str) -> Result<Channel, ChannelNameError> {
        match Channel::ALL.iter().find(|c| c.name() == name) {
            Some(built_in) => Ok(*built_in),
            None => ChannelName::new(name).map(Channel::Custom),
        }
    }
}

impl std::fmt::Display for Channel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl Serialize for Channel {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for Channel {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Channel, D::Error> {
        let name = std::borrow::Cow::<'de, str>::deserialize(deserializer)?;
        name.parse().map_err(serde::de::Error::custom)
    }
}

/// The host-defined channels a policy declares in `channels`.
pub(crate) fn declared_channels(def: Option<&PolicyDef>) -> Vec<Channel> {
    def.map_or_else(Vec::new, |p| p.channels.iter().map(|c| c.channel).filter(|c| !c.is_built_in()).collect())
}

/// Checks that a channel named at `path` is built in or declared in the policy's
/// `channels`: an undeclared name is most often a misspelt built-in one. Reported once
/// per path (the document check and the compilation both check).
pub(crate) fn check_declared(
    channel: &Channel,
    declared: &[Channel],
    path: String,
    diagnostics: &mut Vec<crate::diagnostic::Diagnostic>,
) {
    use crate::diagnostic::{did_you_mean, Code, Diagnostic};
    if channel.is_built_in() || declared.contains(channel) || diagnostics.iter().any(|d| d.path == path) {
        return;
    }
    let known: Vec<&str> = Channel::ALL.iter().chain(declared).map(Channel::name).collect();
    diagnostics.push(
        Diagnostic::new(Code::InvalidDocument, format!("unknown channel `{channel}`"))
            .with_path(path)
            .with_did_you_mean(did_you_mean(channel.name(), known.iter().copied()))
            .with_help(format!(
                "the channels are {}; declare a channel of your own in `policy.channels`, \
                 such as {{\"channel\": \"{channel}\", \"consent\": \"opt_in\"}}",
                known.join(", ")
            )),
    );
}

/// The name of a host-defined channel, kept inline (no allocation, `Copy`).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ChannelName {
    len: u8,
    bytes: [u8; ChannelName::MAX_LEN],
}

impl ChannelName {
    /// The longest name, in bytes.
    pub const MAX_LEN: usize = 23;

    /// A host-defined channel's name: 1 to [`ChannelName::MAX_LEN`] lowercase ASCII
    /// letters, digits and `_`, starting with a letter, and not a built-in channel's
    /// name.
    ///
    /// # Errors
    ///
    /// [`ChannelNameError`], saying which rule the name breaks.
    pub fn new(name: &str) -> Result<ChannelName, ChannelNameError> {
        let error = |why: &'static str| ChannelNameError { name: name.chars().take(64).collect(), why };
        if name.is_empty() || name.len() > ChannelName::MAX_LEN {
            return Err(error("a channel name has 1 to 23 characters"));
        }
        if !name.starts_with(|c: char| c.is_ascii_lowercase())
            || !name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        {
            return Err(error("a channel name is lowercase letters, digits and `_`, starting with a letter"));
        }
        if Channel::ALL.iter().any(|c| c.name() == name) {
            return Err(error("this is a built-in channel's name"));
        }
        let mut bytes = [0; ChannelName::MAX_LEN];
        bytes[..name.len()].copy_from_slice(name.as_bytes());
        Ok(ChannelName { len: name.len() as u8, bytes })
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        // Built only from validated ASCII, so this never fails.
        std::str::from_utf8(&self.bytes[..usize::from(self.len)]).unwrap_or_default()
    }
}

impl PartialOrd for ChannelName {
    fn partial_cmp(&self, other: &ChannelName) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for ChannelName {
    /// By name, so that channels sort alphabetically wherever they are listed.
    fn cmp(&self, other: &ChannelName) -> std::cmp::Ordering {
        self.as_str().cmp(other.as_str())
    }
}

impl std::fmt::Debug for ChannelName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.as_str())
    }
}

/// A string that cannot name a channel.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("`{name}` cannot name a channel: {why}")]
pub struct ChannelNameError {
    name: String,
    why: &'static str,
}

/// An action, as data. The engine turns matched rules' actions into effects that the
/// host performs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
#[non_exhaustive]
pub enum ActionDef {
    /// Send a message on a channel.
    Send {
        /// The channel.
        channel: Channel,
        /// The host's template or message id.
        template: String,
        /// Hold for a person's approval before delivery.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        needs_approval: bool,
        /// What the message is for: `"marketing"` (the default), `"transactional"`
        /// (bypasses marketing consent, caps, send windows and the control group, never
        /// a hard bounce or invalid address), or a purpose the host defines.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        purpose: Option<String>,
        /// The campaign or journey the send belongs to, for caps and suppressions that
        /// name one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        campaign: Option<String>,
        /// Which deferred send goes first when several become due together (higher
        /// first; default 0).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        priority: Option<u32>,
        /// Personalization: names and CEL expressions (over `contact`, `event`,
        /// `score`, `counter`, `segment` and `now`), evaluated when the rule fires into
        /// the effect's `params`, the context the host's template renders.
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        params: BTreeMap<String, String>,
    },
    /// Record a consent change for a channel and purpose.
    SetConsent {
        /// The channel.
        channel: Channel,
        /// The purpose (default `"marketing"`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        purpose: Option<String>,
        /// The new status.
        status: ConsentStatus,
        /// Hold for a person's approval: nothing changes until it is approved
        /// ([`Engine::approve_with`](crate::engine::Engine::approve_with)).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        needs_approval: bool,
    },
    /// Mark the contact do-not-contact, on one channel or (without `channel`) on all.
    DoNotContact {
        /// The channel; absent: every channel.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        channel: Option<Channel>,
        /// Why.
        reason: DncReason,
        /// Hold for a person's approval: nothing changes until it is approved
        /// ([`Engine::approve_with`](crate::engine::Engine::approve_with)).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        needs_approval: bool,
    },
    /// Lift a do-not-contact mark, on one channel or (without `channel`) the global one.
    ClearDoNotContact {
        /// The channel; absent: the global mark.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        channel: Option<Channel>,
        /// Hold for a person's approval: nothing changes until it is approved
        /// ([`Engine::approve_with`](crate::engine::Engine::approve_with)).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        needs_approval: bool,
    },
    /// Set a contact attribute: to `value`, or to what the CEL expression `expr`
    /// (over `contact`, `event`, `score`, `counter`, `segment` and `now`) gives when
    /// the rule fires, type-checked against the field at compile time. Exactly one of
    /// the two.
    SetAttribute {
        /// The contact field.
        field: String,
        /// The new value.
        #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
        value: serde_json::Value,
        /// A CEL expression computing the new value, such as `event.new_title` or `now`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        expr: Option<String>,
        /// Hold for a person's approval: nothing changes until it is approved
        /// ([`Engine::approve_with`](crate::engine::Engine::approve_with)).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        needs_approval: bool,
    },
    /// Clear a contact attribute.
    ClearAttribute {
        /// The contact field.
        field: String,
        /// Hold for a person's approval: nothing changes until it is approved
        /// ([`Engine::approve_with`](crate::engine::Engine::approve_with)).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        needs_approval: bool,
    },
    /// Add a tag.
    AddTag {
        /// The tag.
        tag: String,
        /// Hold for a person's approval: nothing changes until it is approved
        /// ([`Engine::approve_with`](crate::engine::Engine::approve_with)).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        needs_approval: bool,
    },
    /// Remove a tag.
    RemoveTag {
        /// The tag.
        tag: String,
        /// Hold for a person's approval: nothing changes until it is approved
        /// ([`Engine::approve_with`](crate::engine::Engine::approve_with)).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        needs_approval: bool,
    },
    /// Add to a static list.
    AddToList {
        /// The list.
        list: String,
        /// Hold for a person's approval: nothing changes until it is approved
        /// ([`Engine::approve_with`](crate::engine::Engine::approve_with)).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        needs_approval: bool,
    },
    /// Remove from a static list.
    RemoveFromList {
        /// The list.
        list: String,
        /// Hold for a person's approval: nothing changes until it is approved
        /// ([`Engine::approve_with`](crate::engine::Engine::approve_with)).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        needs_approval: bool,
    },
    /// Change the lifecycle stage.
    SetLifecycleStage {
        /// The new stage, such as `mql`.
        stage: String,
        /// Hold for a person's approval: nothing changes until it is approved
        /// ([`Engine::approve_with`](crate::engine::Engine::approve_with)).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        needs_approval: bool,
    },
    /// Add (or, when negative, subtract) points.
    AdjustScore {
        /// The score.
        score: String,
        /// The points.
        points: f64,
        /// The score's group that holds the points (its cap and decay apply), by id;
        /// the model's first group when absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        group: Option<String>,
        /// Hold for a person's approval: nothing changes until it is approved
        /// ([`Engine::approve_with`](crate::engine::Engine::approve_with)).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        needs_approval: bool,
    },
    /// Notify the contact's owner.
    NotifyOwner {
        /// The message.
        message: String,
        /// Hold for a person's approval before delivery.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        needs_approval: bool,
    },
    /// Assign an owner.
    AssignOwner {
        /// The owner, or a routing queue.
        owner: String,
        /// Hold for a person's approval: nothing changes until it is approved
        /// ([`Engine::approve_with`](crate::engine::Engine::approve_with)).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        needs_approval: bool,
    },
    /// Write a field in the CRM.
    CrmWrite {
        /// The CRM field.
        field: String,
        /// The value.
        value: serde_json::Value,
        /// Hold for a person's approval: nothing changes until it is approved
        /// ([`Engine::approve_with`](crate::engine::Engine::approve_with)).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        needs_approval: bool,
    },
    /// Enrol in a journey.
    EnrollJourney {
        /// The journey.
        journey: String,
        /// Hold for a person's approval: nothing changes until it is approved
        /// ([`Engine::approve_with`](crate::engine::Engine::approve_with)).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        needs_approval: bool,
    },
    /// Remove from a journey.
    RemoveFromJourney {
        /// The journey.
        journey: String,
        /// Hold for a person's approval: nothing changes until it is approved
        /// ([`Engine::approve_with`](crate::engine::Engine::approve_with)).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        needs_approval: bool,
    },
}

impl ActionDef {
    /// Whether the action is held for a person's approval before it takes effect.
    pub fn needs_approval(&self) -> bool {
        match self {
            ActionDef::Send { needs_approval, .. }
            | ActionDef::SetConsent { needs_approval, .. }
            | ActionDef::DoNotContact { needs_approval, .. }
            | ActionDef::ClearDoNotContact { needs_approval, .. }
            | ActionDef::SetAttribute { needs_approval, .. }
            | ActionDef::ClearAttribute { needs_approval, .. }
            | ActionDef::AddTag { needs_approval, .. }
            | ActionDef::RemoveTag { needs_approval, .. }
            | ActionDef::AddToList { needs_approval, .. }
            | ActionDef::RemoveFromList { needs_approval, .. }
            | ActionDef::SetLifecycleStage { needs_approval, .. }
            | ActionDef::AdjustScore { needs_approval, .. }
            | ActionDef::NotifyOwner { needs_approval, .. }
            | ActionDef::AssignOwner { needs_approval, .. }
            | ActionDef::CrmWrite { needs_approval, .. }
            | ActionDef::EnrollJourney { needs_approval, .. }
            | ActionDef::RemoveFromJourney { needs_approval, .. } => *needs_approval,
        }
    }

    /// The channel the action names: a send's, a consent change's, or a
    /// do-not-contact mark's on one channel.
    pub fn channel(&self) -> Option<&Channel> {
        match self {
            ActionDef::Send { channel, .. } | ActionDef::SetConsent { channel, .. } => Some(channel),
            ActionDef::DoNotContact { channel, .. } | ActionDef::ClearDoNotContact { channel, .. } => {
                channel.as_ref()
            }
            _ => None,
        }
    }
}

/// The scoring section: score models.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct ScoringDef {
    /// The models, each a named score.
    #[serde(default)]
    pub models: Vec<ScoreModelDef>,
}

/// One score model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct ScoreModelDef {
    /// Stable id, unique among models.
    pub id: String,
    /// The highest total (for example 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cap: Option<f64>,
    /// The lowest total.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub floor: Option<f64>,
    /// Decay of every group that does not set its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decay: Option<DecayDef>,
    /// Timeframe mode for every group that sets neither decay nor timeframe: only points
    /// earned in this last span count, such as `"90d"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeframe: Option<String>,
    /// A combined score: earlier models' ids and their weights, such as
    /// `{"engagement": 1, "fit": 1}`. A combined score has no rules or groups of its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub combine: Option<BTreeMap<String, f64>>,
    /// Groups with their own caps and decay; rules name them. Without groups, all points
    /// go to one default group.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<GroupDef>,
    /// The point rules.
    #[serde(default)]
    pub rules: Vec<PointRuleDef>,
    /// Thresholds such as the MQL hand-off.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub thresholds: Vec<ThresholdDef>,
    /// Named bands such as cold / warm / hot, or grades A to F.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bands: Vec<BandDef>,
}

/// Decay settings: `{"half_life": "30d"}`, `{"step": 0.25, "every": "30d"}`, or
/// `"none"` (a group opting out of its model's decay).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
#[non_exhaustive]
pub enum DecayDef {
    /// `"none"`.
    Named(String),
    /// Exponential decay.
    HalfLife {
        /// The half-life, such as `"30d"` or `"36h"`.
        half_life: String,
    },
    /// Step decay: after each full period without activity (`"30d"`), or at each start
    /// of a calendar `"day"`, `"week"` or `"month"` in `zone`.
    Step {
        /// The share lost per period, in `(0, 1]`.
        step: f64,
        /// The period, such as `"30d"`, or a calendar period.
        every: String,
        /// The time zone of a calendar period (default UTC).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        zone: Option<String>,
    },
}

/// A group of points.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct GroupDef {
    /// The group's id, unique in its model.
    pub id: String,
    /// The group's cap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cap: Option<f64>,
    /// The group's floor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub floor: Option<f64>,
    /// The group's decay, overriding the model's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decay: Option<DecayDef>,
    /// Timeframe mode for this group, overriding the model's decay.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeframe: Option<String>,
}

/// A point rule: engagement (`on` an event type) or fit (`fit`, over the contact).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct PointRuleDef {
    /// Stable id, unique in its model.
    pub id: String,
    /// The event type, for engagement rules.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on: Option<String>,
    /// A CEL condition for an engagement rule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when: Option<String>,
    /// A structured filter for an engagement rule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<FilterDef>,
    /// A CEL condition over the contact, for fit rules.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fit: Option<String>,
    /// Points (negative subtracts).
    pub points: f64,
    /// The group, by id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// `"every_time"` (default), `"once"`, or `{"max": N, "per": "1d"}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repeat: Option<RepeatDef>,
    /// The least time between two awards, such as `"1h"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_interval: Option<String>,
}

/// A repeat policy.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
#[non_exhaustive]
pub enum RepeatDef {
    /// `"every_time"` or `"once"`.
    Named(String),
    /// At most `max` per window (`"per": "1d"`, sliding), or per calendar period
    /// (`"per": "day"`, `"week"` or `"month"`, in `zone`).
    AtMost {
        /// Awards per window.
        max: u32,
        /// The window, such as `"1d"`, or a calendar period: `"day"`, `"week"` (from
        /// Monday) or `"month"`.
        per: String,
        /// The time zone of a calendar period: an IANA name, an offset, or
        /// `"contact.FIELD"` (engine rules); UTC by default.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        zone: Option<String>,
    },
}

/// A threshold.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct ThresholdDef {
    /// Its id, such as `mql`.
    pub id: String,
    /// Entered at or above this value.
    pub enter: f64,
    /// Left below this value; defaults to `enter` (no hysteresis).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit: Option<f64>,
    /// `"once"` or `"every_crossing"` (default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rearm: Option<Rearm>,
}

/// A band.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct BandDef {
    /// Its name.
    pub name: String,
    /// The score at which it is entered (its lowest score without hysteresis).
    pub from: f64,
    /// Hysteresis: once in the band, the contact leaves it only when the score falls
    /// below this (at most `from`; absent: `from`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leave: Option<f64>,
}

/// When a threshold may report an upward crossing again.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Rearm {
    /// Only the first upward crossing ever is reported (Mautic's behaviour).
    Once,
    /// Every upward crossing after a downward one is reported.
    EveryCrossing,
}

/// A span of time as documents write it: CEL durations (`"36h"`, `"90m"`, `"1.5s"`) plus
/// whole days (`"30d"`); `None` unless it is positive.
pub(crate) fn parse_period(text: &str) -> Option<crate::time::Duration> {
    let d = match text.strip_suffix('d').and_then(|n| n.trim().parse::<i64>().ok()) {
        Some(days) => crate::time::Duration::from_days(days).ok()?,
        None => crate::time::Duration::parse(text).ok()?,
    };
    (d > crate::time::Duration::ZERO).then_some(d)
}

/// [`parse_period`], recording a diagnostic at `path` when the text is not a positive span.
pub(crate) fn period_or_report(
    text: &str,
    path: String,
    diagnostics: &mut Vec<crate::diagnostic::Diagnostic>,
) -> Option<crate::time::Duration> {
    let d = parse_period(text);
    if d.is_none() {
        diagnostics.push(
            crate::diagnostic::Diagnostic::new(
                crate::diagnostic::Code::InvalidDocument,
                format!("`{text}` is not a positive span of time"),
            )
            .with_path(path)
            .with_help("write a span such as \"30d\", \"36h\" or \"90m\""),
        );
    }
    d
}

// ---------------------------------------------------------------------------------------
// The send policy
// ---------------------------------------------------------------------------------------

/// The `policy` section: what stands between "a rule wants to send" and "a message goes
/// out" (`docs/send-policy.md`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct PolicyDef {
    /// Per-channel consent model and send window.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub channels: Vec<ChannelPolicyDef>,
    /// The contact's time zone for send windows and calendar caps: an IANA name, an
    /// offset, or `"contact.FIELD"` (a string attribute holding one); default UTC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
    /// Dates (`"2026-12-25"`, in the contact's zone) on which every channel with a send
    /// window stays closed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub holidays: Vec<String>,
    /// Frequency caps on marketing sends.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub caps: Vec<CapDef>,
    /// The longest a send may be deferred (by caps or windows) before it is dropped,
    /// such as `"3d"`; default 7 days.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_delay: Option<String>,
    /// A global control group that receives no marketing sends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub control_group: Option<ControlGroupDef>,
    /// Events that change consent (an `unsubscribed` event opts out of email marketing).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub consent_events: Vec<ConsentEventDef>,
    /// Events that set do-not-contact (a hard bounce marks email).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dnc_events: Vec<DncEventDef>,
    /// Suppressions by static list or segment.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub suppress: Vec<SuppressionDef>,
    /// How long an effect held for approval waits, such as `"72h"`; after that it
    /// expires (an effect says so). Default: it waits until approved or rejected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval_expires: Option<String>,
}

/// One channel's consent model and send window.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct ChannelPolicyDef {
    /// The channel.
    pub channel: Channel,
    /// What an unknown consent means: `"opt_in"` (the default: sending needs an opt-in,
    /// as GDPR-style and SMS rules require) or `"opt_out"` (sending is allowed until the
    /// contact opts out).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consent: Option<ConsentModel>,
    /// When marketing sends may go out, in the contact's local time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<SendWindowDef>,
}

/// What an unknown consent means on a channel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ConsentModel {
    /// Sending needs an explicit opt-in.
    OptIn,
    /// Sending is allowed unless the contact opted out.
    OptOut,
}

/// A daily send window: from `from` (inclusive) to `to` (exclusive), local time, on
/// `days` (default every day).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct SendWindowDef {
    /// Opens at this local time, `"HH:MM"`.
    pub from: String,
    /// Closes at this local time, `"HH:MM"` (after `from`).
    pub to: String,
    /// The weekdays it opens on: `"monday"` to `"sunday"`, or `"weekdays"` and
    /// `"weekends"`; default every day.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub days: Vec<String>,
}

/// A frequency cap: at most `max` marketing sends per `per`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct CapDef {
    /// The cap's id, named in suppression reasons.
    pub id: String,
    /// Sends allowed per window (at least 1).
    pub max: u32,
    /// A rolling window (`"7d"`, `"12h"`) or a calendar period in the contact's zone
    /// (`"day"`, `"week"` from Monday, `"month"`).
    pub per: String,
    /// Only sends on this channel count and are capped; absent: every channel.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<Channel>,
    /// Only sends of this campaign or journey; absent: every campaign.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub campaign: Option<String>,
    /// What a capped send does: `"defer"` (the default: until the window allows, within
    /// the policy's `max_delay`) or `"drop"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub over: Option<CapOver>,
}

/// What happens to a send over a cap.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum CapOver {
    /// Deferred until the cap allows it.
    Defer,
    /// Suppressed.
    Drop,
}

/// The global control group.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct ControlGroupDef {
    /// The share of contacts in it, in percent (0 to 100, two decimals).
    pub percent: f64,
    /// Changes which contacts are drawn (default none): a new salt draws a new group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub salt: Option<String>,
}

/// An event that changes consent.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct ConsentEventDef {
    /// The event type.
    pub on: String,
    /// The channel.
    pub channel: Channel,
    /// The purpose (default `"marketing"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purpose: Option<String>,
    /// The status it sets.
    pub status: ConsentStatus,
}

/// An event that sets do-not-contact.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct DncEventDef {
    /// The event type.
    pub on: String,
    /// The channel; absent: every channel.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<Channel>,
    /// Why.
    pub reason: DncReason,
}

/// A suppression: contacts on `list` or in `segment` (exactly one) get no marketing
/// sends on `channel` (default every channel) for `campaign` (default every campaign).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct SuppressionDef {
    /// A static list (`add_to_list` actions fill it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub list: Option<String>,
    /// A segment, by id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segment: Option<String>,
    /// Only this channel.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<Channel>,
    /// Only this campaign or journey.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub campaign: Option<String>,
}

/// A contact's consent for one channel and purpose.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ConsentStatus {
    /// Opted in.
    OptedIn,
    /// Opted out.
    OptedOut,
    /// Asked, awaiting confirmation (double opt-in); not yet consent.
    Pending,
    /// Never stated; the channel's consent model decides.
    Unknown,
}

impl ConsentStatus {
    /// The status's name in documents.
    pub fn name(self) -> &'static str {
        match self {
            ConsentStatus::OptedIn => "opted_in",
            ConsentStatus::OptedOut => "opted_out",
            ConsentStatus::Pending => "pending",
            ConsentStatus::Unknown => "unknown",
        }
    }
}

/// Why a contact must not be contacted (Mautic's do-not-contact reasons).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum DncReason {
    /// The contact unsubscribed (transactional sends still go).
    Unsubscribed,
    /// The address bounced permanently (blocks transactional sends too).
    HardBounce,
    /// The contact marked a message as spam (blocks transactional sends too).
    SpamComplaint,
    /// The address is not valid (blocks transactional sends too).
    InvalidAddress,
    /// Set by a person (blocks transactional sends too).
    Manual,
}

impl DncReason {
    /// The reason's name in documents.
    pub fn name(self) -> &'static str {
        match self {
            DncReason::Unsubscribed => "unsubscribed",
            DncReason::HardBounce => "hard_bounce",
            DncReason::SpamComplaint => "spam_complaint",
            DncReason::InvalidAddress => "invalid_address",
            DncReason::Manual => "manual",
        }
    }

    /// Whether the mark also stops transactional sends: every reason but
    /// `unsubscribed`.
    pub fn blocks_transactional(self) -> bool {
        self != DncReason::Unsubscribed
    }
}

/// A journey: a multi-step nurture sequence a contact enters on a trigger (or an
/// `enroll_journey` action), moves through step by step, and leaves at its end, at its
/// goal, on an exit condition, or when removed (`docs/journeys.md`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct JourneyDef {
    /// Stable id, unique among the journeys (several entries may share it when all but
    /// one are `retired` earlier versions).
    pub id: String,
    /// The version (default 1); part of every effect's key.
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub version: u32,
    /// What the journey is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// What enrols a contact: an event type's name or a trigger object, as a rule's
    /// `on`. Absent: only `enroll_journey` actions enrol.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on: Option<TriggerDef>,
    /// The entry condition, in CEL (reads the entering event for event triggers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when: Option<String>,
    /// The entry condition as a structured filter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<FilterDef>,
    /// When a contact may enter again: `"never"` (default), `"always"`,
    /// `"once_per_version"`, or `{"after": "30d"}` (a period since the last exit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reentry: Option<ReentryDef>,
    /// How many enrolments of this journey one contact may have at once (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_active: Option<u32>,
    /// Exit conditions, checked at every step of the contact, even mid-wait.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exits: Vec<JourneyExitDef>,
    /// The goal: reaching it ends the enrolment as converted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub goal: Option<JourneyGoalDef>,
    /// The seed of the split steps' deterministic assignment (default: the journey id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<String>,
    /// The time zone of local-time waits that name none: an IANA name or
    /// `"contact.FIELD"` (default UTC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
    /// The first step's id (default: the first step listed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<String>,
    /// What a newer version does with enrolments in this one: `"finish"` (default:
    /// they finish on this version, which must then stay in the document, `retired`),
    /// `"move"` (to the step with the same id in the new version) or `"exit"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upgrade: Option<UpgradeDef>,
    /// A retired version enrols no one; its in-flight enrolments finish on it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub retired: bool,
    /// The steps, each with an id and explicit next steps.
    pub steps: Vec<StepDef>,
}

fn one() -> u32 {
    1
}

fn is_one(n: &u32) -> bool {
    *n == 1
}

/// A journey's re-entry policy.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
#[non_exhaustive]
pub enum ReentryDef {
    /// `"never"`, `"always"` or `"once_per_version"`.
    Named(String),
    /// Again once this period has passed since the last exit.
    After {
        /// The period, such as `"30d"`.
        after: String,
    },
}

/// What happens to enrolments when a newer version of their journey is published.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum UpgradeDef {
    /// They finish on their version.
    #[default]
    Finish,
    /// They move to the step with the same id in the new version (exit if none).
    Move,
    /// They exit (reason `superseded`).
    Exit,
}

/// An exit condition: an event (with an optional condition on it) or a condition over
/// the contact.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct JourneyExitDef {
    /// Its id, named in the exit effect.
    pub id: String,
    /// An event type whose arrival exits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on: Option<String>,
    /// A CEL condition (on the event, with `on`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when: Option<String>,
    /// A structured filter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<FilterDef>,
}

/// A journey's goal: an event (with an optional condition) or a condition over the
/// contact.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct JourneyGoalDef {
    /// An event type whose arrival reaches the goal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on: Option<String>,
    /// A CEL condition (on the event, with `on`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when: Option<String>,
    /// A structured filter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<FilterDef>,
}

/// One step of a journey, by `type`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
#[non_exhaustive]
pub enum StepDef {
    /// Performs actions, in order, then goes on.
    Action {
        /// The step's id.
        id: String,
        /// The actions, as a rule's.
        actions: Vec<ActionDef>,
        /// The next step; absent: the journey is completed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        next: Option<String>,
    },
    /// Waits: `for` a span; until local time `at` on one of `days` in `zone`; or until
    /// the timestamp attribute `date` plus `offset`.
    Wait {
        /// The step's id.
        id: String,
        /// A span, such as `"2d"`.
        #[serde(default, rename = "for", skip_serializing_if = "Option::is_none")]
        period: Option<String>,
        /// A local time of day, `"HH:MM"`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        at: Option<String>,
        /// The weekdays `at` may fall on (default every day).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        days: Vec<String>,
        /// The zone of `at`: an IANA name or `"contact.FIELD"` (default the journey's).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        zone: Option<String>,
        /// A contact timestamp attribute to wait for.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        date: Option<String>,
        /// With `date`: a signed span added to it, such as `"-2d"` or `"3h"`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        offset: Option<String>,
        /// The next step; absent: the journey is completed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        next: Option<String>,
    },
    /// Waits for an event (`on`, with an optional condition on it) or for a condition
    /// over the contact to hold, at most `timeout`.
    WaitFor {
        /// The step's id.
        id: String,
        /// The event type awaited.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        on: Option<String>,
        /// A CEL condition (on the event, with `on`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        when: Option<String>,
        /// A structured filter.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        filter: Option<FilterDef>,
        /// The longest wait, such as `"3d"`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        timeout: Option<String>,
        /// The step after the event or condition.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        next: Option<String>,
        /// The step after the timeout.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        on_timeout: Option<String>,
    },
    /// The first case whose condition holds chooses the next step, else `else`.
    Branch {
        /// The step's id.
        id: String,
        /// The cases, in order.
        cases: Vec<BranchCaseDef>,
        /// The step when no case holds.
        #[serde(default, rename = "else", skip_serializing_if = "Option::is_none")]
        otherwise: Option<String>,
    },
    /// Weighted arms, chosen by a deterministic hash of the contact, the journey and the
    /// seed; an optional holdout takes no actions and is tracked.
    Split {
        /// The step's id.
        id: String,
        /// The arms.
        arms: Vec<SplitArmDef>,
        /// The holdout.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        holdout: Option<HoldoutDef>,
    },
    /// Goes to a named step.
    Goto {
        /// The step's id.
        id: String,
        /// The target step.
        to: String,
    },
    /// Ends the enrolment (reason `completed`).
    Exit {
        /// The step's id.
        id: String,
    },
}

impl StepDef {
    /// The step's id.
    pub fn id(&self) -> &str {
        match self {
            StepDef::Action { id, .. }
            | StepDef::Wait { id, .. }
            | StepDef::WaitFor { id, .. }
            | StepDef::Branch { id, .. }
            | StepDef::Split { id, .. }
            | StepDef::Goto { id, .. }
            | StepDef::Exit { id } => id,
        }
    }
}

/// One case of a branch.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct BranchCaseDef {
    /// A CEL condition over the contact, scores, bands, segments and counters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when: Option<String>,
    /// A structured filter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<FilterDef>,
    /// The step when it holds; absent: the journey is completed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

/// One arm of a split.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct SplitArmDef {
    /// The arm's id, named in effects and the funnel.
    pub id: String,
    /// Its relative weight (positive).
    pub weight: f64,
    /// The arm's first step; absent: the journey is completed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

/// A split's holdout: contacts that take no further steps but stay enrolled, tracked
/// for the goal and exits, for `for`; then they complete.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct HoldoutDef {
    /// Its relative weight (positive).
    pub weight: f64,
    /// How long a holdout contact stays enrolled, such as `"30d"`.
    #[serde(rename = "for")]
    pub period: String,
}
