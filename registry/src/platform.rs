//! Platforms (`linux/amd64`, `linux/arm64/v8`, `linux/arm/v7`): parsing, normalisation and the
//! choice of a manifest from an image index, following containerd's `platforms` package.

use std::fmt;
use std::str::FromStr;

use crate::error::Error;

/// An OS/architecture/variant triple, normalised (`x86_64` → `amd64`, `aarch64` → `arm64/v8`,
/// `armhf` → `arm/v7`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Platform {
    os: String,
    architecture: String,
    variant: Option<String>,
}

impl Platform {
    /// A normalised platform.
    pub fn new(os: &str, architecture: &str, variant: Option<&str>) -> Self {
        let os = match os.to_ascii_lowercase().as_str() {
            "macos" => "darwin".to_owned(),
            other => other.to_owned(),
        };
        let (architecture, variant) = normalize_arch(architecture, variant.unwrap_or(""));
        Self { os, architecture, variant: (!variant.is_empty()).then_some(variant) }
    }

    /// The platform kiln runs on (`linux/amd64` on x86-64).
    pub fn host() -> Self {
        Self::new("linux", std::env::consts::ARCH, None)
    }

    /// `linux`, `windows`, …
    pub fn os(&self) -> &str {
        &self.os
    }

    /// `amd64`, `arm64`, `arm`, …
    pub fn architecture(&self) -> &str {
        &self.architecture
    }

    /// `v7`, `v8`, … if any.
    pub fn variant(&self) -> Option<&str> {
        self.variant.as_deref()
    }

    /// How well an image for `candidate` runs on `self`: `None` if it cannot, lower is better
    /// (0 for an exact match; then older variants of the same architecture, newest first).
    pub fn match_rank(&self, candidate: &Platform) -> Option<usize> {
        if self.os != candidate.os || self.architecture != candidate.architecture {
            return None;
        }
        let wanted = self.variant.as_deref().unwrap_or("");
        let offered = candidate.variant.as_deref().unwrap_or("");
        if wanted == offered {
            return Some(0);
        }
        // Older variants run on newer CPUs: arm/v7 runs arm/v6 and arm/v5 images, amd64/v3 runs v2
        // and v1 (v1 being the unnamed baseline).
        let ladder: &[&str] = match self.architecture.as_str() {
            "arm" => &["v8", "v7", "v6", "v5"],
            "amd64" => &["v4", "v3", "v2", ""],
            "arm64" => &["v9", "v8.9", "v8.8", "v8.7", "v8.6", "v8.5", "v8.4", "v8.3", "v8.2", "v8.1", "v8"],
            _ => &[],
        };
        let wanted_pos = ladder.iter().position(|v| *v == wanted)?;
        let offered_pos = ladder.iter().position(|v| *v == offered)?;
        offered_pos.checked_sub(wanted_pos).filter(|rank| *rank > 0)
    }
}

impl Default for Platform {
    /// The host platform.
    fn default() -> Self {
        Self::host()
    }
}

fn normalize_arch(architecture: &str, variant: &str) -> (String, String) {
    let architecture = architecture.to_ascii_lowercase();
    let variant = variant.to_ascii_lowercase();
    let (arch, variant) = match architecture.as_str() {
        "i386" | "i686" | "x86" => ("386", String::new()),
        "x86_64" | "x86-64" | "amd64" => ("amd64", if variant == "v1" { String::new() } else { variant }),
        "aarch64" | "arm64" => (
            "arm64",
            match variant.as_str() {
                "" | "8" | "v8" => "v8".to_owned(),
                _ => variant,
            },
        ),
        "armhf" => ("arm", "v7".to_owned()),
        "armel" => ("arm", "v6".to_owned()),
        "arm" => (
            "arm",
            match variant.as_str() {
                "" | "7" => "v7".to_owned(),
                "5" | "6" | "8" => format!("v{variant}"),
                _ => variant,
            },
        ),
        _ => (architecture.as_str(), variant),
    };
    (arch.to_owned(), variant)
}

