//! `-v`, `--mount type=volume` and the image's `VOLUME`s: named volumes (created on first
//! use), anonymous volumes, binds, and the records `inspect`/`rm -v` read.

use std::path::Path;

use anyhow::{Context, bail};
use executor::runtime::{Store, VolumeMount};
use executor::{Mount, MountKind};

/// A mount as asked for, before volumes are looked up or created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MountRequest {
    Mount(Mount),
    /// A named volume (`name`) or an anonymous one (`None`).
    Volume {
        name: Option<String>,
        target: String,
        readonly: bool,
        copy_up: bool,
    },
}

/// Parses `-v`: `/host:/ctr[:ro|rw]` (a bind; the host directory is created when missing),
/// `NAME:/ctr[:ro|rw|nocopy]` (a named volume) or `/ctr` (an anonymous volume).
pub fn parse_volume(spec: &str) -> anyhow::Result<MountRequest> {
    let parts: Vec<&str> = spec.split(':').collect();
    let (source, target, mode) = match parts.as_slice() {
        [target] => (None, *target, ""),
        [source, target] => (Some(*source), *target, ""),
        [source, target, mode] => (Some(*source), *target, *mode),
        _ => bail!("invalid volume specification: {spec:?}"),
    };
    if !target.starts_with('/') {
        bail!("invalid volume specification: {spec:?}: the container path must be absolute");
    }
    let (mut readonly, mut copy_up) = (false, true);
    for option in mode.split(',').filter(|o| !o.is_empty()) {
        match option {
            "ro" => readonly = true,
            "rw" => readonly = false,
            "nocopy" => copy_up = false,
            // SELinux relabelling: nothing to do without SELinux
            "z" | "Z" => {}
            other => bail!("invalid volume specification: {spec:?}: invalid mode {other:?}"),
        }
    }
    match source {
        None => Ok(MountRequest::Volume { name: None, target: target.to_owned(), readonly, copy_up }),
        Some(host) if host.starts_with('/') => {
            if !copy_up {
                bail!("invalid volume specification: {spec:?}: nocopy is only for volumes");
            }
            if !Path::new(host).exists() {
                std::fs::create_dir_all(host)
                    .with_context(|| format!("cannot create volume directory {host}"))?;
            }
            Ok(MountRequest::Mount(Mount {
                target: target.into(),
                kind: MountKind::Bind { source: host.into() },
                readonly,
            }))
        }
        Some(name) => Ok(MountRequest::Volume {
            name: Some(name.to_owned()),
            target: target.to_owned(),
            readonly,
            copy_up,
        }),
    }
}

/// Mounts ready for the sandbox, and what the container record keeps of them.
#[derive(Debug, Default)]
pub struct Resolved {
    pub mounts: Vec<Mount>,
    pub records: Vec<VolumeMount>,
}

impl Resolved {
    /// Names of the anonymous volumes created.
    pub fn anonymous(&self) -> impl Iterator<Item = &str> {
        self.records.iter().filter(|r| r.anonymous).map(|r| r.source.as_str())
    }
}

/// Looks up or creates the volumes of `requests`, and adds an anonymous volume for every
/// image `VOLUME` no request covers.
pub fn resolve(
    store: &Store,
    requests: Vec<MountRequest>,
    image_volumes: &[String],
) -> anyhow::Result<Resolved> {
    let volumes = store.volumes();
    let mut resolved = Resolved::default();
    let normal = |path: &str| Path::new(path).components().collect::<std::path::PathBuf>();
    let mut requests = requests;
    for path in image_volumes {
        let covered = requests.iter().any(|r| match r {
            MountRequest::Mount(mount) => mount.target == normal(path),
            MountRequest::Volume { target, .. } => normal(target) == normal(path),
        });
        if !covered {
            requests.push(MountRequest::Volume {
                name: None,
                target: path.clone(),
                readonly: false,
                copy_up: true,
            });
        }
    }
    for request in requests {
        match request {
            MountRequest::Mount(mount) => {
                let (kind, source) = match &mount.kind {
                    MountKind::Bind { source } => ("bind", source.display().to_string()),
                    MountKind::Tmpfs { .. } => ("tmpfs", String::new()),
                    _ => ("bind", String::new()),
                };
                resolved.records.push(VolumeMount {
                    kind: kind.into(),
                    source,
                    destination: mount.target.display().to_string(),
                    readonly: mount.readonly,
                    anonymous: false,
                });
                resolved.mounts.push(mount);
            }
            MountRequest::Volume { name, target, readonly, copy_up } => {
                let anonymous = name.is_none();
                let volume = volumes.create(name.as_deref(), Default::default(), anonymous)?;
                let source = volumes.mount_source(&volume.name)?;
                resolved.records.push(VolumeMount {
                    kind: "volume".into(),
                    source: volume.name.clone(),
                    destination: target.clone(),
                    readonly,
                    anonymous,
                });
                resolved.mounts.push(Mount {
                    target: target.into(),
                    kind: MountKind::Volume { source, copy_up },
                    readonly,
                });
            }
        }
    }
    Ok(resolved)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn volume_flags() {
        let bind = parse_volume("/tmp:/data:ro").expect("bind");
        assert!(matches!(bind, MountRequest::Mount(Mount { readonly: true, .. })));
        assert_eq!(
            parse_volume("cache:/root/.cache:nocopy").expect("named"),
            MountRequest::Volume {
                name: Some("cache".into()),
                target: "/root/.cache".into(),
                readonly: false,
                copy_up: false
            }
        );
        assert_eq!(
            parse_volume("/data").expect("anonymous"),
            MountRequest::Volume { name: None, target: "/data".into(), readonly: false, copy_up: true }
        );
        assert!(parse_volume("data:relative").is_err());
        assert!(parse_volume("a:/b:c:d").is_err());
        assert!(parse_volume("a:/b:xx").is_err());
    }
}
