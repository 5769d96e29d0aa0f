//! Docker-style image references: parsing, normalisation and the familiar (short) form.
//!
//! The grammar and the normalisation rules are those of docker/distribution's `reference`
//! package (`ParseNormalizedNamed` + `TagNameOnly`), so a name means the same thing to kiln as
//! to `docker pull`:
//!
//! ```text
//! reference   := name [ ":" tag ] [ "@" digest ]
//! name        := [ domain "/" ] path-component ( "/" path-component )*
//! domain      := host [ ":" port ]            host := domain-name | "[" ipv6 "]"
//! domain-name := label ( "." label )*         label := [a-zA-Z0-9] | [a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]
//! path-component := [a-z0-9]+ ( ( "." | "_" | "__" | "-"+ ) [a-z0-9]+ )*
//! tag         := [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}
//! digest      := algorithm ":" hex            (sha256, sha384 or sha512 with the matching length)
//! ```
//!
//! The first `/`-separated component is a domain only if it contains `.` or `:`, is `localhost`,
//! or has an uppercase letter; otherwise the name lives on Docker Hub (`docker.io`), where
//! single-component names get the `library/` prefix. `index.docker.io` is an alias of
//! `docker.io`. A name of at most 255 characters (domain included), and the repository part must
//! be lowercase.

use std::fmt;
use std::str::FromStr;

use oci_spec::image::Digest;

/// The registry Docker Hub names resolve to.
pub const DEFAULT_DOMAIN: &str = "docker.io";
/// The legacy spelling of [`DEFAULT_DOMAIN`], normalised away when parsing.
const LEGACY_DEFAULT_DOMAIN: &str = "index.docker.io";
/// The namespace of Docker Hub's official images.
const OFFICIAL_REPO_PREFIX: &str = "library/";
/// The tag a reference without tag and digest gets.
pub const DEFAULT_TAG: &str = "latest";
/// Maximum length of a name, domain included.
const NAME_TOTAL_LENGTH_MAX: usize = 255;
/// Maximum length of a tag.
const TAG_LENGTH_MAX: usize = 128;

/// A fully qualified image reference: registry domain, repository path, optional tag and digest.
///
/// ```
/// use registry::Reference;
/// let r: Reference = "busybox".parse().unwrap();
/// assert_eq!(r.to_string(), "docker.io/library/busybox:latest");
/// assert_eq!(r.familiar(), "busybox:latest");
/// assert_eq!(r.registry(), "docker.io");
/// assert_eq!(r.repository(), "library/busybox");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    domain: String,
    path: String,
    tag: Option<String>,
    digest: Option<Digest>,
}

/// Why a string is not a valid reference.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid reference `{input}`: {kind}")]
pub struct ReferenceError {
    /// The text that was parsed.
    pub input: String,
    /// What is wrong with it.
    pub kind: ReferenceErrorKind,
}

/// The classes of reference errors, worded like docker/distribution's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReferenceErrorKind {
    /// The text does not follow the reference grammar.
    #[error("invalid reference format")]
    InvalidFormat,
    /// The repository part has uppercase letters.
    #[error("repository name must be lowercase")]
    NameContainsUppercase,
    /// The name (domain included) is longer than 255 characters.
    #[error("repository name must not be more than {NAME_TOTAL_LENGTH_MAX} characters")]
    NameTooLong,
    /// A bare 64-character hex string, which docker reserves for image IDs.
    #[error("cannot specify 64-byte hexadecimal strings as a repository name")]
    HexIdentifier,
    /// The digest has the right shape but wrong characters.
    #[error("invalid digest format")]
    DigestInvalidFormat,
    /// The digest's length does not match its algorithm.
    #[error("invalid checksum digest length")]
    DigestInvalidLength,
    /// The digest algorithm is not sha256, sha384 or sha512.
    #[error("unsupported digest algorithm")]
    DigestUnsupported,
}

