//! Avro schema resolution (the Avro specification's "Schema Resolution"): can data written
//! with the writer's schema be read with the reader's schema? The answer is the list of
//! reasons it cannot (empty: it can). Rules, for a reader type R and a writer type W:
//!
//! - Logical types are checked as their underlying types (`date` as `int`, `uuid` as
//!   `string`, `decimal` as its `bytes` or `fixed`, ...).
//! - W a union: every branch of W must be readable by R. Otherwise R a union: some branch of
//!   R must read W.
//! - Equal primitive types match; W may be promoted: `int` to `long`, `float` or `double`;
//!   `long` to `float` or `double`; `float` to `double`; `string` to `bytes` and back.
//! - Arrays: items are checked; maps: values are checked.
//! - Named types (record, enum, fixed) must have the same unqualified name, or R lists W's
//!   full name among its aliases. Fixed types must have the same size. An enum R must hold
//!   every symbol of W, unless R has a default symbol.
//! - Records: each field of R is matched to W's field of the same name (or of one of the R
//!   field's aliases) and their types are checked; a field of R that W lacks needs a default.
//!   Fields of W that R lacks are skipped.
//!
//! Recursive types are checked once per (reader, writer) name pair, and a check visits at
//! most [`CHECK_STEPS_MAX`] type pairs, so a hostile schema cannot make it loop or run long.

use std::collections::HashSet;

use apache_avro::Schema;
use apache_avro::schema::{
    EnumSchema, FixedSchema, Name, NamesRef, RecordSchema, ResolvedSchema, UnionSchema,
};

use super::avro::ParsedAvro;

/// Type pairs one check visits at most (fewer in unit tests, to reach the limit cheaply).
const CHECK_STEPS_MAX: usize = if cfg!(test) { 2_000 } else { 100_000 };
/// Reasons reported at most (the first ones; a long list helps nobody).
const MESSAGES_MAX: usize = 20;

/// The reasons data written with `writer` cannot be read with `reader` (empty: it can).
pub(super) fn can_read(reader: &ParsedAvro, writer: &ParsedAvro) -> Vec<String> {
    let reader_all: Vec<&Schema> = std::iter::once(&reader.schema)
        .chain(reader.referenced.iter())
        .collect();
    let writer_all: Vec<&Schema> = std::iter::once(&writer.schema)
        .chain(writer.referenced.iter())
        .collect();
    let (reader_names, writer_names) = match (
        ResolvedSchema::try_from(reader_all),
        ResolvedSchema::try_from(writer_all),
    ) {
        (Ok(r), Ok(w)) => (r, w),
        (Err(err), _) | (_, Err(err)) => return vec![format!("unresolvable schema: {err}")],
    };
    let mut checker = Checker {
        reader_names: reader_names.get_names(),
        writer_names: writer_names.get_names(),
        in_progress: HashSet::new(),
        messages: Vec::new(),
        steps: 0,
        too_complex: false,
    };
    checker.check(&reader.schema, &writer.schema, "");
    if checker.too_complex {
        // Whatever was found before the limit, the rest was not checked: never compatible.
        checker
            .messages
            .push("TOO_COMPLEX: the schemas are too large to compare".into());
    }
    checker.messages
}

