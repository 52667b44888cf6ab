//! The rule-set document format, read from JSON and from TOML.

use nurture::def::{ActionDef, Channel, RuleSetDef};
use nurture::{Code, Limits, MatchScratch, Program, Timestamp};
use proptest::prelude::*;

#[cfg(feature = "toml")]
const TOML_DOC: &str = r#"
version = 1
name = "toml-example"

[schema.contact]
country = "string"
company_size = "int"

[schema.events.page_visit]
url = "string"

[schema.events.form_submit]
form = "string"

[[rules]]
id = "pricing"
on = "page_visit"
when = "event.url == '/pricing' && contact.company_size >= 100"
actions = [{ type = "adjust_score", score = "engagement", points = 10 }]

[[rules]]
id = "demo"
on = "form_submit"
filter = { all = [{ field = "event.form", op = "equals", value = "demo" }, { field = "contact.country", op = "in", value = ["US", "CA"] }] }
actions = [{ type = "send", channel = "email", template = "demo-confirmation", needs_approval = true }]
"#;

const JSON_DOC: &str = r#"{
  "version": 1,
  "name": "toml-example",
  "schema": {
    "contact": {"country": "string", "company_size": "int"},
    "events": {"page_visit": {"url": "string"}, "form_submit": {"form": "string"}}
  },
  "rules": [
    {"id": "pricing", "on": "page_visit", "when": "event.url == '/pricing' && contact.company_size >= 100",
     "actions": [{"type": "adjust_score", "score": "engagement", "points": 10}]},
    {"id": "demo", "on": "form_submit",
     "filter": {"all": [{"field": "event.form", "op": "equals", "value": "demo"}, {"field": "contact.country", "op": "in", "value": ["US", "CA"]}]},
     "actions": [{"type": "send", "channel": "email", "template": "demo-confirmation", "needs_approval": true}]}
  ]
}"#;

fn matched(program: &Program, event_type: &str, prop: (&str, &str), country: &str, size: i64) -> Vec<String> {
    let schema = program.schema();
    let at = Timestamp::from_unix(1_700_000_000, 0).unwrap();
    let contact =
        schema.contact("c").set("country", country).unwrap().set("company_size", size).unwrap().build();
    let event = schema.event("e", "c", event_type, at).unwrap().set(prop.0, prop.1).unwrap().build();
    let mut scratch = MatchScratch::default();
    let m = program.match_event(&contact, &event, at, &mut scratch);
    m.rules.iter().map(|&r| program.rule(r).id().to_string()).collect()
}

#[cfg(feature = "toml")]
#[test]
fn json_and_toml_describe_the_same_rule_set() {
    let from_json = Program::from_json(JSON_DOC).unwrap();
    let from_toml = Program::from_toml(TOML_DOC).unwrap();
    for program in [&from_json, &from_toml] {
        assert_eq!(program.name(), Some("toml-example"));
        assert_eq!(matched(program, "page_visit", ("url", "/pricing"), "US", 150), ["pricing"]);
        assert!(matched(program, "page_visit", ("url", "/pricing"), "US", 50).is_empty());
        assert_eq!(matched(program, "form_submit", ("form", "demo"), "CA", 1), ["demo"]);
        assert!(matched(program, "form_submit", ("form", "demo"), "FR", 1).is_empty());
    }
    let json_def: RuleSetDef = serde_json::from_str(JSON_DOC).unwrap();
    let toml_def: RuleSetDef = toml::from_str(TOML_DOC).unwrap();
    assert_eq!(json_def, toml_def);
}

#[test]
fn definitions_round_trip_through_serde() {
    let def: RuleSetDef = serde_json::from_str(JSON_DOC).unwrap();
    assert_eq!(
        def.rules[1].actions[0],
        ActionDef::Send {
            channel: Channel::Email,
            template: "demo-confirmation".into(),
            needs_approval: true,
            purpose: None,
            campaign: None,
            priority: None,
            params: Default::default(),
        }
    );
    let text = serde_json::to_string(&def).unwrap();
    let again: RuleSetDef = serde_json::from_str(&text).unwrap();
    assert_eq!(def, again);
    assert!(Program::compile(&again, &Limits::default()).is_ok());
}

