//! `kiln run --mount type=bind|tmpfs|volume,...`: docker's long mount syntax.

use anyhow::{Context, bail};
use executor::{Mount, MountKind};

use super::parse_bytes;
use super::volumes::MountRequest;

/// Parses one `--mount` value: `type=bind,source=/host,target=/ctr[,readonly]` or
/// `type=tmpfs,target=/ctr[,tmpfs-size=64m][,tmpfs-mode=1777]` or
/// `type=volume[,source=NAME],target=/ctr[,readonly][,volume-nocopy]`.
///
/// Bind options as docker's: `readonly`/`ro` (bare or `=true|false|1|0`),
/// `bind-propagation` (only `rprivate`, the default, and `private`: a container's mounts never
/// propagate to or from the host), `bind-recursive` (`enabled`, the default, and `readonly`:
/// submounts are included and a read-only bind is read-only in every submount; docker's
/// `disabled` and `writable`, which weaken that, are refused).
pub fn parse_mount(spec: &str) -> anyhow::Result<MountRequest> {
    let mut kind = None;
    let mut source = None;
    let mut target = None;
    let mut readonly = false;
    let (mut size, mut mode) = (None, 0o1777);
    let mut bind_options = Vec::new();
    let mut tmpfs_options = Vec::new();
    let mut volume_options = Vec::new();
    let mut copy_up = true;
    for field in spec.split(',').filter(|f| !f.is_empty()) {
        let (key, value) = match field.split_once('=') {
            Some((key, value)) => (key.trim().to_ascii_lowercase(), Some(value.trim())),
            None => (field.trim().to_ascii_lowercase(), None),
        };
        let value_of = |value| required(spec, &key, value);
        match key.as_str() {
            "type" => kind = Some(value_of(value)?.to_owned()),
            "source" | "src" => source = Some(value_of(value)?.to_owned()),
            "target" | "destination" | "dst" => target = Some(value_of(value)?.to_owned()),
            "readonly" | "ro" => {
                readonly = match value.map(str::to_ascii_lowercase).as_deref() {
                    None | Some("true" | "1") => true,
                    Some("false" | "0") => false,
                    Some(other) => bail!("invalid mount {spec:?}: invalid value {other:?} for {key}"),
                }
            }
            "bind-propagation" => {
                bind_options.push(key.clone());
                match value_of(value)? {
                    "rprivate" | "private" => {}
                    other @ ("shared" | "rshared" | "slave" | "rslave") => bail!(
                        "invalid mount {spec:?}: bind-propagation={other} is not supported (kiln keeps every \
                         container mount private: rprivate)"
                    ),
                    other => bail!("invalid mount {spec:?}: invalid bind-propagation {other:?}"),
                }
            }
            "bind-recursive" => {
                bind_options.push(key.clone());
                match value_of(value)? {
                    "enabled" | "readonly" => {}
                    other @ ("disabled" | "writable") => bail!(
                        "invalid mount {spec:?}: bind-recursive={other} is not supported (kiln always binds \
                         submounts, and a read-only bind is read-only in all of them)"
                    ),
                    other => bail!("invalid mount {spec:?}: invalid bind-recursive {other:?}"),
                }
            }
            "tmpfs-size" => {
                tmpfs_options.push(key.clone());
                size = Some(parse_bytes(value_of(value)?)?);
            }
            "tmpfs-mode" => {
                tmpfs_options.push(key.clone());
                let value = value_of(value)?;
                mode =
                    u32::from_str_radix(value, 8).with_context(|| format!("invalid tmpfs-mode {value:?}"))?;
            }
            "volume-nocopy" => {
                volume_options.push(key.clone());
                copy_up = match value.map(str::to_ascii_lowercase).as_deref() {
                    None | Some("true" | "1") => false,
                    Some("false" | "0") => true,
                    Some(other) => bail!("invalid mount {spec:?}: invalid value {other:?} for {key}"),
                }
            }
            _ => bail!("invalid mount {spec:?}: unknown option {key:?}"),
        }
    }
    let target = target.with_context(|| format!("invalid mount {spec:?}: target is required"))?;
    if !target.starts_with('/') {
        bail!("invalid mount {spec:?}: the target must be an absolute path");
    }
    let kind = match kind.as_deref() {
        Some("bind") | None => {
            if let Some(option) = tmpfs_options.first() {
                bail!("invalid mount {spec:?}: {option} is only for type=tmpfs");
            }
            if let Some(option) = volume_options.first() {
                bail!("invalid mount {spec:?}: {option} is only for type=volume");
            }
            let source = source.with_context(|| format!("invalid mount {spec:?}: source is required"))?;
            if !source.starts_with('/') {
                bail!("invalid mount {spec:?}: the source must be an absolute host path");
            }
            // docker's --mount, unlike -v, creates nothing
            if std::fs::symlink_metadata(&source).is_err() {
                bail!("invalid mount {spec:?}: bind source path does not exist: {source}");
            }
            MountKind::Bind { source: source.into() }
        }
        Some("tmpfs") => {
            if let Some(option) = bind_options.first() {
                bail!("invalid mount {spec:?}: {option} is only for type=bind");
            }
            if let Some(option) = volume_options.first() {
                bail!("invalid mount {spec:?}: {option} is only for type=volume");
            }
            if source.is_some() {
                bail!("invalid mount {spec:?}: a tmpfs has no source");
            }
            MountKind::Tmpfs { size, mode }
        }
        Some("volume") => {
            if let Some(option) = bind_options.first().or(tmpfs_options.first()) {
                bail!(
                    "invalid mount {spec:?}: {option} is only for type={}",
                    if option.starts_with("bind") { "bind" } else { "tmpfs" }
                );
            }
            return Ok(MountRequest::Volume { name: source, target, readonly, copy_up });
        }
        Some(other) => {
            bail!("invalid mount {spec:?}: unknown type {other:?} (expected bind, volume or tmpfs)")
        }
    };
    Ok(MountRequest::Mount(Mount { target: target.into(), kind, readonly }))
}

