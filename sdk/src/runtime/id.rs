//! Opaque identifiers a runtime hands out for its sandboxes and containers.
//!
//! The runtime chooses the text (a UUID, a containerd ID, a hash); the agent
//! only stores, compares and passes it back. Two newtypes so that a sandbox ID
//! cannot be passed where a container ID is expected.

use std::fmt;

use serde::{Deserialize, Serialize};

macro_rules! opaque_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// Wraps the runtime's text for an ID.
            pub fn new(id: impl Into<String>) -> Self {
                Self(id.into())
            }

            /// The ID's text, as the runtime chose it.
            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// Unwraps the ID's text.
            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($name), self.0)
            }
        }

        impl From<String> for $name {
            fn from(id: String) -> Self {
                Self(id)
            }
        }

        impl From<&str> for $name {
            fn from(id: &str) -> Self {
                Self(id.to_owned())
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

opaque_id! {
    /// Identifies one pod sandbox (one pod attempt) within a runtime; returned
    /// by [`Runtime::run_sandbox`](super::Runtime::run_sandbox).
    SandboxId
}

opaque_id! {
    /// Identifies one container within a runtime; returned by
    /// [`Runtime::create_container`](super::Runtime::create_container).
    ContainerId
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_display_their_text_and_debug_their_kind() {
        let sandbox = SandboxId::new("4f2a");
        let container = ContainerId::from("c-1".to_owned());
        assert_eq!(sandbox.to_string(), "4f2a");
        assert_eq!(sandbox.as_str(), "4f2a");
        assert_eq!(format!("{sandbox:?}"), r#"SandboxId("4f2a")"#);
        assert_eq!(format!("{container:?}"), r#"ContainerId("c-1")"#);
        assert_eq!(container.into_string(), "c-1");
    }

    #[test]
    fn ids_serialize_as_bare_strings() {
        let id = ContainerId::new("abc");
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, r#""abc""#);
        assert_eq!(serde_json::from_str::<ContainerId>(&json).unwrap(), id);
    }

    #[test]
    fn ids_order_and_compare_by_text() {
        let mut ids = vec![
            SandboxId::new("b"),
            SandboxId::new("a"),
            SandboxId::new("b"),
        ];
        ids.sort();
        ids.dedup();
        assert_eq!(ids, vec![SandboxId::new("a"), SandboxId::new("b")]);
    }
}
