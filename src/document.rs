//! Reading rule-set documents: text -> generic tree -> shape check (every unknown key,
//! every missing key, at once) -> typed [`RuleSetDef`].

use std::cell::RefCell;
use std::sync::Arc;

use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value as Json;

use crate::def::{RuleSetDef, SchemaDef};
use crate::diagnostic::{article, did_you_mean, pointer_escape, Code, CompileError, Diagnostic, Span};
use crate::limits::Limits;
use crate::schema::Schema;
use crate::value::{Map, Type, Value};

/// Document text formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Format {
    Json,
    #[cfg(feature = "toml")]
    Toml,
}

/// Parses document text and checks its shape, reporting every problem. Unknown keys are
/// reported and then ignored, so that the rest of the document is still checked; the
/// caller fails the compilation if any diagnostic was reported.
pub(crate) fn read(
    text: &str,
    format: Format,
    limits: &Limits,
) -> Result<(RuleSetDef, Vec<Diagnostic>), CompileError> {
    if text.len() > limits.max_document_len {
        return Err(CompileError::new(vec![Diagnostic::new(
            Code::LimitExceeded,
            format!(
                "the document is {} bytes, more than the limit of {}",
                text.len(),
                limits.max_document_len
            ),
        )
        .with_path("/")
        .with_help("split the rule set or raise `Limits::max_document_len`")]));
    }
    let mut diagnostics = Vec::new();
    let mut tree = parse_tree(text, format, &mut diagnostics)?;
    check_shape(&mut tree, &ROOT, "", &mut diagnostics);
    check_declared_channels(&tree, &mut diagnostics);
    match serde_json::from_value::<RuleSetDef>(tree) {
        Ok(def) => Ok((def, diagnostics)),
        Err(e) => {
            // The shape check above accepts exactly what the serde types accept (the
            // tests below prove it table by table), so this is a safety net.
            if diagnostics.is_empty() {
                diagnostics.push(
                    Diagnostic::new(Code::InvalidDocument, format!("invalid document: {e}"))
                        .with_path("/")
                        .with_help("the document does not fit the rule-set format; see docs/rule-sets.md"),
                );
            }
            Err(CompileError::new(diagnostics))
        }
    }
}

/// Every channel named in actions and in the policy is built in or declared in
/// `policy.channels` (checked here too, so that it is reported with the document's other
/// problems; a malformed name was reported by the shape check).
fn check_declared_channels(tree: &Json, diagnostics: &mut Vec<Diagnostic>) {
    fn each(v: Option<&Json>) -> impl Iterator<Item = (usize, &Json)> {
        v.and_then(Json::as_array).into_iter().flatten().enumerate()
    }
    let channel_of = |v: &Json| v.get("channel")?.as_str()?.parse::<crate::def::Channel>().ok();
    let declared: Vec<crate::def::Channel> = each(tree.pointer("/policy/channels"))
        .filter_map(|(_, c)| channel_of(c))
        .filter(|c| !c.is_built_in())
        .collect();
    let mut named = Vec::new();
    for (i, rule) in each(tree.get("rules")) {
        named.extend(each(rule.get("actions")).map(|(j, a)| (a, format!("/rules/{i}/actions/{j}"))));
    }
    for (i, journey) in each(tree.get("journeys")) {
        for (k, step) in each(journey.get("steps")) {
            let at = |j| format!("/journeys/{i}/steps/{k}/actions/{j}");
            named.extend(each(step.get("actions")).map(|(j, a)| (a, at(j))));
        }
    }
    for key in ["caps", "consent_events", "dnc_events", "suppress"] {
        named.extend(
            each(tree.pointer(&format!("/policy/{key}"))).map(|(i, e)| (e, format!("/policy/{key}/{i}"))),
        );
    }
    for (value, path) in named {
        if let Some(channel) = channel_of(value) {
            crate::def::check_declared(&channel, &declared, format!("{path}/channel"), diagnostics);
        }
    }
}

fn parse_tree(text: &str, format: Format, diagnostics: &mut Vec<Diagnostic>) -> Result<Json, CompileError> {
    let source: Arc<str> = Arc::from(text);
    match format {
        Format::Json => {
            let duplicates = RefCell::new(Vec::new());
            let mut de = serde_json::Deserializer::from_str(text);
            let tree = TreeSeed { at: &Frame::Root, duplicates: &duplicates }
                .deserialize(&mut de)
                .and_then(|tree| de.end().map(|()| tree))
                .map_err(|e| {
                    let offset = line_col_to_offset(text, e.line(), e.column());
                    let message = e.to_string();
                    let message = message.split(" at line").next().unwrap_or(&message).to_string();
                    CompileError::new(vec![Diagnostic::new(
                        Code::DocumentSyntax,
                        format!("invalid JSON: {message}"),
                    )
                    .with_source(source)
                    .with_span(Span::new(offset, offset + 1))
                    .with_help("fix the JSON syntax at the marked place")])
                })?;
            diagnostics.extend(duplicates.into_inner());
            Ok(tree)
        }
        #[cfg(feature = "toml")]
        Format::Toml => toml::from_str::<Json>(text).map_err(|e| {
            let span = e.span().map_or(Span::new(0, 1), |r| Span::new(r.start, r.end.max(r.start + 1)));
            CompileError::new(vec![Diagnostic::new(
                Code::DocumentSyntax,
                format!("invalid TOML: {}", e.message()),
            )
            .with_source(source)
            .with_span(span)
            .with_help("fix the TOML syntax at the marked place")])
        }),
    }
}

/// Where a JSON value sits, as a chain up to the document root; turned into a JSON
/// pointer only when a problem is found there.
enum Frame<'a> {
    Root,
    Key(&'a Frame<'a>, &'a str),
    Index(&'a Frame<'a>, usize),
}

impl Frame<'_> {
    fn pointer(&self) -> String {
        match self {
            Frame::Root => String::new(),
            Frame::Key(parent, key) => format!("{}/{}", parent.pointer(), pointer_escape(key)),
            Frame::Index(parent, i) => format!("{}/{i}", parent.pointer()),
        }
    }
}

/// Reads JSON into a tree as `serde_json::Value` does, but reports a key that appears
/// twice in one object (serde_json would keep the last silently). The first value is
/// kept so that the rest of the document is still checked.
#[derive(Clone, Copy)]
struct TreeSeed<'a> {
    at: &'a Frame<'a>,
    duplicates: &'a RefCell<Vec<Diagnostic>>,
}

