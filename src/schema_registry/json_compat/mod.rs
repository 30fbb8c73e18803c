//! JSON Schema compatibility: can data written with the writer's schema be read with the
//! reader's schema, that is, is every value the writer's schema accepts also accepted by the
//! reader's? The answer is the list of reasons it may not be (empty: it is). The rules are
//! the ones Confluent Schema Registry documents for JSON Schema, applied to a reader R and a
//! writer W; each reason starts with the name Confluent gives the change:
//!
//! - A reader that accepts anything (`true`, `{}`, only annotations) reads every writer; a
//!   writer that accepts nothing (`false`) is read by every reader; a `false` reader reads
//!   nothing else.
//! - Types: each type W allows must be one R allows; `integer` is read by `number`, not the
//!   reverse. Without `type`, a schema allows the types of its `enum` values, or any type.
//! - `enum` (`const` is a one-value enum): R may add values, not drop W's.
//! - Bounds may loosen, not tighten: R's `maxLength`, `maxItems`, `maxProperties` and
//!   `maximum` at or above W's, its `min*` at or below W's (`exclusive*` counted), its
//!   `multipleOf` dividing W's; R may drop a bound, and may add one only if W has it.
//!   `pattern`, `format` and `uniqueItems: true` may be dropped, not added or changed.
//! - Objects, by content model. A property both declare is checked inside. A property only
//!   W declares (removed) must be read by what R applies to undeclared names: fine for an
//!   open R (`additionalProperties` absent or `true`), an error for a closed one (`false`),
//!   and for a partially open one (an `additionalProperties` schema, or matching
//!   `patternProperties`) that schema must read it. A property only R declares (added) must
//!   read what W allowed under that name: any value in an open W (so adding a property to
//!   an open content model breaks BACKWARD), nothing in a closed W (so it is fine), W's
//!   schema for undeclared names in a partially open one. Names neither declares go from W's
//!   `additionalProperties` and `patternProperties` to R's. R may require a property W does
//!   not only if R gives it a `default` (as Confluent allows).
//! - Arrays: `items` (one schema, or a tuple with `additionalItems`, or `prefixItems` with
//!   `items`) are checked position by position.
//! - `$ref` to `#/...` inside the document is followed (recursive schemas are checked once
//!   per pair of places); any other `$ref` must be the same text on both sides.
//! - Combined schemas, conservatively: W's `allOf` is merged into one schema (a merge keeps
//!   at least every value the conjunction accepts); each branch of W's `anyOf`/`oneOf` must
//!   be read by R; R's `allOf` conjuncts must each read W, and some branch of R's
//!   `anyOf`/`oneOf` must read W (so adding a branch is compatible, dropping one a writer
//!   used is not; like Confluent, overlap between `oneOf` branches is not considered). R's
//!   `not` must exclude no more than W's `not`.
//! - Keywords the rules do not model (`if`/`then`/`else`, `contains`, `propertyNames`,
//!   `dependencies`, `dependentRequired`, `dependentSchemas`, `unevaluated*`) may be dropped
//!   by R, and otherwise must be equal on both sides.
//!
//! Uncertain cases answer "incompatible": a rule that cannot tell (a pattern the regex
//! engine does not take, patterns that may overlap) assumes the worse case, so a schema
//! accepted as compatible is compatible. A check visits at most [`CHECK_STEPS_MAX`] schema
//! pairs and answers TOO_COMPLEX past that, so a hostile schema cannot make it run long.

use std::collections::{HashMap, HashSet};

use serde_json::{Map, Value};

use super::json_schema::{ParsedJson, REF_HOPS_MAX, resolve_pointer};
use keywords::Types;

mod keywords;
mod object;
#[cfg(test)]
mod tests;

/// Schema pairs one check visits at most.
const CHECK_STEPS_MAX: usize = 100_000;
/// Reasons reported at most (the first ones; a long list helps nobody).
const MESSAGES_MAX: usize = 20;
const TOO_COMPLEX: &str = "TOO_COMPLEX: the schemas are too large to compare";

