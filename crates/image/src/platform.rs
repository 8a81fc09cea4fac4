//! Platforms (`linux/amd64`, `linux/arm/v7`, …) and choosing one manifest from an index
//! the way containerd does.

use std::fmt;
use std::str::FromStr;

/// An operating system / architecture / variant triple, normalised as containerd does
/// (`x86_64` → `amd64`, `aarch64` → `arm64`, `armhf` → `arm/v7`, `arm64/v8` → `arm64`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Platform {
    os: String,
    architecture: String,
    variant: Option<String>,
}

/// A platform string that could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid platform {input:?}: {reason}")]
pub struct PlatformError {
    /// What was given.
    pub input: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

impl Default for Platform {
    /// `linux/amd64`, the platform Docker Hub images are most often published for.
    fn default() -> Self {
        Platform::new("linux", "amd64", None)
    }
}

impl Platform {
    /// A normalised platform.
    pub fn new(os: &str, architecture: &str, variant: Option<&str>) -> Platform {
        let os = match os.to_ascii_lowercase().as_str() {
            "macos" => "darwin".to_string(),
            other => other.to_string(),
        };
        let (architecture, variant) = normalize_arch(&architecture.to_ascii_lowercase(), variant.unwrap_or(""));
        Platform {
            os,
            architecture,
            variant: (!variant.is_empty()).then_some(variant),
        }
    }

    /// The platform this program runs on.
    pub fn host() -> Platform {
        let arch = match std::env::consts::ARCH {
            "x86" => "386",
            "powerpc64" => "ppc64le",
            other => other,
        };
        // Rust does not tell the arm variant; v7 is what 32-bit arm Linux hosts run.
        Platform::new(std::env::consts::OS, arch, None)
    }

    /// Operating system (`linux`).
    pub fn os(&self) -> &str {
        &self.os
    }

    /// Architecture in Go/OCI naming (`amd64`, `arm64`, `arm`, `386`, …).
    pub fn architecture(&self) -> &str {
        &self.architecture
    }

    /// Variant (`v7`), if any.
    pub fn variant(&self) -> Option<&str> {
        self.variant.as_deref()
    }

    /// The platform of an index entry, normalised.
    pub fn from_oci(p: &oci_spec::image::Platform) -> Platform {
        Platform::new(
            &p.os().to_string(),
            &p.architecture().to_string(),
            p.variant().as_deref(),
        )
    }

    /// The platforms this one can run, best first (containerd's `platforms.Only`):
    /// itself, then older variants of the same architecture (`arm/v7` runs `v6`, `v5`;
    /// `arm64` runs `arm/v8` … `arm/v5`; `amd64/v3` runs `v2`, `v1`, then `386`).
    pub fn compatible(&self) -> Vec<Platform> {
        let mut out = vec![self.clone()];
        let version = |v: &Option<String>| v.as_deref().and_then(|v| v.trim_start_matches('v').parse::<u32>().ok());
        let with = |arch: &str, variant: Option<String>| Platform {
            os: self.os.clone(),
            architecture: arch.to_string(),
            variant,
        };
        match self.architecture.as_str() {
            "amd64" => {
                if let Some(n) = version(&self.variant) {
                    for v in (1..n).rev() {
                        out.push(with("amd64", (v > 1).then(|| format!("v{v}"))));
                    }
                }
                out.push(with("386", None));
            }
            "arm" => {
                if let Some(n) = version(&self.variant) {
                    for v in (5..n).rev() {
                        out.push(with("arm", Some(format!("v{v}"))));
                    }
                }
            }
            "arm64" => {
                let arm = with("arm", Some(self.variant.clone().unwrap_or_else(|| "v8".to_string())));
                out.extend(arm.compatible());
            }
            _ => {}
        }
        out
    }

    /// Exact match after normalisation.
    pub fn matches(&self, other: &Platform) -> bool {
        self == other
    }
}

fn normalize_arch(arch: &str, variant: &str) -> (String, String) {
    let variant = variant.to_ascii_lowercase();
    let (a, v): (&str, String) = match arch {
        "i386" | "386" => ("386", String::new()),
        "x86_64" | "x86-64" | "amd64" => ("amd64", if variant == "v1" { String::new() } else { variant }),
        "aarch64" | "arm64" => (
            "arm64",
            match variant.as_str() {
                "8" | "v8" | "v8.0" => String::new(),
                "9" | "9.0" | "v9.0" => "v9".to_string(),
                _ => variant,
            },
        ),
        "armhf" => ("arm", "v7".to_string()),
        "armel" => ("arm", "v6".to_string()),
        "arm" => (
            "arm",
            match variant.as_str() {
                "" | "7" => "v7".to_string(),
                "5" | "6" | "8" => format!("v{variant}"),
                _ => variant,
            },
        ),
        other => (other, variant),
    };
    (a.to_string(), v)
}

impl FromStr for Platform {
    type Err = PlatformError;

