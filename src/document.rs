//! Reading rule-set documents: text -> generic tree -> shape check (every unknown key,
//! every missing key, at once) -> typed [`RuleSetDef`].

use std::sync::Arc;

use serde_json::Value as Json;

use crate::def::{RuleSetDef, SchemaDef};
use crate::diagnostic::{did_you_mean, pointer_escape, Code, CompileError, Diagnostic, Span};
use crate::limits::Limits;
use crate::schema::Schema;
use crate::value::{Map, Type, Value};

/// Document text formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Format {
    #[cfg(feature = "json")]
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
        .with_help("split the rule set or raise `Limits::max_document_len`")]));
    }
    let mut tree = parse_tree(text, format)?;
    let mut diagnostics = Vec::new();
    check_shape(&mut tree, &ROOT, "", &mut diagnostics);
    match serde_json::from_value::<RuleSetDef>(tree) {
        Ok(def) => Ok((def, diagnostics)),
        Err(e) => {
            if diagnostics.is_empty() {
                diagnostics.push(Diagnostic::new(Code::InvalidDocument, e.to_string()));
            }
            Err(CompileError::new(diagnostics))
        }
    }
}

fn parse_tree(text: &str, format: Format) -> Result<Json, CompileError> {
    let source: Arc<str> = Arc::from(text);
    match format {
        #[cfg(feature = "json")]
        Format::Json => serde_json::from_str::<Json>(text).map_err(|e| {
            let offset = line_col_to_offset(text, e.line(), e.column());
            let message = e.to_string();
            let message = message.split(" at line").next().unwrap_or(&message).to_string();
            CompileError::new(vec![Diagnostic::new(Code::DocumentSyntax, format!("invalid JSON: {message}"))
                .with_source(source)
                .with_span(Span::new(offset, offset + 1))])
        }),
        #[cfg(feature = "toml")]
        Format::Toml => toml::from_str::<Json>(text).map_err(|e| {
            let span = e.span().map_or(Span::new(0, 1), |r| Span::new(r.start, r.end.max(r.start + 1)));
            CompileError::new(vec![Diagnostic::new(
                Code::DocumentSyntax,
                format!("invalid TOML: {}", e.message()),
            )
            .with_source(source)
            .with_span(span)])
        }),
    }
}

fn line_col_to_offset(text: &str, line: usize, column: usize) -> usize {
    let line_start: usize = text.split_inclusive('\n').take(line.saturating_sub(1)).map(str::len).sum();
    (line_start + column.saturating_sub(1)).min(text.len())
}

/// The expected shape of a JSON object.
struct Shape {
    what: &'static str,
    required: &'static [&'static str],
    /// Keys and the shape of their values.
    keys: &'static [(&'static str, Child)],
}

