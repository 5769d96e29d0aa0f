//! Dockerfile instructions applied to an image config (`kiln import --change`), as `docker
//! import --change` does: CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, USER, VOLUME, WORKDIR, STOPSIGNAL.

use oci_spec::image::Config;

use crate::error::{Error, Result};

/// Applies one instruction (`CMD ["sh"]`, `ENV A=1 B=2`, `EXPOSE 80/udp`, …) to `config`.
pub fn apply_change(config: &mut Config, change: &str) -> Result<()> {
    let fail =
        |problem: &str| Error::InvalidChange { change: change.to_owned(), problem: problem.to_owned() };
    let trimmed = change.trim();
    let (keyword, rest) = match trimmed.split_once(char::is_whitespace) {
        Some((keyword, rest)) => (keyword, rest.trim()),
        None => (trimmed, ""),
    };
    if rest.is_empty() {
        return Err(fail("missing arguments"));
    }
    match keyword.to_ascii_uppercase().as_str() {
        "CMD" => {
            config.set_cmd(Some(command_form(rest)));
        }
        "ENTRYPOINT" => {
            config.set_entrypoint(Some(command_form(rest)));
        }
        "USER" => {
            config.set_user(Some(rest.to_owned()));
        }
        "WORKDIR" => {
            if !rest.starts_with('/') {
                return Err(fail("WORKDIR must be an absolute path"));
            }
            config.set_working_dir(Some(rest.to_owned()));
        }
        "STOPSIGNAL" => {
            config.set_stop_signal(Some(rest.to_owned()));
        }
        "ENV" => {
            let mut env = config.env().clone().unwrap_or_default();
            for (key, value) in key_values(rest).map_err(|p| fail(&p))? {
                env.retain(|e| e.split_once('=').map_or(e.as_str(), |(k, _)| k) != key);
                env.push(format!("{key}={value}"));
            }
            config.set_env(Some(env));
        }
        "LABEL" => {
            let mut labels = config.labels().clone().unwrap_or_default();
            for (key, value) in key_values(rest).map_err(|p| fail(&p))? {
                labels.insert(key, value);
            }
            config.set_labels(Some(labels));
        }
        "EXPOSE" => {
            let mut ports = config.exposed_ports().clone().unwrap_or_default();
            for port in words(rest).map_err(|p| fail(&p))? {
                let (number, proto) = port.split_once('/').unwrap_or((&port, "tcp"));
                if number.parse::<u16>().is_err() || !matches!(proto, "tcp" | "udp" | "sctp") {
                    return Err(fail(&format!("invalid port {port:?}")));
                }
                let port = format!("{number}/{proto}");
                if !ports.contains(&port) {
                    ports.push(port);
                }
            }
            config.set_exposed_ports(Some(ports));
        }
        "VOLUME" => {
            let mut volumes = config.volumes().clone().unwrap_or_default();
            let new = if rest.starts_with('[') {
                serde_json::from_str::<Vec<String>>(rest)
                    .map_err(|e| fail(&format!("invalid JSON array: {e}")))?
            } else {
                words(rest).map_err(|p| fail(&p))?
            };
            for volume in new {
                if !volumes.contains(&volume) {
                    volumes.push(volume);
                }
            }
            config.set_volumes(Some(volumes));
        }
        other => {
            return Err(fail(&format!(
                "unsupported instruction {other} (supported: CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, USER, VOLUME, WORKDIR, STOPSIGNAL)"
            )));
        }
    }
    Ok(())
}

/// Exec form (JSON array) or shell form (`/bin/sh -c …`).
fn command_form(rest: &str) -> Vec<String> {
    if rest.starts_with('[')
        && let Ok(args) = serde_json::from_str::<Vec<String>>(rest)
    {
        return args;
    }
    vec!["/bin/sh".to_owned(), "-c".to_owned(), rest.to_owned()]
}

