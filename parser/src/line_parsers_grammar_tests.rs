//! `line_parsers` against the grammar's instruction rules (`backslash_instruction`,
//! `backtick_instruction`): every logical line of the corpus and every short line over the
//! characters that matter must split into the same keyword, flags and arguments, or fail
//! with the same error, both ways.

use pest::Parser as _;
use pest::iterators::Pair;

use super::{MAX_ONBUILD_NESTING, node_from_line};
use crate::error::ErrorKind;
use crate::grammar::{Grammar, Rule};
use crate::node::{Arg, Node};

/// The instruction as the grammar reads it, converted to a [`Node`] as `line_parsers` does.
fn grammar_node(line: &str, escape: char) -> Result<Node, ErrorKind> {
    let rule = if escape == '`' { Rule::backtick_instruction } else { Rule::backslash_instruction };
    let trimmed = line.trim();
    let top = Grammar::parse(rule, trimmed)
        .unwrap_or_else(|err| panic!("the grammar refuses {trimmed:?}: {err}"))
        .next()
        .expect("one pair");
    let instruction = top.into_inner().next().expect("instruction");
    let mut node = convert(instruction, 0)?;
    node.original = line.to_string();
    Ok(node)
}

fn convert(instruction: Pair<'_, Rule>, depth: usize) -> Result<Node, ErrorKind> {
    let original = instruction.as_str().to_string();
    let mut parts = instruction.into_inner();
    let keyword = parts.next().expect("keyword").as_str().to_string();
    let lower = keyword.to_ascii_lowercase();
    let mut node = Node {
        keyword,
        flags: Vec::new(),
        args: Vec::new(),
        json: false,
        heredocs: Vec::new(),
        original,
        comments: Vec::new(),
        location: Default::default(),
    };
    let known = [
        "add",
        "arg",
        "cmd",
        "copy",
        "entrypoint",
        "env",
        "expose",
        "from",
        "healthcheck",
        "label",
        "maintainer",
        "onbuild",
        "run",
        "shell",
        "stopsignal",
        "user",
        "volume",
        "workdir",
    ];
    let mut form = None;
    for part in parts {
        match part.as_rule() {
            Rule::builder_flag => node.flags.push(flag(part)),
            _ => form = Some(part),
        }
    }
    let text = |args: Vec<String>| args.into_iter().map(Arg::Text).collect::<Vec<_>>();
    let Some(form) = form else {
        if !known.contains(&lower.as_str()) {
            node.args = text(vec![String::new()]);
        }
        return Ok(node);
    };
    match form.as_rule() {
        Rule::exec_form | Rule::shell_form => {
            let (args, json) = command(form)?;
            node.args = text(args);
            node.json = json;
        }
        Rule::whitespace_list => {
            node.args = text(form.into_inner().map(|p| p.as_str().to_string()).collect())
        }
        Rule::words if lower == "arg" => {
            node.args = text(form.into_inner().map(|p| p.as_str().to_string()).collect())
        }
        Rule::words => {
            let mut args = Vec::new();
            for word in form.into_inner() {
                let word = word.as_str();
                let Some((key, value)) = word.split_once('=') else {
                    return Err(ErrorKind::MissingEquals { word: word.to_string() });
                };
                args.extend([key.to_string(), value.to_string(), "=".to_string()]);
            }
            node.args = text(args);
        }
        Rule::legacy_name_value => {
            let mut parts = form.into_inner();
            let key = parts.next().expect("key").as_str().to_string();
            let Some(value) = parts.next() else {
                return Err(ErrorKind::MissingValue { instruction: lower.to_ascii_uppercase() });
            };
            node.args = text(vec![key, value.as_str().to_string(), String::new()]);
        }
        Rule::health_arguments => {
            let mut parts = form.into_inner();
            let kind = parts.next().expect("type").as_str().to_string();
            let (args, json) = match parts.next() {
                Some(command_form) => command(command_form)?,
                None => (Vec::new(), false),
            };
            node.args = text(std::iter::once(kind).chain(args).collect());
            node.json = json;
        }
        Rule::instruction => {
            if depth >= MAX_ONBUILD_NESTING {
                return Err(ErrorKind::NestingTooDeep { what: "ONBUILD", limit: MAX_ONBUILD_NESTING });
            }
            node.args = vec![Arg::Node(Box::new(convert(form, depth + 1)?))];
        }
        Rule::single_argument if known.contains(&lower.as_str()) => {
            node.args = text(vec![form.as_str().to_string()]);
        }
        Rule::single_argument => node.args = text(vec![String::new()]),
        other => panic!("unexpected {other:?}"),
    }
    Ok(node)
}

