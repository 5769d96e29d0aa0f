//! `RUN --mount=…` values, parsed like BuildKit's `parseMount`.
//!
//! At parse time values are not expanded yet: a value that contains `$` is stored raw and only
//! checked once the caller passes an expander to [`Mount::parse`] during lowering. Keys, types
//! and literal values are validated immediately.

use serde::Serialize;

use crate::grammar::{Rule, parse_rule};

/// `type=` of a mount.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MountType {
    #[default]
    Bind,
    Cache,
    Tmpfs,
    Secret,
    Ssh,
}

impl MountType {
    fn parse(value: &str) -> Option<MountType> {
        Some(match value.to_ascii_lowercase().as_str() {
            "bind" => MountType::Bind,
            "cache" => MountType::Cache,
            "tmpfs" => MountType::Tmpfs,
            "secret" => MountType::Secret,
            "ssh" => MountType::Ssh,
            _ => return None,
        })
    }

    fn as_str(self) -> &'static str {
        match self {
            MountType::Bind => "bind",
            MountType::Cache => "cache",
            MountType::Tmpfs => "tmpfs",
            MountType::Secret => "secret",
            MountType::Ssh => "ssh",
        }
    }
}

/// `sharing=` of a cache mount.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Sharing {
    Shared,
    Private,
    Locked,
}

/// One `--mount`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct Mount {
    /// The flag value as written; re-parse it with an expander during lowering.
    pub raw: String,
    #[serde(rename = "type")]
    pub mount_type: MountType,
    pub from: Option<String>,
    pub source: Option<String>,
    pub target: Option<String>,
    pub read_only: bool,
    /// tmpfs `size=` in bytes.
    pub size_limit: Option<u64>,
    /// Cache `id=` (or secret/ssh id).
    pub id: Option<String>,
    pub sharing: Option<Sharing>,
    pub required: bool,
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    /// Secret mount `env=`.
    pub env: Option<String>,
}

/// Expands one value (for example with [`crate::shell::expand_word`]).
pub type Expander<'a> = &'a dyn Fn(&str) -> Result<String, String>;

const KEYS: &[&str] = &[
    "type",
    "from",
    "source",
    "target",
    "readonly",
    "id",
    "sharing",
    "required",
    "size",
    "mode",
    "uid",
    "gid",
    "src",
    "dst",
    "destination",
    "ro",
    "rw",
    "readwrite",
    "env",
];

impl Mount {
    /// This mount with its values expanded in `env` (BuildKit expands `--mount` values with the
    /// stage's build args and environment when lowering). Errors name the offending value.
    pub fn expand(&self, env: &dyn crate::shell::Env, escape: char) -> Result<Mount, String> {
        let expander = |word: &str| crate::shell::expand_word(word, env, escape).map_err(|e| e.to_string());
        Mount::parse(&self.raw, Some(&expander))
    }

