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

/// Parses a whole Dockerfile with the file rules (the reference for [`crate::lines::Lines`]):
/// its top-level pairs (`bom`, `directive_line`s, `*_line`s and `EOI`), with the rules of the
/// escape character the first `escape` directive chooses (its value is checked when the
/// directive is read). The rules match every input, so an error is
/// a bug in the grammar; it carries the byte offset pest stopped at.
#[cfg(test)]
pub(crate) fn parse_dockerfile(text: &str) -> Result<pest::iterators::Pairs<'_, Rule>, usize> {
    let backtick = escape_is_backtick(text)?;
    parse_top(if backtick { Rule::backtick_dockerfile } else { Rule::backslash_dockerfile }, text)
}

/// Parses a whole Dockerfile into logical lines (`*_logical_lines`, the reference for the
/// joining in [`crate::raw`]), with the rules of the escape character the directives choose.
#[cfg(test)]
pub(crate) fn parse_logical_lines(text: &str) -> Result<pest::iterators::Pairs<'_, Rule>, usize> {
    let backtick = escape_is_backtick(text)?;
    parse_top(if backtick { Rule::backtick_logical_lines } else { Rule::backslash_logical_lines }, text)
}

#[cfg(test)]
fn parse_top(rule: Rule, text: &str) -> Result<pest::iterators::Pairs<'_, Rule>, usize> {
    match Grammar::parse(rule, text) {
        Ok(mut pairs) => pairs.next().map(|top| top.into_inner()).ok_or(0),
        Err(err) => Err(match err.location {
            pest::error::InputLocation::Pos(pos) | pest::error::InputLocation::Span((pos, _)) => pos,
        }),
    }
}

/// Whether the first `escape` directive chooses the backtick.
#[cfg(test)]
fn escape_is_backtick(text: &str) -> Result<bool, usize> {
    for line in parse_top(Rule::directives, text)?.filter(|pair| pair.as_rule() == Rule::directive_line) {
        let mut parts = line.into_inner();
        let name = parts.next().map_or("", |p| p.as_str());
        if name.eq_ignore_ascii_case("escape") {
            let value = parts.next().map_or("", |p| p.as_str());
            return Ok(value.trim_matches([' ', '\t', '\u{c}', '\r']) == "`");
        }
    }
    Ok(false)
}

/// The first inner pair of `pair` with the given rule.
#[cfg(test)]
pub(crate) fn inner<'i>(pair: &Pair<'i, Rule>, rule: Rule) -> Option<Pair<'i, Rule>> {
    pair.clone().into_inner().find(|p| p.as_rule() == rule)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

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
