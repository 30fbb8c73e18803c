//! The rules of objects: properties by content model (open, closed, partially open),
//! `required`, `patternProperties`, `additionalProperties`.

use std::collections::BTreeSet;
use std::sync::LazyLock;

use serde_json::{Map, Value};

use super::{ANY, Checker, is_never, is_open, pointer_segment};

impl Checker<'_> {
    pub(super) fn check_object(
        &mut self,
        r: &Map<String, Value>,
        w: &Map<String, Value>,
        path: &str,
    ) {
        self.check_count_bound(r, w, "maxProperties", false, path);
        self.check_count_bound(r, w, "minProperties", true, path);
        let r_properties = subschemas(r, "properties");
        let w_properties = subschemas(w, "properties");
        let w_required = names(w.get("required"));
        for name in names(r.get("required")) {
            let has_default = r_properties
                .get(name)
                .is_some_and(|schema| schema.get("default").is_some());
            // Confluent counts a required property with a default as compatible.
            if !w_required.contains(&name) && !has_default {
                self.report(
                    &format!("{path}/required"),
                    format!(
                        "REQUIRED_ATTRIBUTE_ADDED: the reader requires property '{name}', the writer's schema does not"
                    ),
                );
            }
        }
        let declared: BTreeSet<&String> = r_properties.keys().chain(w_properties.keys()).collect();
        for name in declared {
            let at = format!("{path}/properties/{}", pointer_segment(name));
            match (r_properties.get(name), w_properties.get(name)) {
                (Some(r_schema), Some(w_schema)) => {
                    self.check(r_schema, w_schema, &at);
                    self.check_matching_patterns(r, name, w_schema, path);
                }
                (None, Some(w_schema)) => self.check_removed_property(r, name, w_schema, &at),
                (Some(r_schema), None) => {
                    let w_schema = self.undeclared_writer_schema(w, name);
                    if !self.reads(r_schema, w_schema) {
                        let message = if is_open(w_schema) {
                            format!(
                                "PROPERTY_ADDED_TO_OPEN_CONTENT_MODEL: the reader adds property '{name}', which the writer's open content model may hold with any value"
                            )
                        } else {
                            format!(
                                "PROPERTY_ADDED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL: the reader's property '{name}' does not read what the writer's schema allows under that name"
                            )
                        };
                        self.report(&at, message);
                    }
                    self.check_matching_patterns(r, name, w_schema, path);
                }
                (None, None) => {}
            }
        }
        self.check_undeclared(r, w, path);
    }

    /// A property the writer declares and the reader does not: what the reader applies to
    /// it (its matching `patternProperties`, else `additionalProperties`) must read it.
    fn check_removed_property(
        &mut self,
        r: &Map<String, Value>,
        name: &str,
        w_schema: &Value,
        at: &str,
    ) {
        let (readers, matched) = self.reader_pattern_schemas(r, name);
        let additional = r.get("additionalProperties").unwrap_or(&ANY);
        let mut readers: Vec<(String, &Value)> = readers
            .into_iter()
            .map(|(pattern, schema)| (format!("its patternProperties {pattern:?}"), schema))
            .collect();
        if !matched {
            readers.push(("its additionalProperties".to_string(), additional));
        }
        for (what, r_schema) in readers {
            if self.reads(r_schema, w_schema) {
                continue;
            }
            let message = if r_schema.as_bool() == Some(false) {
                format!(
                    "PROPERTY_REMOVED_FROM_CLOSED_CONTENT_MODEL: the reader lacks property '{name}' and its closed content model rejects it"
                )
            } else {
                format!(
                    "PROPERTY_REMOVED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL: the reader lacks property '{name}' and {what} does not read the writer's values"
                )
            };
            self.report(at, message);
        }
    }

    /// A reader's `patternProperties` that may match a declared `name` apply to it too.
    fn check_matching_patterns(
        &mut self,
        r: &Map<String, Value>,
        name: &str,
        w_schema: &Value,
        path: &str,
    ) {
        let (readers, _) = self.reader_pattern_schemas(r, name);
        for (pattern, r_schema) in readers {
            let at = format!("{path}/patternProperties/{}", pointer_segment(pattern));
            self.check(r_schema, w_schema, &at);
        }
    }

    /// The reader's `patternProperties` that match `name` or may (a pattern the engine does
    /// not take counts as matching), and whether one surely matches.
    fn reader_pattern_schemas<'r>(
        &mut self,
        r: &'r Map<String, Value>,
        name: &str,
    ) -> (Vec<(&'r str, &'r Value)>, bool) {
        let Some(patterns) = r.get("patternProperties").and_then(Value::as_object) else {
            return (Vec::new(), false);
        };
        let mut schemas = Vec::new();
        let mut matched = false;
        for (pattern, schema) in patterns {
            match self.matches(pattern, name) {
                Some(true) => {
                    matched = true;
                    schemas.push((pattern.as_str(), schema));
                }
                None => schemas.push((pattern.as_str(), schema)),
                Some(false) => {}
            }
        }
        (schemas, matched)
    }

    /// What the writer allows under a `name` it does not declare: a matching
    /// `patternProperties` schema, else `additionalProperties` (any value when a pattern
    /// the engine does not take might match).
    fn undeclared_writer_schema<'w>(&mut self, w: &'w Map<String, Value>, name: &str) -> &'w Value {
        let mut unknown = false;
        if let Some(patterns) = w.get("patternProperties").and_then(Value::as_object) {
            for (pattern, schema) in patterns {
                match self.matches(pattern, name) {
                    Some(true) => return schema,
                    None => unknown = true,
                    Some(false) => {}
                }
            }
        }
        if unknown {
            return &ANY;
        }
        w.get("additionalProperties").unwrap_or(&ANY)
    }

    /// Names neither side declares: the reader's `additionalProperties` must read the
    /// writer's, and patterns only one side has are checked against everything the other
    /// side may apply to the names they match (patterns may overlap; the check assumes so).
    fn check_undeclared(&mut self, r: &Map<String, Value>, w: &Map<String, Value>, path: &str) {
        let r_additional = r.get("additionalProperties").unwrap_or(&ANY);
        let w_additional = w.get("additionalProperties").unwrap_or(&ANY);
        let r_patterns = subschemas(r, "patternProperties");
        let w_patterns = subschemas(w, "patternProperties");
        let at = format!("{path}/additionalProperties");
        if r_additional.as_bool() == Some(false) && !is_never(w_additional) {
            self.report(
                &at,
                "ADDITIONAL_PROPERTIES_REMOVED: the reader's content model is closed, the writer's is not".into(),
            );
        } else {
            self.check(r_additional, w_additional, &at);
        }
        for (pattern, w_schema) in w_patterns {
            let at = format!("{path}/patternProperties/{}", pointer_segment(pattern));
            match r_patterns.get(pattern) {
                Some(r_schema) => self.check(r_schema, w_schema, &at),
                None => {
                    if !self.reads(r_additional, w_schema) {
                        self.report(
                            &at,
                            format!(
                                "PATTERN_PROPERTY_REMOVED: the reader lacks patternProperties {pattern:?} and its additionalProperties does not read the writer's values"
                            ),
                        );
                    }
                }
            }
        }
        for (pattern, r_schema) in r_patterns {
            if w_patterns.contains_key(pattern) {
                continue;
            }
            let covered = std::iter::once(w_additional)
                .chain(w_patterns.values())
                .all(|w_schema| self.reads(r_schema, w_schema));
            if !covered {
                self.report(
                    &format!("{path}/patternProperties/{}", pointer_segment(pattern)),
                    format!(
                        "PATTERN_PROPERTY_ADDED: the reader's patternProperties {pattern:?} does not read what the writer's schema allows under the names it matches"
                    ),
                );
            }
        }
    }

    /// Whether `pattern` (a `patternProperties` key) matches `name`; `None` when the regex
    /// engine does not take the pattern (JSON Schema's are ECMA-262 regexes).
    fn matches(&mut self, pattern: &str, name: &str) -> Option<bool> {
        self.patterns
            .entry(pattern.to_string())
            .or_insert_with(|| regex_lite::Regex::new(pattern).ok())
            .as_ref()
            .map(|regex| regex.is_match(name))
    }
}

/// The strings of a `required` list.
fn names(value: Option<&Value>) -> Vec<&str> {
    value
        .and_then(Value::as_array)
        .map(|list| list.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

/// What an absent `properties` or `patternProperties` means.
static NO_SCHEMAS: LazyLock<Map<String, Value>> = LazyLock::new(Map::new);

/// The schemas of a `properties` or `patternProperties` keyword (none when absent).
fn subschemas<'m>(schema: &'m Map<String, Value>, keyword: &str) -> &'m Map<String, Value> {
    schema
        .get(keyword)
        .and_then(Value::as_object)
        .unwrap_or(&NO_SCHEMAS)
}