#[derive(Clone, Copy)]
enum Child {
    /// Any value; typed checks come later.
    Leaf,
    Object(&'static Shape),
    ListOf(&'static Shape),
    Filter,
    Actions,
    /// A decay object (`half_life`, or `step` with `every`) or `"none"`.
    Decay,
    /// A repeat policy name or `{"max", "per"}`.
    Repeat,
    /// An event type's name or a trigger object.
    Trigger,
}

static HALF_LIFE: Shape =
    Shape { what: "half-life decay", required: &["half_life"], keys: &[("half_life", Child::Leaf)] };
static STEP: Shape = Shape {
    what: "step decay",
    required: &["step", "every"],
    keys: &[("step", Child::Leaf), ("every", Child::Leaf), ("zone", Child::Leaf)],
};
static AT_MOST: Shape = Shape {
    what: "repeat policy",
    required: &["max", "per"],
    keys: &[("max", Child::Leaf), ("per", Child::Leaf)],
};

static ROOT: Shape = Shape {
    what: "rule set",
    required: &["version", "schema"],
    keys: &[
        ("version", Child::Leaf),
        ("name", Child::Leaf),
        ("schema", Child::Object(&SCHEMA)),
        ("rules", Child::ListOf(&RULE)),
        ("scoring", Child::Object(&SCORING)),
        ("counters", Child::ListOf(&COUNTER)),
        ("segments", Child::ListOf(&SEGMENT)),
    ],
};

static COUNTER: Shape = Shape {
    what: "counter",
    required: &["id", "on", "window"],
    keys: &[
        ("id", Child::Leaf),
        ("on", Child::Leaf),
        ("when", Child::Leaf),
        ("filter", Child::Filter),
        ("window", Child::Leaf),
        ("max", Child::Leaf),
    ],
};

static SCORING: Shape =
    Shape { what: "scoring section", required: &[], keys: &[("models", Child::ListOf(&MODEL))] };

static MODEL: Shape = Shape {
    what: "score model",
    required: &["id"],
    keys: &[
        ("id", Child::Leaf),
        ("cap", Child::Leaf),
        ("floor", Child::Leaf),
        ("decay", Child::Decay),
        ("timeframe", Child::Leaf),
        ("combine", Child::Leaf),
        ("groups", Child::ListOf(&GROUP)),
        ("rules", Child::ListOf(&POINT_RULE)),
        ("thresholds", Child::ListOf(&THRESHOLD)),
        ("bands", Child::ListOf(&BAND)),
    ],
};

static GROUP: Shape = Shape {
    what: "score group",
    required: &["id"],
    keys: &[
        ("id", Child::Leaf),
        ("cap", Child::Leaf),
        ("floor", Child::Leaf),
        ("decay", Child::Decay),
        ("timeframe", Child::Leaf),
    ],
};

static POINT_RULE: Shape = Shape {
    what: "point rule",
    required: &["id", "points"],
    keys: &[
        ("id", Child::Leaf),
        ("on", Child::Leaf),
        ("when", Child::Leaf),
        ("filter", Child::Filter),
        ("fit", Child::Leaf),
        ("points", Child::Leaf),
        ("group", Child::Leaf),
        ("repeat", Child::Repeat),
        ("min_interval", Child::Leaf),
    ],
};

static THRESHOLD: Shape = Shape {
    what: "threshold",
    required: &["id", "enter"],
    keys: &[("id", Child::Leaf), ("enter", Child::Leaf), ("exit", Child::Leaf), ("rearm", Child::Leaf)],
};

static BAND: Shape = Shape {
    what: "band",
    required: &["name", "from"],
    keys: &[("name", Child::Leaf), ("from", Child::Leaf)],
};

static SCHEMA: Shape = Shape {
    what: "schema",
    required: &[],
    keys: &[("contact", Child::Leaf), ("events", Child::Leaf), ("scores", Child::Leaf)],
};

static RULE: Shape = Shape {
    what: "rule",
    required: &["id", "on"],
    keys: &[
        ("id", Child::Leaf),
        ("description", Child::Leaf),
        ("on", Child::Trigger),
        ("when", Child::Leaf),
        ("filter", Child::Filter),
        ("actions", Child::Actions),
        ("repeat", Child::Repeat),
        ("enabled", Child::Leaf),
    ],
};

static SEGMENT: Shape = Shape {
    what: "segment",
    required: &["id"],
    keys: &[
        ("id", Child::Leaf),
        ("description", Child::Leaf),
        ("when", Child::Leaf),
        ("filter", Child::Filter),
    ],
};

/// The object forms of a trigger, told apart by their first key.
static TRIGGERS: &[Shape] = &[
    Shape {
        what: "threshold trigger",
        required: &["score", "threshold"],
        keys: &[("score", Child::Leaf), ("threshold", Child::Leaf), ("direction", Child::Leaf)],
    },
    Shape {
        what: "band trigger",
        required: &["score", "band"],
        keys: &[("score", Child::Leaf), ("band", Child::Leaf), ("direction", Child::Leaf)],
    },
    Shape {
        what: "segment trigger",
        required: &["segment"],
        keys: &[("segment", Child::Leaf), ("direction", Child::Leaf)],
    },
    Shape {
        what: "attribute trigger",
        required: &["attribute"],
        keys: &[("attribute", Child::Leaf), ("from", Child::Leaf), ("to", Child::Leaf)],
    },
    Shape {
        what: "inactivity trigger",
        required: &["inactive", "for"],
        keys: &[("inactive", Child::Leaf), ("for", Child::Leaf)],
    },
    Shape {
        what: "date trigger",
        required: &["date"],
        keys: &[
            ("date", Child::Leaf),
            ("offset", Child::Leaf),
            ("at", Child::Leaf),
            ("zone", Child::Leaf),
            ("every_year", Child::Leaf),
        ],
    },
    Shape {
        what: "schedule trigger",
        required: &["schedule"],
        keys: &[
            ("schedule", Child::Leaf),
            ("at", Child::Leaf),
            ("weekday", Child::Leaf),
            ("day", Child::Leaf),
            ("zone", Child::Leaf),
        ],
    },
];

static FILTER_TEST: Shape = Shape {
    what: "filter test",
    required: &["field", "op"],
    keys: &[("field", Child::Leaf), ("op", Child::Leaf), ("value", Child::Leaf)],
};

/// Action types and their keys (besides `type`).
const ACTIONS: &[(&str, &[&str], &[&str])] = &[
    ("send", &["channel", "template"], &["needs_approval"]),
    ("set_attribute", &["field", "value"], &[]),
    ("clear_attribute", &["field"], &[]),
    ("add_tag", &["tag"], &[]),
    ("remove_tag", &["tag"], &[]),
    ("add_to_list", &["list"], &[]),
    ("remove_from_list", &["list"], &[]),
    ("set_lifecycle_stage", &["stage"], &[]),
    ("adjust_score", &["score", "points"], &[]),
    ("notify_owner", &["message"], &["needs_approval"]),
    ("assign_owner", &["owner"], &[]),
    ("crm_write", &["field", "value"], &[]),
    ("enroll_journey", &["journey"], &[]),
    ("remove_from_journey", &["journey"], &[]),
];

const FILTER_OPS: &[&str] = &[
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
];

fn unknown_key(key: &str, allowed: &[&str], what: &str, path: &str) -> Diagnostic {
    Diagnostic::new(Code::UnknownKey, format!("unknown key `{key}` in {what}"))
        .with_path(format!("{path}/{}", pointer_escape(key)))
        .with_did_you_mean(did_you_mean(key, allowed.iter().copied()))
        .with_help(format!("the keys of a {what} are: {}", allowed.join(", ")))
}

fn missing_key(key: &str, what: &str, path: &str) -> Diagnostic {
    Diagnostic::new(Code::InvalidDocument, format!("missing key `{key}` in {what}"))
        .with_path(if path.is_empty() { "/".to_string() } else { path.to_string() })
        .with_help(format!("add `{key}`"))
}

fn not_a(what: &str, path: &str) -> Diagnostic {
    Diagnostic::new(Code::InvalidDocument, format!("expected {what}")).with_path(if path.is_empty() {
        "/".to_string()
    } else {
        path.to_string()
    })
}

fn check_shape(value: &mut Json, shape: &Shape, path: &str, diagnostics: &mut Vec<Diagnostic>) {
    let Json::Object(map) = value else {
        diagnostics.push(not_a(&format!("a {} (an object)", shape.what), path));
        return;
    };
    let allowed: Vec<&str> = shape.keys.iter().map(|(k, _)| *k).collect();
    let mut unknown = Vec::new();
    for (key, child) in map.iter_mut() {
        let child_path = format!("{path}/{}", pointer_escape(key));
        match shape.keys.iter().find(|(k, _)| k == key) {
            None => {
                diagnostics.push(unknown_key(key, &allowed, shape.what, path));
                unknown.push(key.clone());
            }
            Some((_, kind)) => check_child(child, *kind, &child_path, diagnostics),
        }
    }
    for key in unknown {
        map.remove(&key);
    }
    for key in shape.required {
        if !map.contains_key(*key) {
            diagnostics.push(missing_key(key, shape.what, path));
        }
    }
}

fn check_child(value: &mut Json, kind: Child, path: &str, diagnostics: &mut Vec<Diagnostic>) {
    match kind {
        Child::Leaf => {}
        Child::Object(shape) => check_shape(value, shape, path, diagnostics),
        Child::ListOf(shape) => match value {
            Json::Array(items) => {
                for (i, item) in items.iter_mut().enumerate() {
                    check_shape(item, shape, &format!("{path}/{i}"), diagnostics);
                }
            }
            _ => diagnostics.push(not_a("a list", path)),
        },
        Child::Filter => check_filter(value, path, diagnostics),
        Child::Decay => match value {
            Json::Object(map) if map.contains_key("half_life") && !map.contains_key("step") => {
                check_shape(value, &HALF_LIFE, path, diagnostics)
            }
            Json::Object(_) => check_shape(value, &STEP, path, diagnostics),
            Json::String(_) => {}
            _ => diagnostics.push(not_a("a decay (an object or \"none\")", path)),
        },
        Child::Trigger => match value {
            Json::String(_) => {}
            Json::Object(map) => {
                let shape = if map.contains_key("threshold") {
                    &TRIGGERS[0]
                } else if map.contains_key("band") {
                    &TRIGGERS[1]
                } else if map.contains_key("segment") {
                    &TRIGGERS[2]
                } else if map.contains_key("attribute") {
                    &TRIGGERS[3]
                } else if map.contains_key("inactive") {
                    &TRIGGERS[4]
                } else if map.contains_key("date") {
                    &TRIGGERS[5]
                } else if map.contains_key("schedule") {
                    &TRIGGERS[6]
                } else {
                    diagnostics.push(
                        Diagnostic::new(Code::InvalidDocument, "a trigger object names no trigger")
                            .with_path(path.to_string())
                            .with_help(
                                "write an event type's name, or an object with `score` and `threshold` or `band`, \
                                 `segment`, `attribute`, `inactive` and `for`, `date`, or `schedule`",
                            ),
                    );
                    return;
                };
                check_shape(value, shape, path, diagnostics);
            }
            _ => diagnostics.push(not_a("a trigger (an event type's name or an object)", path)),
        },
        Child::Repeat => match value {
            Json::Object(_) => check_shape(value, &AT_MOST, path, diagnostics),
            Json::String(_) => {}
            _ => diagnostics.push(not_a("a repeat policy (a name or an object)", path)),
        },
        Child::Actions => match value {
            Json::Array(items) => {
                for (i, item) in items.iter_mut().enumerate() {
                    check_action(item, &format!("{path}/{i}"), diagnostics);
                }
            }
            _ => diagnostics.push(not_a("a list of actions", path)),
        },
    }
}

fn check_filter(value: &mut Json, path: &str, diagnostics: &mut Vec<Diagnostic>) {
    let Json::Object(map) = value else {
        diagnostics.push(not_a("a filter (an object)", path));
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
                    .with_path(path.to_string()),
                );
            }
            match children {
                Json::Array(items) => {
                    for (i, item) in items.iter_mut().enumerate() {
                        check_filter(item, &format!("{path}/{group}/{i}"), diagnostics);
                    }
                }
                _ => diagnostics.push(not_a("a list of filters", &format!("{path}/{group}"))),
            }
            return;
        }
    }
    if let Some(child) = map.get_mut("not") {
        if !single {
            diagnostics.push(
                Diagnostic::new(Code::InvalidFilter, "`not` must be the only key of its object")
                    .with_path(path.to_string()),
            );
        }
        check_filter(child, &format!("{path}/not"), diagnostics);
        return;
    }
    let before = diagnostics.len();
    check_shape(value, &FILTER_TEST, path, diagnostics);
    if diagnostics.len() == before {
        if let Some(op) = value.get("op") {
            match op.as_str() {
                Some(name) if FILTER_OPS.contains(&name) => {}
                _ => diagnostics.push(
                    Diagnostic::new(Code::InvalidFilter, format!("unknown filter operator {op}"))
                        .with_path(format!("{path}/op"))
                        .with_did_you_mean(
                            op.as_str().and_then(|s| did_you_mean(s, FILTER_OPS.iter().copied())),
                        )
                        .with_help(format!("the operators are: {}", FILTER_OPS.join(", "))),
                ),
            }
        }
    }
}

