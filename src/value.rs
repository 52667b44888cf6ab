//! Runtime values and their static types.

use std::cmp::Ordering;
use std::fmt;
use std::sync::Arc;

use crate::time::{Duration, Timestamp};

/// The static type of an expression, a contact field or an event property.
///
/// `Dyn` stands for "checked at run time": the element type of a list literal that mixes
/// kinds, or of a declared `list(dyn)`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Type {
    /// The `null` type.
    Null,
    /// `true` or `false`.
    Bool,
    /// A 64-bit signed integer; overflow is an error.
    Int,
    /// A 64-bit IEEE-754 float.
    Double,
    /// A UTF-8 string.
    String,
    /// An instant, 0001-01-01 to 9999-12-31 UTC, nanosecond precision.
    Timestamp,
    /// A signed span of time, nanosecond precision.
    Duration,
    /// A list whose elements all have the given type.
    List(Box<Type>),
    /// A map from keys of the first type to values of the second.
    Map(Box<Type>, Box<Type>),
    /// Any type; checked when the expression runs.
    Dyn,
}

impl Type {
    /// `list(elem)`.
    pub fn list(elem: Type) -> Type {
        Type::List(Box::new(elem))
    }

    /// `map(key, value)`.
    pub fn map(key: Type, value: Type) -> Type {
        Type::Map(Box::new(key), Box::new(value))
    }

    /// Whether a value of type `other` may be used where `self` is expected.
    pub(crate) fn accepts(&self, other: &Type) -> bool {
        match (self, other) {
            (Type::Dyn, _) | (_, Type::Dyn) => true,
            (Type::List(a), Type::List(b)) => a.accepts(b),
            (Type::Map(ka, va), Type::Map(kb, vb)) => ka.accepts(kb) && va.accepts(vb),
            (a, b) => a == b,
        }
    }

    /// Whether the type is `int` or `double` (or could be, when dynamic).
    pub(crate) fn is_numeric(&self) -> bool {
        matches!(self, Type::Int | Type::Double)
    }

    /// Parses a type name as written in rule-set documents: `bool`, `int`, `double`,
    /// `string`, `timestamp`, `duration`, `null`, `dyn`, `list(T)`, `map(K, V)`.
    ///
    /// # Errors
    ///
    /// Returns `None` when the text names no type.
    pub fn parse(text: &str) -> Option<Type> {
        let text = text.trim();
        let simple = match text {
            "bool" => Some(Type::Bool),
            "int" => Some(Type::Int),
            "double" => Some(Type::Double),
            "string" => Some(Type::String),
            "timestamp" => Some(Type::Timestamp),
            "duration" => Some(Type::Duration),
            "null" | "null_type" => Some(Type::Null),
            "dyn" => Some(Type::Dyn),
            _ => None,
        };
        if simple.is_some() {
            return simple;
        }
        if let Some(inner) = text.strip_prefix("list(").and_then(|t| t.strip_suffix(')')) {
            return Type::parse(inner).map(Type::list);
        }
        if let Some(inner) = text.strip_prefix("map(").and_then(|t| t.strip_suffix(')')) {
            // Split at the first comma that is not nested inside parentheses.
            let mut depth = 0usize;
            for (i, c) in inner.char_indices() {
                match c {
                    '(' => depth += 1,
                    ')' => depth = depth.saturating_sub(1),
                    ',' if depth == 0 => {
                        let key = Type::parse(&inner[..i])?;
                        let value = Type::parse(&inner[i + 1..])?;
                        return Some(Type::map(key, value));
                    }
                    _ => {}
                }
            }
        }
        None
    }
}

impl fmt::Display for Type {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Type::Null => f.write_str("null"),
            Type::Bool => f.write_str("bool"),
            Type::Int => f.write_str("int"),
            Type::Double => f.write_str("double"),
            Type::String => f.write_str("string"),
            Type::Timestamp => f.write_str("timestamp"),
            Type::Duration => f.write_str("duration"),
            Type::List(e) => write!(f, "list({e})"),
            Type::Map(k, v) => write!(f, "map({k}, {v})"),
            Type::Dyn => f.write_str("dyn"),
        }
    }
}