#[test]
fn unknown_keys_are_rejected_everywhere() {
    let doc = r#"{
      "version": 1, "colour": "blue",
      "schema": {"contact": {"a": "int"}, "events": {"e": {}}, "score": []},
      "rules": [{"id": "r", "on": "e", "when": "true", "priority": 3,
                 "actions": [{"type": "add_tag", "tag": "x", "colour": "red"}],
                 "filter2": {}}]
    }"#;
    let err = Program::from_json(doc).unwrap_err();
    let found: Vec<(&str, Option<&str>)> =
        err.diagnostics.iter().map(|d| (d.path.as_str(), d.did_you_mean.as_deref())).collect();
    assert!(err.diagnostics.iter().all(|d| d.code == Code::UnknownKey), "{}", err.render());
    assert_eq!(
        found,
        [
            ("/colour", None),
            ("/schema/score", Some("scores")),
            ("/rules/0/priority", None),
            ("/rules/0/actions/0/colour", None),
            ("/rules/0/filter2", Some("filter")),
        ]
    );
}

#[cfg(feature = "toml")]
#[test]
fn toml_unknown_keys_use_the_same_paths() {
    let doc = "version = 1\n[schema.contact]\na = \"int\"\n[schema.events.e]\n[[rules]]\nid = \"r\"\non = \"e\"\nwehn = \"true\"\n";
    let err = Program::from_toml(doc).unwrap_err();
    assert_eq!(err.diagnostics.len(), 1);
    assert_eq!(err.diagnostics[0].path, "/rules/0/wehn");
    assert_eq!(err.diagnostics[0].did_you_mean.as_deref(), Some("when"));
}

#[test]
fn syntax_errors_point_into_the_document() {
    let err = Program::from_json("{\n  \"version\": 1,\n  \"schema\": {,}\n}").unwrap_err();
    assert_eq!(err.diagnostics[0].code, Code::DocumentSyntax);
    let rendered = err.render();
    assert!(rendered.contains("3 |   \"schema\": {,}"), "{rendered}");
}

#[cfg(feature = "toml")]
#[test]
fn toml_syntax_errors_point_into_the_document() {
    let err = Program::from_toml("version = = 1").unwrap_err();
    assert_eq!(err.diagnostics[0].code, Code::DocumentSyntax);
    assert!(err.diagnostics[0].span.is_some());
}

#[test]
fn missing_keys_and_bad_shapes_are_reported() {
    let err = Program::from_json(r#"{"schema": {"events": {"e": {}}}, "rules": [{"on": "e"}, 3, {"id": "x", "on": "e", "actions": [{"type": "sned"}]}]}"#).unwrap_err();
    let found: Vec<(Code, &str)> = err.diagnostics.iter().map(|d| (d.code, d.path.as_str())).collect();
    assert_eq!(
        found,
        [
            (Code::InvalidDocument, "/rules/0"),
            (Code::InvalidDocument, "/rules/1"),
            (Code::InvalidDocument, "/rules/2/actions/0/type"),
            (Code::InvalidDocument, "/"),
        ]
    );
    assert_eq!(err.diagnostics[2].did_you_mean.as_deref(), Some("send"));
}

#[test]
fn schema_type_names_are_checked() {
    let err = Program::from_json(
        r#"{"version": 1, "schema": {"contact": {"a": "doubel", "b": "list(strng)"}, "events": {"e": {}}}}"#,
    )
    .unwrap_err();
    assert_eq!(err.diagnostics.len(), 2);
    assert_eq!(err.diagnostics[0].path, "/schema/contact/a");
    assert_eq!(err.diagnostics[0].did_you_mean.as_deref(), Some("double"));
}

#[test]
fn actions_are_checked_against_the_schema() {
    let err = Program::from_json(
        r#"{"version": 1, "schema": {"contact": {"stage": "string"}, "events": {"e": {}}},
            "rules": [{"id": "r", "on": "e", "actions": [
              {"type": "set_attribute", "field": "stag", "value": "mql"},
              {"type": "set_attribute", "field": "stage", "value": 3}
            ]}]}"#,
    )
    .unwrap_err();
    let found: Vec<(Code, &str)> = err.diagnostics.iter().map(|d| (d.code, d.path.as_str())).collect();
    assert_eq!(
        found,
        [(Code::UnknownField, "/rules/0/actions/0/field"), (Code::TypeMismatch, "/rules/0/actions/1/value")]
    );
}