/// `K=V K2="v 2"` pairs, or the legacy single `K V` form.
fn key_values(rest: &str) -> std::result::Result<Vec<(String, String)>, String> {
    let parts = words(rest)?;
    if !parts[0].contains('=') {
        let (key, value) = rest.split_once(char::is_whitespace).ok_or("expected KEY=VALUE or KEY VALUE")?;
        return Ok(vec![(key.to_owned(), unquote(value.trim())?)]);
    }
    parts
        .into_iter()
        .map(|part| match part.split_once('=') {
            Some(("", _)) => Err("empty key".to_owned()),
            Some((key, value)) => Ok((key.to_owned(), value.to_owned())),
            None => Err(format!("{part:?} is not KEY=VALUE")),
        })
        .collect()
}

fn unquote(value: &str) -> std::result::Result<String, String> {
    let parts = words(value)?;
    Ok(parts.join(" "))
}

/// Splits on unquoted whitespace; removes quotes; backslash escapes the next character
/// (outside single quotes).
fn words(input: &str) -> std::result::Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    let mut chars = input.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some('\''), c) => current.push(c),
            (_, '\\') => {
                let next = chars.next().ok_or("trailing backslash")?;
                current.push(next);
                in_word = true;
            }
            (Some(_), c) => current.push(c),
            (None, '"' | '\'') => {
                quote = Some(c);
                in_word = true;
            }
            (None, c) if c.is_whitespace() => {
                if in_word {
                    out.push(std::mem::take(&mut current));
                    in_word = false;
                }
            }
            (None, c) => {
                current.push(c);
                in_word = true;
            }
        }
    }
    if quote.is_some() {
        return Err("unterminated quote".to_owned());
    }
    if in_word {
        out.push(current);
    }
    if out.is_empty() {
        return Err("missing arguments".to_owned());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_table() {
        let mut config = Config::default();
        for change in [
            r#"CMD ["sh", "-c", "echo hi"]"#,
            "ENTRYPOINT /bin/init --flag",
            r#"ENV A=1 B="two words""#,
            "ENV LEGACY some value",
            "ENV A=3",
            "EXPOSE 80 53/udp",
            r#"LABEL org.example="x y" z=1"#,
            "USER www-data:33",
            "WORKDIR /srv",
            r#"VOLUME ["/data"]"#,
            "VOLUME /cache",
            "STOPSIGNAL SIGTERM",
            "cmd echo lower",
        ] {
            apply_change(&mut config, change).unwrap_or_else(|e| panic!("{change}: {e}"));
        }
        assert_eq!(config.cmd().as_deref().unwrap(), ["/bin/sh", "-c", "echo lower"]);
        assert_eq!(config.entrypoint().as_deref().unwrap(), ["/bin/sh", "-c", "/bin/init --flag"]);
        assert_eq!(config.env().as_deref().unwrap(), ["B=two words", "LEGACY=some value", "A=3"]);
        assert_eq!(config.exposed_ports().as_deref().unwrap(), ["80/tcp", "53/udp"]);
        assert_eq!(config.labels().as_ref().unwrap()["org.example"], "x y");
        assert_eq!(config.user().as_deref(), Some("www-data:33"));
        assert_eq!(config.working_dir().as_deref(), Some("/srv"));
        assert_eq!(config.volumes().as_deref().unwrap(), ["/data", "/cache"]);
        assert_eq!(config.stop_signal().as_deref(), Some("SIGTERM"));
    }

    #[test]
    fn bad_changes_name_the_change() {
        for (change, want) in [
            ("RUN echo", "unsupported instruction RUN"),
            ("CMD", "missing arguments"),
            ("EXPOSE http", "invalid port"),
            ("WORKDIR relative", "absolute"),
            ("ENV A=\"open", "unterminated quote"),
            ("LABEL =x", "empty key"),
        ] {
            let err = apply_change(&mut Config::default(), change).unwrap_err().to_string();
            assert!(err.contains(want) && err.contains(&format!("{change:?}")), "{change}: {err}");
        }
    }
}