/// A value: what expressions compute and what contacts and events carry.
///
/// Cloning is cheap: strings, lists and maps are reference-counted.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum Value {
    /// `null`.
    Null,
    /// A boolean.
    Bool(bool),
    /// A 64-bit signed integer.
    Int(i64),
    /// A 64-bit float.
    Double(f64),
    /// A string.
    String(Arc<str>),
    /// An instant.
    Timestamp(Timestamp),
    /// A span of time.
    Duration(Duration),
    /// A list.
    List(Arc<[Value]>),
    /// A map, in insertion order.
    Map(Arc<Map>),
}

/// The kind of a [`Value`], without its payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Kind {
    /// `null`.
    Null,
    /// `bool`.
    Bool,
    /// `int`.
    Int,
    /// `double`.
    Double,
    /// `string`.
    String,
    /// `timestamp`.
    Timestamp,
    /// `duration`.
    Duration,
    /// `list`.
    List,
    /// `map`.
    Map,
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Kind::Null => "null",
            Kind::Bool => "bool",
            Kind::Int => "int",
            Kind::Double => "double",
            Kind::String => "string",
            Kind::Timestamp => "timestamp",
            Kind::Duration => "duration",
            Kind::List => "list",
            Kind::Map => "map",
        })
    }
}

impl Value {
    /// The kind of the value.
    pub fn kind(&self) -> Kind {
        match self {
            Value::Null => Kind::Null,
            Value::Bool(_) => Kind::Bool,
            Value::Int(_) => Kind::Int,
            Value::Double(_) => Kind::Double,
            Value::String(_) => Kind::String,
            Value::Timestamp(_) => Kind::Timestamp,
            Value::Duration(_) => Kind::Duration,
            Value::List(_) => Kind::List,
            Value::Map(_) => Kind::Map,
        }
    }

    /// The value as JSON, the inverse of [`Value::from_json`] (timestamps and durations
    /// as their CEL text). `None` for what JSON cannot hold: non-finite doubles, and
    /// maps whose keys are not strings.
    pub fn to_json(&self) -> Option<serde_json::Value> {
        use serde_json::Value as Json;
        Some(match self {
            Value::Null => Json::Null,
            Value::Bool(b) => Json::Bool(*b),
            Value::Int(i) => Json::from(*i),
            Value::Double(d) => Json::Number(serde_json::Number::from_f64(*d)?),
            Value::String(s) => Json::String(s.to_string()),
            Value::Timestamp(t) => Json::String(t.to_string()),
            Value::Duration(d) => Json::String(d.to_string()),
            Value::List(items) => Json::Array(items.iter().map(Value::to_json).collect::<Option<_>>()?),
            Value::Map(map) => {
                let mut out = serde_json::Map::new();
                for (k, v) in map.iter() {
                    let Value::String(key) = k else {
                        return None;
                    };
                    out.insert(key.to_string(), v.to_json()?);
                }
                Json::Object(out)
            }
        })
    }

    /// A string value.
    pub fn string(s: impl AsRef<str>) -> Value {
        Value::String(Arc::from(s.as_ref()))
    }

    /// A list value.
    pub fn list(items: impl IntoIterator<Item = Value>) -> Value {
        Value::List(items.into_iter().collect())
    }

    /// Whether the value has the given static type (`Dyn` accepts everything).
    pub fn has_type(&self, ty: &Type) -> bool {
        match (self, ty) {
            (_, Type::Dyn) => true,
            (Value::Null, Type::Null) => true,
            (Value::Bool(_), Type::Bool) => true,
            (Value::Int(_), Type::Int) => true,
            (Value::Double(_), Type::Double) => true,
            (Value::String(_), Type::String) => true,
            (Value::Timestamp(_), Type::Timestamp) => true,
            (Value::Duration(_), Type::Duration) => true,
            (Value::List(items), Type::List(elem)) => items.iter().all(|v| v.has_type(elem)),
            (Value::Map(map), Type::Map(k, v)) => {
                map.iter().all(|(key, value)| key.has_type(k) && value.has_type(v))
            }
            _ => false,
        }
    }