    /// Parses a `--mount` value. Without `expander`, values containing `$` are kept raw and
    /// not validated.
    pub fn parse(raw: &str, expander: Option<Expander<'_>>) -> Result<Mount, String> {
        let fields = csv_fields(raw).ok_or_else(|| "failed to parse csv mounts".to_string())?;
        let mut m = Mount { raw: raw.to_string(), ..Mount::default() };
        let mut read_only_auto = true;
        for field in &fields {
            let (key, value) = match field.split_once('=') {
                Some((k, v)) => (k.to_ascii_lowercase(), Some(v)),
                None => (field.to_ascii_lowercase(), None),
            };
            let Some(value) = value else {
                match key.as_str() {
                    "readonly" | "ro" => {
                        m.read_only = true;
                        read_only_auto = false;
                    }
                    "readwrite" | "rw" => {
                        m.read_only = false;
                        read_only_auto = false;
                    }
                    "required" if matches!(m.mount_type, MountType::Secret | MountType::Ssh) => {
                        m.required = true
                    }
                    "required" => {
                        return Err(format!(
                            "unexpected key '{key}' for mount type '{}'",
                            m.mount_type.as_str()
                        ));
                    }
                    _ => return Err(format!("invalid field '{field}' must be a key=value pair")),
                }
                continue;
            };
            let value = match expander {
                Some(expand) => expand(value)?,
                None => {
                    if key == "from" && value.find('$').is_some_and(|i| i != value.len() - 1) {
                        return Err(format!(
                            "'{key}' doesn't support variable expansion, define alias stage instead"
                        ));
                    }
                    value.to_string()
                }
            };
            let deferred = expander.is_none() && value.contains('$');
            let invalid = || format!("invalid value for {key}: {value}");
            match key.as_str() {
                "type" => {
                    if !deferred {
                        m.mount_type = MountType::parse(&value).ok_or_else(|| {
                            // BuildKit's text, its hint when the type is a near miss, else the list.
                            match crate::flags::suggest(&value, ["bind", "cache", "tmpfs", "secret", "ssh"]) {
                                Some(s) => format!("unsupported mount type {value:?} (did you mean {s}?)"),
                                None => format!(
                                    "unsupported mount type {value:?} (bind, cache, tmpfs, secret or ssh)"
                                ),
                            }
                        })?;
                    }
                }
                "from" => m.from = Some(value),
                "source" | "src" => m.source = Some(value),
                "target" | "dst" | "destination" => m.target = Some(value),
                "readonly" | "ro" => {
                    if !deferred {
                        m.read_only = parse_go_bool(&value).ok_or_else(invalid)?;
                    }
                    read_only_auto = false;
                }
                "readwrite" | "rw" => {
                    if !deferred {
                        m.read_only = !parse_go_bool(&value).ok_or_else(invalid)?;
                    }
                    read_only_auto = false;
                }
                "required" => {
                    if !matches!(m.mount_type, MountType::Secret | MountType::Ssh) {
                        return Err(format!(
                            "unexpected key '{key}' for mount type '{}'",
                            m.mount_type.as_str()
                        ));
                    }
                    if !deferred {
                        m.required = parse_go_bool(&value).ok_or_else(invalid)?;
                    }
                }
                "size" => {
                    if m.mount_type != MountType::Tmpfs {
                        return Err(format!(
                            "unexpected key '{key}' for mount type '{}'",
                            m.mount_type.as_str()
                        ));
                    }
                    if !deferred {
                        m.size_limit = Some(ram_in_bytes(&value).ok_or_else(invalid)?);
                    }
                }
                "id" => m.id = Some(value),
                "sharing" => {
                    if !deferred {
                        m.sharing = Some(match value.to_ascii_lowercase().as_str() {
                            "shared" => Sharing::Shared,
                            "private" => Sharing::Private,
                            "locked" => Sharing::Locked,
                            _ => {
                                return Err(format!(
                                    "unsupported sharing value {value:?} (shared, private or locked)"
                                ));
                            }
                        });
                    }
                }
                "mode" => {
                    if !deferred {
                        m.mode = Some(
                            parse_u32(&value, 8).ok_or_else(|| format!("invalid value {value} for mode"))?,
                        );
                    }
                }
                "uid" => {
                    if !deferred {
                        m.uid = Some(
                            parse_u32(&value, 10).ok_or_else(|| format!("invalid value {value} for uid"))?,
                        );
                    }
                }
                "gid" => {
                    if !deferred {
                        m.gid = Some(
                            parse_u32(&value, 10).ok_or_else(|| format!("invalid value {value} for gid"))?,
                        );
                    }
                }
                "env" => m.env = Some(value),
                _ => {
                    let hint = crate::flags::suggest(&key, KEYS.iter().copied())
                        .map(|s| format!(" (did you mean {s}?)"))
                        .unwrap_or_default();
                    return Err(format!("unexpected key '{key}' in '{field}'{hint}"));
                }
            }
        }
        let file_info_allowed = matches!(m.mount_type, MountType::Secret | MountType::Ssh | MountType::Cache);
        if !file_info_allowed {
            let kind = m.mount_type.as_str();
            if m.mode.is_some() {
                return Err(format!("mode not allowed for \"{kind}\" type mounts"));
            }
            if m.uid.is_some() {
                return Err(format!("uid not allowed for \"{kind}\" type mounts"));
            }
            if m.gid.is_some() {
                return Err(format!("gid not allowed for \"{kind}\" type mounts"));
            }
        }
        if read_only_auto {
            m.read_only = !matches!(m.mount_type, MountType::Cache | MountType::Tmpfs);
        }
        if m.mount_type == MountType::Secret {
            if m.from.is_some() {
                return Err("secret mount should not have a from".into());
            }
            if m.sharing.is_some() {
                return Err("secret mount should not define sharing".into());
            }
            if m.source.is_none() && m.target.is_none() && m.id.is_none() {
                return Err("invalid secret mount. one of source, target required".into());
            }
            if m.source.is_some() && m.id.is_some() {
                return Err("both source and id can't be set".into());
            }
        }
        if m.sharing.is_some() && m.mount_type != MountType::Cache {
            return Err(format!("invalid cache sharing set for {} mount", m.mount_type.as_str()));
        }
        Ok(m)
    }
}

/// Splits one CSV record (`"` quoting with `""` escapes) with the pest grammar.
fn csv_fields(raw: &str) -> Option<Vec<String>> {
    if !raw.contains('"') {
        // Fast path with the same result: without quotes every field is bare.
        return Some(raw.split(',').map(str::to_string).collect());
    }
    csv_fields_pest(raw)
}

fn csv_fields_pest(raw: &str) -> Option<Vec<String>> {
    let record = parse_rule(Rule::csv_record, raw)?;
    let mut fields = Vec::new();
    for field in record.into_inner().filter(|p| p.as_rule() == Rule::csv_field) {
        let Some(inner) = field.into_inner().next() else {
            fields.push(String::new());
            continue;
        };
        match inner.as_rule() {
            Rule::csv_quoted => {
                let body = inner.into_inner().next().map_or("", |p| p.as_str());
                fields.push(body.replace("\"\"", "\""));
            }
            _ => fields.push(inner.as_str().to_string()),
        }
    }
    Some(fields)
}