/// The schema that accepts every value (an absent `additionalProperties`, `items`, ...).
static ANY: Value = Value::Bool(true);

/// Keywords that constrain values; a schema with none of them accepts every value.
const ASSERTION_KEYWORDS: [&str; 43] = [
    "type",
    "enum",
    "const",
    "multipleOf",
    "maximum",
    "exclusiveMaximum",
    "minimum",
    "exclusiveMinimum",
    "maxLength",
    "minLength",
    "pattern",
    "format",
    "items",
    "additionalItems",
    "prefixItems",
    "maxItems",
    "minItems",
    "uniqueItems",
    "contains",
    "maxContains",
    "minContains",
    "maxProperties",
    "minProperties",
    "required",
    "properties",
    "patternProperties",
    "additionalProperties",
    "dependencies",
    "dependentRequired",
    "dependentSchemas",
    "propertyNames",
    "allOf",
    "anyOf",
    "oneOf",
    "not",
    "if",
    "then",
    "else",
    "$ref",
    "$dynamicRef",
    "$recursiveRef",
    "unevaluatedItems",
    "unevaluatedProperties",
];

/// Keywords compared only as a whole: the reader may drop them, or keep them unchanged.
const COMPARED_KEYWORDS: [&str; 14] = [
    "if",
    "then",
    "else",
    "contains",
    "maxContains",
    "minContains",
    "propertyNames",
    "dependencies",
    "dependentRequired",
    "dependentSchemas",
    "unevaluatedItems",
    "unevaluatedProperties",
    "$dynamicRef",
    "$recursiveRef",
];

/// Keywords taken together from one conjunct when `allOf` is merged: each changes what the
/// others of its group mean (`additionalItems` counts from its own `items`, ...).
const MERGE_GROUPS: [&[&str]; 5] = [
    &["items", "additionalItems", "prefixItems"],
    &["if", "then", "else"],
    &["contains", "minContains", "maxContains"],
    &["maximum", "exclusiveMaximum"],
    &["minimum", "exclusiveMinimum"],
];

/// The reasons data written with `writer` may not be read with `reader` (empty: it can).
pub(super) fn can_read(reader: &ParsedJson, writer: &ParsedJson) -> Vec<String> {
    if reader.root == writer.root {
        return Vec::new();
    }
    let mut checker = Checker {
        reader_root: &reader.root,
        writer_root: &writer.root,
        in_progress: HashSet::new(),
        patterns: HashMap::new(),
        messages: Vec::new(),
        steps: 0,
    };
    checker.check(&reader.root, &writer.root, "#");
    // Past the step limit every check passes silently, including inside a `reads` whose
    // report was dropped: the answer must still say no.
    if checker.steps > CHECK_STEPS_MAX
        && !checker.messages.iter().any(|m| m.starts_with(TOO_COMPLEX))
    {
        checker.messages.push(format!("{TOO_COMPLEX} at path '#'"));
    }
    checker.messages
}

/// Whether `schema` accepts every value.
fn is_open(schema: &Value) -> bool {
    match schema {
        Value::Bool(accepts) => *accepts,
        Value::Object(map) => !map.keys().any(|k| ASSERTION_KEYWORDS.contains(&k.as_str())),
        _ => false,
    }
}

/// Whether `schema` accepts no value.
fn is_never(schema: &Value) -> bool {
    match schema {
        Value::Bool(accepts) => !*accepts,
        Value::Object(map) => {
            map.get("not").is_some_and(is_open)
                || map
                    .get("enum")
                    .and_then(Value::as_array)
                    .is_some_and(Vec::is_empty)
        }
        _ => false,
    }
}

fn contains_ref(value: &Value) -> bool {
    match value {
        Value::Object(map) => map.contains_key("$ref") || map.values().any(contains_ref),
        Value::Array(list) => list.iter().any(contains_ref),
        _ => false,
    }
}

/// A property name as a JSON pointer segment.
fn pointer_segment(name: &str) -> String {
    name.replace('~', "~0").replace('/', "~1")
}