#[test]
fn conditions_must_be_bool() {
    let err = Program::from_json(r#"{"version": 1, "schema": {"contact": {"n": "int"}, "events": {"e": {}}}, "rules": [{"id": "r", "on": "e", "when": "contact.n + 1"}]}"#).unwrap_err();
    assert_eq!(err.diagnostics[0].code, Code::TypeMismatch);
    assert_eq!(err.diagnostics[0].path, "/rules/0/when");
}

#[test]
fn disabled_rules_never_match() {
    let program = Program::from_json(r#"{"version": 1, "schema": {"events": {"e": {}}}, "rules": [{"id": "r", "on": "e", "enabled": false}]}"#).unwrap();
    let at = Timestamp::from_unix(0, 0).unwrap();
    let contact = program.schema().contact("c").build();
    let event = program.schema().event("e1", "c", "e", at).unwrap().build();
    let mut scratch = MatchScratch::default();
    assert!(program.match_event(&contact, &event, at, &mut scratch).rules.is_empty());
}

#[test]
fn compiled_programs_are_shareable_across_threads() {
    fn assert_send_sync<T: Send + Sync + 'static>() {}
    assert_send_sync::<Program>();
    assert_send_sync::<nurture::expr::Expression>();
    assert_send_sync::<nurture::CompileError>();
    assert_send_sync::<nurture::expr::EvalError>();
    let program = std::sync::Arc::new(Program::from_json(JSON_DOC).unwrap());
    let handles: Vec<_> = (0..2)
        .map(|_| {
            let program = program.clone();
            std::thread::spawn(move || matched(&program, "page_visit", ("url", "/pricing"), "US", 150))
        })
        .collect();
    for h in handles {
        assert_eq!(h.join().unwrap(), ["pricing"]);
    }
}

/// Compiles a document with one rule set's worth of schema around `rules` and `scoring`,
/// expecting it to fail.
fn problems(rules: &str, scoring: &str) -> nurture::CompileError {
    let doc = format!(
        r#"{{"version": 1,
            "schema": {{"contact": {{"signup": "timestamp"}}, "events": {{"visit": {{}}}}, "scores": ["engagement"]}},
            "rules": [{rules}], "scoring": {scoring}}}"#
    );
    Program::from_json(&doc).expect_err("the document has mistakes")
}

/// (code, path, message, help, did you mean) of every diagnostic.
fn summary(err: &nurture::CompileError) -> Vec<(Code, &str, &str, &str, Option<&str>)> {
    err.diagnostics
        .iter()
        .map(|d| {
            (
                d.code,
                d.path.as_str(),
                d.message.as_str(),
                d.help.as_deref().unwrap_or(""),
                d.did_you_mean.as_deref(),
            )
        })
        .collect()
}

#[test]
fn values_inside_triggers_are_checked_at_their_paths() {
    let err = problems(
        r#"{"id": "a", "on": {"score": "engagement", "threshold": "mql", "direction": "downn"}},
           {"id": "b", "on": {"date": "signup", "every_year": "yes"}},
           {"id": "c", "on": {"schedule": "monthly", "day": -1}}"#,
        "null",
    );
    assert_eq!(
        summary(&err),
        [
            (
                Code::InvalidDocument,
                "/rules/0/on/direction",
                "unknown direction `downn`",
                "a direction is one of: up, down, enter, exit",
                Some("down")
            ),
            (
                Code::InvalidDocument,
                "/rules/1/on/every_year",
                "expected true or false, found the string \"yes\"",
                "`every_year` takes `true` or `false`, written without quotes",
                None
            ),
            (
                Code::InvalidDocument,
                "/rules/2/on/day",
                "expected a whole number from 0 to 4294967295, found the number -1",
                "`day` takes a whole number, written without quotes, such as 3",
                None
            ),
        ]
    );
    assert!(!err.render().contains("untagged"), "{}", err.render());
}

