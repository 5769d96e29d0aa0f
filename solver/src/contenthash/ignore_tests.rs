use super::*;

fn single(pattern: &str, path: &str) -> bool {
    PatternMatcher::new(&[pattern]).unwrap_or_else(|e| panic!("{pattern}: {e}")).patterns()[0].matches(path)
}

#[test]
fn wildcard_table() {
    let cases: &[(&str, &str, bool)] = &[
        ("**", "file", true),
        ("**", "dir/file", true),
        ("**/", "file", true),
        ("**/**", "dir/file", true),
        ("dir/**", "dir/file", true),
        ("dir/**", "dir/dir2/file", true),
        ("**/dir", "dir", true),
        ("**/dir2/*", "dir/dir2/file", true),
        ("**/dir2/**", "dir/dir2/dir3/file", true),
        ("**file", "file", true),
        ("**file", "dir/file", true),
        ("**/file", "dir/dir/file", true),
        ("**/file*", "dir/dir/file.txt", true),
        ("**/file*txt", "dir/dir/file.txt", true),
        ("**/file*.txt*", "dir/dir/file.txt", true),
        ("**/**/*.txt", "dir/dir/file.txt", true),
        ("**/**/*.txt2", "dir/dir/file.txt", false),
        ("**/*.txt", "file.txt", true),
        ("**/**/*.txt", "file.txt", true),
        ("a**/*.txt", "a/file.txt", true),
        ("a**/*.txt", "a/dir/file.txt", true),
        ("a**/*.txt", "a/dir/dir/file.txt", true),
        ("a/*.txt", "a/dir/file.txt", false),
        ("a/*.txt", "a/file.txt", true),
        ("a/*.txt**", "a/file.txt", true),
        ("a[b-d]e", "ae", false),
        ("a[b-d]e", "ace", true),
        ("a[b-d]e", "aae", false),
        ("a[^b-d]e", "aze", true),
        (".*", ".foo", true),
        (".*", "foo", false),
        ("abc.def", "abcdef", false),
        ("abc.def", "abc.def", true),
        ("abc?def", "abcZdef", true),
        ("abc?def", "abcdef", false),
        ("a\\\\", "a\\", true),
        ("**/foo/bar", "foo/bar", true),
        ("**/foo/bar", "dir/dir2/foo/bar", true),
        ("abc/**", "abc", false),
        ("abc/**", "abc/def/ghi", true),
        ("**/.foo", ".foo", true),
        ("**/.foo", "bar.foo", false),
        ("a(b)c/def", "a(b)c/def", true),
        ("a(b)c/def", "a(b)c/xyz", false),
        ("a.|)$(}+{bc", "a.|)$(}+{bc", true),
        ("dist/*.whl", "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl", true),
        ("a\\*b", "a*b", true),
        ("a\\*b", "ab", false),
        ("*", "abc", true),
        ("a*", "abc", true),
        ("a*/b", "abc/b", true),
        ("a*/b", "a/c/b", false),
        ("a*b*c*d*e*/f", "axbxcxdxe/f", true),
        ("a*b*c*d*e*/f", "axbxcxdxe/xxx/f", false),
        ("a*b?c*x", "abxbbxdbxebxczzx", true),
        ("a*b?c*x", "abxbbxdbxebxczzy", false),
        ("ab[^e-g]", "abc", true),
        ("ab[^c]", "abc", false),
        ("a?b", "a☺b", true),
        ("a???b", "a☺b", false),
        ("[a-ζ]*", "α", true),
        ("*[a-ζ]", "A", false),
        ("a?b", "a/b", false),
        ("a*b", "a/b", false),
        ("[\\]a]", "]", true),
        ("[\\-]", "-", true),
        ("[x\\-]", "-", true),
        ("[x\\-]", "z", false),
        ("*x", "xxx", true),
    ];
    for (pattern, path, want) in cases {
        assert_eq!(single(pattern, path), *want, "pattern {pattern:?} on {path:?}");
    }
}

