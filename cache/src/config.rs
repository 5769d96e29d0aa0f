//! The image config as the whole workspace reads it: oci-spec's [`ImageConfiguration`] plus
//! [`DockerExtras`], the runtime-config fields Docker writes that the OCI type has no place for.
//!
//! Images come from many producers (docker's classic builder, `docker import`, `docker commit`,
//! BuildKit, buildah, podman, skopeo, kiln). Go writes an unset slice or map as `null`, so a
//! config may hold `"OnBuild": null`, `"Entrypoint": null`, `"Volumes": null`, `"Labels": null`
//! and the like; every field the image spec marks optional may be absent **or** null in configs,
//! manifests and indexes. [`from_json_slice`] reads any of those documents with `null` members
//! treated as absent, which is what every reader in the workspace uses.

use oci_spec::image::ImageConfiguration;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// Parses a JSON document (config, manifest, index) with every `null` object member treated
/// as absent (Go writes unset optional slices and maps as `null`).
pub fn from_json_slice<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, serde_json::Error> {
    let mut value: serde_json::Value = serde_json::from_slice(bytes)?;
    strip_nulls(&mut value);
    T::deserialize(value)
}

/// Removes `null` members from every object of `value` (array elements stay).
fn strip_nulls(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(map) => {
            map.retain(|_, member| !member.is_null());
            map.values_mut().for_each(strip_nulls);
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(strip_nulls),
        _ => {}
    }
}

/// `HEALTHCHECK` as docker writes it in the config (durations in nanoseconds).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct HealthConfig {
    #[serde(default, skip_serializing_if = "Vec::is_empty", deserialize_with = "null_as_default")]
    pub test: Vec<String>,
    #[serde(default, skip_serializing_if = "is_zero", deserialize_with = "null_as_default")]
    pub interval: i64,
    #[serde(default, skip_serializing_if = "is_zero", deserialize_with = "null_as_default")]
    pub timeout: i64,
    #[serde(default, skip_serializing_if = "is_zero", deserialize_with = "null_as_default")]
    pub start_period: i64,
    #[serde(default, skip_serializing_if = "is_zero", deserialize_with = "null_as_default")]
    pub start_interval: i64,
    #[serde(default, skip_serializing_if = "is_zero", deserialize_with = "null_as_default")]
    pub retries: i64,
}

fn is_zero(value: &i64) -> bool {
    *value == 0
}

/// `null` → the type's default (for fields that are also `#[serde(default)]` when absent).
fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

/// The Docker image config fields that oci-spec's `Config` has no place for (the one type the
/// workspace uses for them).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DockerExtras {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<HealthConfig>,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        rename = "OnBuild",
        deserialize_with = "null_as_default"
    )]
    pub on_build: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty", deserialize_with = "null_as_default")]
    pub shell: Vec<String>,
    /// Docker's `ArgsEscaped` (deprecated in the OCI spec, kept for docker): BuildKit sets it
    /// with every CMD.
    #[serde(
        default,
        skip_serializing_if = "std::ops::Not::not",
        rename = "ArgsEscaped",
        deserialize_with = "null_as_default"
    )]
    pub args_escaped: bool,
}

impl DockerExtras {
    /// Reads the Docker-only fields from an image config JSON (`{"config": {...}}`).
    pub fn from_config_json(bytes: &[u8]) -> Result<DockerExtras, serde_json::Error> {
        #[derive(Deserialize)]
        struct Outer {
            #[serde(default)]
            config: Option<DockerExtras>,
        }
        let outer: Outer = from_json_slice(bytes)?;
        Ok(outer.config.unwrap_or_default())
    }

    /// True when no field is set.
    pub fn is_empty(&self) -> bool {
        self == &DockerExtras::default()
    }
}

/// Parses an image config blob into the OCI config and the Docker-only fields.
pub fn parse_image_config(bytes: &[u8]) -> Result<(ImageConfiguration, DockerExtras), serde_json::Error> {
    let config: ImageConfiguration = from_json_slice(bytes)?;
    let extras = DockerExtras::from_config_json(bytes)?;
    Ok((config, extras))
}

/// `image` as JSON with `extras` merged into its `config` object (how Docker and BuildKit
/// write the config).
pub fn merge_extras(
    image: &ImageConfiguration,
    extras: &DockerExtras,
) -> Result<serde_json::Value, serde_json::Error> {
    let mut value = serde_json::to_value(image)?;
    let extra = serde_json::to_value(extras)?;
    if let (Some(root), serde_json::Value::Object(extra)) = (value.as_object_mut(), extra) {
        let config = root.entry("config").or_insert_with(|| serde_json::Value::Object(Default::default()));
        if let Some(config) = config.as_object_mut() {
            config.extend(extra);
        }
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A config as docker's classic builder writes it (Go nils everywhere).
    const CLASSIC: &str = r#"{
        "architecture": "amd64", "os": "linux", "created": "2026-01-01T00:00:00Z",
        "config": {"Hostname": "", "User": "", "ExposedPorts": null, "Env": null, "Cmd": null,
            "Healthcheck": null, "Image": "", "Volumes": null, "WorkingDir": "", "Entrypoint": null,
            "OnBuild": null, "Labels": null, "Shell": null},
        "container_config": {"Cmd": null, "OnBuild": null},
        "history": [{"created": "2026-01-01T00:00:00Z", "created_by": "x", "empty_layer": null}],
        "rootfs": {"type": "layers", "diff_ids": ["sha256:0000000000000000000000000000000000000000000000000000000000000000"]}
    }"#;

    #[test]
    fn null_fields_read_as_absent() {
        let (config, extras) = parse_image_config(CLASSIC.as_bytes()).unwrap();
        let runtime = config.config().clone().unwrap();
        assert_eq!(runtime.entrypoint(), &None);
        assert_eq!(runtime.volumes(), &None);
        assert_eq!(runtime.labels(), &None);
        assert_eq!(runtime.exposed_ports(), &None);
        assert_eq!(extras, DockerExtras::default());
        assert_eq!(config.history().as_ref().unwrap()[0].empty_layer(), None);
    }

    #[test]
    fn null_members_inside_healthcheck() {
        let json = r#"{"config": {"Healthcheck": {"Test": null, "Interval": 5, "Retries": null},
            "OnBuild": ["RUN x"], "Shell": null}}"#;
        let extras = DockerExtras::from_config_json(json.as_bytes()).unwrap();
        assert_eq!(extras.on_build, vec!["RUN x".to_owned()]);
        let health = extras.healthcheck.unwrap();
        assert!(health.test.is_empty());
        assert_eq!(health.interval, 5);
    }

    #[test]
    fn null_is_also_accepted_without_stripping() {
        // the field deserializers themselves accept null (e.g. inside a caller's own type)
        let extras: DockerExtras = serde_json::from_str(r#"{"OnBuild": null, "Shell": null}"#).unwrap();
        assert!(extras.is_empty());
    }

    #[test]
    fn merge_puts_extras_into_config() {
        let (config, _) = parse_image_config(CLASSIC.as_bytes()).unwrap();
        let extras = DockerExtras { shell: vec!["/bin/bash".into(), "-c".into()], ..DockerExtras::default() };
        let merged = merge_extras(&config, &extras).unwrap();
        assert_eq!(merged["config"]["Shell"], serde_json::json!(["/bin/bash", "-c"]));
    }
}
