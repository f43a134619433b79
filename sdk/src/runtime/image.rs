//! Images: what to pull, how to authenticate, and what a runtime holds
//! (CRI's ImageService, trimmed).

use std::fmt;

use serde::{Deserialize, Serialize};

/// An image as the pod spec names it: an OCI reference such as
/// `registry.example:5000/app:1.2` or `busybox@sha256:…`. For the Wasm
/// runtime it points to an OCI artifact holding a component or module.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ImageSpec {
    /// The OCI reference.
    pub reference: String,
}

impl ImageSpec {
    /// An image by reference.
    pub fn new(reference: impl Into<String>) -> Self {
        ImageSpec {
            reference: reference.into(),
        }
    }
}

/// Credentials for the registry an image is pulled from (from the pod's
/// `imagePullSecrets`). `Debug` never shows the secrets.
#[derive(Clone, Default, PartialEq, Eq)]
pub enum RegistryAuth {
    /// No credentials.
    #[default]
    Anonymous,
    /// HTTP basic authentication (also used to obtain a bearer token).
    Basic {
        /// The user name.
        username: String,
        /// The password or access token.
        password: String,
    },
    /// A registry bearer token, sent as is.
    Bearer {
        /// The token.
        token: String,
    },
}

impl fmt::Debug for RegistryAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RegistryAuth::Anonymous => f.write_str("Anonymous"),
            RegistryAuth::Basic { username, .. } => f
                .debug_struct("Basic")
                .field("username", username)
                .field("password", &"<redacted>")
                .finish(),
            RegistryAuth::Bearer { .. } => f
                .debug_struct("Bearer")
                .field("token", &"<redacted>")
                .finish(),
        }
    }
}

/// How to pull an image.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PullOptions {
    /// Credentials for the registry.
    pub auth: RegistryAuth,
    /// Speak plain HTTP to the registry instead of HTTPS (a local registry on
    /// loopback in tests). Off by default.
    pub insecure: bool,
}

impl PullOptions {
    /// Sets the credentials.
    pub fn auth(mut self, auth: RegistryAuth) -> Self {
        self.auth = auth;
        self
    }

    /// Sets whether to speak plain HTTP to the registry.
    pub fn insecure(mut self, insecure: bool) -> Self {
        self.insecure = insecure;
        self
    }
}

/// The result of a pull.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PulledImage {
    /// The reference as it was asked for.
    pub reference: String,
    /// The content digest of the image manifest, `sha256:<hex>`; the pod
    /// status's `imageID`, and usable as [`ImageSpec::reference`] afterwards.
    pub digest: String,
    /// Bytes the image takes in the runtime's store.
    pub size: u64,
}

/// An image the runtime holds (one entry of the Node's `status.images`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageInfo {
    /// The content digest of the image manifest, `sha256:<hex>`.
    pub digest: String,
    /// Every reference it was pulled as (tags and `name@sha256:…` forms).
    pub names: Vec<String>,
    /// Bytes the image takes in the runtime's store.
    pub size: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_redacts_secrets() {
        let basic = RegistryAuth::Basic {
            username: "ci".into(),
            password: "hunter2".into(),
        };
        let bearer = RegistryAuth::Bearer {
            token: "tok3n".into(),
        };
        let options = PullOptions::default().auth(basic).insecure(true);
        let shown = format!("{options:?} {bearer:?}");
        assert!(
            !shown.contains("hunter2") && !shown.contains("tok3n"),
            "{shown}"
        );
        assert!(shown.contains(r#"username: "ci""#), "{shown}");
        assert!(shown.contains("insecure: true"), "{shown}");
    }

    #[test]
    fn pull_defaults_to_anonymous_https() {
        let options = PullOptions::default();
        assert_eq!(options.auth, RegistryAuth::Anonymous);
        assert!(!options.insecure);
    }
}