/// A schema with its `$ref`s followed.
enum Resolved<'v> {
    /// `followed`: a `$ref` was followed to reach it.
    Schema { schema: &'v Value, followed: bool },
    /// A `$ref` the registry does not follow (not a pointer into the document).
    External(&'v str),
}

fn follow<'v>(root: &'v Value, schema: &'v Value) -> Resolved<'v> {
    let mut current = schema;
    let mut followed = false;
    for _ in 0..REF_HOPS_MAX {
        let Some(reference) = current.get("$ref").and_then(Value::as_str) else {
            return Resolved::Schema {
                schema: current,
                followed,
            };
        };
        match resolve_pointer(root, reference) {
            Ok(Some(target)) => {
                current = target;
                followed = true;
            }
            _ => return Resolved::External(reference),
        }
    }
    // Parsing refuses longer chains; a stored schema that has one is not followed.
    Resolved::External(current.get("$ref").and_then(Value::as_str).unwrap_or(""))
}

/// Adds the keywords of `extra` (a conjunct of an `allOf`) to `base`. Where both constrain
/// the same thing one of them is kept, so the result accepts at least every value both
/// accept: enough to check what a writer may produce, never to narrow it.
fn merge(base: &mut Map<String, Value>, extra: &Map<String, Value>) {
    let base_groups: Vec<bool> = MERGE_GROUPS
        .iter()
        .map(|group| group.iter().any(|k| base.contains_key(*k)))
        .collect();
    for (keyword, value) in extra {
        if let Some(idx) = MERGE_GROUPS
            .iter()
            .position(|group| group.contains(&keyword.as_str()))
        {
            if !base_groups[idx] {
                base.insert(keyword.clone(), value.clone());
            }
            continue;
        }
        match (base.get_mut(keyword), value) {
            (None, _) => {
                base.insert(keyword.clone(), value.clone());
            }
            (Some(Value::Object(mine)), Value::Object(theirs))
                if keyword == "properties" || keyword == "patternProperties" =>
            {
                for (name, schema) in theirs {
                    mine.entry(name.clone()).or_insert_with(|| schema.clone());
                }
            }
            (Some(Value::Array(mine)), Value::Array(theirs)) if keyword == "required" => {
                for name in theirs {
                    if !mine.contains(name) {
                        mine.push(name.clone());
                    }
                }
            }
            _ => {}
        }
    }
}

struct Checker<'a> {
    reader_root: &'a Value,
    writer_root: &'a Value,
    /// (reader, writer) schema pairs reached through a `$ref` and being checked: met again,
    /// they are assumed to match (a recursive schema is checked once per pair of places).
    in_progress: HashSet<(*const Value, *const Value)>,
    /// Compiled `patternProperties` keys (`None`: the regex engine does not take it).
    patterns: HashMap<String, Option<regex_lite::Regex>>,
    messages: Vec<String>,
    steps: usize,
}

