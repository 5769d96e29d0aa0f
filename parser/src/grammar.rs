//! The pest grammar (`grammar.pest`) and small helpers around it. `Rule` stays crate-private.

use pest::Parser as _;
use pest::iterators::Pair;

#[derive(pest_derive::Parser)]
#[grammar = "grammar.pest"]
pub(crate) struct Grammar;

/// Parses `input` with `rule` and returns the top pair, or `None` when it does not match.
pub(crate) fn parse_rule(rule: Rule, input: &str) -> Option<Pair<'_, Rule>> {
    Grammar::parse(rule, input).ok().and_then(|mut pairs| pairs.next())
}

/// Byte ranges of the physical lines of `text`, line endings included.
///
/// This is the hot path of the parser, so it splits on `\n` directly; the `dockerfile_lines`
/// rule of the grammar defines the same split and a unit test keeps the two in agreement.
pub(crate) fn physical_lines(text: &str) -> Vec<(usize, usize)> {
    let mut ranges = Vec::with_capacity(text.len() / 32 + 1);
    let mut start = 0;
    for line in text.split_inclusive('\n') {
        ranges.push((start, start + line.len()));
        start += line.len();
    }
    ranges
}

/// [`physical_lines`] with the pest grammar (the reference for the fast version).
#[cfg(test)]
fn physical_lines_pest(text: &str) -> Vec<(usize, usize)> {
    let Some(file) = parse_rule(Rule::dockerfile_lines, text) else {
        return if text.is_empty() { Vec::new() } else { vec![(0, text.len())] };
    };
    file.into_inner()
        .filter(|p| matches!(p.as_rule(), Rule::line_with_end | Rule::last_line))
        .map(|p| (p.as_span().start(), p.as_span().end()))
        .collect()
}

/// The first inner pair of `pair` with the given rule.
pub(crate) fn inner<'i>(pair: &Pair<'i, Rule>, rule: Rule) -> Option<Pair<'i, Rule>> {
    pair.clone().into_inner().find(|p| p.as_rule() == rule)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn splits_physical_lines() {
        let lines = physical_lines("a\r\nb\n\nc");
        assert_eq!(lines, [(0, 3), (3, 5), (5, 6), (6, 7)]);
        assert!(physical_lines("").is_empty());
        assert_eq!(physical_lines("x\n"), [(0, 2)]);
        for text in ["", "\n", "\n\n", "a", "a\r\n\r\nb\n", "é\nü", "x\ny\n\nz\n\n"] {
            assert_eq!(physical_lines(text), physical_lines_pest(text), "{text:?}");
        }
    }

    #[test]
    fn heredoc_marker() {
        let pair = parse_rule(Rule::heredoc_marker, "3<<- \"EOF\"").expect("matches");
        assert_eq!(inner(&pair, Rule::heredoc_fd).map(|p| p.as_str()), Some("3"));
        assert!(inner(&pair, Rule::heredoc_chomp).is_some());
        assert_eq!(inner(&pair, Rule::heredoc_word).map(|p| p.as_str()), Some("\"EOF\""));
        assert!(parse_rule(Rule::heredoc_marker, "a<<EOF").is_none());
        assert!(parse_rule(Rule::heredoc_marker, "<<EOF<").is_none());
    }

    #[test]
    fn durations() {
        for ok in ["0", "1s", "1.5h", "-2m3s", "300ms", ".5s", "1.s"] {
            assert!(parse_rule(Rule::duration, ok).is_some(), "{ok}");
        }
        for bad in ["", "1", "s", "1x", "00", "1s2"] {
            assert!(parse_rule(Rule::duration, bad).is_none(), "{bad}");
        }
    }
}
