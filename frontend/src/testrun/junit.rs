//! The JUnit XML report CI systems read (GitHub Actions, GitLab, Jenkins): one `<testsuite>`,
//! one `<testcase>` per test with its verdict and its log as `<system-out>`.

use std::fmt::Write;

use super::verdict::{Kind, Verdict};

/// One finished test as the report shows it.
pub struct Case<'a> {
    pub name: &'a str,
    pub seconds: f64,
    pub verdict: &'a Verdict,
    /// The test's output (serial and Ferrite's messages), possibly cut to its end.
    pub log: &'a str,
    pub rerun: &'a str,
}

/// Text made safe for XML 1.0: markup characters escaped, characters XML cannot carry at all
/// (most control characters, which a guest's serial output may hold) shown as `\xNN`.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{fffe}' || c == '\u{ffff}' => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

/// The whole report.
pub fn render(suite: &str, timestamp: &str, cases: &[Case]) -> String {
    let count = |k: Kind, error: Option<bool>| {
        cases
            .iter()
            .filter(|c| c.verdict.kind == k && error.is_none_or(|e| c.verdict.error == e))
            .count()
    };
    let (failures, errors, skipped) = (
        count(Kind::Fail, Some(false)),
        count(Kind::Fail, Some(true)),
        count(Kind::Skip, None),
    );
    let total: f64 = cases.iter().map(|c| c.seconds).sum();
    let suite = escape(suite);
    let mut x = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        x,
        "<testsuites name=\"{suite}\" tests=\"{}\" failures=\"{failures}\" errors=\"{errors}\" \
         skipped=\"{skipped}\" time=\"{total:.3}\">",
        cases.len()
    );
    let _ = writeln!(
        x,
        "  <testsuite name=\"{suite}\" tests=\"{}\" failures=\"{failures}\" errors=\"{errors}\" \
         skipped=\"{skipped}\" time=\"{total:.3}\" timestamp=\"{}\">",
        cases.len(),
        escape(timestamp)
    );
    for c in cases {
        let _ = writeln!(
            x,
            "    <testcase name=\"{}\" classname=\"{suite}\" time=\"{:.3}\">",
            escape(c.name),
            c.seconds
        );
        let why = escape(&c.verdict.why);
        match (c.verdict.kind, c.verdict.error) {
            (Kind::Pass, _) => {}
            (Kind::Skip, _) => {
                let _ = writeln!(x, "      <skipped message=\"{why}\"/>");
            }
            (Kind::Fail, error) => {
                let tag = if error { "error" } else { "failure" };
                let _ = writeln!(
                    x,
                    "      <{tag} message=\"{why}\">{why}\nrerun: {}</{tag}>",
                    escape(c.rerun)
                );
            }
        }
        let _ = writeln!(x, "      <system-out>{}</system-out>", escape(c.log));
        x.push_str("    </testcase>\n");
    }
    x.push_str("  </testsuite>\n</testsuites>\n");
    x
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_control_characters() {
        assert_eq!(
            escape("a<b>&\"c'\u{1b}[0m\u{0}\n"),
            "a&lt;b&gt;&amp;&quot;c&apos;\\x1b[0m\\x00\n"
        );
    }

    #[test]
    fn counts_and_tags() {
        let v = |kind, error| Verdict {
            kind,
            why: "why <1>".into(),
            error,
        };
        let (p, f, e, s) = (
            v(Kind::Pass, false),
            v(Kind::Fail, false),
            v(Kind::Fail, true),
            v(Kind::Skip, false),
        );
        let case = |name, verdict| Case {
            name,
            seconds: 0.5,
            verdict,
            log: "serial\u{7}",
            rerun: "ferrite run x",
        };
        let x = render(
            "kit",
            "2026-11-29T00:00:00",
            &[case("p", &p), case("f", &f), case("e", &e), case("s", &s)],
        );
        assert!(x.contains(
            "<testsuites name=\"kit\" tests=\"4\" failures=\"1\" errors=\"1\" skipped=\"1\" time=\"2.000\">"
        ), "{x}");
        assert!(x.contains("<failure message=\"why &lt;1&gt;\">"), "{x}");
        assert!(x.contains("<error message="), "{x}");
        assert!(x.contains("<skipped message="), "{x}");
        assert!(x.contains("<system-out>serial\\x07</system-out>"), "{x}");
        assert_eq!(x.matches("<testcase ").count(), 4);
    }
}