#[test]
fn components_match_like_go_filepath_match() {
    // Go's filepath.Match table (the cases without a separator), as BuildKit expands COPY sources
    let cases: &[(&str, &str, bool)] = &[
        ("abc", "abc", true),
        ("*", "abc", true),
        ("*c", "abc", true),
        ("a*", "a", true),
        ("a*", "abc", true),
        ("a*/b", "abc/b", true),
        ("a*b*c*d*e*", "axbxcxdxe", true),
        ("ab[c]", "abc", true),
        ("ab[b-d]", "abc", true),
        ("ab[e-g]", "abc", false),
        ("ab[^c]", "abc", false),
        ("ab[^b-d]", "abc", false),
        ("ab[^e-g]", "abc", true),
        ("a\\*b", "a*b", true),
        ("a\\*b", "ab", false),
        ("a?b", "a☺b", true),
        ("a[^a]b", "a☺b", true),
        ("a???b", "a☺b", false),
        ("a[!a]b", "a!b", true),
        ("[!a-c]x", "bx", true),
        ("[\\-]", "-", true),
        ("[x\\-]", "z", false),
        ("*x", "xxx", true),
        ("*.txt", "a.txt", true),
        ("*.txt", "a.txt.bak", false),
        ("file?", "file1", true),
        ("*", "", true),
        ("**", "name", true),
        ("a**", "abc", true),
    ];
    for (pattern, name, want) in cases {
        let compiled = Pattern::component(pattern).unwrap_or_else(|e| panic!("{pattern}: {e}"));
        assert_eq!(compiled.matches(name), *want, "{pattern} ~ {name}");
    }
    for bad in ["[", "[^", "[^bc", "a[", "[a-", "[]a]", "[-]", "[x-]", "[-x]", "\\", "[\\", "[a-b-c]"] {
        assert!(Pattern::component(bad).is_err(), "{bad}");
    }
    assert!(has_wildcards("src/*.rs") && has_wildcards("a?") && has_wildcards("[ab]"));
    assert!(!has_wildcards("src/main.rs"));
}

#[test]
fn bad_patterns_are_errors() {
    for pattern in ["[]a]", "[-]", "[x-]", "[-x]", "\\", "[a-b-c]", "[", "[^", "[^bc", "a["] {
        assert!(PatternMatcher::new(&[pattern]).is_err(), "{pattern:?} should be refused");
    }
    assert!(matches!(PatternMatcher::new(&["!"]), Err(PatternError::LoneBang)));
}

#[test]
fn last_match_wins_with_exceptions_and_parents() {
    let m = |patterns: &[&str], path: &str| PatternMatcher::new(patterns).unwrap().matches(path);
    assert!(m(&["*"], "fileutils.go"));
    assert!(m(&["*.go"], "fileutils.go"));
    assert!(m(&["!fileutils.go", "*.go"], "fileutils.go"));
    assert!(!m(&["*.go", "!fileutils.go"], "fileutils.go"));
    assert!(!m(&["docs", "!docs/README.md"], "docs/README.md"));
    assert!(!m(&["docs/", "!docs/README.md"], "docs/README.md"));
    assert!(!m(&["docs/*", "!docs/README.md"], "docs/README.md"));
    assert!(m(&["docs"], "docs/sub/file"));
    assert!(!m(&["*.go"], "."));
    assert!(m(&["a*"], "ab/c"));
    assert!(!m(&["**", "!util/docker/web"], "util/docker/web/foo"));
    assert!(m(&["**", "!util/docker/web", "util/docker/web/foo"], "util/docker/web/foo"));
    assert!(!m(&["**", "!dist/*.whl"], "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl"));
    // Leading slash and unclean forms are cleaned.
    assert!(m(&["/build/../out/"], "out/x"));
    assert!(m(&["  docs  "], "docs"));
    assert!(!m(&["docs", "  !docs/README.md  "], "docs/README.md"));
}

#[test]
fn exceptions_below_excluded_dirs_are_reachable() {
    let pm = PatternMatcher::new(&["docs", "!docs/keep.md"]).unwrap();
    assert!(pm.may_include_below("docs"));
    assert!(!pm.may_include_below("src"));
    let glob = PatternMatcher::new(&["*", "!**/*.rs"]).unwrap();
    assert!(glob.may_include_below("deep"));
    let none = PatternMatcher::new(&["target"]).unwrap();
    assert!(!none.may_include_below("target"));
}

#[test]
fn ignore_file_parsing() {
    let text = "\u{feff}# comment\n  node_modules/ \n/abs/path\n!/keep\n\n#x\n! spaced \n./a/../b\n";
    assert_eq!(parse_ignore_file(text), vec!["node_modules", "abs/path", "!keep", "!spaced", "b"]);
}

#[test]
fn dockerfile_specific_ignore_file_takes_precedence() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = dir.path();
    assert_eq!(find_ignore_file(ctx, None), None);
    std::fs::write(ctx.join(".dockerignore"), "a\n").unwrap();
    std::fs::write(ctx.join("build.Dockerfile"), "FROM scratch\n").unwrap();
    assert_eq!(find_ignore_file(ctx, Some(&ctx.join("build.Dockerfile"))), Some(ctx.join(".dockerignore")));
    std::fs::write(ctx.join("build.Dockerfile.dockerignore"), "b\n").unwrap();
    assert_eq!(load_ignore_patterns(ctx, Some(&ctx.join("build.Dockerfile"))).unwrap(), vec!["b"]);
    assert_eq!(load_ignore_patterns(ctx, Some(&ctx.join("Dockerfile"))).unwrap(), vec!["a"]);
}

#[test]
fn clean_path_matches_go() {
    for (input, want) in [("", "."), ("a/../..", ".."), ("/../a", "/a"), ("a//b/./c/", "a/b/c"), ("/", "/")] {
        assert_eq!(clean_path(input), want, "{input:?}");
    }
}