#[test]
fn misspelled_keys_get_suggestions_in_every_form() {
    let err = problems(
        r#"{"id": "a", "on": {"score": "engagement", "treshold": "mql"}},
           {"id": "b", "on": {"inactive": "*", "fro": "60d"}},
           {"id": "c", "on": "visit", "filter": {"al": [{"field": "event.x", "op": "equals", "value": 1}]}},
           {"id": "d", "on": "visit", "actions": [{"tpye": "add_tag", "tag": "x"}, {"type": "adjust_score", "score": "engagement", "point": 3}]}"#,
        r#"{"models": [{"id": "engagement", "decay": {"halflife": "30d"}}]}"#,
    );
    assert_eq!(
        summary(&err),
        [
            (
                Code::UnknownKey,
                "/rules/0/on/treshold",
                "unknown key `treshold` in threshold trigger",
                "the keys of a threshold trigger are: score, threshold, direction",
                Some("threshold")
            ),
            (
                Code::UnknownKey,
                "/rules/1/on/fro",
                "unknown key `fro` in inactivity trigger",
                "the keys of an inactivity trigger are: inactive, for",
                Some("for")
            ),
            (
                Code::UnknownKey,
                "/rules/2/filter/al",
                "unknown key `al` in filter",
                "a filter is {\"all\": [...]}, {\"any\": [...]}, {\"not\": {...}}, or a test such as \
                 {\"field\": \"contact.country\", \"op\": \"equals\", \"value\": \"US\"}",
                Some("all")
            ),
            (
                Code::UnknownKey,
                "/rules/3/actions/0/tpye",
                "unknown key `tpye` in action",
                "the action types are: send, set_attribute, clear_attribute, add_tag, remove_tag, add_to_list, \
                 remove_from_list, set_lifecycle_stage, adjust_score, notify_owner, assign_owner, crm_write, \
                 enroll_journey, remove_from_journey, set_consent, do_not_contact, clear_do_not_contact",
                Some("type")
            ),
            (
                Code::UnknownKey,
                "/rules/3/actions/1/point",
                "unknown key `point` in `adjust_score` action",
                "the keys of an `adjust_score` action are: type, score, points, group, needs_approval",
                Some("points")
            ),
            (
                Code::InvalidDocument,
                "/rules/3/actions/1",
                "missing key `points` in `adjust_score` action",
                "add `points` to the `adjust_score` action",
                None
            ),
            (
                Code::UnknownKey,
                "/scoring/models/0/decay/halflife",
                "unknown key `halflife` in half-life decay",
                "the keys of a half-life decay are: half_life",
                Some("half_life")
            ),
        ]
    );
}

#[test]
fn wrong_kinds_of_values_name_what_was_expected() {
    let err = problems(
        r#"{"id": "a", "on": "visit", "enabled": "no", "actions": [{"type": "send", "channel": "emial", "template": 3}]}"#,
        r#"{"models": [{"id": "engagement", "rules": [{"id": "r", "on": "visit", "points": "ten", "repeat": {"max": 1.5, "per": "1d"}}],
                        "thresholds": [{"id": "mql", "enter": 50, "rearm": "onse"}], "combine": {"x": "1"}}]}"#,
    );
    assert_eq!(
        summary(&err),
        [
            (
                Code::InvalidDocument,
                "/rules/0/enabled",
                "expected true or false, found the string \"no\"",
                "`enabled` takes `true` or `false`, written without quotes",
                None
            ),
            (
                Code::InvalidDocument,
                "/rules/0/actions/0/template",
                "expected a string, found the number 3",
                "`template` takes text: write it in double quotes",
                None
            ),
            (
                Code::InvalidDocument,
                "/scoring/models/0/rules/0/points",
                "expected a number, found the string \"ten\"",
                "`points` takes a number, written without quotes, such as 10 or -2.5",
                None
            ),
            (
                Code::InvalidDocument,
                "/scoring/models/0/rules/0/repeat/max",
                "expected a whole number from 0 to 4294967295, found the number 1.5",
                "`max` takes a whole number, written without quotes, such as 3",
                None
            ),
            (
                Code::InvalidDocument,
                "/scoring/models/0/thresholds/0/rearm",
                "unknown re-arm policy `onse`",
                "a re-arm policy is one of: once, every_crossing",
                Some("once")
            ),
            (
                Code::InvalidDocument,
                "/scoring/models/0/combine/x",
                "expected a number, found the string \"1\"",
                "`x` takes a number, written without quotes, such as 10 or -2.5",
                None
            ),
            // Declared channels are checked after the shapes.
            (
                Code::InvalidDocument,
                "/rules/0/actions/0/channel",
                "unknown channel `emial`",
                "the channels are email, sms, push, in_app, webhook; declare a channel of your own in `policy.channels`, such as {\"channel\": \"emial\", \"consent\": \"opt_in\"}",
                Some("email")
            ),
        ]
    );
}