/// A type as resolution sees it: logical types replaced by their underlying types.
#[derive(Clone, Copy)]
enum Shape<'a> {
    Null,
    Boolean,
    Int,
    Long,
    Float,
    Double,
    Bytes,
    String,
    Array(&'a Schema),
    Map(&'a Schema),
    Union(&'a UnionSchema),
    Record(&'a RecordSchema),
    Enum(&'a EnumSchema),
    Fixed(&'a FixedSchema),
    /// `duration`: an anonymous fixed(12).
    Duration,
    /// A name that resolves to nothing (cannot happen for a parsed schema).
    Unknown,
}

impl Shape<'_> {
    fn name(&self) -> String {
        match self {
            Shape::Null => "null".into(),
            Shape::Boolean => "boolean".into(),
            Shape::Int => "int".into(),
            Shape::Long => "long".into(),
            Shape::Float => "float".into(),
            Shape::Double => "double".into(),
            Shape::Bytes => "bytes".into(),
            Shape::String => "string".into(),
            Shape::Array(_) => "array".into(),
            Shape::Map(_) => "map".into(),
            Shape::Union(_) => "union".into(),
            Shape::Record(r) => format!("record {}", r.name),
            Shape::Enum(e) => format!("enum {}", e.name),
            Shape::Fixed(f) => format!("fixed {}", f.name),
            Shape::Duration => "duration".into(),
            Shape::Unknown => "unknown type".into(),
        }
    }
}

struct Checker<'a> {
    reader_names: &'a NamesRef<'a>,
    writer_names: &'a NamesRef<'a>,
    /// (reader, writer) named type pairs being checked: met again, they are assumed to match.
    in_progress: HashSet<(String, String)>,
    messages: Vec<String>,
    steps: usize,
    /// Set once the check passed [`CHECK_STEPS_MAX`]: what is left is not checked.
    too_complex: bool,
}

impl<'a> Checker<'a> {
    fn report(&mut self, path: &str, message: String) {
        if self.messages.len() < MESSAGES_MAX {
            let path = if path.is_empty() { "/" } else { path };
            self.messages.push(format!("{message} at path '{path}'"));
        }
    }

    fn check(&mut self, reader: &'a Schema, writer: &'a Schema, path: &str) {
        self.steps += 1;
        if self.steps > CHECK_STEPS_MAX {
            self.too_complex = true;
            return;
        }
        let r = shape(reader, self.reader_names);
        let w = shape(writer, self.writer_names);
        if let Shape::Union(union) = w {
            for (idx, branch) in union.variants().iter().enumerate() {
                self.check_against_branch(reader, branch, &format!("{path}/{idx}"));
            }
            return;
        }
        if let Shape::Union(union) = r {
            if !union
                .variants()
                .iter()
                .any(|branch| self.reads(branch, writer))
            {
                self.report(
                    path,
                    format!(
                        "MISSING_UNION_BRANCH: the reader's union has no branch for the writer's {}",
                        w.name()
                    ),
                );
            }
            return;
        }
        self.check_shapes(r, w, path);
    }

    /// A writer union's branch must be readable by the (whole) reader type.
    fn check_against_branch(&mut self, reader: &'a Schema, branch: &'a Schema, path: &str) {
        if !self.reads(reader, branch) {
            let branch_name = shape(branch, self.writer_names).name();
            self.report(
                path,
                format!("MISSING_UNION_BRANCH: the reader cannot read the writer's {branch_name}"),
            );
        }
    }

    /// Whether `reader` reads `writer`, checked without reporting.
    fn reads(&mut self, reader: &'a Schema, writer: &'a Schema) -> bool {
        let saved = std::mem::take(&mut self.messages);
        self.check(reader, writer, "");
        let ok = self.messages.is_empty() && !self.too_complex;
        self.messages = saved;
        ok
    }

    fn check_shapes(&mut self, r: Shape<'a>, w: Shape<'a>, path: &str) {
        match (r, w) {
            (Shape::Null, Shape::Null)
            | (Shape::Boolean, Shape::Boolean)
            | (Shape::Int, Shape::Int)
            | (Shape::Long, Shape::Long | Shape::Int)
            | (Shape::Float, Shape::Float | Shape::Long | Shape::Int)
            | (Shape::Double, Shape::Double | Shape::Float | Shape::Long | Shape::Int)
            | (Shape::Bytes | Shape::String, Shape::Bytes | Shape::String)
            | (Shape::Duration, Shape::Duration) => {}
            (Shape::Array(r_items), Shape::Array(w_items)) => {
                self.check(r_items, w_items, &format!("{path}/items"));
            }
            (Shape::Map(r_values), Shape::Map(w_values)) => {
                self.check(r_values, w_values, &format!("{path}/values"));
            }
            (Shape::Fixed(r_fixed), Shape::Fixed(w_fixed)) => {
                self.check_fixed(r_fixed, w_fixed, path);
            }
            (Shape::Enum(r_enum), Shape::Enum(w_enum)) => self.check_enum(r_enum, w_enum, path),
            (Shape::Record(r_record), Shape::Record(w_record)) => {
                self.check_record(r_record, w_record, path);
            }
            _ => self.report(
                path,
                format!(
                    "TYPE_MISMATCH: the reader's type {} cannot read the writer's type {}",
                    r.name(),
                    w.name()
                ),
            ),
        }
    }

    fn check_fixed(&mut self, r: &FixedSchema, w: &FixedSchema, path: &str) {
        if !names_match(&r.name, r.aliases.as_deref(), &w.name) {
            self.report(path, name_mismatch(&r.name, &w.name));
        } else if r.size != w.size {
            self.report(
                path,
                format!(
                    "FIXED_SIZE_MISMATCH: expected size {}, found {}",
                    w.size, r.size
                ),
            );
        }
    }

    fn check_enum(&mut self, r: &EnumSchema, w: &EnumSchema, path: &str) {
        if !names_match(&r.name, r.aliases.as_deref(), &w.name) {
            self.report(path, name_mismatch(&r.name, &w.name));
            return;
        }
        if r.default.is_some() {
            return;
        }
        let missing: Vec<&str> = w
            .symbols
            .iter()
            .filter(|symbol| !r.symbols.contains(symbol))
            .map(String::as_str)
            .collect();
        if !missing.is_empty() {
            self.report(
                &format!("{path}/symbols"),
                format!(
                    "MISSING_ENUM_SYMBOLS: the reader's enum {} lacks the writer's symbols [{}] and has no default",
                    r.name,
                    missing.join(", ")
                ),
            );
        }
    }

    fn check_record(&mut self, r: &'a RecordSchema, w: &'a RecordSchema, path: &str) {
        if !names_match(&r.name, r.aliases.as_deref(), &w.name) {
            self.report(path, name_mismatch(&r.name, &w.name));
            return;
        }
        let pair = (r.name.to_string(), w.name.to_string());
        if !self.in_progress.insert(pair.clone()) {
            return;
        }
        for (idx, field) in r.fields.iter().enumerate() {
            let field_path = format!("{path}/fields/{idx}");
            let written = w.fields.iter().find(|wf| {
                wf.name == field.name
                    || field
                        .aliases
                        .as_ref()
                        .is_some_and(|aliases| aliases.contains(&wf.name))
            });
            match written {
                Some(wf) => self.check(&field.schema, &wf.schema, &format!("{field_path}/type")),
                None if field.default.is_some() => {}
                None => self.report(
                    &field_path,
                    format!(
                        "READER_FIELD_MISSING_DEFAULT_VALUE: the reader's field '{}' has no default value and the writer has no such field",
                        field.name
                    ),
                ),
            }
        }
        self.in_progress.remove(&pair);
    }
}

/// The shape of `schema`, following a named reference through `names`.
fn shape<'a>(schema: &'a Schema, names: &'a NamesRef<'a>) -> Shape<'a> {
    match schema {
        Schema::Ref { name } => match names.get(name) {
            Some(named) if !matches!(named, Schema::Ref { .. }) => shape(named, names),
            _ => Shape::Unknown,
        },
        Schema::Null => Shape::Null,
        Schema::Boolean => Shape::Boolean,
        Schema::Int | Schema::Date | Schema::TimeMillis => Shape::Int,
        Schema::Long
        | Schema::TimeMicros
        | Schema::TimestampMillis
        | Schema::TimestampMicros
        | Schema::TimestampNanos
        | Schema::LocalTimestampMillis
        | Schema::LocalTimestampMicros
        | Schema::LocalTimestampNanos => Shape::Long,
        Schema::Float => Shape::Float,
        Schema::Double => Shape::Double,
        Schema::Bytes | Schema::BigDecimal => Shape::Bytes,
        Schema::String | Schema::Uuid => Shape::String,
        Schema::Decimal(decimal) => shape(&decimal.inner, names),
        Schema::Duration => Shape::Duration,
        Schema::Array(array) => Shape::Array(&array.items),
        Schema::Map(map) => Shape::Map(&map.types),
        Schema::Union(union) => Shape::Union(union),
        Schema::Record(record) => Shape::Record(record),
        Schema::Enum(e) => Shape::Enum(e),
        Schema::Fixed(fixed) => Shape::Fixed(fixed),
    }
}

/// Named types match by unqualified name, or by the reader's aliases naming the writer.
fn names_match(
    reader: &Name,
    reader_aliases: Option<&[apache_avro::schema::Alias]>,
    writer: &Name,
) -> bool {
    if unqualified(reader) == unqualified(writer) {
        return true;
    }
    let writer_full = writer.fullname(None);
    reader_aliases.is_some_and(|aliases| {
        aliases
            .iter()
            .any(|alias| alias.fullname(reader.namespace.clone()) == writer_full)
    })
}

fn unqualified(name: &Name) -> &str {
    name.name.rsplit('.').next().unwrap_or(&name.name)
}

fn name_mismatch(reader: &Name, writer: &Name) -> String {
    format!("NAME_MISMATCH: expected the writer's name {writer}, found {reader}")
}

#[cfg(test)]
mod tests {
    use super::super::avro::parse;
    use super::*;

    fn reads(reader: &str, writer: &str) -> Vec<String> {
        can_read(&parse(reader, &[]).unwrap(), &parse(writer, &[]).unwrap())
    }

    fn record(fields: &str) -> String {
        format!(r#"{{"type":"record","name":"R","namespace":"n","fields":[{fields}]}}"#)
    }

    /// Goal: a check that runs out of steps never answers compatible, even when the limit
    /// is reached inside a union's trial check (whose own findings are discarded).
    #[test]
    fn a_check_past_its_step_limit_is_never_compatible() {
        let fields = |last: &str| {
            let mut fields: Vec<String> = (0..CHECK_STEPS_MAX)
                .map(|i| format!(r#"{{"name":"f{i}","type":"int"}}"#))
                .collect();
            fields.push(format!(r#"{{"name":"last","type":"{last}"}}"#));
            record(&fields.join(","))
        };
        let writer = fields("string");
        // The limit is crossed in the trial of the first branch; the second one is then
        // tried past the limit.
        let reader = format!(r#"[{},"null"]"#, fields("int"));
        let errors = reads(&reader, &writer);
        assert!(
            errors.iter().any(|e| e.contains("TOO_COMPLEX")),
            "{errors:?}"
        );
        // Below the limit the same shapes are checked in full.
        let small_reader = r#"["null",{"type":"record","name":"R","namespace":"n","fields":[{"name":"a","type":"int"}]}]"#;
        let small_writer = record(r#"{"name":"a","type":"int"}"#);
        assert!(reads(small_reader, &small_writer).is_empty());
    }

    #[test]
    fn added_field_needs_a_default() {
        let old = record(r#"{"name":"a","type":"int"}"#);
        let with_default =
            record(r#"{"name":"a","type":"int"},{"name":"b","type":"string","default":"x"}"#);
        let without = record(r#"{"name":"a","type":"int"},{"name":"b","type":"string"}"#);
        assert!(reads(&with_default, &old).is_empty());
        let errors = reads(&without, &old);
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(
            errors[0].contains("READER_FIELD_MISSING_DEFAULT_VALUE") && errors[0].contains("'b'"),
            "{errors:?}"
        );
        // Removing a field: the old reader still finds its fields' defaults or values.
        assert!(reads(&old, &without).is_empty());
        assert!(!reads(&without, &old).is_empty());
    }

    #[test]
    fn primitive_promotions_go_one_way() {
        let ladder = ["int", "long", "float", "double"];
        for (wi, writer) in ladder.iter().enumerate() {
            for (ri, reader) in ladder.iter().enumerate() {
                let ok = reads(&format!("\"{reader}\""), &format!("\"{writer}\"")).is_empty();
                assert_eq!(ok, ri >= wi, "{writer} read as {reader}");
            }
        }
        assert!(reads(r#""bytes""#, r#""string""#).is_empty());
        assert!(reads(r#""string""#, r#""bytes""#).is_empty());
        assert!(!reads(r#""string""#, r#""int""#).is_empty());
        assert!(!reads(r#""boolean""#, r#""null""#).is_empty());
    }

    #[test]
    fn logical_types_are_their_underlying_types() {
        let date = r#"{"type":"int","logicalType":"date"}"#;
        let millis = r#"{"type":"long","logicalType":"timestamp-millis"}"#;
        assert!(reads(r#""long""#, date).is_empty());
        assert!(reads(millis, r#""long""#).is_empty());
        assert!(!reads(date, r#""long""#).is_empty());
    }

    #[test]
    fn enum_symbols_must_be_known_unless_the_reader_has_a_default() {
        let abc = r#"{"type":"enum","name":"E","symbols":["A","B","C"]}"#;
        let ab = r#"{"type":"enum","name":"E","symbols":["A","B"]}"#;
        let ab_default = r#"{"type":"enum","name":"E","symbols":["A","B"],"default":"A"}"#;
        assert!(reads(abc, ab).is_empty());
        let errors = reads(ab, abc);
        assert!(errors[0].contains("MISSING_ENUM_SYMBOLS") && errors[0].contains("[C]"));
        assert!(reads(ab_default, abc).is_empty());
        let other = r#"{"type":"enum","name":"F","symbols":["A","B","C"]}"#;
        assert!(reads(other, abc)[0].contains("NAME_MISMATCH"));
    }

    #[test]
    fn unions_on_either_side() {
        let nullable = r#"["null","string"]"#;
        assert!(reads(nullable, r#""string""#).is_empty());
        assert!(!reads(r#""string""#, nullable).is_empty());
        assert!(reads(r#"["null","long"]"#, r#"["null","int"]"#).is_empty());
        let errors = reads(r#"["null","int"]"#, r#"["null","int","string"]"#);
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(errors[0].contains("'/2'"), "{errors:?}");
        let field_to_union = record(r#"{"name":"a","type":["null","int"],"default":null}"#);
        assert!(reads(&field_to_union, &record(r#"{"name":"a","type":"int"}"#)).is_empty());
    }

    #[test]
    fn nested_records_arrays_and_maps_are_checked_inside() {
        let inner = |t: &str| {
            record(&format!(
                r#"{{"name":"items","type":{{"type":"array","items":{{"type":"record","name":"I","fields":[{{"name":"x","type":"{t}"}}]}}}}}},
                   {{"name":"m","type":{{"type":"map","values":"{t}"}}}}"#
            ))
        };
        assert!(reads(&inner("long"), &inner("int")).is_empty());
        let errors = reads(&inner("int"), &inner("long"));
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(
            errors[0].contains("/fields/0/type/items/fields/0/type"),
            "{errors:?}"
        );
        assert!(errors[1].contains("/fields/1/type/values"), "{errors:?}");
    }

    #[test]
    fn aliases_rename_records_and_fields() {
        let old = r#"{"type":"record","name":"Old","namespace":"n","fields":[{"name":"a","type":"int"}]}"#;
        let renamed = r#"{"type":"record","name":"New","namespace":"n","aliases":["Old"],
                          "fields":[{"name":"b","aliases":["a"],"type":"int"}]}"#;
        assert!(reads(renamed, old).is_empty(), "{:?}", reads(renamed, old));
        assert!(!reads(old, renamed).is_empty());
    }

    #[test]
    fn fixed_sizes_must_match() {
        let four = r#"{"type":"fixed","name":"F","size":4}"#;
        let eight = r#"{"type":"fixed","name":"F","size":8}"#;
        assert!(reads(four, four).is_empty());
        assert!(reads(four, eight)[0].contains("FIXED_SIZE_MISMATCH"));
    }

    #[test]
    fn recursive_types_terminate() {
        let list = |t: &str| {
            format!(
                r#"{{"type":"record","name":"Node","fields":[{{"name":"v","type":"{t}"}},
                   {{"name":"next","type":["null","Node"],"default":null}}]}}"#
            )
        };
        assert!(reads(&list("long"), &list("int")).is_empty());
        assert!(!reads(&list("int"), &list("long")).is_empty());
    }
}
