//! Rendering of build-check findings: the summary after a build (buildx's "N warnings found")
//! and the report of `kiln build --check` (buildx's `--call check`), with BuildKit's source
//! blocks.

use std::process::ExitCode;

use parser::lint::Finding;
use solver::build::{BuildError, CheckReport};

/// buildx's summary after a build: `N warnings found (use docker --debug to expand):` and one
/// ` - Rule: message (line N)` per finding; empty without findings.
pub fn summary(findings: &[Finding]) -> String {
    if findings.is_empty() {
        return String::new();
    }
    let count = match findings.len() {
        1 => "1 warning found".to_owned(),
        n => format!("{n} warnings found"),
    };
    let mut out = format!("\n {count} (use docker --debug to expand):\n");
    for finding in findings {
        out.push_str(&format!(" - {}\n", finding.short()));
    }
    out
}

/// BuildKit's source block: `NAME:LINE`, a rule, the lines around `start..=end` (4 lines of
/// context for one line, 2 for a range) with `>>>` on the concerned ones, a rule.
pub fn source_block(text: &str, name: &str, start: usize, end: usize) -> String {
    let lines: Vec<&str> = text.split('\n').collect();
    if start < 1 || start > lines.len() {
        return String::new();
    }
    let (marked_start, marked_end) = (start, end.max(start).min(lines.len()));
    let (mut first, mut last) = (marked_start, marked_end);
    let pad = if marked_start == marked_end { 4 } else { 2 };
    let mut padded = 0;
    while padded < pad {
        if first > 1 {
            first -= 1;
            padded += 1;
        }
        if last != lines.len() {
            last += 1;
            padded += 1;
        }
        padded += 1;
    }
    let mut out = format!("{name}:{marked_start}\n--------------------\n");
    for number in first..=last {
        let marker = if (marked_start..=marked_end).contains(&number) { ">>>" } else { "   " };
        out.push_str(&format!(" {number:>3} | {marker} {}\n", lines[number - 1]));
    }
    out.push_str("--------------------\n");
    out
}

/// One finding as `--check` prints it: `WARNING: Rule - URL`, the message, the source block.
fn render_finding(finding: &Finding, text: &str, name: &str) -> String {
    let mut out = format!("\nWARNING: {}", finding.rule.name);
    if let Some(url) = finding.rule.url {
        out.push_str(&format!(" - {url}"));
    }
    out.push_str(&format!("\n{}\n", finding.message));
    if let Some((start, end)) = finding.lines {
        out.push_str(&source_block(text, name, start, end));
    }
    out
}

/// The report of `--check` (on stderr, with the build's other output): the count, each
/// finding, then the error that stopped the checks. Exit status 1 with findings or an error.
pub fn print_report(report: &CheckReport, name: &str) -> ExitCode {
    let text = &report.dockerfile.text;
    let mut out = String::new();
    match report.findings.len() {
        0 if report.error.is_none() && report.violation.is_none() => {
            out.push_str("Check complete, no warnings found.\n")
        }
        0 => {}
        1 => out.push_str("Check complete, 1 warning has been found!\n"),
        n => out.push_str(&format!("Check complete, {n} warnings have been found!\n")),
    }
    for finding in &report.findings {
        out.push_str(&render_finding(finding, text, name));
    }
    let error = match (&report.error, &report.violation) {
        (Some(BuildError::Frontend { text, error }), _) => {
            Some(crate::report::frontend_error(error, text, name))
        }
        (Some(other), _) => Some(format!("ERROR: {}", chain(other))),
        (None, Some(violation)) => Some(format!("ERROR: {violation}")),
        (None, None) => None,
    };
    if let Some(error) = error {
        if !report.findings.is_empty() {
            out.push('\n');
        }
        out.push_str(&error);
        out.push('\n');
    }
    eprint!("{out}");
    if report.findings.is_empty() && report.error.is_none() && report.violation.is_none() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// An error and its causes, `: `-separated.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(next) = cause {
        text.push_str(&format!(": {next}"));
        cause = next.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use parser::lint::rules;

    const TEXT: &str = "\n# a\n#\nFROM scratch AS Bad\n\n# b\n#\nFROM scratch as base2\n";

    #[test]
    fn source_block_pads_like_buildkit() {
        let block = source_block(TEXT, "Dockerfile", 4, 4);
        assert!(block.starts_with("Dockerfile:4\n--------------------\n"), "{block}");
        assert!(block.contains("   2 |     # a\n"), "{block}");
        assert!(block.contains("   4 | >>> FROM scratch AS Bad\n"), "{block}");
        assert!(block.contains("   6 |     # b\n"), "{block}");
        assert!(!block.contains("   7 |"), "{block}");
        assert!(source_block(TEXT, "Dockerfile", 40, 40).is_empty());
    }

    #[test]
    fn findings_render_with_rule_url_and_lines() {
        let finding = Finding {
            rule: &rules::STAGE_NAME_CASING,
            message: "Stage name 'Bad' should be lowercase".into(),
            lines: Some((4, 4)),
        };
        let out = render_finding(&finding, TEXT, "Dockerfile");
        assert!(out.starts_with(
            "\nWARNING: StageNameCasing - https://docs.docker.com/go/dockerfile/rule/stage-name-casing/\nStage name 'Bad' should be lowercase\nDockerfile:4\n"
        ), "{out}");
        assert_eq!(
            summary(std::slice::from_ref(&finding)),
            "\n 1 warning found (use docker --debug to expand):\n - StageNameCasing: Stage name 'Bad' should be lowercase (line 4)\n"
        );
        assert!(summary(&[]).is_empty());
    }
}