#[test]
fn duplicate_json_keys_are_rejected_with_their_paths() {
    let err = Program::from_json(
        r#"{"version": 1, "schema": {"contact": {"a": "int", "a": "string"}, "events": {"e": {}}},
            "rules": [{"id": "r", "on": "e", "when": "true", "when": "false"}], "version": 1}"#,
    )
    .unwrap_err();
    assert_eq!(
        summary(&err),
        [
            (
                Code::DocumentSyntax,
                "/schema/contact/a",
                "duplicate key `a`",
                "a key may appear only once in an object; remove or rename one of them",
                None
            ),
            (
                Code::DocumentSyntax,
                "/rules/0/when",
                "duplicate key `when`",
                "a key may appear only once in an object; remove or rename one of them",
                None
            ),
            (
                Code::DocumentSyntax,
                "/version",
                "duplicate key `version`",
                "a key may appear only once in an object; remove or rename one of them",
                None
            ),
        ]
    );
    let err =
        Program::from_json(r#"{"version": 1, "schema": {"events": {"a/b": {}, "a/b": {}}}}"#).unwrap_err();
    assert_eq!(err.diagnostics[0].path, "/schema/events/a~1b");
}

#[cfg(feature = "toml")]
#[test]
fn toml_rejects_duplicate_keys_too() {
    let err = Program::from_toml("version = 1\nversion = 1\n[schema.events.e]\n").unwrap_err();
    assert_eq!(err.diagnostics[0].code, Code::DocumentSyntax);
    assert!(err.diagnostics[0].span.is_some());
}

#[test]
fn every_document_problem_has_a_path_and_help() {
    let docs = [
        r#"{"version": "1", "schema": []}"#,
        r#"{"version": 1, "schema": {"events": {"e": {}}}, "rules": {"id": "r"}}"#,
        r#"{"version": 1, "schema": {"events": {"e": {}}}, "rules": [{"id": "r", "on": {"direction": "up"}}]}"#,
        r#"{"version": 1, "schema": {"events": {"e": {}}}, "rules": [{"id": "r", "on": 3, "filter": {"all": [], "not": {}}}]}"#,
        r#"{"version": 1, "schema": {"events": {"e": 3}, "scores": "a"}, "counters": [{"id": "c", "on": "e", "window": 7}]}"#,
        r#"{"version": 1, "schema": {"events": {"e": {}}}, "rules": [{"id": "r", "on": "e", "actions": [{"type": 1}, 2, {}]}]}"#,
        r#"{"version": 1, "schema": {"events": {"e": {}}}, "scoring": {"models": [{"id": "m", "decay": {"zone": "UTC"}, "groups": [{"id": "g", "decay": 2}]}]}}"#,
    ];
    for doc in docs {
        let err = Program::from_json(doc).unwrap_err();
        for d in &err.diagnostics {
            assert!(d.path.starts_with('/'), "{doc}: {d:?}");
            assert!(d.help.is_some(), "{doc}: {d:?}");
            assert!(!d.message.contains("untagged"), "{doc}: {d:?}");
        }
    }
}