/// Go's `strconv.ParseBool`.
pub(crate) fn parse_go_bool(value: &str) -> Option<bool> {
    match value {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

fn parse_u32(value: &str, radix: u32) -> Option<u32> {
    if value.is_empty() || value.starts_with('+') {
        return None;
    }
    u32::from_str_radix(value, radix).ok()
}

/// docker/go-units `RAMInBytes`: `<number>[ ][kKmMgGtTpP][iI][bB]`, binary multiples.
fn ram_in_bytes(value: &str) -> Option<u64> {
    let number_len = value.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(value.len());
    let (number, unit) = value.split_at(number_len);
    if number.is_empty() || !number.starts_with(|c: char| c.is_ascii_digit()) || number.ends_with('.') {
        return None;
    }
    let size: f64 = number.parse().ok()?;
    let unit = unit.strip_prefix(' ').unwrap_or(unit).to_ascii_lowercase();
    let unit = unit.strip_suffix('b').unwrap_or(&unit);
    let unit = unit.strip_suffix('i').unwrap_or(unit);
    let multiplier: f64 = match unit {
        "" => 1.0,
        "k" => 1024.0,
        "m" => 1024f64.powi(2),
        "g" => 1024f64.powi(3),
        "t" => 1024f64.powi(4),
        "p" => 1024f64.powi(5),
        _ => return None,
    };
    let bytes = size * multiplier;
    (bytes.is_finite() && bytes < u64::MAX as f64).then_some(bytes as u64)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn csv_fast_path_agrees_with_the_grammar() {
        for raw in ["", ",", "a", "a,b", "type=cache,,target=/x,", "x=1,y", "é=ü,"] {
            assert_eq!(csv_fields(raw), csv_fields_pest(raw), "{raw:?}");
        }
        assert_eq!(csv_fields("a,\"b,c\",\"d\"\"e\"").unwrap(), ["a", "b,c", "d\"e"]);
    }

    #[test]
    fn expand_fills_variables() {
        let m = Mount::parse("type=cache,target=$DIR,id=${ID:-dflt},mode=$MODE", None).unwrap();
        assert_eq!(m.target.as_deref(), Some("$DIR"));
        let env: Vec<(String, String)> =
            vec![("DIR".into(), "/cache".into()), ("MODE".into(), "0700".into())];
        let expanded = m.expand(&env, '\\').unwrap();
        assert_eq!(expanded.target.as_deref(), Some("/cache"));
        assert_eq!(expanded.id.as_deref(), Some("dflt"));
        assert_eq!(expanded.mode, Some(0o700));
        let bad: Vec<(String, String)> = vec![("MODE".into(), "rwx".into())];
        assert!(m.expand(&bad, '\\').is_err());
    }

    #[test]
    fn mount_forms() {
        let m =
            Mount::parse("type=cache,target=/root/.cache,sharing=locked,id=x,mode=0755,uid=1", None).unwrap();
        assert_eq!(m.mount_type, MountType::Cache);
        assert_eq!(m.target.as_deref(), Some("/root/.cache"));
        assert_eq!(m.sharing, Some(Sharing::Locked));
        assert_eq!((m.mode, m.uid, m.read_only), (Some(0o755), Some(1), false));
        let m = Mount::parse("type=tmpfs,dst=/t,size=64m", None).unwrap();
        assert_eq!(m.size_limit, Some(64 << 20));
        let m = Mount::parse("target=/src", None).unwrap();
        assert_eq!((m.mount_type, m.read_only), (MountType::Bind, true));
        let m = Mount::parse("type=bind,from=build,source=/out,target=/in,rw", None).unwrap();
        assert!(!m.read_only);
        let m = Mount::parse("type=secret,id=tok,required", None).unwrap();
        assert!(m.required);
        let m = Mount::parse("type=ssh", None).unwrap();
        assert!(m.read_only);
        let m = Mount::parse("\"type=bind\",\"target=/a,b\"", None).unwrap();
        assert_eq!(m.target.as_deref(), Some("/a,b"));
        let m = Mount::parse("type=cache,target=$DIR", None).unwrap();
        assert_eq!(m.target.as_deref(), Some("$DIR"));
    }

    #[test]
    fn mount_errors() {
        for bad in [
            "type=nfs",
            "type=bind,mode=0700",
            "type=tmpfs,size=lots",
            "type=cache,sharing=everyone",
            "type=secret,from=x,id=a",
            "type=secret",
            "type=bind,targte=/x",
            "type=bind,required",
            "type=cache,uid=-1",
            "target=/x,bogus",
            "from=$STAGE/x",
            "type=bind,sharing=shared",
            "a\"b",
        ] {
            assert!(Mount::parse(bad, None).is_err(), "{bad}");
        }
        let expand = |v: &str| -> Result<String, String> { Ok(v.replace("$T", "cache")) };
        assert_eq!(Mount::parse("type=$T", Some(&expand)).unwrap().mount_type, MountType::Cache);
    }
}