impl Reference {
    /// Parses and normalises `input` like `docker pull` does: a missing domain becomes
    /// `docker.io` (with `library/` for single-component names) and a reference with neither tag
    /// nor digest gets the tag `latest`.
    pub fn parse(input: &str) -> Result<Self, ReferenceError> {
        let mut reference = Self::parse_named(input)?;
        if reference.tag.is_none() && reference.digest.is_none() {
            reference.tag = Some(DEFAULT_TAG.to_owned());
        }
        Ok(reference)
    }

    /// Parses and normalises `input` without adding a default tag (docker's
    /// `ParseNormalizedNamed`): `busybox` is `docker.io/library/busybox` with no tag.
    pub fn parse_named(input: &str) -> Result<Self, ReferenceError> {
        let fail = |kind| ReferenceError { input: input.to_owned(), kind };
        if input.len() == 64 && input.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(fail(ReferenceErrorKind::HexIdentifier));
        }
        let (domain, remainder) = split_docker_domain(input);
        let remote_name = remainder.split_once(':').map_or(remainder.as_str(), |(name, _)| name);
        if remote_name.chars().any(|c| c.is_ascii_uppercase()) {
            return Err(fail(ReferenceErrorKind::NameContainsUppercase));
        }

        let (name_and_tag, digest) = match remainder.split_once('@') {
            Some((left, digest)) => (left, Some(digest)),
            None => (remainder.as_str(), None),
        };
        let (path, tag) = match name_and_tag.split_once(':') {
            Some((path, tag)) => (path, Some(tag)),
            None => (name_and_tag, None),
        };
        if !is_domain(&domain) || !is_path(path) || !tag.is_none_or(is_tag) {
            return Err(fail(ReferenceErrorKind::InvalidFormat));
        }
        let digest = digest.map(|d| parse_digest(d).map_err(fail)).transpose()?;
        if domain.len() + 1 + path.len() > NAME_TOTAL_LENGTH_MAX {
            return Err(fail(ReferenceErrorKind::NameTooLong));
        }
        Ok(Self { domain, path: path.to_owned(), tag: tag.map(str::to_owned), digest })
    }

    /// The registry domain, with port if any: `docker.io`, `localhost:5000`, `[::1]:5000`.
    pub fn registry(&self) -> &str {
        &self.domain
    }

    /// The repository path inside the registry: `library/busybox`.
    pub fn repository(&self) -> &str {
        &self.path
    }

    /// The fully qualified name without tag and digest: `docker.io/library/busybox`.
    pub fn name(&self) -> String {
        format!("{}/{}", self.domain, self.path)
    }

    /// The tag, if any.
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// The digest, if any.
    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }

    /// The same name with `tag` (and no digest).
    pub fn with_tag(&self, tag: &str) -> Result<Self, ReferenceError> {
        if !is_tag(tag) {
            return Err(ReferenceError {
                input: format!("{}:{tag}", self.name()),
                kind: ReferenceErrorKind::InvalidFormat,
            });
        }
        Ok(Self { tag: Some(tag.to_owned()), digest: None, ..self.clone() })
    }

    /// The same name pinned to `digest`, keeping the tag for display (like `name:tag@digest`).
    pub fn with_digest(&self, digest: Digest) -> Self {
        Self { digest: Some(digest), ..self.clone() }
    }

    /// The same name with neither tag nor digest.
    pub fn without_tag_or_digest(&self) -> Self {
        Self { tag: None, digest: None, ..self.clone() }
    }

    /// What the registry API addresses a manifest by: the digest if present, else the tag
    /// (`latest` when neither is set).
    pub fn manifest_reference(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(digest), _) => digest.to_string(),
            (None, Some(tag)) => tag.clone(),
            (None, None) => DEFAULT_TAG.to_owned(),
        }
    }

    /// The short form docker displays: `busybox:latest`, `user/app:1`, `localhost:5000/x:y`.
    pub fn familiar(&self) -> String {
        let mut out = self.familiar_name();
        self.push_tag_and_digest(&mut out);
        out
    }

    /// The short form of the name alone: `busybox`, `user/app`, `localhost:5000/x`.
    pub fn familiar_name(&self) -> String {
        if self.domain != DEFAULT_DOMAIN {
            return self.name();
        }
        match self.path.strip_prefix(OFFICIAL_REPO_PREFIX) {
            Some(rest) if !rest.contains('/') => rest.to_owned(),
            _ => self.path.clone(),
        }
    }

    fn push_tag_and_digest(&self, out: &mut String) {
        if let Some(tag) = &self.tag {
            out.push(':');
            out.push_str(tag);
        }
        if let Some(digest) = &self.digest {
            out.push('@');
            out.push_str(digest.as_ref());
        }
    }
}

