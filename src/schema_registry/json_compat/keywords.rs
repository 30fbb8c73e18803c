//! The rules of single keywords: types, `enum`, bounds, `pattern`/`format`, array items.

use serde_json::{Map, Value};

use super::{ANY, Checker};

/// JSON Schema types as a set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Types(u8);

impl Types {
    pub(super) const NULL: Types = Types(1);
    pub(super) const BOOLEAN: Types = Types(2);
    pub(super) const OBJECT: Types = Types(4);
    pub(super) const ARRAY: Types = Types(8);
    pub(super) const NUMBER: Types = Types(16);
    pub(super) const INTEGER: Types = Types(32);
    pub(super) const STRING: Types = Types(64);
    pub(super) const ALL: Types = Types(127);
    const NAMES: [(Types, &'static str); 7] = [
        (Types::NULL, "null"),
        (Types::BOOLEAN, "boolean"),
        (Types::OBJECT, "object"),
        (Types::ARRAY, "array"),
        (Types::NUMBER, "number"),
        (Types::INTEGER, "integer"),
        (Types::STRING, "string"),
    ];

    /// The types `schema` allows: its `type`, else those of its `enum`/`const` values,
    /// else all.
    pub(super) fn of(schema: &Map<String, Value>) -> Types {
        if let Some(declared) = schema.get("type") {
            let names: Vec<&str> = match declared {
                Value::String(name) => vec![name.as_str()],
                Value::Array(names) => names.iter().filter_map(Value::as_str).collect(),
                _ => return Types::ALL,
            };
            return Types(
                Types::NAMES
                    .iter()
                    .filter(|(_, name)| names.contains(name))
                    .fold(0, |bits, (t, _)| bits | t.0),
            );
        }
        match enum_values(schema) {
            Some(values) => Types(values.iter().fold(0, |bits, v| bits | Types::of_value(v).0)),
            None => Types::ALL,
        }
    }

    fn of_value(value: &Value) -> Types {
        match value {
            Value::Null => Types::NULL,
            Value::Bool(_) => Types::BOOLEAN,
            Value::Object(_) => Types::OBJECT,
            Value::Array(_) => Types::ARRAY,
            Value::String(_) => Types::STRING,
            Value::Number(n) if n.as_f64().is_some_and(|f| f.fract() != 0.0) => Types::NUMBER,
            Value::Number(_) => Types::INTEGER,
        }
    }

    pub(super) fn has(self, other: Types) -> bool {
        self.0 & other.0 != 0
    }

    /// The types of `self` that `reader` accepts (`number` accepts `integer`).
    pub(super) fn accepted_by(self, reader: Types) -> Types {
        let mut accepted = self.0 & reader.0;
        if reader.has(Types::NUMBER) {
            accepted |= self.0 & Types::INTEGER.0;
        }
        Types(accepted)
    }

    pub(super) fn without(self, other: Types) -> Types {
        Types(self.0 & !other.0)
    }

    pub(super) fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub(super) fn names(self) -> String {
        if self == Types::ALL {
            return "any type".into();
        }
        let names: Vec<&str> = Types::NAMES
            .iter()
            .filter(|(t, _)| self.has(*t))
            .map(|(_, name)| *name)
            .collect();
        names.join("|")
    }
}

/// The values `schema` is limited to: its `enum`, or its `const` as one value.
fn enum_values(schema: &Map<String, Value>) -> Option<Vec<&Value>> {
    if let Some(Value::Array(values)) = schema.get("enum") {
        return Some(values.iter().collect());
    }
    schema.get("const").map(|value| vec![value])
}

/// JSON equality, with numbers compared by value (`1` and `1.0` are one value).
fn same_value(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x == y || x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

/// A schema's array items: the schemas of the first positions, the schema of the others,
/// and the keyword that holds the latter.
fn item_layout(schema: &Map<String, Value>) -> (&[Value], &Value, &'static str) {
    if let Some(Value::Array(prefix)) = schema.get("prefixItems") {
        return (prefix, schema.get("items").unwrap_or(&ANY), "items");
    }
    match schema.get("items") {
        Some(Value::Array(prefix)) => (
            prefix,
            schema.get("additionalItems").unwrap_or(&ANY),
            "additionalItems",
        ),
        Some(items) => (&[], items, "items"),
        None => (&[], &ANY, "items"),
    }
}

/// A numeric bound: its value and whether it is exclusive.
#[derive(Debug, Clone, Copy)]
struct Bound {
    value: f64,
    exclusive: bool,
}

impl Bound {
    /// The tightest of `maximum` (draft 4: made exclusive by `exclusiveMaximum: true`)
    /// and `exclusiveMaximum` (a number since draft 6); `lower` for the minimum keywords.
    pub(super) fn of(schema: &Map<String, Value>, lower: bool) -> Option<Bound> {
        let (inclusive_key, exclusive_key) = if lower {
            ("minimum", "exclusiveMinimum")
        } else {
            ("maximum", "exclusiveMaximum")
        };
        let flag = schema.get(exclusive_key).and_then(Value::as_bool) == Some(true);
        let inclusive = schema
            .get(inclusive_key)
            .and_then(Value::as_f64)
            .map(|value| Bound {
                value,
                exclusive: flag,
            });
        let exclusive = schema
            .get(exclusive_key)
            .and_then(Value::as_f64)
            .map(|value| Bound {
                value,
                exclusive: true,
            });
        [inclusive, exclusive]
            .into_iter()
            .flatten()
            .reduce(|a, b| if b.is_within(a, lower) { b } else { a })
    }

    /// Whether every number within `self` is within `other` (both upper bounds, or both
    /// lower ones when `lower`).
    fn is_within(self, other: Bound, lower: bool) -> bool {
        let beyond = if lower {
            self.value < other.value
        } else {
            self.value > other.value
        };
        !beyond && (self.value != other.value || self.exclusive || !other.exclusive)
    }
}

impl Checker<'_> {
    pub(super) fn check_enum(
        &mut self,
        r: &Map<String, Value>,
        w: &Map<String, Value>,
        path: &str,
    ) {
        let Some(r_values) = enum_values(r) else {
            return;
        };
        let Some(w_values) = enum_values(w) else {
            self.report(
                &format!("{path}/enum"),
                "ENUM_ARRAY_ADDED: the reader allows only its enum values, the writer's schema any"
                    .into(),
            );
            return;
        };
        let missing: Vec<String> = w_values
            .iter()
            .filter(|w_value| !r_values.iter().any(|r_value| same_value(r_value, w_value)))
            .map(|value| value.to_string())
            .collect();
        if !missing.is_empty() {
            self.report(
                &format!("{path}/enum"),
                format!(
                    "ENUM_ARRAY_NARROWED: the reader's enum lacks the writer's values [{}]",
                    missing.join(", ")
                ),
            );
        }
    }

    /// A reader's upper (or, `lower`, lower) bound `keyword` on a count must hold for every
    /// writer value: the writer has one at least as tight.
    pub(super) fn check_count_bound(
        &mut self,
        r: &Map<String, Value>,
        w: &Map<String, Value>,
        keyword: &str,
        lower: bool,
        path: &str,
    ) {
        let Some(r_bound) = r.get(keyword).and_then(Value::as_f64) else {
            return;
        };
        let label = upper_snake(keyword);
        let at = format!("{path}/{keyword}");
        match w.get(keyword).and_then(Value::as_f64) {
            None => self.report(
                &at,
                format!("{label}_ADDED: the reader has {keyword} {r_bound}, the writer none"),
            ),
            Some(w_bound) if (lower && w_bound < r_bound) || (!lower && w_bound > r_bound) => {
                let change = if lower { "INCREASED" } else { "DECREASED" };
                self.report(
                    &at,
                    format!(
                        "{label}_{change}: the reader's {keyword} {r_bound} is tighter than the writer's {w_bound}"
                    ),
                );
            }
            Some(_) => {}
        }
    }

    /// A reader's string keyword (`pattern`, `format`) must be the writer's.
    fn check_equal_keyword(
        &mut self,
        r: &Map<String, Value>,
        w: &Map<String, Value>,
        keyword: &str,
        path: &str,
    ) {
        let Some(r_value) = r.get(keyword) else {
            return;
        };
        let label = upper_snake(keyword);
        let at = format!("{path}/{keyword}");
        match w.get(keyword) {
            None => self.report(
                &at,
                format!("{label}_ADDED: the reader has {keyword} {r_value}, the writer none"),
            ),
            Some(w_value) if w_value != r_value => self.report(
                &at,
                format!("{label}_CHANGED: the reader's {keyword} {r_value} is not the writer's {w_value}"),
            ),
            Some(_) => {}
        }
    }

    pub(super) fn check_string(
        &mut self,
        r: &Map<String, Value>,
        w: &Map<String, Value>,
        path: &str,
    ) {
        self.check_count_bound(r, w, "maxLength", false, path);
        self.check_count_bound(r, w, "minLength", true, path);
        self.check_equal_keyword(r, w, "pattern", path);
        self.check_equal_keyword(r, w, "format", path);
    }

    pub(super) fn check_number(
        &mut self,
        r: &Map<String, Value>,
        w: &Map<String, Value>,
        w_types: Types,
        path: &str,
    ) {
        for (lower, label) in [(false, "MAXIMUM"), (true, "MINIMUM")] {
            let Some(r_bound) = Bound::of(r, lower) else {
                continue;
            };
            let at = format!("{path}/{}", if lower { "minimum" } else { "maximum" });
            match Bound::of(w, lower) {
                None => self.report(
                    &at,
                    format!(
                        "{label}_ADDED: the reader bounds numbers the writer's schema does not"
                    ),
                ),
                Some(w_bound) if !w_bound.is_within(r_bound, lower) => {
                    let change = if lower { "INCREASED" } else { "DECREASED" };
                    self.report(
                        &at,
                        format!(
                            "{label}_{change}: the reader's bound {} is tighter than the writer's {}",
                            r_bound.value, w_bound.value
                        ),
                    );
                }
                Some(_) => {}
            }
        }
        let Some(r_step) = r.get("multipleOf").and_then(Value::as_f64) else {
            return;
        };
        let divides = |n: f64| {
            let ratio = n / r_step;
            (ratio - ratio.round()).abs() <= 1e-9 * ratio.abs().max(1.0)
        };
        let integers_only = !w_types.has(Types::NUMBER);
        let at = format!("{path}/multipleOf");
        match w.get("multipleOf").and_then(Value::as_f64) {
            _ if integers_only && divides(1.0) => {}
            None => self.report(
                &at,
                format!("MULTIPLE_OF_ADDED: the reader has multipleOf {r_step}, the writer none"),
            ),
            Some(w_step) if !divides(w_step) => self.report(
                &at,
                format!(
                    "MULTIPLE_OF_CHANGED: the writer's multipleOf {w_step} is not a multiple of the reader's {r_step}"
                ),
            ),
            Some(_) => {}
        }
    }

    pub(super) fn check_array(
        &mut self,
        r: &Map<String, Value>,
        w: &Map<String, Value>,
        path: &str,
    ) {
        self.check_count_bound(r, w, "maxItems", false, path);
        self.check_count_bound(r, w, "minItems", true, path);
        if r.get("uniqueItems") == Some(&Value::Bool(true))
            && w.get("uniqueItems") != Some(&Value::Bool(true))
        {
            self.report(
                &format!("{path}/uniqueItems"),
                "UNIQUE_ITEMS_ADDED: the reader requires unique items, the writer's schema does not".into(),
            );
        }
        let (r_prefix, r_rest, r_rest_keyword) = item_layout(r);
        let (w_prefix, w_rest, _) = item_layout(w);
        for idx in 0..r_prefix.len().max(w_prefix.len()) {
            let r_item = r_prefix.get(idx).unwrap_or(r_rest);
            let w_item = w_prefix.get(idx).unwrap_or(w_rest);
            let keyword = if r.contains_key("prefixItems") {
                "prefixItems"
            } else {
                "items"
            };
            self.check(r_item, w_item, &format!("{path}/{keyword}/{idx}"));
        }
        self.check(r_rest, w_rest, &format!("{path}/{r_rest_keyword}"));
    }
}

/// `maxLength` as `MAX_LENGTH`.
pub(super) fn upper_snake(keyword: &str) -> String {
    let mut out = String::with_capacity(keyword.len() + 4);
    for c in keyword.chars() {
        if c.is_ascii_uppercase() {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}