impl<'de> DeserializeSeed<'de> for TreeSeed<'_> {
    type Value = Json;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Json, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for TreeSeed<'_> {
    type Value = Json;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Json, E> {
        Ok(Json::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Json, E> {
        Ok(Json::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Json, E> {
        Ok(Json::from(v))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Json, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Json::Null, Json::Number))
    }

    fn visit_str<E>(self, v: &str) -> Result<Json, E> {
        Ok(Json::String(v.to_string()))
    }

    fn visit_string<E>(self, v: String) -> Result<Json, E> {
        Ok(Json::String(v))
    }

    fn visit_unit<E>(self) -> Result<Json, E> {
        Ok(Json::Null)
    }

    fn visit_none<E>(self) -> Result<Json, E> {
        Ok(Json::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Json, D::Error> {
        self.deserialize(deserializer)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Json, A::Error> {
        let mut items = Vec::new();
        loop {
            let at = Frame::Index(self.at, items.len());
            match seq.next_element_seed(TreeSeed { at: &at, duplicates: self.duplicates })? {
                Some(item) => items.push(item),
                None => return Ok(Json::Array(items)),
            }
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Json, A::Error> {
        let mut map = serde_json::Map::new();
        while let Some(key) = access.next_key::<String>()? {
            let at = Frame::Key(self.at, &key);
            let value = access.next_value_seed(TreeSeed { at: &at, duplicates: self.duplicates })?;
            if map.contains_key(&key) {
                self.duplicates.borrow_mut().push(
                    Diagnostic::new(Code::DocumentSyntax, format!("duplicate key `{key}`"))
                        .with_path(at.pointer())
                        .with_help("a key may appear only once in an object; remove or rename one of them"),
                );
            } else {
                map.insert(key, value);
            }
        }
        Ok(Json::Object(map))
    }
}

fn line_col_to_offset(text: &str, line: usize, column: usize) -> usize {
    let line_start: usize = text.split_inclusive('\n').take(line.saturating_sub(1)).map(str::len).sum();
    (line_start + column.saturating_sub(1)).min(text.len())
}

// The shape tables below describe the document format for the checker; the serde types
// in `def.rs` describe it for the typed read. The unit tests at the end of this file keep
// the two in agreement: they generate a document fragment from every table, have serde
// read it into the `def` type, and record (through a `Serializer` that sees skipped
// fields too) every key serde's derive knows for that struct or variant; then they
// check, key by key, that required, optional and nullable keys and the kinds of values
// agree. A field added to `def.rs` without a table entry, or a table key serde does not
// know, fails those tests.

/// How a key may appear in its object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Need {
    /// Present, and not null unless its value may be any JSON value.
    Required,
    /// May be absent (`#[serde(default)]`); not null.
    Default,
    /// May be absent or null (an `Option`).
    Optional,
}

/// One key of an object and the shape of its value.
struct Key {
    name: &'static str,
    child: Child,
    need: Need,
}

const fn req(name: &'static str, child: Child) -> Key {
    Key { name, child, need: Need::Required }
}

const fn dflt(name: &'static str, child: Child) -> Key {
    Key { name, child, need: Need::Default }
}

const fn opt(name: &'static str, child: Child) -> Key {
    Key { name, child, need: Need::Optional }
}

/// The expected shape of a JSON object.
struct Shape {
    /// What the object is, for messages ("inactivity trigger").
    what: &'static str,
    keys: &'static [Key],
}

impl Shape {
    fn key(&self, name: &str) -> Option<&Key> {
        self.keys.iter().find(|k| k.name == name)
    }

    fn key_names(&self) -> Vec<&'static str> {
        self.keys.iter().map(|k| k.name).collect()
    }
}

/// A closed set of string values (a serde enum).
struct Names {
    /// What one value is, for messages ("direction").
    what: &'static str,
    names: &'static [&'static str],
    code: Code,
}

/// The shape of a value.
#[derive(Clone, Copy)]
enum Child {
    /// Any JSON value.
    Any,
    Str,
    /// A whole number that fits a `u32`.
    U32,
    /// Any number.
    F64,
    Bool,
    /// One of the names.
    OneOf(&'static Names),
    /// A channel: a built-in one, or a host-defined name (whether the policy declares
    /// it is checked when the program compiles).
    Channel,
    /// A list of strings.
    Strings,
    /// An object of strings (names to type names).
    StrMap,
    /// An object of objects of strings (event types to their properties).
    EventMap,
    /// An object of numbers (score ids to weights).
    Weights,
    Object(&'static Shape),
    ListOf(&'static Shape),
    Filter,
    Actions,
    /// A decay object (`half_life`, or `step` with `every`) or a name (`"none"`).
    Decay,
    /// A repeat policy name or `{"max", "per"}`.
    Repeat,
    /// An event type's name or a trigger object.
    Trigger,
    /// A re-entry policy name or `{"after"}`.
    Reentry,
    /// A list of journey steps, each with a `type`.
    Steps,
}

static DIRECTIONS: Names =
    Names { what: "direction", names: &["up", "down", "enter", "exit"], code: Code::InvalidDocument };

static REARMS: Names =
    Names { what: "re-arm policy", names: &["once", "every_crossing"], code: Code::InvalidDocument };

static CHANNELS: Names = Names {
    what: "channel",
    names: &["email", "sms", "push", "in_app", "webhook"],
    code: Code::InvalidDocument,
};

static FILTER_OPS: Names = Names {
    what: "filter operator",
    names: &[
        "equals",
        "not_equals",
        "gt",
        "gte",
        "lt",
        "lte",
        "between",
        "in",
        "not_in",
        "is_empty",
        "is_not_empty",
        "contains",
        "starts_with",
        "ends_with",
        "matches",
        "within_last",
        "before",
        "after",
    ],
    code: Code::InvalidFilter,
};

static UPGRADES: Names =
    Names { what: "upgrade policy", names: &["finish", "move", "exit"], code: Code::InvalidDocument };

static HALF_LIFE: Shape = Shape { what: "half-life decay", keys: &[req("half_life", Child::Str)] };
static STEP: Shape = Shape {
    what: "step decay",
    keys: &[req("step", Child::F64), req("every", Child::Str), opt("zone", Child::Str)],
};

/// The object forms of a decay, each with the key that names it, in the order they are
/// told apart (`step` wins over `half_life`).
static DECAYS: &[(&str, &Shape)] = &[("step", &STEP), ("half_life", &HALF_LIFE)];

static AT_MOST: Shape = Shape {
    what: "repeat policy",
    keys: &[req("max", Child::U32), req("per", Child::Str), opt("zone", Child::Str)],
};

static ROOT: Shape = Shape {
    what: "rule set",
    keys: &[
        req("version", Child::U32),
        opt("name", Child::Str),
        req("schema", Child::Object(&SCHEMA)),
        dflt("rules", Child::ListOf(&RULE)),
        opt("scoring", Child::Object(&SCORING)),
        dflt("counters", Child::ListOf(&COUNTER)),
        dflt("segments", Child::ListOf(&SEGMENT)),
        opt("policy", Child::Object(&POLICY)),
        dflt("journeys", Child::ListOf(&JOURNEY)),
    ],
};

static CONSENT_MODELS: Names =
    Names { what: "consent model", names: &["opt_in", "opt_out"], code: Code::InvalidDocument };

static CAP_OVERS: Names =
    Names { what: "cap action", names: &["defer", "drop"], code: Code::InvalidDocument };

static CONSENT_STATUSES: Names = Names {
    what: "consent status",
    names: &["opted_in", "opted_out", "pending", "unknown"],
    code: Code::InvalidDocument,
};

static DNC_REASONS: Names = Names {
    what: "do-not-contact reason",
    names: &["unsubscribed", "hard_bounce", "spam_complaint", "invalid_address", "manual"],
    code: Code::InvalidDocument,
};

static POLICY: Shape = Shape {
    what: "policy section",
    keys: &[
        dflt("channels", Child::ListOf(&CHANNEL_POLICY)),
        opt("zone", Child::Str),
        dflt("holidays", Child::Strings),
        dflt("caps", Child::ListOf(&CAP)),
        opt("max_delay", Child::Str),
        opt("control_group", Child::Object(&CONTROL_GROUP)),
        dflt("consent_events", Child::ListOf(&CONSENT_EVENT)),
        dflt("dnc_events", Child::ListOf(&DNC_EVENT)),
        dflt("suppress", Child::ListOf(&SUPPRESSION)),
        opt("approval_expires", Child::Str),
    ],
};

static CHANNEL_POLICY: Shape = Shape {
    what: "channel policy",
    keys: &[
        req("channel", Child::Channel),
        opt("consent", Child::OneOf(&CONSENT_MODELS)),
        opt("window", Child::Object(&SEND_WINDOW)),
    ],
};

static SEND_WINDOW: Shape = Shape {
    what: "send window",
    keys: &[req("from", Child::Str), req("to", Child::Str), dflt("days", Child::Strings)],
};

static CAP: Shape = Shape {
    what: "frequency cap",
    keys: &[
        req("id", Child::Str),
        req("max", Child::U32),
        req("per", Child::Str),
        opt("channel", Child::Channel),
        opt("campaign", Child::Str),
        opt("over", Child::OneOf(&CAP_OVERS)),
    ],
};

static CONTROL_GROUP: Shape =
    Shape { what: "control group", keys: &[req("percent", Child::F64), opt("salt", Child::Str)] };

static CONSENT_EVENT: Shape = Shape {
    what: "consent event",
    keys: &[
        req("on", Child::Str),
        req("channel", Child::Channel),
        opt("purpose", Child::Str),
        req("status", Child::OneOf(&CONSENT_STATUSES)),
    ],
};

static DNC_EVENT: Shape = Shape {
    what: "do-not-contact event",
    keys: &[req("on", Child::Str), opt("channel", Child::Channel), req("reason", Child::OneOf(&DNC_REASONS))],
};

static SUPPRESSION: Shape = Shape {
    what: "suppression",
    keys: &[
        opt("list", Child::Str),
        opt("segment", Child::Str),
        opt("channel", Child::Channel),
        opt("campaign", Child::Str),
    ],
};

static JOURNEY: Shape = Shape {
    what: "journey",
    keys: &[
        req("id", Child::Str),
        dflt("version", Child::U32),
        opt("description", Child::Str),
        opt("on", Child::Trigger),
        opt("when", Child::Str),
        opt("filter", Child::Filter),
        opt("reentry", Child::Reentry),
        opt("max_active", Child::U32),
        dflt("exits", Child::ListOf(&JOURNEY_EXIT)),
        opt("goal", Child::Object(&JOURNEY_GOAL)),
        opt("seed", Child::Str),
        opt("zone", Child::Str),
        opt("start", Child::Str),
        opt("upgrade", Child::OneOf(&UPGRADES)),
        dflt("retired", Child::Bool),
        req("steps", Child::Steps),
    ],
};

static REENTRY_AFTER: Shape = Shape { what: "re-entry policy", keys: &[req("after", Child::Str)] };

static JOURNEY_EXIT: Shape = Shape {
    what: "journey exit",
    keys: &[
        req("id", Child::Str),
        opt("on", Child::Str),
        opt("when", Child::Str),
        opt("filter", Child::Filter),
    ],
};

static JOURNEY_GOAL: Shape = Shape {
    what: "journey goal",
    keys: &[opt("on", Child::Str), opt("when", Child::Str), opt("filter", Child::Filter)],
};

static BRANCH_CASE: Shape = Shape {
    what: "branch case",
    keys: &[opt("when", Child::Str), opt("filter", Child::Filter), opt("next", Child::Str)],
};

static SPLIT_ARM: Shape = Shape {
    what: "split arm",
    keys: &[req("id", Child::Str), req("weight", Child::F64), opt("next", Child::Str)],
};

static HOLDOUT: Shape = Shape { what: "holdout", keys: &[req("weight", Child::F64), req("for", Child::Str)] };

macro_rules! step {
    ($name:literal, $($key:expr),* $(,)?) => {
        ($name, &Shape { what: concat!("`", $name, "` step"), keys: &[$($key),*] })
    };
}

/// Journey step types and their keys (besides `type`).
static STEPS: &[(&str, &Shape)] = &[
    step!("action", req("id", Child::Str), req("actions", Child::Actions), opt("next", Child::Str)),
    step!(
        "wait",
        req("id", Child::Str),
        opt("for", Child::Str),
        opt("at", Child::Str),
        dflt("days", Child::Strings),
        opt("zone", Child::Str),
        opt("date", Child::Str),
        opt("offset", Child::Str),
        opt("next", Child::Str)
    ),
    step!(
        "wait_for",
        req("id", Child::Str),
        opt("on", Child::Str),
        opt("when", Child::Str),
        opt("filter", Child::Filter),
        opt("timeout", Child::Str),
        opt("next", Child::Str),
        opt("on_timeout", Child::Str)
    ),
    step!(
        "branch",
        req("id", Child::Str),
        req("cases", Child::ListOf(&BRANCH_CASE)),
        opt("else", Child::Str)
    ),
    step!(
        "split",
        req("id", Child::Str),
        req("arms", Child::ListOf(&SPLIT_ARM)),
        opt("holdout", Child::Object(&HOLDOUT))
    ),
    step!("goto", req("id", Child::Str), req("to", Child::Str)),
    step!("exit", req("id", Child::Str)),
];

static STEP_TYPES: Names = Names {
    what: "step type",
    names: &["action", "wait", "wait_for", "branch", "split", "goto", "exit"],
    code: Code::InvalidDocument,
};

static COUNTER: Shape = Shape {
    what: "counter",
    keys: &[
        req("id", Child::Str),
        req("on", Child::Str),
        opt("when", Child::Str),
        opt("filter", Child::Filter),
        req("window", Child::Str),
        opt("max", Child::U32),
    ],
};

static SCORING: Shape = Shape { what: "scoring section", keys: &[dflt("models", Child::ListOf(&MODEL))] };

static MODEL: Shape = Shape {
    what: "score model",
    keys: &[
        req("id", Child::Str),
        opt("cap", Child::F64),
        opt("floor", Child::F64),
        opt("decay", Child::Decay),
        opt("timeframe", Child::Str),
        opt("combine", Child::Weights),
        dflt("groups", Child::ListOf(&GROUP)),
        dflt("rules", Child::ListOf(&POINT_RULE)),
        dflt("thresholds", Child::ListOf(&THRESHOLD)),
        dflt("bands", Child::ListOf(&BAND)),
    ],
};

static GROUP: Shape = Shape {
    what: "score group",
    keys: &[
        req("id", Child::Str),
        opt("cap", Child::F64),
        opt("floor", Child::F64),
        opt("decay", Child::Decay),
        opt("timeframe", Child::Str),
    ],
};

static POINT_RULE: Shape = Shape {
    what: "point rule",
    keys: &[
        req("id", Child::Str),
        opt("on", Child::Str),
        opt("when", Child::Str),
        opt("filter", Child::Filter),
        opt("fit", Child::Str),
        req("points", Child::F64),
        opt("group", Child::Str),
        opt("repeat", Child::Repeat),
        opt("min_interval", Child::Str),
    ],
};

static THRESHOLD: Shape = Shape {
    what: "threshold",
    keys: &[
        req("id", Child::Str),
        req("enter", Child::F64),
        opt("exit", Child::F64),
        opt("rearm", Child::OneOf(&REARMS)),
    ],
};

static BAND: Shape = Shape {
    what: "band",
    keys: &[req("name", Child::Str), req("from", Child::F64), opt("leave", Child::F64)],
};

static SCHEMA: Shape = Shape {
    what: "schema",
    keys: &[
        dflt("contact", Child::StrMap),
        dflt("events", Child::EventMap),
        dflt("scores", Child::Strings),
        dflt("keys", Child::StrMap),
    ],
};

static RULE: Shape = Shape {
    what: "rule",
    keys: &[
        req("id", Child::Str),
        opt("description", Child::Str),
        req("on", Child::Trigger),
        opt("when", Child::Str),
        opt("filter", Child::Filter),
        dflt("actions", Child::Actions),
        opt("repeat", Child::Repeat),
        dflt("enabled", Child::Bool),
    ],
};

static SEGMENT: Shape = Shape {
    what: "segment",
    keys: &[
        req("id", Child::Str),
        opt("description", Child::Str),
        opt("when", Child::Str),
        opt("filter", Child::Filter),
    ],
};

static THRESHOLD_TRIGGER: Shape = Shape {
    what: "threshold trigger",
    keys: &[
        req("score", Child::Str),
        req("threshold", Child::Str),
        dflt("direction", Child::OneOf(&DIRECTIONS)),
    ],
};
static BAND_TRIGGER: Shape = Shape {
    what: "band trigger",
    keys: &[req("score", Child::Str), req("band", Child::Str), dflt("direction", Child::OneOf(&DIRECTIONS))],
};
static SEGMENT_TRIGGER: Shape = Shape {
    what: "segment trigger",
    keys: &[req("segment", Child::Str), dflt("direction", Child::OneOf(&DIRECTIONS))],
};
static ATTRIBUTE_TRIGGER: Shape = Shape {
    what: "attribute trigger",
    keys: &[req("attribute", Child::Str), opt("from", Child::Any), opt("to", Child::Any)],
};
static TAG_TRIGGER: Shape = Shape {
    what: "tag trigger",
    keys: &[req("tag", Child::Str), dflt("direction", Child::OneOf(&DIRECTIONS))],
};
static LIST_TRIGGER: Shape = Shape {
    what: "list trigger",
    keys: &[req("list", Child::Str), dflt("direction", Child::OneOf(&DIRECTIONS))],
};
static STAGE_TRIGGER: Shape = Shape {
    what: "stage trigger",
    keys: &[req("stage", Child::Str), dflt("direction", Child::OneOf(&DIRECTIONS))],
};
static OWNER_TRIGGER: Shape = Shape {
    what: "owner trigger",
    keys: &[req("owner", Child::Str), dflt("direction", Child::OneOf(&DIRECTIONS))],
};
static INACTIVITY_TRIGGER: Shape =
    Shape { what: "inactivity trigger", keys: &[req("inactive", Child::Str), req("for", Child::Str)] };
static DATE_TRIGGER: Shape = Shape {
    what: "date trigger",
    keys: &[
        req("date", Child::Str),
        opt("offset", Child::Str),
        opt("at", Child::Str),
        opt("zone", Child::Str),
        dflt("every_year", Child::Bool),
    ],
};
static SCHEDULE_TRIGGER: Shape = Shape {
    what: "schedule trigger",
    keys: &[
        req("schedule", Child::Str),
        opt("at", Child::Str),
        opt("weekday", Child::Str),
        opt("day", Child::U32),
        opt("zone", Child::Str),
    ],
};

/// The object forms of a trigger, each with the key that names it, in the order they are
/// told apart.
static TRIGGERS: &[(&str, &Shape)] = &[
    ("threshold", &THRESHOLD_TRIGGER),
    ("band", &BAND_TRIGGER),
    ("segment", &SEGMENT_TRIGGER),
    ("attribute", &ATTRIBUTE_TRIGGER),
    ("tag", &TAG_TRIGGER),
    ("list", &LIST_TRIGGER),
    ("stage", &STAGE_TRIGGER),
    ("owner", &OWNER_TRIGGER),
    ("inactive", &INACTIVITY_TRIGGER),
    ("date", &DATE_TRIGGER),
    ("schedule", &SCHEDULE_TRIGGER),
];

static FILTER_TEST: Shape = Shape {
    what: "filter test",
    keys: &[req("field", Child::Str), req("op", Child::OneOf(&FILTER_OPS)), opt("value", Child::Any)],
};

/// The keys that make a filter a group rather than a test.
const FILTER_GROUPS: [&str; 3] = ["all", "any", "not"];

/// An action's shape: its own keys, and `needs_approval`, which every action takes.
macro_rules! action {
    ($name:literal, $($key:expr),* $(,)?) => {
        (
            $name,
            &Shape {
                what: concat!("`", $name, "` action"),
                keys: &[$($key,)* dflt("needs_approval", Child::Bool)],
            },
        )
    };
}

/// Action types and their keys (besides `type`).
static ACTIONS: &[(&str, &Shape)] = &[
    action!(
        "send",
        req("channel", Child::Channel),
        req("template", Child::Str),
        opt("purpose", Child::Str),
        opt("campaign", Child::Str),
        opt("priority", Child::U32),
        dflt("params", Child::StrMap)
    ),
    action!("set_attribute", req("field", Child::Str), dflt("value", Child::Any), opt("expr", Child::Str)),
    action!("clear_attribute", req("field", Child::Str)),
    action!("add_tag", req("tag", Child::Str)),
    action!("remove_tag", req("tag", Child::Str)),
    action!("add_to_list", req("list", Child::Str)),
    action!("remove_from_list", req("list", Child::Str)),
    action!("set_lifecycle_stage", req("stage", Child::Str)),
    action!("adjust_score", req("score", Child::Str), req("points", Child::F64), opt("group", Child::Str)),
    action!("notify_owner", req("message", Child::Str)),
    action!("assign_owner", req("owner", Child::Str)),
    action!("crm_write", req("field", Child::Str), req("value", Child::Any)),
    action!("enroll_journey", req("journey", Child::Str)),
    action!("remove_from_journey", req("journey", Child::Str)),
    action!(
        "set_consent",
        req("channel", Child::Channel),
        opt("purpose", Child::Str),
        req("status", Child::OneOf(&CONSENT_STATUSES))
    ),
    action!("do_not_contact", opt("channel", Child::Channel), req("reason", Child::OneOf(&DNC_REASONS))),
    action!("clear_do_not_contact", opt("channel", Child::Channel)),
];

static ACTION_TYPES: Names = Names {
    what: "action type",
    names: &[
        "send",
        "set_attribute",
        "clear_attribute",
        "add_tag",
        "remove_tag",
        "add_to_list",
        "remove_from_list",
        "set_lifecycle_stage",
        "adjust_score",
        "notify_owner",
        "assign_owner",
        "crm_write",
        "enroll_journey",
        "remove_from_journey",
        "set_consent",
        "do_not_contact",
        "clear_do_not_contact",
    ],
    code: Code::InvalidDocument,
};

/// `"/"` for the document itself, else the pointer.
fn at(path: &str) -> String {
    if path.is_empty() {
        "/".to_string()
    } else {
        path.to_string()
    }
}

fn unknown_key(key: &str, allowed: &[&str], what: &str, path: &str) -> Diagnostic {
    Diagnostic::new(Code::UnknownKey, format!("unknown key `{key}` in {what}"))
        .with_path(format!("{path}/{}", pointer_escape(key)))
        .with_did_you_mean(did_you_mean(key, allowed.iter().copied()))
        .with_help(format!("the keys of {} {what} are: {}", article(what), allowed.join(", ")))
}

fn missing_key(key: &str, what: &str, path: &str) -> Diagnostic {
    Diagnostic::new(Code::InvalidDocument, format!("missing key `{key}` in {what}"))
        .with_path(at(path))
        .with_help(format!("add `{key}` to the {what}"))
}

/// A short description of a JSON value for messages: `the string "yes"`, `a list`.
fn describe(value: &Json) -> String {
    match value {
        Json::Null => "null".to_string(),
        Json::Bool(b) => format!("`{b}`"),
        Json::Number(n) => format!("the number {n}"),
        Json::String(s) => {
            let mut shown: String = s.chars().take(40).collect();
            if shown.len() < s.len() {
                shown.push_str("...");
            }
            format!("the string {}", Json::String(shown))
        }
        Json::Array(_) => "a list".to_string(),
        Json::Object(_) => "an object".to_string(),
    }
}

/// A value of the wrong kind: what was expected, what was found, and how to write it.
fn wrong(expected: &str, value: &Json, path: &str, help: impl Into<String>) -> Diagnostic {
    Diagnostic::new(Code::InvalidDocument, format!("expected {expected}, found {}", describe(value)))
        .with_path(at(path))
        .with_help(help)
}

fn check_shape(value: &mut Json, shape: &Shape, path: &str, diagnostics: &mut Vec<Diagnostic>) {
    check_shape_with(value, shape, path, &[], diagnostics);
}

/// Checks an object against its shape. Keys in `also` are offered as suggestions for an
/// unknown key besides the shape's own (the keys of the object's other forms).
fn check_shape_with(
    value: &mut Json,
    shape: &Shape,
    path: &str,
    also: &[&str],
    diagnostics: &mut Vec<Diagnostic>,
) {
    let Json::Object(map) = value else {
        let what = shape.what;
        diagnostics.push(wrong(
            &format!("{} {what} (an object)", article(what)),
            value,
            path,
            format!("write the {what} as an object with the keys: {}", shape.key_names().join(", ")),
        ));
        return;
    };
    let allowed = shape.key_names();
    let mut suggestable = allowed.clone();
    suggestable.extend(also.iter().copied().filter(|k| !allowed.contains(k)));
    let mut unknown = Vec::new();
    let mut suggested = Vec::new();
    for (key, child) in map.iter_mut() {
        match shape.key(key) {
            None => {
                let mut d = unknown_key(key, &allowed, shape.what, path);
                d.did_you_mean = did_you_mean(key, suggestable.iter().copied());
                suggested.extend(d.did_you_mean.clone());
                diagnostics.push(d);
                unknown.push(key.clone());
            }
            Some(k) => {
                let child_path = format!("{path}/{}", pointer_escape(key));
                if child.is_null() && (k.need == Need::Optional || matches!(k.child, Child::Any)) {
                    continue;
                }
                check_child(child, k.child, &child_path, diagnostics);
            }
        }
    }
    for key in unknown {
        map.shift_remove(&key);
    }
    for key in shape.keys.iter().filter(|k| k.need == Need::Required) {
        // A misspelling of the key was reported with its suggestion already.
        if !map.contains_key(key.name) && !suggested.iter().any(|s| s == key.name) {
            diagnostics.push(missing_key(key.name, shape.what, path));
        }
    }
}

/// The key of a value's path: the last segment of the pointer.
fn last_key(path: &str) -> &str {
    path.rsplit_once('/').map_or(path, |(_, last)| last)
}

fn check_child(value: &mut Json, kind: Child, path: &str, diagnostics: &mut Vec<Diagnostic>) {
    let key = last_key(path);
    match kind {
        Child::Any => {}
        Child::Str => {
            if !value.is_string() {
                diagnostics.push(wrong(
                    "a string",
                    value,
                    path,
                    format!("`{key}` takes text: write it in double quotes"),
                ));
            }
        }
        Child::U32 => {
            if value.as_u64().is_none_or(|n| u32::try_from(n).is_err()) {
                diagnostics.push(wrong(
                    "a whole number from 0 to 4294967295",
                    value,
                    path,
                    format!("`{key}` takes a whole number, written without quotes, such as 3"),
                ));
            }
        }
        Child::F64 => {
            if !value.is_number() {
                diagnostics.push(wrong(
                    "a number",
                    value,
                    path,
                    format!("`{key}` takes a number, written without quotes, such as 10 or -2.5"),
                ));
            }
        }
        Child::Bool => {
            if !value.is_boolean() {
                diagnostics.push(wrong(
                    "true or false",
                    value,
                    path,
                    format!("`{key}` takes `true` or `false`, written without quotes"),
                ));
            }
        }
        Child::OneOf(names) => check_name(value, names, path, diagnostics),
        Child::Channel => check_channel(value, path, diagnostics),
        Child::Strings => match value {
            Json::Array(items) => {
                for (i, item) in items.iter_mut().enumerate() {
                    check_child(item, Child::Str, &format!("{path}/{i}"), diagnostics);
                }
            }
            _ => diagnostics.push(wrong(
                "a list of strings",
                value,
                path,
                format!("write `{key}` as a list such as [\"engagement\"]"),
            )),
        },
        Child::StrMap => check_map(value, Child::Str, "type names", path, diagnostics),
        Child::EventMap => check_map(value, Child::StrMap, "objects of property types", path, diagnostics),
        Child::Weights => check_map(value, Child::F64, "numbers", path, diagnostics),
        Child::Object(shape) => check_shape(value, shape, path, diagnostics),
        Child::ListOf(shape) => match value {
            Json::Array(items) => {
                for (i, item) in items.iter_mut().enumerate() {
                    check_shape(item, shape, &format!("{path}/{i}"), diagnostics);
                }
            }
            _ => diagnostics.push(wrong(
                &format!("a list of {}s", shape.what),
                value,
                path,
                format!("write `{key}` as a list of objects, even for one {}", shape.what),
            )),
        },
        Child::Filter => check_filter(value, path, diagnostics),
        Child::Decay => match value {
            Json::String(_) => {}
            Json::Object(_) => check_form(value, DECAYS, "decay", DECAY_HELP, path, diagnostics),
            _ => diagnostics.push(wrong("a decay (an object or \"none\")", value, path, DECAY_HELP)),
        },
        Child::Trigger => match value {
            Json::String(_) => {}
            Json::Object(_) => check_form(value, TRIGGERS, "trigger", &trigger_help(), path, diagnostics),
            _ => diagnostics.push(wrong(
                "a trigger (an event type's name or an object)",
                value,
                path,
                trigger_help(),
            )),
        },
        Child::Repeat => match value {
            Json::Object(_) => check_shape(value, &AT_MOST, path, diagnostics),
            Json::String(_) => {}
            _ => diagnostics.push(wrong(
                "a repeat policy (a name or an object)",
                value,
                path,
                "write \"every_time\", \"once\", or an object such as {\"max\": 3, \"per\": \"1d\"}",
            )),
        },
        Child::Reentry => match value {
            Json::Object(_) => check_shape(value, &REENTRY_AFTER, path, diagnostics),
            Json::String(_) => {}
            _ => diagnostics.push(wrong(
                "a re-entry policy (a name or an object)",
                value,
                path,
                "write \"never\", \"always\", \"once_per_version\", or an object such as {\"after\": \"30d\"}",
            )),
        },
        Child::Steps => match value {
            Json::Array(items) => {
                for (i, item) in items.iter_mut().enumerate() {
                    check_tagged(item, STEPS, &STEP_TYPES, "step", &format!("{path}/{i}"), diagnostics);
                }
            }
            _ => diagnostics.push(wrong(
                "a list of steps",
                value,
                path,
                "write `steps` as a list of objects, each with an `id` and a `type`",
            )),
        },
        Child::Actions => match value {
            Json::Array(items) => {
                for (i, item) in items.iter_mut().enumerate() {
                    check_action(item, &format!("{path}/{i}"), diagnostics);
                }
            }
            _ => diagnostics.push(wrong(
                "a list of actions",
                value,
                path,
                "write `actions` as a list of objects, each with a `type`",
            )),
        },
    }
}

const DECAY_HELP: &str = "write {\"half_life\": \"30d\"}, {\"step\": 0.25, \"every\": \"30d\"}, or \"none\"";

fn trigger_help() -> String {
    let forms: Vec<String> = TRIGGERS
        .iter()
        .map(|(_, shape)| {
            let required: Vec<String> = shape
                .keys
                .iter()
                .filter(|k| k.need == Need::Required)
                .map(|k| format!("`{}`", k.name))
                .collect();
            required.join(" and ")
        })
        .collect();
    format!("write an event type's name, or an object with {}", forms.join(", or "))
}

fn check_map(value: &mut Json, of: Child, what: &str, path: &str, diagnostics: &mut Vec<Diagnostic>) {
    match value {
        Json::Object(map) => {
            for (name, item) in map.iter_mut() {
                check_child(item, of, &format!("{path}/{}", pointer_escape(name)), diagnostics);
            }
        }
        _ => {
            let key = last_key(path);
            diagnostics.push(wrong(
                &format!("an object of names and {what}"),
                value,
                path,
                format!("write `{key}` as an object, such as {{\"name\": ...}}"),
            ));
        }
    }
}

/// A value from a closed set of names.
fn check_name(value: &Json, names: &Names, path: &str, diagnostics: &mut Vec<Diagnostic>) {
    let what = names.what;
    let help = format!("{} {what} is one of: {}", article(what), names.names.join(", "));
    match value.as_str() {
        Some(name) if names.names.contains(&name) => {}
        Some(name) => diagnostics.push(
            Diagnostic::new(names.code, format!("unknown {what} `{name}`"))
                .with_path(at(path))
                .with_did_you_mean(did_you_mean(name, names.names.iter().copied()))
                .with_help(help),
        ),
        None => {
            let mut d = wrong(&format!("{} {what} (a string)", article(what)), value, path, help);
            d.code = names.code;
            diagnostics.push(d);
        }
    }
}

/// Checks a channel's name: a built-in channel, or a name a host-defined channel can
/// have.
fn check_channel(value: &Json, path: &str, diagnostics: &mut Vec<Diagnostic>) {
    let help = format!(
        "a channel is one of: {}, or a channel of your own declared in `policy.channels` \
         (lowercase letters, digits and `_`)",
        CHANNELS.names.join(", ")
    );
    match value.as_str() {
        Some(name) => {
            if let Err(error) = name.parse::<crate::def::Channel>() {
                diagnostics.push(
                    Diagnostic::new(CHANNELS.code, error.to_string())
                        .with_path(at(path))
                        .with_did_you_mean(did_you_mean(name, CHANNELS.names.iter().copied()))
                        .with_help(help),
                );
            }
        }
        None => {
            let mut d = wrong("a channel (a string)", value, path, help);
            d.code = CHANNELS.code;
            diagnostics.push(d);
        }
    }
}

/// Checks an object that has several forms, each named by a key (`threshold`, `date`,
/// ...): by the naming key present; failing that, by a key that is a misspelling of
/// one; failing that, by the only form that shares keys with the object.
fn check_form(
    value: &mut Json,
    forms: &[(&str, &'static Shape)],
    what: &str,
    help: &str,
    path: &str,
    diagnostics: &mut Vec<Diagnostic>,
) {
    let Json::Object(map) = &*value else { return };
    let naming: Vec<&str> = forms.iter().map(|(k, _)| *k).collect();
    let chosen = forms
        .iter()
        .find(|(k, _)| map.contains_key(*k))
        .or_else(|| {
            map.keys().find_map(|key| {
                let close = did_you_mean(key, naming.iter().copied())?;
                forms.iter().find(|(k, _)| *k == close)
            })
        })
        .or_else(|| {
            let shared = |shape: &Shape| map.keys().filter(|k| shape.key(k).is_some()).count();
            let best = forms.iter().map(|(_, s)| shared(s)).max().unwrap_or(0);
            let mut sharing = forms.iter().filter(|(_, s)| best > 0 && shared(s) == best);
            match (sharing.next(), sharing.next()) {
                (Some(only), None) => Some(only),
                _ => None,
            }
        });
    match chosen {
        Some((_, shape)) => check_shape_with(value, shape, path, &naming, diagnostics),
        None => diagnostics.push(
            Diagnostic::new(
                Code::InvalidDocument,
                format!("{} {what} object names no {what}", article(what)),
            )
            .with_path(at(path))
            .with_help(help.to_string()),
        ),
    }
}

fn check_filter(value: &mut Json, path: &str, diagnostics: &mut Vec<Diagnostic>) {
    const FILTER_HELP: &str = "a filter is {\"all\": [...]}, {\"any\": [...]}, {\"not\": {...}}, or a test \
                               such as {\"field\": \"contact.country\", \"op\": \"equals\", \"value\": \"US\"}";
    let Json::Object(map) = value else {
        diagnostics.push(wrong("a filter (an object)", value, path, FILTER_HELP));
        return;
    };
    let single = map.len() == 1;
    for group in ["all", "any"] {
        if let Some(children) = map.get_mut(group) {
            if !single {
                diagnostics.push(
                    Diagnostic::new(
                        Code::InvalidFilter,
                        format!("`{group}` must be the only key of its object"),
                    )
                    .with_path(at(path))
                    .with_help(format!("move the other keys into a test inside the `{group}` list")),
                );
            }
            match children {
                Json::Array(items) => {
                    for (i, item) in items.iter_mut().enumerate() {
                        check_filter(item, &format!("{path}/{group}/{i}"), diagnostics);
                    }
                }
                _ => diagnostics.push(wrong(
                    "a list of filters",
                    children,
                    &format!("{path}/{group}"),
                    format!("write `{group}` as a list of filters, even for one"),
                )),
            }
            return;
        }
    }
    if let Some(child) = map.get_mut("not") {
        if !single {
            diagnostics.push(
                Diagnostic::new(Code::InvalidFilter, "`not` must be the only key of its object")
                    .with_path(at(path))
                    .with_help("move the other keys into the filter inside `not`"),
            );
        }
        check_filter(child, &format!("{path}/not"), diagnostics);
        return;
    }
    // A misspelled group (`{"al": [...]}`) rather than a test with a stray key.
    if map.keys().all(|k| FILTER_TEST.key(k).is_none()) {
        if let Some(key) = map.keys().find(|k| did_you_mean(k, FILTER_GROUPS).is_some()) {
            diagnostics.push(
                unknown_key(key, &FILTER_GROUPS, "filter", path)
                    .with_did_you_mean(did_you_mean(key, FILTER_GROUPS))
                    .with_help(FILTER_HELP),
            );
            return;
        }
    }
    check_shape_with(value, &FILTER_TEST, path, &FILTER_GROUPS, diagnostics);
}

fn check_action(value: &mut Json, path: &str, diagnostics: &mut Vec<Diagnostic>) {
    check_tagged(value, ACTIONS, &ACTION_TYPES, "action", path, diagnostics);
}

/// Checks an object tagged by its `type` (an action, a journey step) against the form
/// its type names.
fn check_tagged(
    value: &mut Json,
    forms: &[(&str, &'static Shape)],
    types: &Names,
    noun: &str,
    path: &str,
    diagnostics: &mut Vec<Diagnostic>,
) {
    let types_help = format!("the {noun} types are: {}", types.names.join(", "));
    let Json::Object(map) = value else {
        diagnostics.push(wrong(
            &format!("{} {noun} (an object)", article(noun)),
            value,
            path,
            format!("write {} {noun} as an object with a `type`; {types_help}", article(noun)),
        ));
        return;
    };
    let Some(kind) = map.get("type") else {
        let misspelled = map.keys().find(|k| did_you_mean(k, ["type"]).is_some());
        diagnostics.push(match misspelled {
            Some(key) => unknown_key(key, &["type"], noun, path)
                .with_did_you_mean(Some("type".to_string()))
                .with_help(types_help),
            None => missing_key("type", noun, path).with_help(types_help),
        });
        return;
    };
    let Some((_, shape)) = forms.iter().find(|(n, _)| Some(*n) == kind.as_str()) else {
        check_name(kind, types, &format!("{path}/type"), diagnostics);
        return;
    };
    let what = shape.what;
    let mut allowed: Vec<&str> = vec!["type"];
    allowed.extend(shape.key_names());
    let unknown: Vec<String> = map.keys().filter(|k| !allowed.contains(&k.as_str())).cloned().collect();
    for key in unknown {
        diagnostics.push(unknown_key(&key, &allowed, what, path));
        map.shift_remove(&key);
    }
    // The rest of the object is checked as the action type's shape, without its tag.
    let index = map.keys().position(|k| k == "type");
    let tag = map.shift_remove("type");
    check_shape(value, shape, path, diagnostics);
    if let (Some(index), Some(tag), Json::Object(map)) = (index, tag, value) {
        map.shift_insert(index, "type".to_string(), tag);
    }
}

/// Builds the schema from its document section, recording problems.
pub(crate) fn schema_from_def(def: &SchemaDef, diagnostics: &mut Vec<Diagnostic>) -> Schema {
    let type_names = ["bool", "int", "double", "string", "timestamp", "duration", "dyn", "list(", "map("];
    let mut parse = |text: &str, path: String| match Type::parse(text) {
        Some(t) => t,
        None => {
            diagnostics.push(
                Diagnostic::new(Code::InvalidDocument, format!("unknown type `{text}`"))
                    .with_path(path)
                    .with_did_you_mean(did_you_mean(text, type_names.iter().copied()))
                    .with_help(
                        "types are bool, int, double, string, timestamp, duration, list(T), map(K, V), dyn",
                    ),
            );
            Type::Dyn
        }
    };
    let mut builder = Schema::builder();
    for (name, ty) in &def.contact {
        let t = parse(ty, format!("/schema/contact/{}", pointer_escape(name)));
        builder = builder.contact_field(name.clone(), t);
    }
    for (event, props) in &def.events {
        let mut fields = Vec::new();
        for (name, ty) in props {
            let t = parse(ty, format!("/schema/events/{}/{}", pointer_escape(event), pointer_escape(name)));
            fields.push((name.clone(), t));
        }
        builder = builder.event_type(event.clone(), fields);
    }
    match builder.build() {
        Ok(schema) => schema,
        Err(e) => {
            diagnostics.extend(e.diagnostics);
            Schema::default()
        }
    }
}

/// Converts JSON to a value of the declared type; `None` when it does not fit.
pub(crate) fn json_to_value(value: &Json, ty: &Type) -> Option<Value> {
    Some(match (value, ty) {
        (Json::Null, _) => Value::Null,
        (Json::Bool(b), Type::Bool | Type::Dyn) => Value::Bool(*b),
        (Json::Number(n), Type::Int) => Value::Int(n.as_i64()?),
        (Json::Number(n), Type::Double) => Value::Double(n.as_f64()?),
        (Json::Number(n), Type::Dyn) => match n.as_i64() {
            Some(i) => Value::Int(i),
            None => Value::Double(n.as_f64()?),
        },
        (Json::String(s), Type::String | Type::Dyn) => Value::string(s),
        (Json::String(s), Type::Timestamp) => Value::Timestamp(crate::time::Timestamp::parse(s).ok()?),
        (Json::String(s), Type::Duration) => Value::Duration(crate::time::Duration::parse(s).ok()?),
        (Json::Array(items), Type::List(elem)) => {
            Value::List(items.iter().map(|v| json_to_value(v, elem)).collect::<Option<Vec<_>>>()?.into())
        }
        (Json::Array(items), Type::Dyn) => Value::List(
            items.iter().map(|v| json_to_value(v, &Type::Dyn)).collect::<Option<Vec<_>>>()?.into(),
        ),
        (Json::Object(obj), Type::Map(k, v)) if matches!(**k, Type::String | Type::Dyn) => {
            let mut map = Map::new();
            for (key, val) in obj {
                map.insert(Value::string(key), json_to_value(val, v)?);
            }
            Value::Map(Arc::new(map))
        }
        (Json::Object(obj), Type::Dyn) => {
            let mut map = Map::new();
            for (key, val) in obj {
                map.insert(Value::string(key), json_to_value(val, &Type::Dyn)?);
            }
            Value::Map(Arc::new(map))
        }
        _ => return None,
    })
}

/// The shape tables agree with the serde types of `def.rs`, key by key.
///
/// How: every table form is turned into a document fragment (a sample value for each
/// key), which serde must read into the `def` type and variant the table stands for.
/// Serde's own list of that struct's or variant's keys is then recorded by serializing
/// what it read through [`KeyRecorder`] (serde's derive reports skipped fields to
/// `skip_field`, so optional keys are seen even when absent) and compared with the
/// table. Then each key in turn is removed, set to null and set to values of the wrong
/// kind, and serde and the checker must agree on whether the fragment is valid. String
/// values from closed sets are compared with serde's variant names (aliases included),
/// read from the `unknown_variant` error of a probing error type. Untagged enums list no
/// variants at run time, so the `*_form` functions below match every variant
/// exhaustively: a new variant does not compile until it is mapped to a table form.
#[cfg(test)]
mod tests {
    use std::fmt;

    use serde::de::value::{MapDeserializer, StrDeserializer};
    use serde::de::{DeserializeOwned, IntoDeserializer};
    use serde::ser::{self, Impossible, Serialize, SerializeStruct, SerializeStructVariant, Serializer};
    use serde_json::json;

    use super::*;
    use crate::def::{
        ActionDef, BandDef, Channel, CounterDoc, DecayDef, Direction, FilterDef, FilterOp, GroupDef,
        PointRuleDef, RepeatDef, RuleDef, ScoreModelDef, ScoringDef, SegmentDef, ThresholdDef, TriggerDef,
    };
    use crate::def::{
        BranchCaseDef, CapDef, CapOver, ChannelPolicyDef, ConsentEventDef, ConsentModel, ConsentStatus,
        ControlGroupDef, DncEventDef, DncReason, HoldoutDef, JourneyDef, JourneyExitDef, JourneyGoalDef,
        PolicyDef, ReentryDef, SendWindowDef, SplitArmDef, StepDef, SuppressionDef,
    };

    /// An error that keeps the names serde expected when it met an unknown variant.
    #[derive(Debug)]
    struct Probe {
        expected: Vec<&'static str>,
        message: String,
    }

    impl fmt::Display for Probe {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(&self.message)
        }
    }

    impl std::error::Error for Probe {}

    impl serde::de::Error for Probe {
        fn custom<T: fmt::Display>(message: T) -> Probe {
            Probe { expected: Vec::new(), message: message.to_string() }
        }

        fn unknown_variant(variant: &str, expected: &'static [&'static str]) -> Probe {
            Probe { expected: expected.to_vec(), message: format!("unknown variant {variant:?}") }
        }
    }

    impl ser::Error for Probe {
        fn custom<T: fmt::Display>(message: T) -> Probe {
            Probe { expected: Vec::new(), message: message.to_string() }
        }
    }

    fn sorted(mut names: Vec<&'static str>) -> Vec<&'static str> {
        names.sort_unstable();
        names
    }

    /// The names serde accepts for a string-valued enum, aliases included.
    fn serde_variants<T: DeserializeOwned>() -> Vec<&'static str> {
        let probe: StrDeserializer<'_, Probe> = "\u{0}".into_deserializer();
        match T::deserialize(probe) {
            Ok(_) => panic!("the probe name was accepted"),
            Err(e) => sorted(e.expected),
        }
    }

    /// Records the keys serde's derive writes for a struct or struct variant, skipped
    /// ones included, without serializing the values.
    struct KeyRecorder;

    struct Keys(Vec<String>);

    fn not_a_struct() -> Result<Vec<String>, Probe> {
        Err(ser::Error::custom("not a struct"))
    }

    impl Serializer for KeyRecorder {
        type Ok = Vec<String>;
        type Error = Probe;
        type SerializeSeq = Impossible<Self::Ok, Probe>;
        type SerializeTuple = Impossible<Self::Ok, Probe>;
        type SerializeTupleStruct = Impossible<Self::Ok, Probe>;
        type SerializeTupleVariant = Impossible<Self::Ok, Probe>;
        type SerializeMap = Keys;
        type SerializeStruct = Keys;
        type SerializeStructVariant = Keys;

        fn serialize_bool(self, _: bool) -> Result<Self::Ok, Probe> {
            not_a_struct()
        }
        fn serialize_i8(self, _: i8) -> Result<Self::Ok, Probe> {
            not_a_struct()
        }
        fn serialize_i16(self, _: i16) -> Result<Self::Ok, Probe> {
            not_a_struct()
        }
        fn serialize_i32(self, _: i32) -> Result<Self::Ok, Probe> {
            not_a_struct()
        }
        fn serialize_i64(self, _: i64) -> Result<Self::Ok, Probe> {
            not_a_struct()
        }
        fn serialize_u8(self, _: u8) -> Result<Self::Ok, Probe> {
            not_a_struct()
        }
        fn serialize_u16(self, _: u16) -> Result<Self::Ok, Probe> {
            not_a_struct()
        }
        fn serialize_u32(self, _: u32) -> Result<Self::Ok, Probe> {
            not_a_struct()
        }
        fn serialize_u64(self, _: u64) -> Result<Self::Ok, Probe> {
            not_a_struct()
        }
        fn serialize_f32(self, _: f32) -> Result<Self::Ok, Probe> {
            not_a_struct()
        }
        fn serialize_f64(self, _: f64) -> Result<Self::Ok, Probe> {
            not_a_struct()
        }
        fn serialize_char(self, _: char) -> Result<Self::Ok, Probe> {
            not_a_struct()
        }
        fn serialize_str(self, _: &str) -> Result<Self::Ok, Probe> {
            not_a_struct()
        }
        fn serialize_bytes(self, _: &[u8]) -> Result<Self::Ok, Probe> {
            not_a_struct()
        }
        fn serialize_none(self) -> Result<Self::Ok, Probe> {
            not_a_struct()
        }
        fn serialize_some<T: ?Sized + Serialize>(self, _: &T) -> Result<Self::Ok, Probe> {
            not_a_struct()
        }
        fn serialize_unit(self) -> Result<Self::Ok, Probe> {
            not_a_struct()
        }
        fn serialize_unit_struct(self, _: &'static str) -> Result<Self::Ok, Probe> {
            not_a_struct()
        }
        fn serialize_unit_variant(self, _: &'static str, _: u32, _: &'static str) -> Result<Self::Ok, Probe> {
            not_a_struct()
        }
        fn serialize_newtype_struct<T: ?Sized + Serialize>(
            self,
            _: &'static str,
            value: &T,
        ) -> Result<Self::Ok, Probe> {
            value.serialize(self)
        }
        fn serialize_newtype_variant<T: ?Sized + Serialize>(
            self,
            _: &'static str,
            _: u32,
            _: &'static str,
            _: &T,
        ) -> Result<Self::Ok, Probe> {
            not_a_struct()
        }
        fn serialize_seq(self, _: Option<usize>) -> Result<Self::SerializeSeq, Probe> {
            Err(ser::Error::custom("not a struct"))
        }
        fn serialize_tuple(self, _: usize) -> Result<Self::SerializeTuple, Probe> {
            Err(ser::Error::custom("not a struct"))
        }
        fn serialize_tuple_struct(
            self,
            _: &'static str,
            _: usize,
        ) -> Result<Self::SerializeTupleStruct, Probe> {
            Err(ser::Error::custom("not a struct"))
        }
        fn serialize_tuple_variant(
            self,
            _: &'static str,
            _: u32,
            _: &'static str,
            _: usize,
        ) -> Result<Self::SerializeTupleVariant, Probe> {
            Err(ser::Error::custom("not a struct"))
        }
        // A struct with `#[serde(flatten)]` fields serializes as a map.
        fn serialize_map(self, _: Option<usize>) -> Result<Keys, Probe> {
            Ok(Keys(Vec::new()))
        }
        fn serialize_struct(self, _: &'static str, _: usize) -> Result<Keys, Probe> {
            Ok(Keys(Vec::new()))
        }
        fn serialize_struct_variant(
            self,
            _: &'static str,
            _: u32,
            _: &'static str,
            _: usize,
        ) -> Result<Keys, Probe> {
            Ok(Keys(Vec::new()))
        }
    }

    impl SerializeStruct for Keys {
        type Ok = Vec<String>;
        type Error = Probe;

        fn serialize_field<T: ?Sized + Serialize>(&mut self, key: &'static str, _: &T) -> Result<(), Probe> {
            self.0.push(key.to_string());
            Ok(())
        }
        fn skip_field(&mut self, key: &'static str) -> Result<(), Probe> {
            self.0.push(key.to_string());
            Ok(())
        }
        fn end(self) -> Result<Self::Ok, Probe> {
            Ok(self.0)
        }
    }

    impl SerializeStructVariant for Keys {
        type Ok = Vec<String>;
        type Error = Probe;

        fn serialize_field<T: ?Sized + Serialize>(&mut self, key: &'static str, _: &T) -> Result<(), Probe> {
            self.0.push(key.to_string());
            Ok(())
        }
        fn skip_field(&mut self, key: &'static str) -> Result<(), Probe> {
            self.0.push(key.to_string());
            Ok(())
        }
        fn end(self) -> Result<Self::Ok, Probe> {
            Ok(self.0)
        }
    }

    impl ser::SerializeMap for Keys {
        type Ok = Vec<String>;
        type Error = Probe;

        fn serialize_key<T: ?Sized + Serialize>(&mut self, key: &T) -> Result<(), Probe> {
            match serde_json::to_value(key) {
                Ok(Json::String(key)) => {
                    self.0.push(key);
                    Ok(())
                }
                _ => Err(ser::Error::custom("a key that is not a string")),
            }
        }
        fn serialize_value<T: ?Sized + Serialize>(&mut self, _: &T) -> Result<(), Probe> {
            Ok(())
        }
        fn end(self) -> Result<Self::Ok, Probe> {
            Ok(self.0)
        }
    }

    // The table form of every variant of the enums serde cannot list.

    fn trigger_form(trigger: &TriggerDef) -> Option<&'static Shape> {
        match trigger {
            TriggerDef::Event(_) => None,
            TriggerDef::Threshold { .. } => Some(&THRESHOLD_TRIGGER),
            TriggerDef::Band { .. } => Some(&BAND_TRIGGER),
            TriggerDef::Segment { .. } => Some(&SEGMENT_TRIGGER),
            TriggerDef::Attribute { .. } => Some(&ATTRIBUTE_TRIGGER),
            TriggerDef::Tag { .. } => Some(&TAG_TRIGGER),
            TriggerDef::List { .. } => Some(&LIST_TRIGGER),
            TriggerDef::Stage { .. } => Some(&STAGE_TRIGGER),
            TriggerDef::Owner { .. } => Some(&OWNER_TRIGGER),
            TriggerDef::Date { .. } => Some(&DATE_TRIGGER),
            TriggerDef::Schedule { .. } => Some(&SCHEDULE_TRIGGER),
            TriggerDef::Inactivity { .. } => Some(&INACTIVITY_TRIGGER),
        }
    }

    fn decay_form(decay: &DecayDef) -> Option<&'static Shape> {
        match decay {
            DecayDef::Named(_) => None,
            DecayDef::HalfLife { .. } => Some(&HALF_LIFE),
            DecayDef::Step { .. } => Some(&STEP),
        }
    }

    fn repeat_form(repeat: &RepeatDef) -> Option<&'static Shape> {
        match repeat {
            RepeatDef::Named(_) => None,
            RepeatDef::AtMost { .. } => Some(&AT_MOST),
        }
    }

    fn filter_form(filter: &FilterDef) -> &'static str {
        match filter {
            FilterDef::All { .. } => "all",
            FilterDef::Any { .. } => "any",
            FilterDef::Not { .. } => "not",
            FilterDef::Test(_) => "test",
        }
    }

    fn action_form(action: &ActionDef) -> Option<&'static Shape> {
        let name = match action {
            ActionDef::Send { .. } => "send",
            ActionDef::SetConsent { .. } => "set_consent",
            ActionDef::DoNotContact { .. } => "do_not_contact",
            ActionDef::ClearDoNotContact { .. } => "clear_do_not_contact",
            ActionDef::SetAttribute { .. } => "set_attribute",
            ActionDef::ClearAttribute { .. } => "clear_attribute",
            ActionDef::AddTag { .. } => "add_tag",
            ActionDef::RemoveTag { .. } => "remove_tag",
            ActionDef::AddToList { .. } => "add_to_list",
            ActionDef::RemoveFromList { .. } => "remove_from_list",
            ActionDef::SetLifecycleStage { .. } => "set_lifecycle_stage",
            ActionDef::AdjustScore { .. } => "adjust_score",
            ActionDef::NotifyOwner { .. } => "notify_owner",
            ActionDef::AssignOwner { .. } => "assign_owner",
            ActionDef::CrmWrite { .. } => "crm_write",
            ActionDef::EnrollJourney { .. } => "enroll_journey",
            ActionDef::RemoveFromJourney { .. } => "remove_from_journey",
        };
        ACTIONS.iter().find(|(n, _)| *n == name).map(|(_, shape)| *shape)
    }

    fn step_form(step: &StepDef) -> Option<&'static Shape> {
        let name = match step {
            StepDef::Action { .. } => "action",
            StepDef::Wait { .. } => "wait",
            StepDef::WaitFor { .. } => "wait_for",
            StepDef::Branch { .. } => "branch",
            StepDef::Split { .. } => "split",
            StepDef::Goto { .. } => "goto",
            StepDef::Exit { .. } => "exit",
        };
        STEPS.iter().find(|(n, _)| *n == name).map(|(_, shape)| *shape)
    }

    fn reentry_form(reentry: &ReentryDef) -> Option<&'static Shape> {
        match reentry {
            ReentryDef::Named(_) => None,
            ReentryDef::After { .. } => Some(&REENTRY_AFTER),
        }
    }

    /// A valid value for a key.
    fn sample(child: Child) -> Json {
        match child {
            Child::Any | Child::Str => json!("x"),
            Child::U32 => json!(1),
            Child::F64 => json!(1.5),
            Child::Bool => json!(true),
            Child::OneOf(names) => json!(names.names[0]),
            Child::Channel => json!(CHANNELS.names[0]),
            Child::Strings => json!(["x"]),
            Child::StrMap => json!({"x": "int"}),
            Child::EventMap => json!({"e": {"x": "int"}}),
            Child::Weights => json!({"x": 1.5}),
            Child::Object(shape) => object(shape),
            Child::ListOf(shape) => json!([object(shape)]),
            Child::Filter => object(&FILTER_TEST),
            Child::Actions => json!([action(ACTIONS[0])]),
            Child::Decay => object(DECAYS[0].1),
            Child::Repeat => object(&AT_MOST),
            Child::Trigger => object(TRIGGERS[0].1),
            Child::Reentry => object(&REENTRY_AFTER),
            Child::Steps => json!([action(STEPS[0])]),
        }
    }

    fn object(shape: &Shape) -> Json {
        Json::Object(shape.keys.iter().map(|k| (k.name.to_string(), sample(k.child))).collect())
    }

    fn action((name, shape): (&str, &Shape)) -> Json {
        let mut value = object(shape);
        value["type"] = json!(name);
        value
    }

    /// Values serde must refuse for a key.
    fn wrong_values(child: Child) -> Vec<Json> {
        match child {
            Child::Any => vec![],
            Child::Str => vec![json!(1), json!(["x"])],
            Child::U32 => vec![json!(1.5), json!(-1), json!(4_294_967_296_u64), json!("1")],
            Child::F64 | Child::Weights => vec![json!("x"), json!({"x": "y"})],
            Child::Bool => vec![json!("yes"), json!(1)],
            Child::OneOf(_) => vec![json!("\u{0}"), json!(1)],
            Child::Channel => vec![json!("\u{0}"), json!("Email"), json!(1)],
            Child::Strings => vec![json!([1]), json!("x")],
            Child::StrMap => vec![json!({"x": 1}), json!("x")],
            Child::EventMap => vec![json!({"e": 1}), json!({"e": {"x": 1}})],
            Child::Object(_) | Child::ListOf(_) | Child::Actions => vec![json!(1), json!("x")],
            Child::Filter | Child::Decay | Child::Repeat | Child::Trigger | Child::Reentry => {
                vec![json!(1), json!([])]
            }
            Child::Steps => vec![json!(1), json!("x")],
        }
    }

    /// Checks one table form against serde: `full` is the form's fragment, `tag` the key
    /// that is not in the table (an action's `type`), `check` runs the checker on a
    /// fragment and `form` names the table form of what serde read.
    fn agree<T, C, F>(shape: &'static Shape, full: Json, tag: Option<&'static str>, check: C, form: F)
    where
        T: DeserializeOwned + Serialize,
        C: Fn(&mut Json, &mut Vec<Diagnostic>),
        F: Fn(&T) -> Option<&'static Shape>,
    {
        let what = shape.what;
        let reads = |doc: &Json| {
            serde_json::from_value::<T>(doc.clone())
                .is_ok_and(|v| form(&v).is_some_and(|f| std::ptr::eq(f, shape)))
        };
        let checks = |doc: &Json| {
            let mut diagnostics = Vec::new();
            check(&mut doc.clone(), &mut diagnostics);
            diagnostics
        };
        let value: T = serde_json::from_value(full.clone()).unwrap_or_else(|e| panic!("{what}: {e}"));
        assert!(form(&value).is_some_and(|f| std::ptr::eq(f, shape)), "{what}: read as another form");
        assert_eq!(checks(&full), [], "{what}");
        let mut table_keys: Vec<String> =
            shape.key_names().into_iter().chain(tag).map(String::from).collect();
        table_keys.sort_unstable();
        let mut serde_keys = value.serialize(KeyRecorder).unwrap_or_else(|e| panic!("{what}: {e}"));
        serde_keys.sort_unstable();
        assert_eq!(serde_keys, table_keys, "{what}: serde's keys, then the table's");
        for key in shape.keys {
            let name = key.name;
            let mut without = full.clone();
            without.as_object_mut().map(|m| m.remove(name));
            let optional = key.need != Need::Required;
            assert_eq!(reads(&without), optional, "{what}: serde on a missing `{name}`");
            assert_eq!(checks(&without).is_empty(), optional, "{what}: checker on a missing `{name}`");
            let mut null = full.clone();
            null[name] = Json::Null;
            let nullable = key.need == Need::Optional || matches!(key.child, Child::Any);
            assert_eq!(reads(&null), nullable, "{what}: serde on a null `{name}`");
            assert_eq!(checks(&null).is_empty(), nullable, "{what}: checker on a null `{name}`");
            for bad in wrong_values(key.child) {
                let mut doc = full.clone();
                doc[name] = bad.clone();
                assert!(!reads(&doc), "{what}: serde took {bad} for `{name}`");
                let found = checks(&doc);
                assert!(
                    found.iter().any(|d| d.path.starts_with(&format!("/{name}")) && d.help.is_some()),
                    "{what}: checker on {bad} for `{name}`: {found:?}"
                );
            }
            if let Child::OneOf(names) = key.child {
                for good in names.names {
                    let mut doc = full.clone();
                    doc[name] = json!(good);
                    assert!(reads(&doc), "{what}: serde refused {good} for `{name}`");
                    assert_eq!(checks(&doc), [], "{what}: {good} for `{name}`");
                }
            }
        }
    }

    fn as_struct<T: DeserializeOwned + Serialize>(shape: &'static Shape) {
        agree::<T, _, _>(shape, object(shape), None, |v, d| check_shape(v, shape, "", d), |_| Some(shape));
    }

    /// Every shape reachable from the root.
    fn reachable(shape: &'static Shape, out: &mut Vec<&'static Shape>) {
        if out.iter().any(|s| std::ptr::eq(*s, shape)) {
            return;
        }
        out.push(shape);
        for key in shape.keys {
            let children: Vec<&'static Shape> = match key.child {
                Child::Object(s) | Child::ListOf(s) => vec![s],
                Child::Filter => vec![&FILTER_TEST],
                Child::Decay => DECAYS.iter().map(|(_, s)| *s).collect(),
                Child::Repeat => vec![&AT_MOST],
                Child::Trigger => TRIGGERS.iter().map(|(_, s)| *s).collect(),
                Child::Actions => ACTIONS.iter().map(|(_, s)| *s).collect(),
                Child::Reentry => vec![&REENTRY_AFTER],
                Child::Steps => STEPS.iter().map(|(_, s)| *s).collect(),
                _ => vec![],
            };
            for child in children {
                reachable(child, out);
            }
        }
    }

    #[test]
    fn shape_tables_agree_with_the_serde_types() {
        let mut tested: Vec<&'static Shape> = Vec::new();
        let mut structs = |shape: &'static Shape, run: fn(&'static Shape)| {
            run(shape);
            tested.push(shape);
        };
        structs(&ROOT, as_struct::<RuleSetDef>);
        structs(&SCHEMA, as_struct::<SchemaDef>);
        structs(&RULE, as_struct::<RuleDef>);
        structs(&SEGMENT, as_struct::<SegmentDef>);
        structs(&COUNTER, as_struct::<CounterDoc>);
        structs(&SCORING, as_struct::<ScoringDef>);
        structs(&MODEL, as_struct::<ScoreModelDef>);
        structs(&GROUP, as_struct::<GroupDef>);
        structs(&POINT_RULE, as_struct::<PointRuleDef>);
        structs(&THRESHOLD, as_struct::<ThresholdDef>);
        structs(&BAND, as_struct::<BandDef>);
        structs(&POLICY, as_struct::<PolicyDef>);
        structs(&CHANNEL_POLICY, as_struct::<ChannelPolicyDef>);
        structs(&SEND_WINDOW, as_struct::<SendWindowDef>);
        structs(&CAP, as_struct::<CapDef>);
        structs(&CONTROL_GROUP, as_struct::<ControlGroupDef>);
        structs(&CONSENT_EVENT, as_struct::<ConsentEventDef>);
        structs(&DNC_EVENT, as_struct::<DncEventDef>);
        structs(&SUPPRESSION, as_struct::<SuppressionDef>);
        structs(&JOURNEY, as_struct::<JourneyDef>);
        structs(&JOURNEY_EXIT, as_struct::<JourneyExitDef>);
        structs(&JOURNEY_GOAL, as_struct::<JourneyGoalDef>);
        structs(&BRANCH_CASE, as_struct::<BranchCaseDef>);
        structs(&SPLIT_ARM, as_struct::<SplitArmDef>);
        structs(&HOLDOUT, as_struct::<HoldoutDef>);
        agree(
            &REENTRY_AFTER,
            object(&REENTRY_AFTER),
            None,
            |v, d| check_child(v, Child::Reentry, "", d),
            reentry_form,
        );
        tested.push(&REENTRY_AFTER);
        for &(name, shape) in STEPS {
            agree(
                shape,
                action((name, shape)),
                Some("type"),
                |v, d| check_tagged(v, STEPS, &STEP_TYPES, "step", "", d),
                step_form,
            );
            tested.push(shape);
        }
        for (_, shape) in TRIGGERS {
            agree(shape, object(shape), None, |v, d| check_child(v, Child::Trigger, "", d), trigger_form);
            tested.push(shape);
        }
        for (_, shape) in DECAYS {
            agree(shape, object(shape), None, |v, d| check_child(v, Child::Decay, "", d), decay_form);
            tested.push(shape);
        }
        agree(&AT_MOST, object(&AT_MOST), None, |v, d| check_child(v, Child::Repeat, "", d), repeat_form);
        tested.push(&AT_MOST);
        agree(
            &FILTER_TEST,
            object(&FILTER_TEST),
            None,
            |v, d| check_filter(v, "", d),
            |f: &FilterDef| (filter_form(f) == "test").then_some(&FILTER_TEST),
        );
        tested.push(&FILTER_TEST);
        for &(name, shape) in ACTIONS {
            agree(shape, action((name, shape)), Some("type"), |v, d| check_action(v, "", d), action_form);
            tested.push(shape);
        }
        let mut all = Vec::new();
        reachable(&ROOT, &mut all);
        for shape in all {
            assert!(tested.iter().any(|s| std::ptr::eq(*s, shape)), "{} is not tested", shape.what);
        }
    }

    #[test]
    fn filter_groups_agree_with_the_serde_type() {
        let test = object(&FILTER_TEST);
        for group in FILTER_GROUPS {
            let children = if group == "not" { test.clone() } else { json!([test.clone()]) };
            let doc = json!({ group: children });
            let filter: FilterDef = serde_json::from_value(doc.clone()).unwrap();
            assert_eq!(filter_form(&filter), group);
            assert_eq!(filter.serialize(KeyRecorder).unwrap(), [group.to_string()]);
            let mut diagnostics = Vec::new();
            check_filter(&mut doc.clone(), "", &mut diagnostics);
            assert_eq!(diagnostics, []);
        }
    }

    #[test]
    fn name_sets_agree_with_the_serde_enums() {
        fn variants_of_field<T: DeserializeOwned>(_: fn(&ThresholdDef) -> &Option<T>) -> Vec<&'static str> {
            serde_variants::<T>()
        }
        assert_eq!(serde_variants::<Direction>(), sorted(DIRECTIONS.names.to_vec()));
        assert_eq!(serde_variants::<FilterOp>(), sorted(FILTER_OPS.names.to_vec()));
        assert_eq!(serde_variants::<ConsentModel>(), sorted(CONSENT_MODELS.names.to_vec()));
        assert_eq!(serde_variants::<CapOver>(), sorted(CAP_OVERS.names.to_vec()));
        assert_eq!(serde_variants::<ConsentStatus>(), sorted(CONSENT_STATUSES.names.to_vec()));
        assert_eq!(serde_variants::<DncReason>(), sorted(DNC_REASONS.names.to_vec()));
        let channels: Vec<&str> = Channel::ALL.iter().map(|c| c.name()).collect();
        assert_eq!(channels, CHANNELS.names, "the channels in documentation order");
        for channel in Channel::ALL {
            let json = serde_json::to_value(channel).unwrap();
            assert_eq!(json, json!(channel.name()));
            assert_eq!(serde_json::from_value::<Channel>(json).unwrap(), channel);
        }
        assert_eq!(variants_of_field(|t| &t.rearm), sorted(REARMS.names.to_vec()));
        let names: Vec<&str> = FilterOp::ALL.iter().map(|op| op.name()).collect();
        assert_eq!(names, FILTER_OPS.names, "the operators in documentation order");
        let probe = MapDeserializer::<_, Probe>::new([("type", "\u{0}")].into_iter());
        let action_types = <ActionDef as serde::Deserialize>::deserialize(probe)
            .map_or_else(|e| sorted(e.expected), |_| vec![]);
        assert_eq!(action_types, sorted(ACTION_TYPES.names.to_vec()));
        assert_eq!(ACTIONS.iter().map(|(n, _)| *n).collect::<Vec<_>>(), ACTION_TYPES.names);
        assert_eq!(serde_variants::<crate::def::UpgradeDef>(), sorted(UPGRADES.names.to_vec()));
        let probe = MapDeserializer::<_, Probe>::new([("type", "\u{0}")].into_iter());
        let step_types = <StepDef as serde::Deserialize>::deserialize(probe)
            .map_or_else(|e| sorted(e.expected), |_| vec![]);
        assert_eq!(step_types, sorted(STEP_TYPES.names.to_vec()));
        assert_eq!(STEPS.iter().map(|(n, _)| *n).collect::<Vec<_>>(), STEP_TYPES.names);
    }
}