impl fmt::Display for Reference {
    /// The fully qualified form: `docker.io/library/busybox:latest`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = self.name();
        self.push_tag_and_digest(&mut out);
        f.write_str(&out)
    }
}

impl FromStr for Reference {
    type Err = ReferenceError;

    /// Same as [`Reference::parse`].
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl serde::Serialize for Reference {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Reference {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Self::parse_named(&text).map_err(serde::de::Error::custom)
    }
}

/// Docker's `splitDockerDomain`: decides whether the first component is a registry domain.
fn split_docker_domain(input: &str) -> (String, String) {
    let (mut domain, mut remainder) = match input.split_once('/') {
        Some((first, rest))
            if first.contains(['.', ':'])
                || first == "localhost"
                || first.chars().any(|c| c.is_ascii_uppercase()) =>
        {
            (first.to_owned(), rest.to_owned())
        }
        _ => (DEFAULT_DOMAIN.to_owned(), input.to_owned()),
    };
    if domain == LEGACY_DEFAULT_DOMAIN {
        DEFAULT_DOMAIN.clone_into(&mut domain);
    }
    if domain == DEFAULT_DOMAIN && !remainder.contains('/') {
        remainder = format!("{OFFICIAL_REPO_PREFIX}{remainder}");
    }
    (domain, remainder)
}

/// `host [":" port]` where host is a DNS-like name or a bracketed IPv6 address.
pub(crate) fn is_domain(domain: &str) -> bool {
    let (host, port) = if let Some(rest) = domain.strip_prefix('[') {
        let Some((inside, after)) = rest.split_once(']') else { return false };
        if inside.is_empty() || !inside.bytes().all(|b| b.is_ascii_hexdigit() || b == b':') {
            return false;
        }
        match after {
            "" => return true,
            _ => match after.strip_prefix(':') {
                Some(port) => ("[]", Some(port)),
                None => return false,
            },
        }
    } else {
        match domain.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (domain, None),
        }
    };
    let port_ok = port.is_none_or(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    let host_ok = host == "[]" || (!host.is_empty() && host.split('.').all(is_domain_label));
    port_ok && host_ok
}

fn is_domain_label(label: &str) -> bool {
    let bytes = label.as_bytes();
    match (bytes.first(), bytes.last()) {
        (Some(first), Some(last)) => {
            first.is_ascii_alphanumeric()
                && last.is_ascii_alphanumeric()
                && bytes.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'-')
        }
        _ => false,
    }
}

/// `path-component ("/" path-component)*`.
fn is_path(path: &str) -> bool {
    path.split('/').all(is_path_component)
}

/// `[a-z0-9]+ ((("." | "_" | "__" | "-"+)) [a-z0-9]+)*`.
fn is_path_component(component: &str) -> bool {
    let is_alnum = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    // Every maximal run of separator characters must be one accepted separator, and the
    // component must start and end with an alphanumeric run.
    if !component.starts_with(is_alnum) {
        return false;
    }
    let mut rest = component.trim_start_matches(is_alnum);
    while !rest.is_empty() {
        let separator_len = rest.find(is_alnum).unwrap_or(rest.len());
        let separator = &rest[..separator_len];
        let accepted = matches!(separator, "." | "_" | "__") || separator.bytes().all(|b| b == b'-');
        if !accepted || separator_len == rest.len() {
            return false;
        }
        rest = rest[separator_len..].trim_start_matches(is_alnum);
    }
    true
}

