//! Which image runs on this node: the entry of an image index for linux and
//! the node's architecture (and CPU variant, where the architecture has
//! them), and whether a single-platform image's config fits. containerd's
//! default platform matcher, trimmed to linux. Pure.

use std::fmt;

use oci_client::manifest::ImageIndexEntry;

/// An OS, architecture and optional CPU variant, in the OCI (Go) spelling:
/// `linux/amd64`, `linux/arm/v7`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Platform {
    /// `linux`.
    pub os: String,
    /// `amd64`, `arm64`, `arm`, …
    pub architecture: String,
    /// `v7`, `v8`, … when the architecture has variants.
    pub variant: Option<String>,
}

impl Platform {
    /// This node: linux, and the architecture skiff was built for.
    pub fn host() -> Platform {
        let architecture = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "x86" => "386",
            "aarch64" => "arm64",
            "loongarch64" => "loong64",
            "powerpc64" if cfg!(target_endian = "little") => "ppc64le",
            "powerpc64" => "ppc64",
            "mips64" if cfg!(target_endian = "little") => "mips64le",
            "mips" if cfg!(target_endian = "little") => "mipsle",
            other => other,
        };
        let variant = match architecture {
            "arm64" => Some("v8"),
            "arm" => Some("v7"),
            _ => None,
        };
        Platform {
            os: "linux".to_owned(),
            architecture: architecture.to_owned(),
            variant: variant.map(str::to_owned),
        }
    }

    /// How well an image for `os/architecture/variant` fits this platform:
    /// `None` when it does not run here, else a rank (0 is an exact match;
    /// higher is an older variant the CPU still runs).
    pub fn rank(&self, os: &str, architecture: &str, variant: Option<&str>) -> Option<usize> {
        if os != self.os || architecture != self.architecture {
            return None;
        }
        let variant = variant.filter(|variant| !variant.is_empty());
        self.accepted_variants()
            .iter()
            .position(|accepted| *accepted == variant)
    }

    /// The variants this platform runs, best first; `None` stands for an
    /// image that names no variant.
    fn accepted_variants(&self) -> Vec<Option<&str>> {
        match (self.architecture.as_str(), self.variant.as_deref()) {
            // An arm64 image without a variant is a v8 image.
            ("arm64", _) => vec![Some("v8"), None],
            ("arm", Some("v8")) => vec![Some("v8"), Some("v7"), None, Some("v6"), Some("v5")],
            ("arm", Some("v7")) => vec![Some("v7"), None, Some("v6"), Some("v5")],
            ("arm", Some("v6")) => vec![Some("v6"), Some("v5")],
            // amd64 images name no variant, or v1 (the baseline).
            ("amd64", _) => vec![None, Some("v1")],
            (_, Some(variant)) => vec![Some(variant), None],
            (_, None) => vec![None],
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

/// Why no entry of an image index was chosen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NoMatch {
    /// Every entry is for a Wasm platform (`wasip1`, `wasip2`, `wasi` or
    /// architecture `wasm`): an artifact for the Wasm runtime.
    Wasm,
    /// No entry runs on the platform; the platforms that are there.
    Platforms(Vec<String>),
}

impl NoMatch {
    /// A sentence for the error.
    pub fn reason(&self, platform: &Platform) -> String {
        match self {
            NoMatch::Wasm => "the image index holds only Wasm platforms: it is a Wasm \
                              artifact, which the Wasm runtime runs"
                .to_owned(),
            NoMatch::Platforms(platforms) if platforms.is_empty() => {
                format!("the image index has no manifest for {platform}")
            }
            NoMatch::Platforms(platforms) => format!(
                "the image index has no manifest for {platform} (it has {})",
                platforms.join(", ")
            ),
        }
    }
}

/// Chooses the entry of an image index to run on `platform`: the best
/// ranked, the first of equals.
pub fn choose<'a>(
    entries: &'a [ImageIndexEntry],
    platform: &Platform,
) -> Result<&'a ImageIndexEntry, NoMatch> {
    let chosen = entries
        .iter()
        .filter_map(|entry| {
            let entry_platform = entry.platform.as_ref()?;
            let rank = platform.rank(
                &entry_platform.os.to_string(),
                &entry_platform.architecture.to_string(),
                entry_platform.variant.as_deref(),
            )?;
            Some((rank, entry))
        })
        .min_by_key(|(rank, _)| *rank);
    if let Some((_, entry)) = chosen {
        return Ok(entry);
    }
    let platforms: Vec<String> = entries
        .iter()
        .filter_map(|entry| entry.platform.as_ref())
        .map(|platform| {
            let mut shown = format!("{}/{}", platform.os, platform.architecture);
            if let Some(variant) = &platform.variant {
                shown.push('/');
                shown.push_str(variant);
            }
            shown
        })
        .collect();
    let is_wasm = |shown: &String| {
        let (os, architecture) = shown.split_once('/').unwrap_or((shown, ""));
        matches!(os, "wasip1" | "wasip2" | "wasi") || architecture.starts_with("wasm")
    };
    if !platforms.is_empty() && platforms.iter().all(is_wasm) {
        Err(NoMatch::Wasm)
    } else {
        Err(NoMatch::Platforms(platforms))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn platform(architecture: &str, variant: Option<&str>) -> Platform {
        Platform {
            os: "linux".into(),
            architecture: architecture.into(),
            variant: variant.map(str::to_owned),
        }
    }

    fn entries(platforms: &[&str]) -> Vec<ImageIndexEntry> {
        platforms
            .iter()
            .enumerate()
            .map(|(index, shown)| {
                let mut parts = shown.split('/');
                let os = parts.next().unwrap();
                let architecture = parts.next().unwrap();
                let variant = parts.next();
                serde_json::from_value(serde_json::json!({
                    "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "digest": format!("sha256:{}", index.to_string().repeat(64)),
                    "size": 100,
                    "platform": {"os": os, "architecture": architecture, "variant": variant},
                }))
                .unwrap()
            })
            .collect()
    }

    /// Chooses among `platforms` for `host`; the chosen entry's position.
    #[track_caller]
    fn check(host: &Platform, platforms: &[&str], expected: Result<usize, NoMatch>) {
        let entries = entries(platforms);
        let chosen = choose(&entries, host).map(|entry| {
            entries
                .iter()
                .position(|candidate| candidate.digest == entry.digest)
                .unwrap()
        });
        assert_eq!(chosen, expected, "{host} among {platforms:?}");
    }

    #[test]
    fn chooses_the_entry_for_this_os_architecture_and_variant() {
        let amd64 = platform("amd64", None);
        check(&amd64, &["linux/arm64/v8", "linux/amd64"], Ok(1));
        check(&amd64, &["linux/amd64/v1", "linux/amd64"], Ok(1));
        check(&amd64, &["windows/amd64", "linux/amd64"], Ok(1));
        check(&amd64, &["linux/amd64", "linux/amd64"], Ok(0));
        let arm64 = platform("arm64", Some("v8"));
        check(&arm64, &["linux/amd64", "linux/arm64"], Ok(1));
        check(&arm64, &["linux/arm64", "linux/arm64/v8"], Ok(1));
        let arm = platform("arm", Some("v7"));
        check(
            &arm,
            &["linux/arm/v6", "linux/arm/v7", "linux/arm64/v8"],
            Ok(1),
        );
        check(&arm, &["linux/arm/v6", "linux/amd64"], Ok(0));
        check(
            &platform("arm", Some("v6")),
            &["linux/arm/v7"],
            Err(NoMatch::Platforms(vec!["linux/arm/v7".into()])),
        );
    }

    #[test]
    fn says_why_nothing_fits() {
        let amd64 = platform("amd64", None);
        check(
            &amd64,
            &["linux/arm64/v8", "linux/s390x"],
            Err(NoMatch::Platforms(vec![
                "linux/arm64/v8".into(),
                "linux/s390x".into(),
            ])),
        );
        check(&amd64, &["wasip2/wasm", "wasip1/wasm"], Err(NoMatch::Wasm));
        check(&amd64, &[], Err(NoMatch::Platforms(vec![])));
        assert_eq!(
            NoMatch::Platforms(vec!["linux/s390x".into()]).reason(&amd64),
            "the image index has no manifest for linux/amd64 (it has linux/s390x)"
        );
    }

    #[test]
    fn single_platform_images_rank_like_index_entries() {
        let amd64 = platform("amd64", None);
        assert_eq!(amd64.rank("linux", "amd64", None), Some(0));
        assert_eq!(amd64.rank("linux", "amd64", Some("")), Some(0));
        assert_eq!(amd64.rank("linux", "arm64", None), None);
        assert_eq!(amd64.rank("windows", "amd64", None), None);
        assert_eq!(amd64.rank("linux", "amd64", Some("v3")), None);
    }

    #[test]
    fn the_host_is_linux_in_oci_spelling() {
        let host = Platform::host();
        assert_eq!(host.os, "linux");
        assert!(!host.architecture.contains('_'), "{host}");
        if cfg!(target_arch = "x86_64") {
            assert_eq!(host.to_string(), "linux/amd64");
        }
    }
}