impl Checker<'_> {
    fn report(&mut self, path: &str, message: String) {
        if self.messages.len() < MESSAGES_MAX {
            self.messages.push(format!("{message} at path '{path}'"));
        }
    }

    /// Whether `reader` reads `writer`, checked without reporting.
    fn reads(&mut self, reader: &Value, writer: &Value) -> bool {
        let saved = std::mem::take(&mut self.messages);
        self.check(reader, writer, "#");
        let ok = self.messages.is_empty();
        self.messages = saved;
        ok
    }

    /// `reads` with the roles of the two documents swapped: `reader` is a schema of the
    /// writer's document, `writer` one of the reader's (for `not`).
    fn reads_swapped(&mut self, reader: &Value, writer: &Value) -> bool {
        std::mem::swap(&mut self.reader_root, &mut self.writer_root);
        let ok = self.reads(reader, writer);
        std::mem::swap(&mut self.reader_root, &mut self.writer_root);
        ok
    }

    fn check(&mut self, reader: &Value, writer: &Value, path: &str) {
        self.steps += 1;
        if self.steps > CHECK_STEPS_MAX {
            if self.steps == CHECK_STEPS_MAX + 1 {
                self.report(path, TOO_COMPLEX.into());
            }
            return;
        }
        // A `$ref` beside other keywords: the siblings constrain too (since draft 2019-09),
        // so a reader's are checked as well.
        if let Some(map) = reader.as_object()
            && map.contains_key("$ref")
            && map
                .keys()
                .any(|k| k != "$ref" && ASSERTION_KEYWORDS.contains(&k.as_str()))
        {
            let mut siblings = map.clone();
            siblings.remove("$ref");
            self.check(&Value::Object(siblings), writer, path);
        }
        let reader_resolved = follow(self.reader_root, reader);
        let writer_resolved = follow(self.writer_root, writer);
        let (reader, writer, followed) = match (reader_resolved, writer_resolved) {
            (
                Resolved::Schema {
                    schema: r,
                    followed: r_followed,
                },
                Resolved::Schema {
                    schema: w,
                    followed: w_followed,
                },
            ) => (r, w, r_followed || w_followed),
            (Resolved::External(r), Resolved::External(w)) if r == w => return,
            (Resolved::Schema { schema: r, .. }, _) if is_open(r) => return,
            (_, Resolved::Schema { schema: w, .. }) if is_never(w) => return,
            (r, w) => {
                let text = |side: Resolved<'_>| match side {
                    Resolved::External(reference) => format!("$ref {reference:?}"),
                    Resolved::Schema { .. } => "an inline schema".to_string(),
                };
                let message = format!(
                    "REFERENCE_CHANGED: the reader has {} where the writer has {} (a $ref outside the schema is compared by its text)",
                    text(r),
                    text(w)
                );
                self.report(path, message);
                return;
            }
        };
        let pair = (std::ptr::from_ref(reader), std::ptr::from_ref(writer));
        if followed && !self.in_progress.insert(pair) {
            return;
        }
        self.check_resolved(reader, writer, path);
        if followed {
            self.in_progress.remove(&pair);
        }
    }

    fn check_resolved(&mut self, reader: &Value, writer: &Value, path: &str) {
        if is_open(reader) || is_never(writer) {
            return;
        }
        if reader == writer && !contains_ref(reader) {
            return;
        }
        let (Some(r), Some(w)) = (reader.as_object(), writer.as_object()) else {
            let message = if reader.as_bool() == Some(false) {
                "SCHEMA_NARROWED: the reader's schema is false, it reads no value"
            } else {
                "SCHEMA_NARROWED: the writer's schema accepts any value, the reader's does not"
            };
            self.report(path, message.into());
            return;
        };
        if w.contains_key("allOf") {
            let flat = self.flatten(w, 0);
            self.check_resolved(reader, &flat, path);
            return;
        }
        if self.check_writer_branches(reader, w, path) {
            return;
        }
        self.check_reader_combinations(r, writer, path);
        for keyword in COMPARED_KEYWORDS {
            if let Some(value) = r.get(keyword)
                && w.get(keyword) != Some(value)
            {
                self.report(
                    path,
                    format!(
                        "KEYWORD_CHANGED: the reader's {keyword} is not the writer's (it is compared as a whole)"
                    ),
                );
            }
        }
        let r_types = Types::of(r);
        let w_types = Types::of(w);
        let shared = w_types.accepted_by(r_types);
        let unread = w_types.without(shared);
        if !unread.is_empty() {
            let label = if shared.is_empty() {
                "TYPE_CHANGED"
            } else {
                "TYPE_NARROWED"
            };
            self.report(
                path,
                format!(
                    "{label}: the reader's type {} does not read the writer's {}",
                    r_types.names(),
                    unread.names()
                ),
            );
        }
        self.check_enum(r, w, path);
        if shared.has(Types::STRING) {
            self.check_string(r, w, path);
        }
        if shared.has(Types::NUMBER) || shared.has(Types::INTEGER) {
            self.check_number(r, w, w_types, path);
        }
        if shared.has(Types::ARRAY) {
            self.check_array(r, w, path);
        }
        if shared.has(Types::OBJECT) {
            self.check_object(r, w, path);
        }
    }

    /// The writer's `allOf` merged into one schema with the rest of its keywords (`depth`:
    /// conjuncts that are `allOf`s themselves, followed to a bound).
    fn flatten(&self, writer: &Map<String, Value>, depth: usize) -> Value {
        let mut flat = writer.clone();
        flat.remove("allOf");
        let conjuncts = writer
            .get("allOf")
            .and_then(Value::as_array)
            .map_or(&[][..], Vec::as_slice);
        for conjunct in conjuncts {
            // A conjunct that cannot be followed is left out: the writer then seems to
            // accept more than it does, which can only make the answer stricter.
            let Resolved::Schema { schema, .. } = follow(self.writer_root, conjunct) else {
                continue;
            };
            match schema {
                Value::Bool(false) => return Value::Bool(false),
                Value::Object(map) if map.contains_key("allOf") && depth < REF_HOPS_MAX => {
                    if let Value::Object(inner) = self.flatten(map, depth + 1) {
                        merge(&mut flat, &inner);
                    }
                }
                Value::Object(map) => merge(&mut flat, map),
                _ => {}
            }
        }
        Value::Object(flat)
    }

    /// Each branch of the writer's `anyOf`/`oneOf`, with the writer's other keywords, must
    /// be read by the reader. Returns whether the writer had branches (then all is checked).
    fn check_writer_branches(
        &mut self,
        reader: &Value,
        w: &Map<String, Value>,
        path: &str,
    ) -> bool {
        let Some((keyword, branches)) = ["anyOf", "oneOf"]
            .into_iter()
            .find_map(|k| w.get(k).and_then(Value::as_array).map(|b| (k, b)))
        else {
            return false;
        };
        let mut rest = w.clone();
        rest.remove("anyOf");
        rest.remove("oneOf");
        for (idx, branch) in branches.iter().enumerate() {
            let at = format!("{path}/{keyword}/{idx}");
            let merged = match follow(self.writer_root, branch) {
                Resolved::Schema {
                    schema: Value::Object(map),
                    ..
                } if !rest.is_empty() => {
                    let mut merged = map.clone();
                    merge(&mut merged, &rest);
                    Value::Object(merged)
                }
                Resolved::Schema {
                    schema: Value::Bool(true),
                    ..
                } => Value::Object(rest.clone()),
                _ => {
                    self.check(reader, branch, &at);
                    continue;
                }
            };
            self.check(reader, &merged, &at);
        }
        true
    }

    /// The reader's `allOf` conjuncts must each read the writer, some branch of its
    /// `anyOf`/`oneOf` must, and its `not` must exclude no more than the writer's.
    fn check_reader_combinations(&mut self, r: &Map<String, Value>, writer: &Value, path: &str) {
        if let Some(conjuncts) = r.get("allOf").and_then(Value::as_array) {
            for (idx, conjunct) in conjuncts.iter().enumerate() {
                self.check(conjunct, writer, &format!("{path}/allOf/{idx}"));
            }
        }
        for keyword in ["anyOf", "oneOf"] {
            if let Some(branches) = r.get(keyword).and_then(Value::as_array)
                && !branches.iter().any(|branch| self.reads(branch, writer))
            {
                self.report(
                    path,
                    format!(
                        "SUM_TYPE_NARROWED: no branch of the reader's {keyword} reads the writer's schema"
                    ),
                );
            }
        }
        if let Some(r_not) = r.get("not") {
            let excluded_by_writer = writer
                .get("not")
                .is_some_and(|w_not| self.reads_swapped(w_not, r_not));
            if !excluded_by_writer {
                self.report(
                    &format!("{path}/not"),
                    "NOT_TYPE_NARROWED: the reader's not excludes values the writer's schema accepts".into(),
                );
            }
        }
    }
}
