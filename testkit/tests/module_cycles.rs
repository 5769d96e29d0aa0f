#![allow(clippy::unwrap_used)]
//! No module cycle inside a crate comes back: for every crate of the workspace, the top-level
//! modules (`src/x.rs` and everything below it, `#[path]` files included) form a graph whose
//! edges are the `crate::x` paths (also inside `use crate::{…}` groups, and `super::x` of a
//! top-level module) outside `#[cfg(test)]` code; its strongly connected components must be
//! exactly the known cycles below. The list may only shrink: a new cycle fails, and so does a
//! known one that is gone or smaller (remove or shrink its entry).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Cycles of top-level modules that exist today (issue 12 is removing them), by crate directory.
/// Each entry must match a cycle exactly: when one is broken or shrinks, edit its entry.
const KNOWN_CYCLES: &[(&str, &[&str])] = &[
    // the init process, its mounts, network and state reach each other; the container runtime
    // (monitor, exec) reuses the sandbox and the sandbox stops runtime containers' processes
    ("executor", &["init", "mounts", "network", "process", "runtime", "sandbox", "state"]),
    // `--format` templates render command outputs that live in `commands`
    ("cli", &["commands", "format"]),
];

type Graph = BTreeMap<String, BTreeSet<String>>;

#[test]
fn no_new_module_cycle_and_the_known_ones_are_listed_exactly() {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut problems = Vec::new();
    let mut found_all = BTreeSet::new();
    for krate in ["parser", "cache", "registry", "executor", "solver", "cli", "testkit"] {
        let src = workspace.join(krate).join("src");
        let root = ["lib.rs", "main.rs"].iter().map(|f| src.join(f)).find(|p| p.exists());
        let Some(root) = root else { continue };
        for cycle in cycles(&module_graph(&root)) {
            found_all.insert((krate, cycle.clone()));
            let known = KNOWN_CYCLES.iter().any(|(c, members)| {
                *c == krate && members.iter().map(|m| (*m).to_owned()).collect::<BTreeSet<_>>() == cycle
            });
            if !known {
                problems.push(format!("{krate}: module cycle {cycle:?} is not a known one"));
            }
        }
    }
    for (krate, members) in KNOWN_CYCLES {
        let members: BTreeSet<String> = members.iter().map(|m| (*m).to_owned()).collect();
        if !found_all.contains(&(*krate, members.clone())) {
            problems
                .push(format!("{krate}: known cycle {members:?} is gone or smaller: update KNOWN_CYCLES"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn a_cycle_between_two_modules_is_found() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path();
    std::fs::write(src.join("lib.rs"), "mod a;\npub mod b;\n#[cfg(test)]\nmod c;\n").unwrap();
    std::fs::create_dir(src.join("b")).unwrap();
    std::fs::write(src.join("a.rs"), "use crate::{b::{self, X}, c};\n// crate::nothing\n").unwrap();
    std::fs::write(src.join("b.rs"), "mod inner;\n").unwrap();
    std::fs::write(src.join("b/inner.rs"), "fn f() { crate::a::g(); }\n").unwrap();
    std::fs::write(src.join("c.rs"), "use crate::a;\n").unwrap();
    let graph = module_graph(&src.join("lib.rs"));
    // `c` is test code: not a node, and no edge leads to it
    assert_eq!(graph["a"], BTreeSet::from(["b".to_owned()]));
    assert_eq!(graph["b"], BTreeSet::from(["a".to_owned()]));
    assert!(!graph.contains_key("c"), "a #[cfg(test)] module has no edges: {graph:?}");
    assert_eq!(cycles(&graph), vec![BTreeSet::from(["a".to_owned(), "b".to_owned()])]);
    // test code inside a file does not count
    std::fs::write(src.join("b/inner.rs"), "#[cfg(test)]\nmod tests {\n    use crate::a;\n}\n").unwrap();
    assert!(cycles(&module_graph(&src.join("lib.rs"))).is_empty());
}

/// Edges between the top-level modules of the crate whose root file is `root`.
fn module_graph(root: &Path) -> Graph {
    let dir = root.parent().unwrap();
    let mut graph = Graph::new();
    for (name, path, test_only) in child_modules(root, dir) {
        if test_only {
            continue;
        }
        let edges = graph.entry(name.clone()).or_default();
        let mut stack = vec![(path, 1usize)];
        while let Some((file, depth)) = stack.pop() {
            let code = strip_test_code(&strip_comments_and_strings(&read(&file)));
            for target in crate_paths(&code, depth) {
                if target != name {
                    edges.insert(target);
                }
            }
            let child_dir = children_dir(&file);
            for (_, child, test_only) in child_modules(&file, &child_dir) {
                if !test_only {
                    stack.push((child, depth + 1));
                }
            }
        }
    }
    let names: BTreeSet<String> = graph.keys().cloned().collect();
    for edges in graph.values_mut() {
        edges.retain(|e| names.contains(e));
    }
    graph
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Where `mod x;` of `file` looks for `x.rs`: the file's own directory for `lib.rs`, `main.rs`
/// and `mod.rs`, else the directory named after the file.
fn children_dir(file: &Path) -> PathBuf {
    let dir = file.parent().unwrap();
    let stem = file.file_stem().unwrap().to_string_lossy();
    if matches!(stem.as_ref(), "lib" | "main" | "mod") { dir.to_owned() } else { dir.join(&*stem) }
}

/// The file modules `mod x;` declared in `file`: (name, file, behind `#[cfg(test)]`).
fn child_modules(file: &Path, child_dir: &Path) -> Vec<(String, PathBuf, bool)> {
    let code = strip_comments_and_strings_keep_path_attributes(&read(file));
    let mut out = Vec::new();
    let mut attributes: Vec<String> = Vec::new();
    for line in code.lines().map(str::trim) {
        if line.starts_with("#[") {
            attributes.push(line.to_owned());
            continue;
        }
        let declaration = line.trim_start_matches("pub ").trim_start_matches("pub(crate) ");
        if let Some(name) = declaration.strip_prefix("mod ").and_then(|rest| rest.strip_suffix(';')) {
            let name = name.trim().to_owned();
            let test_only = attributes.iter().any(|a| a.replace(' ', "") == "#[cfg(test)]");
            let path = attributes.iter().find_map(|a| {
                let value = a.strip_prefix("#[path")?.trim_start().strip_prefix('=')?.trim();
                Some(file.parent().unwrap().join(value.trim_end_matches(']').trim().trim_matches('"')))
            });
            let path = path.unwrap_or_else(|| {
                let flat = child_dir.join(format!("{name}.rs"));
                if flat.exists() { flat } else { child_dir.join(&name).join("mod.rs") }
            });
            out.push((name, path, test_only));
        }
        if !line.is_empty() {
            attributes.clear();
        }
    }
    out
}

/// `code` with comments removed and string and char literals emptied.
fn strip_comments_and_strings(code: &str) -> String {
    strip(code, false)
}

/// As [`strip_comments_and_strings`], but the strings of `#[path = "…"]` are kept.
fn strip_comments_and_strings_keep_path_attributes(code: &str) -> String {
    strip(code, true)
}

fn strip(code: &str, keep_path_strings: bool) -> String {
    let chars: Vec<char> = code.chars().collect();
    let mut out = String::with_capacity(code.len());
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            i += 2;
            while i < chars.len() && !(chars[i] == '*' && chars.get(i + 1) == Some(&'/')) {
                i += 1;
            }
            i += 2;
        } else if c == 'r' && matches!(next, Some('#') | Some('"')) && !is_ident(chars.get(i.wrapping_sub(1)))
        {
            // raw string r"…" / r#"…"#
            let mut j = i + 1;
            let mut hashes = 0;
            while chars.get(j) == Some(&'#') {
                hashes += 1;
                j += 1;
            }
            if chars.get(j) != Some(&'"') {
                out.push(c);
                i += 1;
                continue;
            }
            j += 1;
            loop {
                if j >= chars.len() {
                    break;
                }
                if chars[j] == '"' && (0..hashes).all(|h| chars.get(j + 1 + h) == Some(&'#')) {
                    j += 1 + hashes;
                    break;
                }
                j += 1;
            }
            out.push_str("\"\"");
            i = j;
        } else if c == '"' {
            let start = i;
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                if chars[i] == '\\' {
                    i += 1;
                }
                i += 1;
            }
            i += 1;
            let literal: String = chars[start..i.min(chars.len())].iter().collect();
            if keep_path_strings
                && (out.trim_end().ends_with("#[path =") || out.trim_end().ends_with("#[path="))
            {
                out.push_str(&literal);
            } else {
                out.push_str("\"\"");
            }
        } else if c == '\'' && (next == Some('\\') || chars.get(i + 2) == Some(&'\'')) {
            // a char literal (a lifetime has no closing quote)
            i += 1;
            while i < chars.len() && chars[i] != '\'' {
                if chars[i] == '\\' {
                    i += 1;
                }
                i += 1;
            }
            i += 1;
            out.push_str("' '");
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

fn is_ident(c: Option<&char>) -> bool {
    c.is_some_and(|c| c.is_alphanumeric() || *c == '_')
}

/// `code` without items behind `#[cfg(test)]` (an inline `mod tests { … }` or any other item).
fn strip_test_code(code: &str) -> String {
    let mut out = String::new();
    let mut rest = code;
    while let Some(at) = rest.find("#[cfg(test)]") {
        out.push_str(&rest[..at]);
        let after = &rest[at..];
        // the item ends at its `;` or its matching `}`, whichever closes it first
        let mut depth = 0usize;
        let mut end = after.len();
        for (i, c) in after.char_indices() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth = depth.saturating_sub(1);
                    if depth == 0 {
                        end = i + 1;
                        break;
                    }
                }
                ';' if depth == 0 => {
                    end = i + 1;
                    break;
                }
                _ => {}
            }
        }
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

/// The top-level modules named by `crate::x` paths in `code` (and `super::x` in a file at
/// `depth` 1, a top-level module's own file).
fn crate_paths(code: &str, depth: usize) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut prefixes = vec!["crate::"];
    if depth == 1 {
        prefixes.push("super::");
    }
    for prefix in prefixes {
        let mut search = 0;
        while let Some(found) = code[search..].find(prefix) {
            let at = search + found;
            search = at + prefix.len();
            if at > 0 && is_ident(code[..at].chars().last().as_ref()) {
                continue;
            }
            let rest = code[search..].trim_start();
            if let Some(group) = rest.strip_prefix('{') {
                out.extend(group_heads(group));
            } else {
                let name: String = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
                if !name.is_empty() {
                    out.insert(name);
                }
            }
        }
    }
    out.remove("self");
    out.remove("super");
    out
}

/// The first segments of the paths in a `{…}` group (the text after its `{`).
fn group_heads(group: &str) -> Vec<String> {
    let mut heads = Vec::new();
    let mut depth = 0usize;
    let mut expect_head = true;
    let mut chars = group.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => break,
            '}' => depth -= 1,
            ',' if depth == 0 => expect_head = true,
            c if (c.is_alphabetic() || c == '_') && depth == 0 && expect_head => {
                let name: String =
                    group[i..].chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
                for _ in 1..name.chars().count() {
                    chars.next();
                }
                heads.push(name);
                expect_head = false;
            }
            _ => {}
        }
    }
    heads
}

/// The strongly connected components of more than one module (Tarjan's algorithm).
fn cycles(graph: &Graph) -> Vec<BTreeSet<String>> {
    struct State<'a> {
        graph: &'a Graph,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        out: Vec<BTreeSet<String>>,
    }
    fn visit<'a>(s: &mut State<'a>, node: &'a str) {
        let n = s.index.len();
        s.index.insert(node, n);
        s.low.insert(node, n);
        s.stack.push(node);
        s.on_stack.insert(node);
        for next in s.graph.get(node).into_iter().flatten() {
            let next = next.as_str();
            if !s.index.contains_key(next) {
                visit(s, next);
                let low = s.low[node].min(s.low[next]);
                s.low.insert(node, low);
            } else if s.on_stack.contains(next) {
                let low = s.low[node].min(s.index[next]);
                s.low.insert(node, low);
            }
        }
        if s.low[node] == s.index[node] {
            let mut component = BTreeSet::new();
            while let Some(member) = s.stack.pop() {
                s.on_stack.remove(member);
                component.insert(member.to_owned());
                if member == node {
                    break;
                }
            }
            if component.len() > 1 {
                s.out.push(component);
            }
        }
    }
    let mut state = State {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        out: Vec::new(),
    };
    for node in graph.keys() {
        if !state.index.contains_key(node.as_str()) {
            visit(&mut state, node);
        }
    }
    state.out.sort();
    state.out
}