fn check_action(value: &mut Json, path: &str, diagnostics: &mut Vec<Diagnostic>) {
    let Json::Object(map) = value else {
        diagnostics.push(not_a("an action (an object)", path));
        return;
    };
    let names: Vec<&str> = ACTIONS.iter().map(|(n, _, _)| *n).collect();
    let Some(kind) = map.get("type") else {
        diagnostics.push(
            missing_key("type", "action", path)
                .with_help(format!("the action types are: {}", names.join(", "))),
        );
        return;
    };
    let Some((name, required, optional)) = ACTIONS.iter().find(|(n, _, _)| Some(*n) == kind.as_str()) else {
        diagnostics.push(
            Diagnostic::new(Code::InvalidDocument, format!("unknown action type {kind}"))
                .with_path(format!("{path}/type"))
                .with_did_you_mean(kind.as_str().and_then(|s| did_you_mean(s, names.iter().copied())))
                .with_help(format!("the action types are: {}", names.join(", "))),
        );
        return;
    };
    let mut allowed: Vec<&str> = vec!["type"];
    allowed.extend(required.iter());
    allowed.extend(optional.iter());
    let what = format!("`{name}` action");
    let unknown: Vec<String> = map.keys().filter(|k| !allowed.contains(&k.as_str())).cloned().collect();
    for key in unknown {
        diagnostics.push(unknown_key(&key, &allowed, &what, path));
        map.remove(&key);
    }
    for key in *required {
        if !map.contains_key(*key) {
            diagnostics.push(missing_key(key, &what, path));
        }
    }
    // Typed check of this one action, so wrong value kinds are reported here too.
    if let Err(e) = serde_json::from_value::<crate::def::ActionDef>(value.clone()) {
        if diagnostics.iter().all(|d| !d.path.starts_with(path)) {
            diagnostics.push(
                Diagnostic::new(Code::InvalidDocument, format!("invalid action: {e}"))
                    .with_path(path.to_string()),
            );
        }
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