    /// CEL equality: numbers compare by mathematical value across `int` and `double`,
    /// lists and maps compare element-wise, other kinds never equal each other.
    /// NaN equals nothing, itself included.
    pub fn cel_eq(&self, other: &Value) -> bool {
        match (self, other) {
            (Value::Null, Value::Null) => true,
            (Value::Bool(a), Value::Bool(b)) => a == b,
            (Value::Int(a), Value::Int(b)) => a == b,
            (Value::Double(a), Value::Double(b)) => a == b,
            (Value::Int(a), Value::Double(b)) | (Value::Double(b), Value::Int(a)) => {
                cmp_int_double(*a, *b) == Some(Ordering::Equal)
            }
            (Value::String(a), Value::String(b)) => a == b,
            (Value::Timestamp(a), Value::Timestamp(b)) => a == b,
            (Value::Duration(a), Value::Duration(b)) => a == b,
            (Value::List(a), Value::List(b)) => {
                a.len() == b.len() && a.iter().zip(b.iter()).all(|(x, y)| x.cel_eq(y))
            }
            (Value::Map(a), Value::Map(b)) => {
                a.len() == b.len() && a.iter().all(|(k, v)| b.get(k).is_some_and(|other| v.cel_eq(other)))
            }
            _ => false,
        }
    }

    /// CEL ordering: numbers across `int` and `double`, strings by code point, bools,
    /// timestamps and durations. `None` when the kinds are not comparable or a NaN takes
    /// part.
    pub fn cel_cmp(&self, other: &Value) -> Option<Ordering> {
        match (self, other) {
            (Value::Bool(a), Value::Bool(b)) => Some(a.cmp(b)),
            (Value::Int(a), Value::Int(b)) => Some(a.cmp(b)),
            (Value::Double(a), Value::Double(b)) => a.partial_cmp(b),
            (Value::Int(a), Value::Double(b)) => cmp_int_double(*a, *b),
            (Value::Double(a), Value::Int(b)) => cmp_int_double(*b, *a).map(Ordering::reverse),
            (Value::String(a), Value::String(b)) => Some(a.cmp(b)),
            (Value::Timestamp(a), Value::Timestamp(b)) => Some(a.cmp(b)),
            (Value::Duration(a), Value::Duration(b)) => Some(a.cmp(b)),
            _ => None,
        }
    }

    /// The value as a map key, when its kind can be one (`int`, `string`, `bool`).
    pub(crate) fn as_key(&self) -> Option<Key> {
        match self {
            Value::Int(i) => Some(Key::Int(*i)),
            Value::String(s) => Some(Key::String(s.clone())),
            Value::Bool(b) => Some(Key::Bool(*b)),
            _ => None,
        }
    }
}

/// Compares an integer with a double exactly (no rounding of the integer).
pub(crate) fn cmp_int_double(a: i64, b: f64) -> Option<Ordering> {
    if b.is_nan() {
        return None;
    }
    // 2^63 as f64 is exact; every i64 is below it.
    const TWO_63: f64 = 9_223_372_036_854_775_808.0;
    if b >= TWO_63 {
        return Some(Ordering::Less);
    }
    if b < -TWO_63 {
        return Some(Ordering::Greater);
    }
    let truncated = b.trunc();
    // `truncated` is now within i64 range, so the cast is exact.
    let whole = truncated as i64;
    match a.cmp(&whole) {
        Ordering::Equal => {
            let frac = b - truncated;
            if frac > 0.0 {
                Some(Ordering::Less)
            } else if frac < 0.0 {
                Some(Ordering::Greater)
            } else {
                Some(Ordering::Equal)
            }
        }
        other => Some(other),
    }
}

impl PartialEq for Value {
    /// Same as [`Value::cel_eq`].
    fn eq(&self, other: &Value) -> bool {
        self.cel_eq(other)
    }
}

/// A hashable map key: CEL map keys are ints, strings or bools.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Key {
    Int(i64),
    String(Arc<str>),
    Bool(bool),
}

/// A CEL map: entries in insertion order, with a hash index for lookups.
#[derive(Clone, Debug, Default)]
pub struct Map {
    entries: Vec<(Value, Value)>,
    index: hashbrown::HashMap<Key, usize>,
}

impl Map {
    /// An empty map.
    pub fn new() -> Map {
        Map::default()
    }

    /// Inserts an entry. Returns `false`, leaving the map unchanged, when the key is
    /// already present or is not of a key kind (`int`, `string`, `bool`).
    pub fn insert(&mut self, key: Value, value: Value) -> bool {
        let Some(k) = key.as_key() else {
            return false;
        };
        if self.index.contains_key(&k) {
            return false;
        }
        self.index.insert(k, self.entries.len());
        self.entries.push((key, value));
        true
    }

