//! The Prometheus text format 0.0.4: families with their help and type,
//! samples with escaped labels.

use std::fmt::Write as _;

/// Writes metric families into a text, one `# HELP` and `# TYPE` each.
#[derive(Debug)]
pub struct Exposition<'a> {
    out: &'a mut String,
}

impl<'a> Exposition<'a> {
    /// Appends to `out`.
    pub fn new(out: &'a mut String) -> Exposition<'a> {
        Exposition { out }
    }

    /// Starts the family `name` of `kind` (`counter`, `gauge`,
    /// `histogram`), with its help text.
    pub fn family(&mut self, name: &str, kind: &str, help: &str) -> &mut Self {
        let _ = writeln!(self.out, "# HELP {name} {}", escape_help(help));
        let _ = writeln!(self.out, "# TYPE {name} {kind}");
        self
    }

    /// One sample of `name` with `labels` (names and values; the values
    /// escaped here).
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) -> &mut Self {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (n, (label, text)) in labels.iter().enumerate() {
                if n > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{label}=\"{}\"", escape_label(text));
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {}", number(value));
        self
    }

    /// Counters of one sample each: name, help, value.
    pub fn counters(&mut self, counters: &[(&str, &str, u64)]) -> &mut Self {
        for (name, help, value) in counters {
            self.single(name, "counter", help, *value as f64);
        }
        self
    }

    /// A family of one sample per value of one `label`.
    pub fn by_label(
        &mut self,
        name: &str,
        kind: &str,
        help: &str,
        label: &str,
        values: &[(&str, u64)],
    ) -> &mut Self {
        self.family(name, kind, help);
        for (text, value) in values {
            self.sample(name, &[(label, text)], *value as f64);
        }
        self
    }

    /// A family of one sample without labels.
    pub fn single(&mut self, name: &str, kind: &str, help: &str, value: f64) -> &mut Self {
        self.family(name, kind, help).sample(name, &[], value)
    }
}

/// A sample value: integers as integers, `+Inf` and `NaN` as the format
/// spells them.
pub(super) fn number(value: f64) -> String {
    if value.is_nan() {
        "NaN".to_owned()
    } else if value.is_infinite() {
        if value > 0.0 { "+Inf" } else { "-Inf" }.to_owned()
    } else if value.fract() == 0.0 && value.abs() < 9.0e15 {
        format!("{value:.0}")
    } else {
        format!("{value}")
    }
}

fn escape_help(text: &str) -> String {
    text.replace('\\', "\\\\").replace('\n', "\\n")
}

fn escape_label(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::{Exposition, number};

    #[test]
    fn labels_and_numbers_are_written_as_the_format_says() {
        let mut text = String::new();
        Exposition::new(&mut text)
            .family("mcp_x_total", "counter", "Line one\nback\\slash.")
            .sample("mcp_x_total", &[("path", "a\"b\\c\nd")], 3.0)
            .sample("mcp_x_total", &[], 0.25);
        assert_eq!(
            text,
            "# HELP mcp_x_total Line one\\nback\\\\slash.\n# TYPE mcp_x_total counter\n\
             mcp_x_total{path=\"a\\\"b\\\\c\\nd\"} 3\nmcp_x_total 0.25\n"
        );
        assert_eq!(number(f64::INFINITY), "+Inf");
        assert_eq!(number(1e-6), "0.000001");
        assert_eq!(number(12345678.0), "12345678");
    }
}