    /// Parses `os/arch[/variant]` (as `--platform` takes it).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |reason| PlatformError {
            input: s.to_string(),
            reason,
        };
        let parts: Vec<&str> = s.split('/').collect();
        if parts.iter().any(|p| p.is_empty()) {
            return Err(err("empty component"));
        }
        if parts.iter().any(|p| {
            !p.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
        }) {
            return Err(err("components may only hold letters, digits, '_', '-' and '.'"));
        }
        match parts.as_slice() {
            [os, arch] => Ok(Platform::new(os, arch, None)),
            [os, arch, variant] => Ok(Platform::new(os, arch, Some(variant))),
            _ => Err(err("expected os/architecture[/variant]")),
        }
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// Picks the best entry for `want` from an index's manifest descriptors: the first entry
/// matching the most preferred compatible platform. Entries without a platform never match.
pub fn choose<'a>(
    manifests: &'a [oci_spec::image::Descriptor],
    want: &Platform,
) -> Option<&'a oci_spec::image::Descriptor> {
    for candidate in want.compatible() {
        let found = manifests.iter().find(|d| {
            d.platform()
                .as_ref()
                .is_some_and(|p| Platform::from_oci(p) == candidate)
        });
        if found.is_some() {
            return found;
        }
    }
    None
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn p(s: &str) -> Platform {
        s.parse().unwrap()
    }

    #[test]
    fn normalises_like_containerd() {
        let cases = [
            ("linux/x86_64", "linux/amd64"),
            ("linux/amd64/v1", "linux/amd64"),
            ("linux/aarch64", "linux/arm64"),
            ("linux/arm64/v8", "linux/arm64"),
            ("linux/arm64/8", "linux/arm64"),
            ("linux/armhf", "linux/arm/v7"),
            ("linux/armel", "linux/arm/v6"),
            ("linux/arm", "linux/arm/v7"),
            ("linux/arm/7", "linux/arm/v7"),
            ("linux/arm/6", "linux/arm/v6"),
            ("Linux/i386", "linux/386"),
        ];
        for (input, want) in cases {
            assert_eq!(p(input).to_string(), want, "{input}");
        }
        assert!("linux".parse::<Platform>().is_err());
        assert!("linux//v7".parse::<Platform>().is_err());
        assert!("linux/amd64/v2/x".parse::<Platform>().is_err());
    }

    #[test]
    fn compatibility_vectors() {
        let names = |pl: &Platform| pl.compatible().iter().map(ToString::to_string).collect::<Vec<_>>();
        assert_eq!(
            names(&p("linux/arm/v7")),
            ["linux/arm/v7", "linux/arm/v6", "linux/arm/v5"]
        );
        assert_eq!(
            names(&p("linux/arm64")),
            [
                "linux/arm64",
                "linux/arm/v8",
                "linux/arm/v7",
                "linux/arm/v6",
                "linux/arm/v5"
            ]
        );
        assert_eq!(
            names(&p("linux/amd64/v3")),
            ["linux/amd64/v3", "linux/amd64/v2", "linux/amd64", "linux/386"]
        );
        assert_eq!(names(&p("linux/amd64")), ["linux/amd64", "linux/386"]);
    }

    fn entry(platform: &str, n: u8) -> oci_spec::image::Descriptor {
        let pl: Platform = platform.parse().unwrap();
        let mut b = oci_spec::image::PlatformBuilder::default()
            .os(pl.os())
            .architecture(pl.architecture());
        if let Some(v) = pl.variant() {
            b = b.variant(v.to_string());
        }
        let mut d = oci_spec::image::Descriptor::new(
            oci_spec::image::MediaType::ImageManifest,
            1,
            crate::Digest::sha256(&[n]).to_oci(),
        );
        d.set_platform(Some(b.build().unwrap()));
        d
    }

    #[test]
    fn chooses_best_match() {
        let list = vec![
            entry("linux/amd64", 0),
            entry("linux/arm/v6", 1),
            entry("linux/arm64/v8", 2),
        ];
        let pick = |want: &str| choose(&list, &p(want)).map(|d| d.digest().to_string());
        assert_eq!(pick("linux/amd64"), Some(list[0].digest().to_string()));
        assert_eq!(pick("linux/arm64"), Some(list[2].digest().to_string()));
        // arm/v7 has no exact entry: falls back to v6.
        assert_eq!(pick("linux/arm/v7"), Some(list[1].digest().to_string()));
        assert_eq!(pick("linux/arm/v5"), None);
        assert_eq!(pick("windows/amd64"), None);
        // An exact variant beats an older compatible one even when listed later.
        let list2 = vec![entry("linux/arm/v6", 3), entry("linux/arm/v7", 4)];
        assert_eq!(choose(&list2, &p("linux/arm/v7")).unwrap().digest(), list2[1].digest());
    }
}
