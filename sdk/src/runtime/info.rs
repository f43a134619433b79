//! Static facts about a runtime, fixed when it is opened: what it is, which
//! RuntimeClass handlers it serves and what it can do. The agent turns them
//! into node labels.

use std::collections::{BTreeMap, BTreeSet};

use crate::{labels, runtime_class};

/// A capability a runtime may have beyond the trait's basics.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum Feature {
    /// Serves `wasi:http/incoming-handler` components on their container
    /// ports (node label `skiff.dev/wasi-http`).
    WasiHttp,
    /// Can run a command inside a running container (`kubectl exec`, exec
    /// probes): implements [`Runtime::exec`](super::Runtime::exec), which
    /// answers `Unsupported` in runtimes without this feature.
    Exec,
}

impl Feature {
    /// The node label set to `"true"` when a runtime has the feature, if any.
    pub fn node_label(self) -> Option<&'static str> {
        match self {
            Feature::WasiHttp => Some(labels::WASI_HTTP),
            Feature::Exec => None,
        }
    }
}

/// What [`Runtime::info`](super::Runtime::info) returns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuntimeInfo {
    /// The runtime's name, e.g. `wasmtime` or `containerd`.
    pub name: String,
    /// The version of the engine behind it, e.g. wasmtime's or containerd's.
    pub version: String,
    /// The RuntimeClass handlers it serves, e.g. `["wasmtime"]` or
    /// `["runc"]`; the agent routes a pod to the runtime serving its
    /// RuntimeClass's handler.
    pub handlers: Vec<String>,
    /// Its capabilities.
    pub features: BTreeSet<Feature>,
}

impl RuntimeInfo {
    /// Facts about a runtime serving no handler yet, with no features.
    pub fn new(name: impl Into<String>, version: impl Into<String>) -> Self {
        RuntimeInfo {
            name: name.into(),
            version: version.into(),
            handlers: Vec::new(),
            features: BTreeSet::new(),
        }
    }

    /// Adds a served handler.
    pub fn handler(mut self, handler: impl Into<String>) -> Self {
        self.handlers.push(handler.into());
        self
    }

    /// Adds a feature.
    pub fn feature(mut self, feature: Feature) -> Self {
        self.features.insert(feature);
        self
    }

    /// Whether the runtime serves `handler`.
    pub fn serves(&self, handler: &str) -> bool {
        self.handlers.iter().any(|h| h == handler)
    }

    /// Whether the runtime has `feature`.
    pub fn has(&self, feature: Feature) -> bool {
        self.features.contains(&feature)
    }

    /// The node labels this runtime contributes, each `"true"`:
    /// `skiff.dev/wasm-enabled` for the `wasmtime` handler,
    /// `skiff.dev/oci-enabled` for `runc`, and one per feature that has a
    /// label.
    pub fn node_labels(&self) -> BTreeMap<&'static str, &'static str> {
        let handlers = self.handlers.iter().filter_map(|h| match h.as_str() {
            runtime_class::WASMTIME => Some(labels::WASM_ENABLED),
            runtime_class::RUNC => Some(labels::OCI_ENABLED),
            _ => None,
        });
        let features = self.features.iter().filter_map(|f| f.node_label());
        handlers
            .chain(features)
            .map(|label| (label, "true"))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check(info: RuntimeInfo, expect: &[&str]) {
        let labels = info.node_labels();
        assert!(labels.values().all(|v| *v == "true"));
        assert_eq!(labels.keys().copied().collect::<Vec<_>>(), expect);
    }

    #[test]
    fn node_labels_come_from_handlers_and_features() {
        check(RuntimeInfo::new("none", "0"), &[]);
        check(
            RuntimeInfo::new("wasmtime", "30.0.0")
                .handler("wasmtime")
                .feature(Feature::WasiHttp),
            &["skiff.dev/wasi-http", "skiff.dev/wasm-enabled"],
        );
        check(
            RuntimeInfo::new("containerd", "1.7.24")
                .handler("runc")
                .handler("crun")
                .feature(Feature::Exec),
            &["skiff.dev/oci-enabled"],
        );
    }

    #[test]
    fn serves_and_has() {
        let info = RuntimeInfo::new("containerd", "1.7")
            .handler("runc")
            .feature(Feature::Exec);
        assert!(info.serves("runc") && !info.serves("wasmtime"));
        assert!(info.has(Feature::Exec) && !info.has(Feature::WasiHttp));
    }
}