/// A builder flag with its quotes and escapes removed, its bytes read as Latin-1 (BuildKit's
/// byte-wise scan).
fn flag(pair: Pair<'_, Rule>) -> String {
    fn cook(pair: Pair<'_, Rule>, out: &mut String) {
        for piece in pair.into_inner() {
            match piece.as_rule() {
                Rule::flag_quoted | Rule::flag_escaped => cook(piece, out),
                _ => out.push_str(piece.as_str()),
            }
        }
    }
    let mut cooked = String::from("--");
    cook(pair, &mut cooked);
    cooked.bytes().map(char::from).collect()
}

/// The exec form's strings (an array holding anything else is an error), or the shell form.
fn command(form: Pair<'_, Rule>) -> Result<(Vec<String>, bool), ErrorKind> {
    if form.as_rule() == Rule::shell_form {
        return Ok((vec![form.as_str().to_string()], false));
    }
    let mut strings = Vec::new();
    for element in form.into_inner().filter(|pair| pair.as_rule() != Rule::EOI) {
        if element.as_rule() != Rule::json_string {
            return Err(ErrorKind::NotStringArray);
        }
        let chars = element.into_inner().next().expect("json_chars").as_str();
        strings.push(json_unescape(chars));
    }
    Ok((strings, true))
}

/// The text of a `json_chars` pair, its escapes decoded as Go does (lone surrogates: U+FFFD).
fn json_unescape(raw: &str) -> String {
    let mut out = String::new();
    let mut chars = raw.chars();
    let hex = |chars: &mut std::str::Chars<'_>| {
        let digits: String = chars.by_ref().take(4).collect();
        u32::from_str_radix(&digits, 16).expect("four hex digits")
    };
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next().expect("escape") {
            'b' => out.push('\u{8}'),
            'f' => out.push('\u{c}'),
            'n' => out.push('\n'),
            'r' => out.push('\r'),
            't' => out.push('\t'),
            'u' => {
                let first = hex(&mut chars);
                if (0xD800..0xDC00).contains(&first) && chars.as_str().starts_with("\\u") {
                    let mut ahead = chars.clone();
                    ahead.nth(1);
                    let second = hex(&mut ahead);
                    if (0xDC00..0xE000).contains(&second) {
                        let code = 0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00);
                        out.push(char::from_u32(code).unwrap_or('\u{fffd}'));
                        chars = ahead;
                        continue;
                    }
                }
                out.push(char::from_u32(first).unwrap_or('\u{fffd}'));
            }
            other => out.push(other),
        }
    }
    out
}

fn check(line: &str, escape: char) {
    let hand = node_from_line(line.to_string(), escape);
    let grammar = grammar_node(line, escape);
    assert_eq!(hand, grammar, "{line:?} with escape {escape:?}");
}

#[test]
fn agrees_with_the_grammar_on_the_corpus() {
    let roots = [
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../testdata/parser"),
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../testdata/conformance"),
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../testdata/buildkit-port"),
    ];
    let mut lines = 0;
    let mut stack: Vec<std::path::PathBuf> = roots.into_iter().filter(|r| r.is_dir()).collect();
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("read corpus dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let Ok(text) = std::fs::read_to_string(&path) else { continue };
            let Ok(raw) = crate::parse_raw(&text) else { continue };
            for node in &raw.nodes {
                // Outside ASCII, BuildKit's byte-wise flag scan and Go's lower-casing of
                // keywords are Rust's (see the grammar).
                if node.original.is_ascii() {
                    check(&node.original, raw.escape);
                    lines += 1;
                }
            }
        }
    }
    assert!(lines > 500, "only {lines} corpus lines");
}

