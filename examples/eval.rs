//! Speaks the JSON-lines protocol of the CEL conformance runner: one case per input line
//! (`name`, `expr`, typed `bindings`), one answer per output line (`value` or `error`).
//!
//! ```text
//! ../shared/conformance/run ../shared/conformance/cel-visible.jsonl -- target/release/examples/eval
//! ```
//!
//! Each binding declares a variable whose type is inferred from its value, so the
//! expression is type-checked as a host would declare it.

use std::io::{self, BufRead, Write};
use std::sync::Arc;

use nurture::expr::{Activation, Env};
use nurture::{Duration, Map, Timestamp, Value};
use serde_json::{json, Value as Json};

fn main() -> io::Result<()> {
    let stdin = io::stdin();
    let stdout = io::stdout();
    let mut out = io::BufWriter::new(stdout.lock());
    for line in stdin.lock().lines() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let answer = match serde_json::from_str::<Json>(&line) {
            Ok(case) => answer(&case),
            Err(e) => json!({"name": "", "error": format!("bad input line: {e}")}),
        };
        writeln!(out, "{answer}")?;
    }
    out.flush()
}

fn answer(case: &Json) -> Json {
    let name = case.get("name").and_then(Json::as_str).unwrap_or_default();
    match run(case) {
        Ok(value) => json!({"name": name, "value": encode(&value)}),
        Err(error) => json!({"name": name, "error": error}),
    }
}

fn run(case: &Json) -> Result<Value, String> {
    let expr = case.get("expr").and_then(Json::as_str).ok_or("case has no expr")?;
    let mut env = Env::new();
    let mut values = Vec::new();
    if let Some(Json::Object(bindings)) = case.get("bindings") {
        for (name, typed) in bindings {
            let value = decode(typed)?;
            env = env.with_variable(name, value.infer_type()).map_err(|e| e.to_string())?;
            values.push((name.as_str(), value));
        }
    }
    let compiled = env.compile(expr).map_err(|e| e.render())?;
    let vars = env.bind(values).map_err(|e| e.to_string())?;
    compiled.eval(&Activation::new().with_variables(&vars)).map_err(|e| e.to_string())
}

fn decode(typed: &Json) -> Result<Value, String> {
    let Json::Object(obj) = typed else {
        return Err(format!("typed value expected, got {typed}"));
    };
    let (kind, payload) = obj.iter().next().ok_or("empty typed value")?;
    Ok(match (kind.as_str(), payload) {
        ("null", _) => Value::Null,
        ("bool", Json::Bool(b)) => Value::Bool(*b),
        ("int", Json::Number(n)) => Value::Int(n.as_i64().ok_or("int out of range")?),
        ("double", Json::Number(n)) => Value::Double(n.as_f64().ok_or("bad double")?),
        ("double", Json::String(s)) => Value::Double(match s.as_str() {
            "NaN" => f64::NAN,
            "Infinity" => f64::INFINITY,
            "-Infinity" => f64::NEG_INFINITY,
            other => return Err(format!("bad double {other}")),
        }),
        ("string", Json::String(s)) => Value::string(s),
        ("timestamp", Json::String(s)) => Value::Timestamp(Timestamp::parse(s).map_err(|e| e.to_string())?),
        ("duration", Json::String(s)) => Value::Duration(Duration::parse(s).map_err(|e| e.to_string())?),
        ("list", Json::Array(items)) => {
            Value::List(items.iter().map(decode).collect::<Result<Vec<_>, _>>()?.into())
        }
        ("map", Json::Array(entries)) => {
            let mut map = Map::new();
            for entry in entries {
                let pair = entry.as_array().filter(|p| p.len() == 2).ok_or("map entry must be a pair")?;
                if !map.insert(decode(&pair[0])?, decode(&pair[1])?) {
                    return Err("invalid or duplicate map key".into());
                }
            }
            Value::Map(Arc::new(map))
        }
        (other, _) => return Err(format!("unsupported typed value kind `{other}`")),
    })
}

fn encode(value: &Value) -> Json {
    match value {
        Value::Null => json!({"null": null}),
        Value::Bool(b) => json!({"bool": b}),
        Value::Int(i) => json!({"int": i}),
        Value::Double(d) if d.is_nan() => json!({"double": "NaN"}),
        Value::Double(d) if d.is_infinite() => {
            json!({"double": if *d > 0.0 { "Infinity" } else { "-Infinity" }})
        }
        Value::Double(d) => json!({"double": d}),
        Value::String(s) => json!({"string": &**s}),
        Value::Timestamp(t) => json!({"timestamp": t.to_string()}),
        Value::Duration(d) => json!({"duration": d.to_string()}),
        Value::List(items) => json!({"list": items.iter().map(encode).collect::<Vec<_>>()}),
        Value::Map(map) => {
            json!({"map": map.iter().map(|(k, v)| json!([encode(k), encode(v)])).collect::<Vec<_>>()})
        }
        _ => json!({"error": "unencodable value"}),
    }
}