/// A document using every form of the format: each trigger, action, decay and repeat
/// form, filters, counters and segments.
const EVERY_FORM: &str = r#"{
  "version": 1, "name": "every-form",
  "schema": {"contact": {"signup": "timestamp", "plan": "string", "n": "int"},
             "events": {"visit": {"url": "string"}}, "scores": ["engagement"]},
  "rules": [
    {"id": "a", "description": "d", "on": "visit", "when": "event.url == '/x'", "repeat": "once", "enabled": true,
     "actions": [{"type": "send", "channel": "email", "template": "t", "needs_approval": true},
                 {"type": "set_attribute", "field": "plan", "value": "pro"},
                 {"type": "clear_attribute", "field": "plan"}, {"type": "add_tag", "tag": "t"},
                 {"type": "remove_tag", "tag": "t"}, {"type": "add_to_list", "list": "l"},
                 {"type": "remove_from_list", "list": "l"}, {"type": "set_lifecycle_stage", "stage": "mql"},
                 {"type": "adjust_score", "score": "engagement", "points": 5},
                 {"type": "notify_owner", "message": "m"}, {"type": "assign_owner", "owner": "o"},
                 {"type": "crm_write", "field": "f", "value": 1}, {"type": "enroll_journey", "journey": "j"},
                 {"type": "remove_from_journey", "journey": "j"}]},
    {"id": "b", "on": {"score": "engagement", "threshold": "mql", "direction": "down"},
     "filter": {"all": [{"field": "contact.plan", "op": "equals", "value": "pro"},
                        {"not": {"any": [{"field": "contact.n", "op": "gt", "value": 3}]}}]}},
    {"id": "c", "on": {"score": "engagement", "band": "hot", "direction": "enter"}},
    {"id": "d", "on": {"segment": "big", "direction": "exit"}},
    {"id": "e", "on": {"attribute": "plan", "from": "free", "to": "pro"}, "repeat": {"max": 2, "per": "1d"}},
    {"id": "f", "on": {"date": "signup", "offset": "-7d", "at": "10:00", "zone": "UTC", "every_year": true}},
    {"id": "g", "on": {"schedule": "monthly", "at": "09:00", "day": 3, "zone": "Europe/Paris"}},
    {"id": "h", "on": {"schedule": "weekly", "weekday": "friday"}},
    {"id": "i", "on": {"inactive": "*", "for": "30d"}}
  ],
  "scoring": {"models": [
    {"id": "engagement", "cap": 100, "floor": 0, "decay": {"half_life": "30d"},
     "groups": [{"id": "web", "cap": 50, "floor": 0, "decay": {"step": 0.5, "every": "month", "zone": "UTC"}},
                {"id": "mail", "timeframe": "90d"}, {"id": "none", "decay": "none"}],
     "rules": [{"id": "v", "on": "visit", "when": "true", "points": 5, "group": "web", "repeat": {"max": 3, "per": "1d"},
                "min_interval": "1h"},
               {"id": "w", "on": "visit", "filter": {"field": "event.url", "op": "starts_with", "value": "/"}, "points": 1},
               {"id": "fit", "fit": "contact.n > 10", "points": 20}],
     "thresholds": [{"id": "mql", "enter": 50, "exit": 40, "rearm": "every_crossing"}],
     "bands": [{"name": "cold", "from": 0}, {"name": "hot", "from": 60}]},
    {"id": "total", "combine": {"engagement": 1}}
  ]},
  "counters": [{"id": "visits", "on": "visit", "when": "true", "window": "7d", "max": 100},
               {"id": "docs", "on": "visit", "filter": {"field": "event.url", "op": "contains", "value": "docs"}, "window": "1d"}],
  "segments": [{"id": "big", "description": "d", "when": "contact.n > 100"},
               {"id": "pro", "filter": {"field": "contact.plan", "op": "in", "value": ["pro"]}}]
}"#;

/// Every JSON pointer in a value.
fn pointers(value: &serde_json::Value, at: String, out: &mut Vec<String>) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, child) in map {
                pointers(child, format!("{at}/{key}"), out);
            }
        }
        serde_json::Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                pointers(child, format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
    out.push(at);
}

#[test]
fn the_every_form_document_compiles() {
    let program = Program::from_json(EVERY_FORM).unwrap_or_else(|e| panic!("{}", e.render()));
    assert_eq!(program.name(), Some("every-form"));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Whatever value replaces whatever part of a valid document, the reader either
    /// accepts it or names the problem at a path: serde's own pathless errors never
    /// reach the user.
    #[test]
    fn any_broken_value_is_reported_at_a_path(
        pick in any::<prop::sample::Index>(),
        replacement in prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::from),
            any::<i64>().prop_map(serde_json::Value::from),
            (-1e6f64..1e6).prop_map(serde_json::Value::from),
            prop::sample::select(vec!["up", "down", "x", "once", "none", "email", "equals", "30d", "send", ""])
                .prop_map(serde_json::Value::from),
            Just(serde_json::json!([])),
            Just(serde_json::json!({})),
            Just(serde_json::json!({"max": 1})),
            Just(serde_json::json!({"score": "engagement"})),
        ],
        remove in any::<bool>(),
    ) {
        let mut doc: serde_json::Value = serde_json::from_str(EVERY_FORM).unwrap();
        let mut all = Vec::new();
        pointers(&doc, String::new(), &mut all);
        let at = pick.get(&all).clone();
        if remove {
            if let Some((parent, key)) = at.rsplit_once('/') {
                match doc.pointer_mut(parent) {
                    Some(serde_json::Value::Object(map)) => { map.remove(key); }
                    Some(serde_json::Value::Array(items)) => {
                        if let Ok(i) = key.parse::<usize>() { items.remove(i); }
                    }
                    _ => {}
                }
            }
        } else if let Some(slot) = doc.pointer_mut(&at) {
            *slot = replacement;
        }
        if let Err(err) = Program::from_json(&doc.to_string()) {
            for d in &err.diagnostics {
                prop_assert!(d.path.starts_with('/'), "{}", err.render());
                prop_assert!(!d.message.starts_with("invalid document"), "{at}: {}", err.render());
            }
        }
    }
}