/// `[\w][\w.-]{0,127}`.
pub(crate) fn is_tag(tag: &str) -> bool {
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let bytes = tag.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= TAG_LENGTH_MAX
        && word(bytes[0])
        && bytes.iter().all(|&b| word(b) || b == b'.' || b == b'-')
}

/// Validates like the reference regexp, then like go-digest (`sha256`/`sha384`/`sha512` only).
fn parse_digest(text: &str) -> Result<Digest, ReferenceErrorKind> {
    let Some((algorithm, hex)) = text.split_once(':') else {
        return Err(ReferenceErrorKind::InvalidFormat);
    };
    let algorithm_ok = algorithm.split(['-', '_', '+', '.']).all(|part| {
        part.as_bytes().first().is_some_and(u8::is_ascii_alphabetic)
            && part.bytes().all(|b| b.is_ascii_alphanumeric())
    });
    if !algorithm_ok || hex.len() < 32 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ReferenceErrorKind::InvalidFormat);
    }
    let expected_len = match algorithm {
        "sha256" => 64,
        "sha384" => 96,
        "sha512" => 128,
        _ => return Err(ReferenceErrorKind::DigestUnsupported),
    };
    if hex.len() != expected_len {
        return Err(ReferenceErrorKind::DigestInvalidLength);
    }
    if hex.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err(ReferenceErrorKind::DigestInvalidFormat);
    }
    Digest::from_str(text).map_err(|_| ReferenceErrorKind::DigestInvalidFormat)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "ffe9c2c8c5b4ea9a39b7b6fc2c4a1e0fbb7ab0f6f6ad7a6dd2b6f5da6e5d0c1a";

    /// (input, full form, familiar form, registry, repository, tag)
    type Case<'a> = (&'a str, &'a str, &'a str, &'a str, &'a str, Option<&'a str>);

    #[test]
    fn parses_and_normalises() {
        let cases: &[Case] = &[
            (
                "busybox",
                "docker.io/library/busybox:latest",
                "busybox:latest",
                "docker.io",
                "library/busybox",
                Some("latest"),
            ),
            (
                "busybox:1.36",
                "docker.io/library/busybox:1.36",
                "busybox:1.36",
                "docker.io",
                "library/busybox",
                Some("1.36"),
            ),
            (
                "library/busybox",
                "docker.io/library/busybox:latest",
                "busybox:latest",
                "docker.io",
                "library/busybox",
                Some("latest"),
            ),
            (
                "docker.io/busybox",
                "docker.io/library/busybox:latest",
                "busybox:latest",
                "docker.io",
                "library/busybox",
                Some("latest"),
            ),
            (
                "index.docker.io/busybox",
                "docker.io/library/busybox:latest",
                "busybox:latest",
                "docker.io",
                "library/busybox",
                Some("latest"),
            ),
            (
                "docker.io/library/busybox:latest",
                "docker.io/library/busybox:latest",
                "busybox:latest",
                "docker.io",
                "library/busybox",
                Some("latest"),
            ),
            (
                "user/app",
                "docker.io/user/app:latest",
                "user/app:latest",
                "docker.io",
                "user/app",
                Some("latest"),
            ),
            (
                "library/a/b",
                "docker.io/library/a/b:latest",
                "library/a/b:latest",
                "docker.io",
                "library/a/b",
                Some("latest"),
            ),
            ("localhost/x", "localhost/x:latest", "localhost/x:latest", "localhost", "x", Some("latest")),
            (
                "localhost:5000/x:y",
                "localhost:5000/x:y",
                "localhost:5000/x:y",
                "localhost:5000",
                "x",
                Some("y"),
            ),
            (
                "127.0.0.1:5000/a/b/c:v1",
                "127.0.0.1:5000/a/b/c:v1",
                "127.0.0.1:5000/a/b/c:v1",
                "127.0.0.1:5000",
                "a/b/c",
                Some("v1"),
            ),
            ("[::1]:5000/x", "[::1]:5000/x:latest", "[::1]:5000/x:latest", "[::1]:5000", "x", Some("latest")),
            (
                "[2001:db8::1]/x",
                "[2001:db8::1]/x:latest",
                "[2001:db8::1]/x:latest",
                "[2001:db8::1]",
                "x",
                Some("latest"),
            ),
            (
                "quay.io/coreos/etcd",
                "quay.io/coreos/etcd:latest",
                "quay.io/coreos/etcd:latest",
                "quay.io",
                "coreos/etcd",
                Some("latest"),
            ),
            ("Foo/bar", "Foo/bar:latest", "Foo/bar:latest", "Foo", "bar", Some("latest")),
            ("foo:5000", "docker.io/library/foo:5000", "foo:5000", "docker.io", "library/foo", Some("5000")),
            (
                "localhost:5000",
                "docker.io/library/localhost:5000",
                "localhost:5000",
                "docker.io",
                "library/localhost",
                Some("5000"),
            ),
            (
                "a.b-c_d__e---f.g",
                "docker.io/library/a.b-c_d__e---f.g:latest",
                "a.b-c_d__e---f.g:latest",
                "docker.io",
                "library/a.b-c_d__e---f.g",
                Some("latest"),
            ),
            (
                "x:Tag_1.-",
                "docker.io/library/x:Tag_1.-",
                "x:Tag_1.-",
                "docker.io",
                "library/x",
                Some("Tag_1.-"),
            ),
            (
                "my-registry.local:443/team/app:v2",
                "my-registry.local:443/team/app:v2",
                "my-registry.local:443/team/app:v2",
                "my-registry.local:443",
                "team/app",
                Some("v2"),
            ),
        ];
        for &(input, full, familiar, registry, repository, tag) in cases {
            let r = Reference::parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(r.to_string(), full, "{input}");
            assert_eq!(r.familiar(), familiar, "{input}");
            assert_eq!(r.registry(), registry, "{input}");
            assert_eq!(r.repository(), repository, "{input}");
            assert_eq!(r.tag(), tag, "{input}");
            assert_eq!(r.digest(), None, "{input}");
            // The full form parses back to the same reference.
            assert_eq!(Reference::parse(full).unwrap(), r, "{input}");
        }
    }

    #[test]
    fn digests() {
        let r = Reference::parse(&format!("busybox@sha256:{HEX}")).unwrap();
        assert_eq!(r.tag(), None, "no default tag when a digest is given");
        assert_eq!(r.digest().unwrap().digest(), HEX);
        assert_eq!(r.to_string(), format!("docker.io/library/busybox@sha256:{HEX}"));
        assert_eq!(r.familiar(), format!("busybox@sha256:{HEX}"));
        assert_eq!(r.manifest_reference(), format!("sha256:{HEX}"));

        let r = Reference::parse(&format!("localhost:5000/x:v1@sha256:{HEX}")).unwrap();
        assert_eq!(r.tag(), Some("v1"));
        assert_eq!(r.digest().unwrap().to_string(), format!("sha256:{HEX}"));
        assert_eq!(r.to_string(), format!("localhost:5000/x:v1@sha256:{HEX}"));
        assert_eq!(r.manifest_reference(), format!("sha256:{HEX}"));

        let sha512 = format!("x@sha512:{HEX}{HEX}");
        assert!(Reference::parse(&sha512).is_ok());
    }

    #[test]
    fn rejects_invalid() {
        use ReferenceErrorKind::*;
        let long_path = "a/".repeat(127) + "ab";
        let long_tag = format!("x:{}", "t".repeat(129));
        let cases: Vec<(String, ReferenceErrorKind)> = vec![
            ("".into(), InvalidFormat),
            (":".into(), InvalidFormat),
            ("/x".into(), InvalidFormat),
            ("x/".into(), InvalidFormat),
            ("a//b".into(), InvalidFormat),
            ("Busybox".into(), NameContainsUppercase),
            ("docker.io/Library/busybox".into(), NameContainsUppercase),
            ("localhost:5000/X".into(), NameContainsUppercase),
            ("x:".into(), InvalidFormat),
            ("x:-tag".into(), InvalidFormat),
            (".x".into(), InvalidFormat),
            ("x.".into(), InvalidFormat),
            ("a..b".into(), InvalidFormat),
            ("a___b".into(), InvalidFormat),
            ("a_-b".into(), InvalidFormat),
            ("a-".into(), InvalidFormat),
            ("-a".into(), InvalidFormat),
            ("x y".into(), InvalidFormat),
            ("x:a:b".into(), InvalidFormat),
            ("x:1.0/y".into(), InvalidFormat),
            ("-host.com/x".into(), InvalidFormat),
            ("host-.com/x".into(), InvalidFormat),
            ("host..com/x".into(), InvalidFormat),
            ("host.com:/x".into(), InvalidFormat),
            ("host.com:50a/x".into(), InvalidFormat),
            ("[zz::1]/x".into(), InvalidFormat),
            ("[::1/x".into(), InvalidFormat),
            ("foo_bar.com/x".into(), InvalidFormat),
            (long_tag, InvalidFormat),
            (long_path, NameTooLong),
            (HEX.into(), HexIdentifier),
            ("x@sha256:abc".into(), InvalidFormat),
            ("x@".into(), InvalidFormat),
            (format!("x@sha256:{HEX}00"), DigestInvalidLength),
            (format!("x@sha256:{}", HEX.to_uppercase()), DigestInvalidFormat),
            (format!("x@md5:{}", &HEX[..32]), DigestUnsupported),
            (format!("x@1sha:{HEX}"), InvalidFormat),
        ];
        for (input, kind) in cases {
            match Reference::parse(&input) {
                Ok(r) => panic!("{input:?} parsed as {r}"),
                Err(err) => {
                    assert_eq!(err.kind, kind, "{input:?}: {err}");
                    assert_eq!(err.input, input);
                }
            }
        }
    }

    #[test]
    fn long_names_at_the_limit() {
        // 255 characters in total, counting "docker.io/".
        let path = "a".repeat(NAME_TOTAL_LENGTH_MAX - "docker.io/".len() - "library/".len());
        assert!(Reference::parse(&path).is_ok());
        assert_eq!(Reference::parse(&format!("{path}a")).unwrap_err().kind, ReferenceErrorKind::NameTooLong);
        let tag = "t".repeat(TAG_LENGTH_MAX);
        assert!(Reference::parse(&format!("x:{tag}")).is_ok());
    }

    #[test]
    fn named_without_default_tag() {
        let r = Reference::parse_named("busybox").unwrap();
        assert_eq!(r.tag(), None);
        assert_eq!(r.to_string(), "docker.io/library/busybox");
        assert_eq!(r.familiar(), "busybox");
        assert_eq!(r.manifest_reference(), "latest");
        assert_eq!(r.with_tag("1").unwrap().to_string(), "docker.io/library/busybox:1");
        assert!(r.with_tag("-bad").is_err());
        let tagged = Reference::parse("busybox:1").unwrap();
        assert_eq!(tagged.without_tag_or_digest(), r);
        assert_eq!(tagged.name(), "docker.io/library/busybox");
        assert_eq!(tagged.familiar_name(), "busybox");
    }

    #[test]
    fn error_messages() {
        let err = Reference::parse("Busybox").unwrap_err();
        assert_eq!(err.to_string(), "invalid reference `Busybox`: repository name must be lowercase");
        let err = Reference::parse("a b").unwrap_err();
        assert_eq!(err.to_string(), "invalid reference `a b`: invalid reference format");
    }

    #[test]
    fn serde_round_trip() {
        let r = Reference::parse("localhost:5000/x:y").unwrap();
        let json = serde_json::to_string(&r).unwrap();
        assert_eq!(json, "\"localhost:5000/x:y\"");
        assert_eq!(serde_json::from_str::<Reference>(&json).unwrap(), r);
    }
}
