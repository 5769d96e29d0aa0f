//! `WWW-Authenticate` challenges (RFC 7235), as registries send them:
//! `Bearer realm="https://auth.example/token",service="registry.example",scope="repository:x:pull"`.

/// One authentication challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Challenge {
    /// `Basic realm="…"`: send the username and password with every request.
    Basic,
    /// `Bearer realm=… service=… scope=…`: fetch a token from `realm`.
    Bearer { realm: String, service: Option<String>, scope: Option<String>, error: Option<String> },
}

/// Parses every challenge of a `WWW-Authenticate` header value, keeping those we understand
/// (Basic, and Bearer with a realm). `Err` carries nothing: the caller names the header.
pub(crate) fn parse(header: &str) -> Vec<Challenge> {
    let mut out = Vec::new();
    for (scheme, params) in split_challenges(header) {
        let get =
            |key: &str| params.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)).map(|(_, v)| v.clone());
        if scheme.eq_ignore_ascii_case("basic") {
            out.push(Challenge::Basic);
        } else if scheme.eq_ignore_ascii_case("bearer")
            && let Some(realm) = get("realm")
        {
            out.push(Challenge::Bearer {
                realm,
                service: get("service"),
                scope: get("scope"),
                error: get("error"),
            });
        }
    }
    out
}

/// Splits a header into (scheme, params) pairs. A challenge is a token followed by
/// comma-separated `key=value` / `key="quoted \" value"` params; a bare token starts the next one.
fn split_challenges(header: &str) -> Vec<(String, Vec<(String, String)>)> {
    let mut lexer = Lexer { rest: header };
    let mut out: Vec<(String, Vec<(String, String)>)> = Vec::new();
    loop {
        lexer.skip(|c| c == ',' || c.is_ascii_whitespace());
        let token = lexer.token();
        if token.is_empty() {
            break;
        }
        lexer.skip(|c| c == ' ' || c == '\t');
        if lexer.rest.starts_with('=') && !out.is_empty() {
            // A param of the current challenge.
            lexer.rest = &lexer.rest[1..];
            lexer.skip(|c| c == ' ' || c == '\t');
            let value = if lexer.rest.starts_with('"') { lexer.quoted() } else { lexer.token().to_owned() };
            if let Some((_, params)) = out.last_mut() {
                params.push((token.to_owned(), value));
            }
        } else {
            out.push((token.to_owned(), Vec::new()));
        }
    }
    out
}

struct Lexer<'a> {
    rest: &'a str,
}

impl<'a> Lexer<'a> {
    fn skip(&mut self, predicate: impl Fn(char) -> bool) {
        self.rest = self.rest.trim_start_matches(predicate);
    }

    /// An RFC 7230 token (also accepts `/` and `:` so token68 values pass through).
    fn token(&mut self) -> &'a str {
        let end = self
            .rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~/:".contains(c)))
            .unwrap_or(self.rest.len());
        let (token, rest) = self.rest.split_at(end);
        self.rest = rest;
        token
    }

    /// A quoted string starting at `"`, with `\` escapes; an unterminated one runs to the end.
    fn quoted(&mut self) -> String {
        let mut value = String::new();
        let mut chars = self.rest[1..].char_indices();
        let mut consumed = self.rest.len();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => {
                    if let Some((_, escaped)) = chars.next() {
                        value.push(escaped);
                    }
                }
                '"' => {
                    consumed = i + 2;
                    break;
                }
                c => value.push(c),
            }
        }
        self.rest = &self.rest[consumed.min(self.rest.len())..];
        value
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bearer(realm: &str, service: Option<&str>, scope: Option<&str>) -> Challenge {
        Challenge::Bearer {
            realm: realm.into(),
            service: service.map(Into::into),
            scope: scope.map(Into::into),
            error: None,
        }
    }

    #[test]
    fn parses_registry_challenges() {
        let cases = vec![
            (
                r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull""#,
                vec![bearer(
                    "https://auth.docker.io/token",
                    Some("registry.docker.io"),
                    Some("repository:library/busybox:pull"),
                )],
            ),
            (r#"Basic realm="Registry Realm""#, vec![Challenge::Basic]),
            (r#"basic realm=x"#, vec![Challenge::Basic]),
            (r#"Bearer realm="http://127.0.0.1:1/t""#, vec![bearer("http://127.0.0.1:1/t", None, None)]),
            (
                r#"Bearer realm = "http://a/t" , scope="repository:a/b:pull,push" , service=svc"#,
                vec![bearer("http://a/t", Some("svc"), Some("repository:a/b:pull,push"))],
            ),
            (
                r#"Bearer realm="http://a/\"q\"", Basic realm="x""#,
                vec![bearer("http://a/\"q\"", None, None), Challenge::Basic],
            ),
            (r#"Negotiate, Basic realm="r""#, vec![Challenge::Basic]),
            (r#"Bearer service="no realm""#, vec![]),
            ("", vec![]),
            (r#"Bearer realm="unterminated"#, vec![bearer("unterminated", None, None)]),
        ];
        for (header, want) in cases {
            assert_eq!(parse(header), want, "{header}");
        }
    }

    #[test]
    fn keeps_the_error_param() {
        let header = r#"Bearer realm="r",service="s",scope="repository:a:pull",error="insufficient_scope""#;
        match &parse(header)[..] {
            [Challenge::Bearer { error, .. }] => assert_eq!(error.as_deref(), Some("insufficient_scope")),
            other => panic!("{other:?}"),
        }
    }
}
