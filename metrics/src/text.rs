//! The Prometheus text exposition format (version 0.0.4): `# HELP` and `# TYPE` lines per
//! family, then one `name{labels} value` line per sample.

use std::fmt::Write as _;

use crate::histogram::HistogramSnapshot;

/// Builds one exposition. Each family is announced once with [`Encoder::family`], then its
/// samples follow.
#[derive(Debug, Default)]
pub struct Encoder {
    out: String,
}

impl Encoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts a family: `kind` is `counter`, `gauge` or `histogram`.
    pub fn family(&mut self, name: &str, kind: &str, help: &str) {
        debug_assert!(valid_name(name), "bad metric name {name:?}");
        let help = help.replace('\\', "\\\\").replace('\n', "\\n");
        let _ = writeln!(self.out, "# HELP {name} {help}");
        let _ = writeln!(self.out, "# TYPE {name} {kind}");
    }

    /// One sample of the current family.
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.out.push_str(name);
        write_labels(&mut self.out, labels, None);
        let _ = writeln!(self.out, " {}", format_value(value));
    }

    /// A counter or gauge family with one sample per label set.
    pub fn simple(
        &mut self,
        name: &str,
        kind: &str,
        help: &str,
        samples: &[(&[(&str, &str)], u64)],
    ) {
        self.family(name, kind, help);
        for (labels, value) in samples {
            self.sample(name, labels, *value as f64);
        }
    }

    /// A counter or gauge family with one label: a sample per `(label value, value)`.
    pub fn labelled<'a>(
        &mut self,
        name: &str,
        kind: &str,
        help: &str,
        label: &str,
        samples: impl IntoIterator<Item = (&'a str, u64)>,
    ) {
        self.family(name, kind, help);
        for (value_of_label, value) in samples {
            self.sample(name, &[(label, value_of_label)], value as f64);
        }
    }

    /// A histogram family with one label: a series per `(label value, histogram)`.
    pub fn histograms<'a>(
        &mut self,
        name: &str,
        help: &str,
        label: &str,
        series: impl IntoIterator<Item = (&'a str, HistogramSnapshot)>,
    ) {
        self.family(name, "histogram", help);
        for (value_of_label, h) in series {
            self.histogram(name, &[(label, value_of_label)], &h);
        }
    }

    /// The samples of one histogram series: `_bucket` per bound and `+Inf`, `_sum`, `_count`.
    pub fn histogram(&mut self, name: &str, labels: &[(&str, &str)], h: &HistogramSnapshot) {
        for (bound, count) in &h.cumulative {
            let le = format_value(h.unit.expose(*bound));
            self.out.push_str(name);
            self.out.push_str("_bucket");
            write_labels(&mut self.out, labels, Some(&le));
            let _ = writeln!(self.out, " {count}");
        }
        self.out.push_str(name);
        self.out.push_str("_bucket");
        write_labels(&mut self.out, labels, Some("+Inf"));
        let _ = writeln!(self.out, " {}", h.count);
        self.out.push_str(name);
        self.out.push_str("_sum");
        write_labels(&mut self.out, labels, None);
        let _ = writeln!(self.out, " {}", format_value(h.unit.expose(h.sum)));
        self.out.push_str(name);
        self.out.push_str("_count");
        write_labels(&mut self.out, labels, None);
        let _ = writeln!(self.out, " {}", h.count);
    }

    pub fn finish(self) -> String {
        self.out
    }
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn write_labels(out: &mut String, labels: &[(&str, &str)], le: Option<&str>) {
    if labels.is_empty() && le.is_none() {
        return;
    }
    out.push('{');
    let mut first = true;
    for (key, value) in labels.iter().copied().chain(le.map(|le| ("le", le))) {
        if !first {
            out.push(',');
        }
        first = false;
        out.push_str(key);
        out.push_str("=\"");
        for c in value.chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '"' => out.push_str("\\\""),
                '\n' => out.push_str("\\n"),
                c => out.push(c),
            }
        }
        out.push('"');
    }
    out.push('}');
}

/// Integers without a fraction, everything else as Rust prints an `f64` (both parse as
/// Prometheus floats).
fn format_value(value: f64) -> String {
    if value.fract() == 0.0 && value.abs() < 1e15 {
        format!("{}", value as i64)
    } else {
        format!("{value}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Histogram, Unit};

    #[test]
    fn histogram_exposition_is_cumulative_with_inf_equal_to_count() {
        let h = Histogram::new(Unit::Micros, &[1_000, 500_000]);
        h.observe(10);
        h.observe(2_000);
        h.observe(9_000_000);
        let mut e = Encoder::new();
        e.family("x_seconds", "histogram", "A test.");
        e.histogram("x_seconds", &[("api", "Produce")], &h.snapshot());
        assert_eq!(
            e.finish(),
            "# HELP x_seconds A test.\n# TYPE x_seconds histogram\n\
             x_seconds_bucket{api=\"Produce\",le=\"0.001\"} 1\n\
             x_seconds_bucket{api=\"Produce\",le=\"0.5\"} 2\n\
             x_seconds_bucket{api=\"Produce\",le=\"+Inf\"} 3\n\
             x_seconds_sum{api=\"Produce\"} 9.00201\n\
             x_seconds_count{api=\"Produce\"} 3\n"
        );
    }

    #[test]
    fn label_values_are_escaped() {
        let mut e = Encoder::new();
        e.family("y", "gauge", "Back\\slash\nnewline.");
        e.sample("y", &[("topic", "a\"b\\c\nd")], 1.5);
        e.sample("y", &[], 2.0);
        assert_eq!(
            e.finish(),
            "# HELP y Back\\\\slash\\nnewline.\n# TYPE y gauge\n\
             y{topic=\"a\\\"b\\\\c\\nd\"} 1.5\ny 2\n"
        );
    }
}