    /// Looks a key up. A `double` key with an integral value finds the equal `int` key,
    /// as CEL's heterogeneous equality requires.
    pub fn get(&self, key: &Value) -> Option<&Value> {
        let k = match key {
            Value::Double(d) => {
                if d.fract() == 0.0 && cmp_int_double(*d as i64, *d) == Some(Ordering::Equal) {
                    Key::Int(*d as i64)
                } else {
                    return None;
                }
            }
            other => other.as_key()?,
        };
        self.index.get(&k).map(|&i| &self.entries[i].1)
    }

    /// Whether the key is present.
    pub fn contains_key(&self, key: &Value) -> bool {
        self.get(key).is_some()
    }

    /// The number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the map has no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The entries in insertion order.
    pub fn iter(&self) -> impl Iterator<Item = (&Value, &Value)> {
        self.entries.iter().map(|(k, v)| (k, v))
    }
}

impl From<bool> for Value {
    fn from(v: bool) -> Value {
        Value::Bool(v)
    }
}
impl From<i64> for Value {
    fn from(v: i64) -> Value {
        Value::Int(v)
    }
}
impl From<i32> for Value {
    fn from(v: i32) -> Value {
        Value::Int(v.into())
    }
}
impl From<f64> for Value {
    fn from(v: f64) -> Value {
        Value::Double(v)
    }
}
impl From<&str> for Value {
    fn from(v: &str) -> Value {
        Value::string(v)
    }
}
impl From<String> for Value {
    fn from(v: String) -> Value {
        Value::String(Arc::from(v))
    }
}
impl From<Timestamp> for Value {
    fn from(v: Timestamp) -> Value {
        Value::Timestamp(v)
    }
}
impl From<Duration> for Value {
    fn from(v: Duration) -> Value {
        Value::Duration(v)
    }
}
impl From<Vec<Value>> for Value {
    fn from(v: Vec<Value>) -> Value {
        Value::List(v.into())
    }
}
impl From<Map> for Value {
    fn from(v: Map) -> Value {
        Value::Map(Arc::new(v))
    }
}

impl fmt::Display for Value {
    /// CEL-like literal syntax, for messages and debugging.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Null => f.write_str("null"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Int(i) => write!(f, "{i}"),
            Value::Double(d) => write!(f, "{d:?}"),
            Value::String(s) => write!(f, "{:?}", &**s),
            Value::Timestamp(t) => write!(f, "timestamp({:?})", t.to_string()),
            Value::Duration(d) => write!(f, "duration({:?})", d.to_string()),
            Value::List(items) => {
                f.write_str("[")?;
                for (i, v) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{v}")?;
                }
                f.write_str("]")
            }
            Value::Map(map) => {
                f.write_str("{")?;
                for (i, (k, v)) in map.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{k}: {v}")?;
                }
                f.write_str("}")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn int_double_comparison_is_exact() {
        assert_eq!(cmp_int_double(i64::MAX, i64::MAX as f64), Some(Ordering::Less));
        assert_eq!(cmp_int_double(1, 1.0), Some(Ordering::Equal));
        assert_eq!(cmp_int_double(1, 1.5), Some(Ordering::Less));
        assert_eq!(cmp_int_double(-1, -1.5), Some(Ordering::Greater));
        assert_eq!(cmp_int_double(0, f64::NAN), None);
        assert!(Value::Int(3).cel_eq(&Value::Double(3.0)));
    }

    #[test]
    fn type_names_round_trip() {
        for name in ["int", "list(string)", "map(string, list(int))", "dyn"] {
            assert_eq!(Type::parse(name).map(|t| t.to_string()).as_deref(), Some(name));
        }
        assert_eq!(Type::parse("integer"), None);
    }

    #[test]
    fn map_lookup_with_integral_double() {
        let mut m = Map::new();
        assert!(m.insert(Value::Int(1), Value::from("a")));
        assert!(!m.insert(Value::Int(1), Value::from("b")));
        assert!(m.get(&Value::Double(1.0)).is_some());
        assert!(m.get(&Value::Double(1.5)).is_none());
    }
}
