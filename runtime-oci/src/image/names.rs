//! What an image reference names in containerd's image store: references
//! are normalised as the registry client (and containerd) normalise them,
//! `busybox` being `docker.io/library/busybox:latest`, so that the names
//! match what the Wasm runtime reports for the same reference. Pure.

use oci_client::Reference;

/// A reference as the image store looks it up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ImageName {
    /// A bare digest, `sha256:<hex>`: names an image by content, whatever
    /// repository it came from.
    Digest(String),
    /// `registry/repository@sha256:…` (possibly with a tag too): immutable.
    Pinned {
        /// The normalised reference: an image record's name.
        name: String,
        /// `registry/repository`.
        repository: String,
        /// The digest it pins.
        digest: String,
    },
    /// `registry/repository:tag`: moves when the tag does.
    Tagged {
        /// The normalised reference: an image record's name.
        name: String,
        /// `registry/repository`.
        repository: String,
    },
}

impl ImageName {
    /// Reads a reference: a bare `sha256:` digest or an OCI reference.
    pub fn parse(reference: &str) -> Result<ImageName, String> {
        if reference.starts_with("sha256:") {
            return if is_sha256_digest(reference) {
                Ok(ImageName::Digest(reference.to_owned()))
            } else {
                Err(format!(
                    "{reference} is not a sha256 digest (sha256: and 64 lower-case hex digits)"
                ))
            };
        }
        let parsed: Reference = reference
            .parse()
            .map_err(|error| format!("{reference:?} is not an OCI reference: {error}"))?;
        ImageName::from_reference(&parsed)
    }

    /// The name of a parsed reference.
    pub fn from_reference(reference: &Reference) -> Result<ImageName, String> {
        let name = reference.whole();
        let repository = repository_of(reference);
        match reference.digest() {
            Some(digest) if is_sha256_digest(digest) => Ok(ImageName::Pinned {
                name,
                repository,
                digest: digest.to_owned(),
            }),
            Some(digest) => Err(format!(
                "{name}: digest {digest} is not a sha256 digest; only sha256 is supported"
            )),
            None => Ok(ImageName::Tagged { name, repository }),
        }
    }
}

/// `registry/repository` of a reference.
pub fn repository_of(reference: &Reference) -> String {
    format!("{}/{}", reference.registry(), reference.repository())
}

/// The `registry/repository@digest` name under which every pulled image is
/// also recorded, so that it resolves by digest too.
pub fn digest_name(repository: &str, digest: &str) -> String {
    format!("{repository}@{digest}")
}

/// Whether `digest` is `sha256:` and 64 lower-case hex digits.
pub fn is_sha256_digest(digest: &str) -> bool {
    digest.strip_prefix("sha256:").is_some_and(|hex| {
        hex.len() == 64
            && hex
                .bytes()
                .all(|byte| byte.is_ascii_digit() || (b'a'..=b'f').contains(&byte))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(fill: char) -> String {
        format!("sha256:{}", fill.to_string().repeat(64))
    }

    #[track_caller]
    fn check(reference: &str, expected: Result<ImageName, &str>) {
        let parsed = ImageName::parse(reference);
        match expected {
            Ok(expected) => assert_eq!(parsed, Ok(expected), "{reference}"),
            Err(fragment) => {
                let error = parsed.expect_err(reference);
                assert!(error.contains(fragment), "{reference}: {error}");
            }
        }
    }

    #[test]
    fn names_are_normalised_like_containerd_and_the_wasm_runtime() {
        check(
            "busybox",
            Ok(ImageName::Tagged {
                name: "docker.io/library/busybox:latest".into(),
                repository: "docker.io/library/busybox".into(),
            }),
        );
        check(
            "127.0.0.1:5000/bb:v1",
            Ok(ImageName::Tagged {
                name: "127.0.0.1:5000/bb:v1".into(),
                repository: "127.0.0.1:5000/bb".into(),
            }),
        );
        let pinned = format!("127.0.0.1:5000/bb@{}", digest('a'));
        check(
            &pinned,
            Ok(ImageName::Pinned {
                name: pinned.clone(),
                repository: "127.0.0.1:5000/bb".into(),
                digest: digest('a'),
            }),
        );
        let tagged_and_pinned = format!("r.io/app:v1@{}", digest('b'));
        check(
            &tagged_and_pinned,
            Ok(ImageName::Pinned {
                name: tagged_and_pinned.clone(),
                repository: "r.io/app".into(),
                digest: digest('b'),
            }),
        );
        check(&digest('c'), Ok(ImageName::Digest(digest('c'))));
        check("sha256:abc", Err("not a sha256 digest"));
        check(&digest('C'), Err("not a sha256 digest"));
        check("Not A Reference", Err("not an OCI reference"));
        check(
            &format!("r.io/app@sha512:{}", "a".repeat(128)),
            Err("only sha256"),
        );
    }

    #[test]
    fn digest_names_pin_the_repository() {
        assert_eq!(
            digest_name("r.io/app", &digest('1')),
            format!("r.io/app@{}", digest('1'))
        );
    }
}