#[test]
fn agrees_with_the_grammar_on_every_short_line() {
    let heads = [
        "RUN ",
        "cmd ",
        "COPY ",
        "volume ",
        "ENV ",
        "label ",
        "ARG ",
        "FROM ",
        "HEALTHCHECK ",
        "ONBUILD ",
        "USER ",
        "frob ",
        "RUN --",
        "ENV --a ",
    ];
    let alphabet = ['a', '-', '=', ' ', '\t', '\\', '`', '\'', '"', '['];
    for head in heads {
        for tail in crate::raw::tests::all_strings(&alphabet, 4) {
            let line = format!("{head}{tail}");
            check(&line, '\\');
            check(&line, '`');
        }
    }
    for tail in crate::raw::tests::all_strings(&alphabet, 5) {
        check(&format!("RUN --{tail}"), '\\');
    }
    for keyword in ["RUN", "env", "ONBUILD", "ADD", "ARG", "onbuildx", "x"] {
        check(keyword, '\\');
    }
}

#[test]
fn agrees_with_the_grammar_on_exec_forms() {
    let alphabet = ['[', ']', '"', 'a', ',', ' ', '\\', '1', '{', '}', ':', 'u', 'e', '.'];
    for tail in crate::raw::tests::all_strings(&alphabet, 4) {
        check(&format!("CMD {tail}"), '\\');
        check(&format!("COPY [{tail}"), '\\');
    }
    for json in [
        r#"["a", "b\u00e9\n"]"#,
        r#"["\ud800x", "\ud83d\ude00", "\/\b\f\r\t"]"#,
        r#"["a", {"k": [1, null, true, false, -0.5e+3]}]"#,
        r#"[ "a" ] "#,
        r#"["a"] x"#,
        "['a']",
        "[01]",
        "[1.]",
        "[\"\t\"]",
    ] {
        check(&format!("ENTRYPOINT {json}"), '\\');
        check(&format!("HEALTHCHECK CMD {json}"), '\\');
        check(&format!("ONBUILD RUN {json}"), '\\');
    }
}

#[test]
fn onbuild_nesting_is_bounded_both_ways() {
    for depth in [MAX_ONBUILD_NESTING, MAX_ONBUILD_NESTING + 1] {
        check(&format!("{}RUN x", "ONBUILD ".repeat(depth)), '\\');
    }
}

/// What splitting every logical line of a Dockerfile costs by hand and through the grammar's
/// pairs: `KILN_SPLIT_TIMING=<Dockerfile> cargo test --release -p kiln-parser --lib
/// split_timing -- --ignored --nocapture` (the benchmark writes its input with
/// `KILN_BENCH_WRITE`).
#[test]
#[ignore = "a measurement, not a check"]
fn split_timing() {
    let path = std::env::var("KILN_SPLIT_TIMING").expect("KILN_SPLIT_TIMING names a Dockerfile");
    let text = std::fs::read_to_string(path).expect("read the Dockerfile");
    let raw = crate::parse_raw(&text).expect("parses");
    let lines: Vec<&str> = raw.nodes.iter().map(|node| node.original.as_str()).collect();
    for round in 0..3 {
        let start = std::time::Instant::now();
        let hand = lines.iter().filter(|line| node_from_line(line.to_string(), raw.escape).is_ok()).count();
        let hand_time = start.elapsed();
        let start = std::time::Instant::now();
        let pest = lines.iter().filter(|line| grammar_node(line, raw.escape).is_ok()).count();
        let pest_time = start.elapsed();
        assert_eq!(hand, pest);
        println!(
            "round {round}: {} lines: by hand {hand_time:?}, through the grammar {pest_time:?}",
            lines.len()
        );
    }
}