const KNOWN_OSES: &[&str] =
    &["linux", "windows", "darwin", "macos", "freebsd", "netbsd", "openbsd", "solaris"];

impl FromStr for Platform {
    type Err = Error;

    /// `os/arch[/variant]`, or a lone OS (host architecture) or a lone architecture (linux).
    fn from_str(value: &str) -> Result<Self, Error> {
        let fail = |problem| Error::Platform { value: value.to_owned(), problem };
        let parts: Vec<&str> = value.split('/').collect();
        if parts
            .iter()
            .any(|p| p.is_empty() || !p.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b)))
        {
            return Err(fail("expected os/arch[/variant] made of letters, digits, `_`, `-` and `.`"));
        }
        match parts.as_slice() {
            [single] if KNOWN_OSES.contains(&single.to_ascii_lowercase().as_str()) => {
                Ok(Self::new(single, std::env::consts::ARCH, None))
            }
            [single] => Ok(Self::new("linux", single, None)),
            [os, arch] => Ok(Self::new(os, arch, None)),
            [os, arch, variant] => Ok(Self::new(os, arch, Some(variant))),
            _ => Err(fail("too many components")),
        }
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(variant) = &self.variant {
            write!(f, "/{variant}")?;
        }
        Ok(())
    }
}

impl From<&oci_spec::image::Platform> for Platform {
    fn from(p: &oci_spec::image::Platform) -> Self {
        Self::new(&p.os().to_string(), &p.architecture().to_string(), p.variant().as_deref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_normalises() {
        let cases = [
            ("linux/amd64", "linux/amd64"),
            ("linux/x86_64", "linux/amd64"),
            ("linux/amd64/v1", "linux/amd64"),
            ("linux/amd64/v3", "linux/amd64/v3"),
            ("linux/arm64", "linux/arm64/v8"),
            ("linux/aarch64", "linux/arm64/v8"),
            ("linux/arm64/8", "linux/arm64/v8"),
            ("linux/arm", "linux/arm/v7"),
            ("linux/arm/6", "linux/arm/v6"),
            ("linux/armhf", "linux/arm/v7"),
            ("linux/armel", "linux/arm/v6"),
            ("linux/i386", "linux/386"),
            ("LINUX/AMD64", "linux/amd64"),
            ("arm64", "linux/arm64/v8"),
            ("linux/s390x", "linux/s390x"),
            ("linux/riscv64", "linux/riscv64"),
        ];
        for (input, want) in cases {
            let p: Platform = input.parse().unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(p.to_string(), want, "{input}");
        }
        let linux: Platform = "linux".parse().unwrap();
        assert_eq!(linux, Platform::host());
        for bad in ["", "/", "linux/", "linux//v7", "a/b/c/d", "linux/amd 64"] {
            assert!(bad.parse::<Platform>().is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn match_ranks() {
        let p = |s: &str| s.parse::<Platform>().unwrap();
        let cases = [
            ("linux/amd64", "linux/amd64", Some(0)),
            ("linux/amd64", "linux/arm64", None),
            ("linux/amd64", "windows/amd64", None),
            ("linux/amd64", "linux/amd64/v2", None),
            ("linux/amd64/v3", "linux/amd64/v2", Some(1)),
            ("linux/amd64/v3", "linux/amd64", Some(2)),
            ("linux/arm/v7", "linux/arm/v6", Some(1)),
            ("linux/arm/v7", "linux/arm/v5", Some(2)),
            ("linux/arm/v6", "linux/arm/v7", None),
            ("linux/arm64", "linux/arm64/v8", Some(0)),
            ("linux/arm64/v8.2", "linux/arm64", Some(2)),
        ];
        for (wanted, offered, rank) in cases {
            assert_eq!(p(wanted).match_rank(&p(offered)), rank, "{wanted} running {offered}");
        }
    }
}
