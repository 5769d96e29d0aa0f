//! Small helpers: Go-style formatting for history strings, paths, `--chown`/`--chmod` values.

use std::time::Duration;

use crate::graph::{Chmod, ChownOpt, UserOpt};

/// Go's `fmt.Sprintf("%q", []string{…})`: `["a" "b"]`.
pub(crate) fn go_quoted_list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| parser::go_quote(s)).collect();
    format!("[{}]", quoted.join(" "))
}

/// Go's `fmt.Sprintf("%v", []string{…})`: `[a b]`.
pub(crate) fn go_list(items: &[String]) -> String {
    format!("[{}]", items.join(" "))
}

/// Go's `time.Duration.String()`.
pub(crate) fn go_duration(duration: Duration) -> String {
    let nanos = duration.as_nanos();
    if nanos == 0 {
        return "0s".into();
    }
    if nanos < 1_000 {
        return format!("{nanos}ns");
    }
    if nanos < 1_000_000 {
        return format!("{}µs", fraction(nanos, 1_000));
    }
    if nanos < 1_000_000_000 {
        return format!("{}ms", fraction(nanos, 1_000_000));
    }
    let secs = nanos / 1_000_000_000;
    let rest = nanos % 1_000_000_000;
    let (hours, minutes, seconds) = (secs / 3600, (secs % 3600) / 60, secs % 60);
    let seconds = fraction(seconds * 1_000_000_000 + rest, 1_000_000_000);
    match (hours, minutes) {
        (0, 0) => format!("{seconds}s"),
        (0, m) => format!("{m}m{seconds}s"),
        (h, m) => format!("{h}h{m}m{seconds}s"),
    }
}

/// `value / unit` with the fraction's trailing zeros removed (`1.5`, `2`).
fn fraction(value: u128, unit: u128) -> String {
    let whole = value / unit;
    let rest = value % unit;
    if rest == 0 {
        return whole.to_string();
    }
    let width = unit.to_string().len() - 1;
    let digits = format!("{rest:0width$}");
    format!("{whole}.{}", digits.trim_end_matches('0'))
}

/// Joins `path` to the directory `base` (absolute paths win), cleaned like Go's `path.Join`;
/// a trailing `/` (or a final `.`) of `path` is kept, as BuildKit does for destinations.
pub(crate) fn join_keep_slash(base: &str, path: &str) -> String {
    let mut out = clean(&if path.starts_with('/') { path.to_owned() } else { format!("{base}/{path}") });
    let dir_like = path.is_empty() || path.ends_with('/') || path == "." || path.ends_with("/.");
    if dir_like && !out.ends_with('/') {
        out.push('/');
    }
    out
}

/// Go's `path.Clean` on an absolute path.
pub(crate) fn clean(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            other => parts.push(other),
        }
    }
    format!("/{}", parts.join("/"))
}

/// Parses a `--chown` value (`user`, `user:group`, ids or names).
pub(crate) fn parse_chown(value: &str) -> Result<ChownOpt, String> {
    let invalid = || format!("invalid --chown value {value:?} (expected user[:group])");
    let (user, group) = match value.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (value, None),
    };
    if user.is_empty() || group.is_some_and(|g| g.is_empty() || g.contains(':')) {
        return Err(invalid());
    }
    let opt = |s: &str| match s.parse::<u32>() {
        Ok(id) => UserOpt::Id(id),
        Err(_) => UserOpt::Name(s.to_owned()),
    };
    Ok(ChownOpt { user: Some(opt(user)), group: group.map(opt) })
}

/// Parses a `--chmod` value (octal or symbolic).
pub(crate) fn parse_chmod(value: &str) -> Result<Chmod, String> {
    Chmod::parse(value).map_err(|e| e.to_string())
}

/// The summary BuildKit appends to a heredoc RUN's progress name.
pub(crate) fn summarize_heredoc(doc: &str) -> String {
    let doc = doc.trim();
    let mut lines = doc.split('\n');
    let first = lines.next().unwrap_or_default().trim_end_matches('\r').to_owned();
    if lines.next().is_some() { format!("{first}...") } else { first }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_format_like_go() {
        let cases = [
            (Duration::ZERO, "0s"),
            (Duration::from_secs(30), "30s"),
            (Duration::from_secs(300), "5m0s"),
            (Duration::from_millis(1500), "1.5s"),
            (Duration::from_millis(250), "250ms"),
            (Duration::from_secs(3723), "1h2m3s"),
            (Duration::from_nanos(1500), "1.5µs"),
        ];
        for (duration, expected) in cases {
            assert_eq!(go_duration(duration), expected);
        }
    }

    #[test]
    fn paths_join_like_buildkit() {
        assert_eq!(join_keep_slash("/app", "."), "/app/");
        assert_eq!(join_keep_slash("/app", "bin/"), "/app/bin/");
        assert_eq!(join_keep_slash("/app", "../x"), "/x");
        assert_eq!(join_keep_slash("/", "/etc//a/./b"), "/etc/a/b");
        assert_eq!(join_keep_slash("/", "./"), "/");
    }

    #[test]
    fn chown_and_chmod_values() {
        assert_eq!(
            parse_chown("1000:staff").unwrap(),
            ChownOpt { user: Some(UserOpt::Id(1000)), group: Some(UserOpt::Name("staff".into())) }
        );
        assert!(parse_chown(":x").is_err());
        assert!(parse_chown("a:b:c").is_err());
        assert_eq!(parse_chmod("0755").unwrap(), Chmod::Octal(0o755));
        assert_eq!(parse_chmod("u+x").unwrap(), Chmod::Symbolic("u+x".into()));
        assert!(parse_chmod("64a").is_err());
        assert_eq!(
            go_quoted_list(&["/bin/sh".into(), "-c".into(), "echo \"hi\"".into()]),
            r#"["/bin/sh" "-c" "echo \"hi\""]"#
        );
        assert_eq!(summarize_heredoc("\necho a\necho b\n"), "echo a...");
    }
}