fn required<'a>(spec: &str, key: &str, value: Option<&'a str>) -> anyhow::Result<&'a str> {
    value.filter(|v| !v.is_empty()).with_context(|| format!("invalid mount {spec:?}: {key} needs a value"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binds_and_tmpfs() {
        let ready = |spec| match parse_mount(spec).expect(spec) {
            MountRequest::Mount(mount) => mount,
            other => panic!("{spec}: {other:?}"),
        };
        let m = ready("type=bind,source=/,target=/host,readonly");
        assert_eq!((m.target.to_str(), m.readonly), (Some("/host"), true));
        assert_eq!(m.kind, MountKind::Bind { source: "/".into() });
        let m = ready("src=/tmp,dst=/t,ro=false,bind-propagation=rprivate,bind-recursive=enabled");
        assert!(!m.readonly);
        let m = ready("type=tmpfs,target=/scratch,tmpfs-size=1m,tmpfs-mode=700");
        assert_eq!(m.kind, MountKind::Tmpfs { size: Some(1 << 20), mode: 0o700 });
        let v = parse_mount("type=volume,source=data,target=/data,readonly,volume-nocopy").expect("volume");
        assert_eq!(
            v,
            MountRequest::Volume {
                name: Some("data".into()),
                target: "/data".into(),
                readonly: true,
                copy_up: false
            }
        );
    }

    #[test]
    fn refusals_name_the_cause() {
        let cases = [
            ("type=bind,source=/tmp", "target is required"),
            ("type=bind,target=/x", "source is required"),
            ("type=bind,source=/nonexistent-kiln-test,target=/x", "does not exist"),
            ("type=bind,source=/tmp,target=x", "absolute"),
            ("type=bind,source=/tmp,target=/x,bind-propagation=rshared", "not supported"),
            ("type=bind,source=/tmp,target=/x,bind-recursive=writable", "not supported"),
            ("type=bind,source=/tmp,target=/x,readonly=maybe", "invalid value"),
            ("type=tmpfs,target=/x,bind-propagation=private", "only for type=bind"),
            ("type=bind,source=/tmp,target=/x,tmpfs-size=1m", "only for type=tmpfs"),
            ("type=volume,source=v,target=/x,bind-propagation=private", "only for type=bind"),
            ("type=bind,source=/tmp,target=/x,volume-nocopy", "only for type=volume"),
            ("type=bind,source=/tmp,target=/x,colour=red", "unknown option"),
        ];
        for (spec, wanted) in cases {
            let err = parse_mount(spec).expect_err(spec).to_string();
            assert!(err.contains(wanted), "{spec}: {err}");
        }
    }
}
