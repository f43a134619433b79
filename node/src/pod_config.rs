//! A container's environment, built as the kubelet builds it
//! (`makeEnvironmentVariables`): `envFrom` first, then `env`, with
//! `valueFrom` sources (ConfigMap and Secret keys, pod fields, resource
//! fields) and `$(VAR)` expansion; plus [`ObjectSource`], where both this
//! module and [`volumes`](crate::volumes) read ConfigMaps and Secrets.
//!
//! Failures are the kubelet's `CreateContainerConfigError`s, with its
//! messages ([`ConfigError`]).
//!
//! Not done here: the Kubernetes service variables (`FOO_SERVICE_HOST`,
//! `FOO_PORT`, ...); they come with the networking work.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::net::IpAddr;
use std::string::FromUtf8Error;

use async_trait::async_trait;
use k8s_openapi::api::core::v1::{ConfigMap, Container, Pod, ResourceFieldSelector, Secret};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::Api;
use skiff_sdk::quantity::{ParsedQuantity, QuantityError};

/// Where ConfigMaps and Secrets come from: the API server
/// ([`ApiObjectSource`]), a cache, or an in-memory fake in tests.
#[async_trait]
pub trait ObjectSource: Send + Sync {
    /// The ConfigMap `namespace/name`, `None` if it does not exist.
    async fn config_map(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<ConfigMap>, SourceError>;

    /// The Secret `namespace/name`, `None` if it does not exist.
    async fn secret(&self, namespace: &str, name: &str) -> Result<Option<Secret>, SourceError>;
}

/// Why an [`ObjectSource`] could not answer (not: the object does not
/// exist, which is `Ok(None)`).
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The API request failed (boxed: kube's error is large).
    #[error("the API request failed")]
    Api(#[source] Box<kube::Error>),
}

/// An [`ObjectSource`] that reads every object from the API server.
#[derive(Clone)]
pub struct ApiObjectSource {
    client: kube::Client,
}

impl ApiObjectSource {
    /// Reads through `client`.
    pub fn new(client: kube::Client) -> Self {
        ApiObjectSource { client }
    }
}

#[async_trait]
impl ObjectSource for ApiObjectSource {
    async fn config_map(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<ConfigMap>, SourceError> {
        Api::<ConfigMap>::namespaced(self.client.clone(), namespace)
            .get_opt(name)
            .await
            .map_err(|error| SourceError::Api(Box::new(error)))
    }

    async fn secret(&self, namespace: &str, name: &str) -> Result<Option<Secret>, SourceError> {
        Api::<Secret>::namespaced(self.client.clone(), namespace)
            .get_opt(name)
            .await
            .map_err(|error| SourceError::Api(Box::new(error)))
    }
}

/// What the node knows that the pod spec does not: the values of
/// `spec.nodeName` (when the pod has none), `status.hostIP(s)`,
/// `status.podIP(s)`, and the allocatable resources that stand in for a
/// container's missing limits in `resourceFieldRef`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeFacts {
    /// The node's name.
    pub node_name: String,
    /// The node's IP address.
    pub host_ip: IpAddr,
    /// The pod's IP address (the host's, for now).
    pub pod_ip: IpAddr,
    /// The node's allocatable CPU in millicores: the value of
    /// `limits.cpu` for a container without a CPU limit.
    pub node_allocatable_cpu_millis: u64,
    /// The node's allocatable memory in bytes: the value of
    /// `limits.memory` for a container without a memory limit.
    pub node_allocatable_memory_bytes: u64,
}

/// Why a container's configuration cannot be built. The pod worker shows it
/// as the container's waiting state: [`reason`](ConfigError::reason) and the
/// message (`Display`), which are the kubelet's.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A ConfigMap the container needs does not exist.
    #[error("configmap \"{name}\" not found")]
    ConfigMapNotFound {
        /// The ConfigMap's name.
        name: String,
    },
    /// A Secret the container needs does not exist.
    #[error("secret \"{name}\" not found")]
    SecretNotFound {
        /// The Secret's name.
        name: String,
    },
    /// A `configMapKeyRef` names a key the ConfigMap does not have.
    #[error("couldn't find key {key} in ConfigMap {namespace}/{name}")]
    ConfigMapKeyNotFound {
        /// The pod's namespace.
        namespace: String,
        /// The ConfigMap's name.
        name: String,
        /// The missing key.
        key: String,
    },
    /// A `secretKeyRef` names a key the Secret does not have.
    #[error("couldn't find key {key} in Secret {namespace}/{name}")]
    SecretKeyNotFound {
        /// The pod's namespace.
        namespace: String,
        /// The Secret's name.
        name: String,
        /// The missing key.
        key: String,
    },
    /// A Secret value meant for an environment variable is not UTF-8, so it
    /// cannot be one.
    #[error("key {key} in Secret {namespace}/{name} is not valid UTF-8")]
    SecretValueNotUtf8 {
        /// The pod's namespace.
        namespace: String,
        /// The Secret's name.
        name: String,
        /// The key.
        key: String,
        /// Where the value stops being UTF-8.
        #[source]
        source: FromUtf8Error,
    },
    /// The ConfigMap or Secret could not be read.
    #[error("couldn't get {kind} {namespace}/{name}")]
    Source {
        /// `configmap` or `secret`.
        kind: &'static str,
        /// The pod's namespace.
        namespace: String,
        /// The object's name.
        name: String,
        /// Why.
        #[source]
        source: SourceError,
    },
    /// A `fieldRef` names a field this node does not expose.
    #[error("unsupported fieldPath: {field_path}")]
    UnsupportedFieldPath {
        /// The field path.
        field_path: String,
    },
    /// A `resourceFieldRef` names a resource this node does not expose
    /// (the message is the kubelet's, space included).
    #[error("unsupported container resource : {resource}")]
    UnsupportedResource {
        /// The resource, e.g. `limits.ephemeral-storage`.
        resource: String,
    },
    /// A `resourceFieldRef.containerName` names no container of the pod.
    #[error("container {name} not found")]
    ContainerNotFound {
        /// The container name.
        name: String,
    },
    /// A quantity (a limit, a request, a divisor) does not parse.
    #[error("invalid quantity \"{value}\"")]
    InvalidQuantity {
        /// The text.
        value: String,
        /// Why.
        #[source]
        source: QuantityError,
    },
    /// An environment variable uses a source this node does not support
    /// (`fileKeyRef`).
    #[error("env var {name}: valueFrom.{kind} is not supported on this node")]
    UnsupportedEnvSource {
        /// The variable.
        name: String,
        /// The source, e.g. `fileKeyRef`.
        kind: &'static str,
    },
}

impl ConfigError {
    /// The container's waiting reason for this error:
    /// `CreateContainerConfigError`, as the kubelet reports it.
    pub fn reason(&self) -> &'static str {
        "CreateContainerConfigError"
    }
}

/// The environment of `container` in `pod`, in order: variables from
/// `envFrom` (sorted by key within each source), then `env`; a name set
/// again keeps its first position and takes the later value. `$(VAR)`
/// references in `env[].value` expand against what precedes them.
pub async fn container_env(
    pod: &Pod,
    container: &Container,
    node: &NodeFacts,
    source: &dyn ObjectSource,
) -> Result<Vec<(String, String)>, ConfigError> {
    let namespace = pod_namespace(pod);
    let mut objects = Objects {
        source,
        namespace,
        config_maps: HashMap::new(),
        secrets: HashMap::new(),
    };
    let mut env = EnvBuilder::default();

    for from in container.env_from.iter().flatten() {
        let prefix = from.prefix.as_deref().unwrap_or("");
        let mut invalid = Vec::new();
        if let Some(reference) = &from.config_map_ref {
            let Some(config_map) = objects.config_map(&reference.name).await? else {
                if reference.optional == Some(true) {
                    continue;
                }
                return Err(ConfigError::ConfigMapNotFound {
                    name: reference.name.clone(),
                });
            };
            for (key, value) in config_map.data.iter().flatten() {
                let name = format!("{prefix}{key}");
                if is_env_var_name(&name) {
                    env.set(name, value.clone());
                } else {
                    invalid.push(name);
                }
            }
            warn_invalid(pod, container, "ConfigMap", &reference.name, &invalid);
        } else if let Some(reference) = &from.secret_ref {
            let Some(secret) = objects.secret(&reference.name).await? else {
                if reference.optional == Some(true) {
                    continue;
                }
                return Err(ConfigError::SecretNotFound {
                    name: reference.name.clone(),
                });
            };
            for (key, value) in secret.data.iter().flatten() {
                let name = format!("{prefix}{key}");
                if is_env_var_name(&name) {
                    env.set(
                        name,
                        secret_text(namespace, &reference.name, key, &value.0)?,
                    );
                } else {
                    invalid.push(name);
                }
            }
            warn_invalid(pod, container, "Secret", &reference.name, &invalid);
        }
    }

    for var in container.env.iter().flatten() {
        let value = match (&var.value, &var.value_from) {
            (Some(value), _) if !value.is_empty() => expand_with(value, |name| env.get(name)),
            (_, Some(from)) => {
                if let Some(field) = &from.field_ref {
                    env_field_value(pod, &field.field_path, node)?
                } else if let Some(field) = &from.resource_field_ref {
                    resource_field_value(pod, container, field, node)?
                } else if let Some(selector) = &from.config_map_key_ref {
                    let optional = selector.optional == Some(true);
                    let Some(config_map) = objects.config_map(&selector.name).await? else {
                        if optional {
                            continue;
                        }
                        return Err(ConfigError::ConfigMapNotFound {
                            name: selector.name.clone(),
                        });
                    };
                    match config_map.data.as_ref().and_then(|d| d.get(&selector.key)) {
                        Some(value) => value.clone(),
                        None if optional => continue,
                        None => {
                            return Err(ConfigError::ConfigMapKeyNotFound {
                                namespace: namespace.to_owned(),
                                name: selector.name.clone(),
                                key: selector.key.clone(),
                            });
                        }
                    }
                } else if let Some(selector) = &from.secret_key_ref {
                    let optional = selector.optional == Some(true);
                    let Some(secret) = objects.secret(&selector.name).await? else {
                        if optional {
                            continue;
                        }
                        return Err(ConfigError::SecretNotFound {
                            name: selector.name.clone(),
                        });
                    };
                    match secret.data.as_ref().and_then(|d| d.get(&selector.key)) {
                        Some(value) => {
                            secret_text(namespace, &selector.name, &selector.key, &value.0)?
                        }
                        None if optional => continue,
                        None => {
                            return Err(ConfigError::SecretKeyNotFound {
                                namespace: namespace.to_owned(),
                                name: selector.name.clone(),
                                key: selector.key.clone(),
                            });
                        }
                    }
                } else if from.file_key_ref.is_some() {
                    return Err(ConfigError::UnsupportedEnvSource {
                        name: var.name.clone(),
                        kind: "fileKeyRef",
                    });
                } else {
                    String::new()
                }
            }
            _ => String::new(),
        };
        env.set(var.name.clone(), value);
    }
    Ok(env.vars)
}

/// Expands `$(VAR)` references in `input` against `env` (the last value of
/// a repeated name wins), with Kubernetes' rules: `$$` is a literal `$`,
/// a reference to an unknown variable and an unclosed `$(` stay as written,
/// a `$` before anything else is kept. The pod worker applies it to
/// `command` and `args` with the container's environment.
pub fn expand(input: &str, env: &[(String, String)]) -> String {
    expand_with(input, |name| {
        env.iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    })
}

/// The value of a pod metadata field as the downward API renders it
/// (`fieldpath.ExtractFieldPathAsString`): `metadata.name`,
/// `metadata.namespace`, `metadata.uid`, `metadata.labels['k']`,
/// `metadata.annotations['k']` (empty if absent), and the whole
/// `metadata.labels` / `metadata.annotations` as sorted `k="v"` lines.
pub fn pod_metadata_field(pod: &Pod, field_path: &str) -> Result<String, ConfigError> {
    let meta = &pod.metadata;
    if let Some((path, key)) = split_subscript(field_path) {
        let map = match path {
            "metadata.labels" => &meta.labels,
            "metadata.annotations" => &meta.annotations,
            _ => {
                return Err(ConfigError::UnsupportedFieldPath {
                    field_path: field_path.to_owned(),
                });
            }
        };
        return Ok(map
            .as_ref()
            .and_then(|m| m.get(key))
            .cloned()
            .unwrap_or_default());
    }
    let format_map = |map: &Option<BTreeMap<String, String>>| {
        let lines: Vec<String> = map
            .iter()
            .flatten()
            .map(|(k, v)| format!("{k}={}", go_quote(v)))
            .collect();
        lines.join("\n")
    };
    Ok(match field_path {
        "metadata.name" => meta.name.clone().unwrap_or_default(),
        "metadata.namespace" => meta.namespace.clone().unwrap_or_default(),
        "metadata.uid" => meta.uid.clone().unwrap_or_default(),
        "metadata.labels" => format_map(&meta.labels),
        "metadata.annotations" => format_map(&meta.annotations),
        _ => {
            return Err(ConfigError::UnsupportedFieldPath {
                field_path: field_path.to_owned(),
            });
        }
    })
}

/// The pod's namespace, `default` when unset.
pub(crate) fn pod_namespace(pod: &Pod) -> &str {
    pod.metadata.namespace.as_deref().unwrap_or("default")
}

/// `fieldRef` for an environment variable: the metadata fields plus what
/// the kubelet adds (`podFieldSelectorRuntimeValue`).
fn env_field_value(pod: &Pod, field_path: &str, node: &NodeFacts) -> Result<String, ConfigError> {
    let spec = pod.spec.as_ref();
    Ok(match field_path {
        "spec.nodeName" => spec
            .and_then(|s| s.node_name.clone())
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| node.node_name.clone()),
        "spec.serviceAccountName" => spec
            .and_then(|s| s.service_account_name.clone())
            .unwrap_or_default(),
        "status.hostIP" | "status.hostIPs" => node.host_ip.to_string(),
        "status.podIP" | "status.podIPs" => node.pod_ip.to_string(),
        _ => return pod_metadata_field(pod, field_path),
    })
}

/// `resourceFieldRef` (`containerResourceRuntimeValue` over the pod with
/// missing or zero limits defaulted to the node's allocatable): the value
/// divided by the divisor (default 1), rounded up.
fn resource_field_value(
    pod: &Pod,
    container: &Container,
    selector: &ResourceFieldSelector,
    node: &NodeFacts,
) -> Result<String, ConfigError> {
    let container = match selector.container_name.as_deref() {
        None | Some("") => container,
        Some(name) => pod
            .spec
            .iter()
            .flat_map(|s| {
                s.containers
                    .iter()
                    .chain(s.init_containers.iter().flatten())
            })
            .find(|c| c.name == name)
            .ok_or_else(|| ConfigError::ContainerNotFound {
                name: name.to_owned(),
            })?,
    };
    let divisor = match &selector.divisor {
        Some(q) => Some(parse_quantity(&q.0)?).filter(|d| !d.is_zero()),
        None => None,
    };
    let resources = container.resources.as_ref();
    let limits = resources.and_then(|r| r.limits.as_ref());
    let requests = resources.and_then(|r| r.requests.as_ref());
    let saturate = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    let (value, divisor) = match selector.resource.as_str() {
        "limits.cpu" => (
            nonzero_quantity(limits, "cpu")?
                .map_or(saturate(node.node_allocatable_cpu_millis), |q| {
                    q.milli_value()
                }),
            divisor.map_or(1000, |d| d.milli_value()),
        ),
        "limits.memory" => (
            nonzero_quantity(limits, "memory")?
                .map_or(saturate(node.node_allocatable_memory_bytes), |q| q.value()),
            divisor.map_or(1, |d| d.value()),
        ),
        "requests.cpu" => (
            nonzero_quantity(requests, "cpu")?.map_or(0, |q| q.milli_value()),
            divisor.map_or(1000, |d| d.milli_value()),
        ),
        "requests.memory" => (
            nonzero_quantity(requests, "memory")?.map_or(0, |q| q.value()),
            divisor.map_or(1, |d| d.value()),
        ),
        other => {
            return Err(ConfigError::UnsupportedResource {
                resource: other.to_owned(),
            });
        }
    };
    Ok(ceil_div(value, divisor).to_string())
}

/// The quantity `name` of a resource list, `None` when absent or zero.
fn nonzero_quantity(
    list: Option<&BTreeMap<String, Quantity>>,
    name: &str,
) -> Result<Option<ParsedQuantity>, ConfigError> {
    match list.and_then(|l| l.get(name)) {
        Some(q) => Ok(Some(parse_quantity(&q.0)?).filter(|q| !q.is_zero())),
        None => Ok(None),
    }
}

fn parse_quantity(text: &str) -> Result<ParsedQuantity, ConfigError> {
    ParsedQuantity::parse(text).map_err(|source| ConfigError::InvalidQuantity {
        value: text.to_owned(),
        source,
    })
}

/// `ceil(value / divisor)`, as the kubelet computes it in floating point;
/// a zero divisor (which validation forbids) counts as 1.
fn ceil_div(value: i64, divisor: i64) -> i128 {
    let divisor = if divisor == 0 { 1 } else { i128::from(divisor) };
    let value = i128::from(value);
    let quotient = value / divisor;
    let remainder = value % divisor;
    if remainder != 0 && ((remainder > 0) == (divisor > 0)) {
        quotient + 1
    } else {
        quotient
    }
}

/// A Secret value as an environment variable: its bytes as UTF-8.
fn secret_text(
    namespace: &str,
    name: &str,
    key: &str,
    bytes: &[u8],
) -> Result<String, ConfigError> {
    String::from_utf8(bytes.to_vec()).map_err(|source| ConfigError::SecretValueNotUtf8 {
        namespace: namespace.to_owned(),
        name: name.to_owned(),
        key: key.to_owned(),
        source,
    })
}

/// The kubelet records an `InvalidEnvironmentVariableNames` event; here it
/// is a warning in the log.
fn warn_invalid(pod: &Pod, container: &Container, kind: &str, name: &str, invalid: &[String]) {
    if !invalid.is_empty() {
        tracing::warn!(
            pod = pod.metadata.name.as_deref().unwrap_or(""),
            namespace = pod_namespace(pod),
            container = %container.name,
            source = %format!("{kind} {name}"),
            keys = ?invalid,
            "envFrom keys skipped: invalid environment variable names"
        );
    }
}

/// Kubernetes' `IsEnvVarName`: `[-._a-zA-Z][-._a-zA-Z0-9]*`, and not `.`,
/// `..` or starting with `..`.
fn is_env_var_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    let first = |b: &u8| b.is_ascii_alphabetic() || matches!(b, b'-' | b'.' | b'_');
    let rest = |b: &u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_');
    bytes.first().is_some_and(first)
        && bytes.iter().all(rest)
        && name != "."
        && !name.starts_with("..")
}

/// `metadata.labels['key']` → (`metadata.labels`, `key`)
/// (`SplitMaybeSubscriptedPath`).
fn split_subscript(field_path: &str) -> Option<(&str, &str)> {
    let inner = field_path.strip_suffix("']")?;
    let (path, key) = inner.split_once("['")?;
    (!path.is_empty()).then_some((path, key))
}

/// A string quoted as Go's `%q` does (double quotes, `\"`, `\\`, C escapes,
/// other control and invisible characters as `\x`/`\u`/`\U` escapes). Go
/// escapes every non-printable rune; this covers controls, non-ASCII
/// spaces and the common invisible format characters.
fn go_quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if c.is_control()
                || (c != ' ' && c.is_whitespace())
                || matches!(c, '\u{ad}' | '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2060}'..='\u{2064}' | '\u{feff}') =>
            {
                if (c as u32) < 0x10000 {
                    let _ = write!(out, "\\u{:04x}", c as u32);
                } else {
                    let _ = write!(out, "\\U{:08x}", c as u32);
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Kubernetes' `expansion.Expand` with a lookup in place of its mapping
/// function (an unknown name stays `$(name)`).
fn expand_with<'v>(input: &str, lookup: impl Fn(&str) -> Option<&'v str>) -> String {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        match after.chars().next() {
            None => {
                out.push('$');
                rest = after;
            }
            Some('$') => {
                out.push('$');
                rest = &after[1..];
            }
            Some('(') => match after[1..].find(')') {
                Some(end) => {
                    let name = &after[1..1 + end];
                    match lookup(name) {
                        Some(value) => out.push_str(value),
                        None => {
                            out.push_str("$(");
                            out.push_str(name);
                            out.push(')');
                        }
                    }
                    rest = &after[end + 2..];
                }
                None => {
                    out.push_str("$(");
                    rest = &after[1..];
                }
            },
            Some(other) => {
                out.push('$');
                out.push(other);
                rest = &after[other.len_utf8()..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// Variables in order of first appearance, with the last value of each.
#[derive(Default)]
struct EnvBuilder {
    vars: Vec<(String, String)>,
    index: HashMap<String, usize>,
}

impl EnvBuilder {
    fn set(&mut self, name: String, value: String) {
        match self.index.get(&name) {
            Some(&i) => self.vars[i].1 = value,
            None => {
                self.index.insert(name.clone(), self.vars.len());
                self.vars.push((name, value));
            }
        }
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.index.get(name).map(|&i| self.vars[i].1.as_str())
    }
}

/// The ConfigMaps and Secrets of one pod's namespace, each read once per
/// call, as the kubelet caches them per `makeEnvironmentVariables`.
struct Objects<'a> {
    source: &'a dyn ObjectSource,
    namespace: &'a str,
    config_maps: HashMap<String, Option<ConfigMap>>,
    secrets: HashMap<String, Option<Secret>>,
}

impl Objects<'_> {
    async fn config_map(&mut self, name: &str) -> Result<Option<&ConfigMap>, ConfigError> {
        if !self.config_maps.contains_key(name) {
            let found = self
                .source
                .config_map(self.namespace, name)
                .await
                .map_err(|source| ConfigError::Source {
                    kind: "configmap",
                    namespace: self.namespace.to_owned(),
                    name: name.to_owned(),
                    source,
                })?;
            self.config_maps.insert(name.to_owned(), found);
        }
        Ok(self.config_maps.get(name).and_then(Option::as_ref))
    }

    async fn secret(&mut self, name: &str) -> Result<Option<&Secret>, ConfigError> {
        if !self.secrets.contains_key(name) {
            let found = self
                .source
                .secret(self.namespace, name)
                .await
                .map_err(|source| ConfigError::Source {
                    kind: "secret",
                    namespace: self.namespace.to_owned(),
                    name: name.to_owned(),
                    source,
                })?;
            self.secrets.insert(name.to_owned(), found);
        }
        Ok(self.secrets.get(name).and_then(Option::as_ref))
    }
}

/// The runtime's security settings of `container`: the container's
/// `securityContext` over the pod's, as the kubelet merges them (user and
/// group from the container, else the pod; the pod's `supplementalGroups`
/// and `fsGroup` as extra groups; the rest is the container's alone).
/// Negative IDs are left to the image.
pub fn security(pod: &Pod, container: &Container) -> skiff_sdk::runtime::Security {
    let pod_context = pod.spec.as_ref().and_then(|s| s.security_context.as_ref());
    let context = container.security_context.as_ref();
    let id = |value: Option<i64>| value.and_then(|v| u32::try_from(v).ok());
    let mut supplemental_groups: Vec<u32> = pod_context
        .and_then(|c| c.supplemental_groups.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|g| u32::try_from(*g).ok())
        .collect();
    if let Some(fs_group) = id(pod_context.and_then(|c| c.fs_group)) {
        supplemental_groups.push(fs_group);
    }
    supplemental_groups.sort_unstable();
    supplemental_groups.dedup();
    let capabilities = context.and_then(|c| c.capabilities.as_ref());
    skiff_sdk::runtime::Security {
        run_as_user: id(context
            .and_then(|c| c.run_as_user)
            .or(pod_context.and_then(|c| c.run_as_user))),
        run_as_group: id(context
            .and_then(|c| c.run_as_group)
            .or(pod_context.and_then(|c| c.run_as_group))),
        supplemental_groups,
        read_only_root_filesystem: context
            .and_then(|c| c.read_only_root_filesystem)
            .unwrap_or(false),
        capabilities_add: capabilities.and_then(|c| c.add.clone()).unwrap_or_default(),
        capabilities_drop: capabilities
            .and_then(|c| c.drop.clone())
            .unwrap_or_default(),
        privileged: context.and_then(|c| c.privileged).unwrap_or(false),
        allow_privilege_escalation: context.and_then(|c| c.allow_privilege_escalation),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::collections::BTreeMap;
    use std::sync::Mutex;

    use k8s_openapi::ByteString;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    use serde_json::json;

    use super::*;

    /// An in-memory [`ObjectSource`]; `fail_on` names an object whose read
    /// fails.
    #[derive(Default)]
    pub(crate) struct FakeSource {
        config_maps: Mutex<BTreeMap<(String, String), ConfigMap>>,
        secrets: Mutex<BTreeMap<(String, String), Secret>>,
        fail_on: Option<String>,
    }

    impl FakeSource {
        pub(crate) fn put_config_map(&self, namespace: &str, config_map: ConfigMap) {
            let name = config_map.metadata.name.clone().unwrap();
            let key = (namespace.to_owned(), name);
            self.config_maps.lock().unwrap().insert(key, config_map);
        }

        pub(crate) fn put_secret(&self, namespace: &str, secret: Secret) {
            let name = secret.metadata.name.clone().unwrap();
            let key = (namespace.to_owned(), name);
            self.secrets.lock().unwrap().insert(key, secret);
        }

        /// Reads of objects named `name` fail from now on.
        pub(crate) fn failing_on(self, name: &str) -> Self {
            FakeSource {
                fail_on: Some(name.to_owned()),
                ..self
            }
        }

        fn check(&self, name: &str) -> Result<(), SourceError> {
            if self.fail_on.as_deref() == Some(name) {
                return Err(SourceError::Api(Box::new(kube::Error::Service(
                    "boom".into(),
                ))));
            }
            Ok(())
        }
    }

    #[async_trait]
    impl ObjectSource for FakeSource {
        async fn config_map(
            &self,
            namespace: &str,
            name: &str,
        ) -> Result<Option<ConfigMap>, SourceError> {
            self.check(name)?;
            let key = (namespace.to_owned(), name.to_owned());
            Ok(self.config_maps.lock().unwrap().get(&key).cloned())
        }

        async fn secret(&self, namespace: &str, name: &str) -> Result<Option<Secret>, SourceError> {
            self.check(name)?;
            let key = (namespace.to_owned(), name.to_owned());
            Ok(self.secrets.lock().unwrap().get(&key).cloned())
        }
    }

    pub(crate) fn config_map(name: &str, data: &[(&str, &str)]) -> ConfigMap {
        ConfigMap {
            metadata: ObjectMeta {
                name: Some(name.into()),
                ..ObjectMeta::default()
            },
            data: Some(
                data.iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ),
            ..ConfigMap::default()
        }
    }

    pub(crate) fn secret(name: &str, data: &[(&str, &[u8])]) -> Secret {
        Secret {
            metadata: ObjectMeta {
                name: Some(name.into()),
                ..ObjectMeta::default()
            },
            data: Some(
                data.iter()
                    .map(|(k, v)| (k.to_string(), ByteString(v.to_vec())))
                    .collect(),
            ),
            ..Secret::default()
        }
    }

    fn node() -> NodeFacts {
        NodeFacts {
            node_name: "node-a".into(),
            host_ip: "10.0.0.7".parse().unwrap(),
            pod_ip: "10.0.0.7".parse().unwrap(),
            node_allocatable_cpu_millis: 4000,
            node_allocatable_memory_bytes: 8 << 30,
        }
    }

    fn source() -> FakeSource {
        let source = FakeSource::default();
        source.put_config_map(
            "ns",
            config_map(
                "app",
                &[
                    ("LEVEL", "debug"),
                    ("1BAD", "x"),
                    ("PORT", "8080"),
                    ("a.b-c", "ok"),
                ],
            ),
        );
        source.put_secret(
            "ns",
            secret("creds", &[("USER", b"admin"), ("PASS", b"s3cr$t")]),
        );
        source.put_secret("ns", secret("binary", &[("BLOB", &[0xff, 0xfe])]));
        source
    }

    /// A pod in namespace `ns` with one container `app` whose env and
    /// envFrom are given (JSON), labels, annotations, resources.
    fn pod(env_from: serde_json::Value, env: serde_json::Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": {
                "name": "web-1", "namespace": "ns", "uid": "u-1",
                "labels": {"app": "web", "tier": "front"},
                "annotations": {"note": "say \"hi\"\n"}
            },
            "spec": {
                "nodeName": "node-a",
                "serviceAccountName": "robot",
                "containers": [{
                    "name": "app", "image": "app:1",
                    "envFrom": env_from, "env": env,
                    "resources": {
                        "limits": {"memory": "256Mi"},
                        "requests": {"cpu": "250m", "memory": "100Mi"}
                    }
                }, {
                    "name": "side", "image": "side:1",
                    "resources": {"limits": {"cpu": "1500m"}}
                }]
            }
        }))
        .unwrap()
    }

    async fn env_of(pod: &Pod, source: &FakeSource) -> Result<Vec<(String, String)>, String> {
        let container = &pod.spec.as_ref().unwrap().containers[0];
        container_env(pod, container, &node(), source)
            .await
            .map_err(|e| {
                assert_eq!(e.reason(), "CreateContainerConfigError");
                e.to_string()
            })
    }

    fn pairs(expected: &[(&str, &str)]) -> Vec<(String, String)> {
        expected
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[track_caller]
    fn check_expand(input: &str, expect: &str) {
        let env = pairs(&[
            ("VAR_A", "A"),
            ("VAR_B", "B"),
            ("VAR_C", "C"),
            ("VAR_REF", "$(VAR_A)"),
            ("VAR_EMPTY", ""),
            ("VAR_B", "B2"),
        ]);
        assert_eq!(expand(input, &env), expect, "input {input:?}");
    }

    #[test]
    fn expansion_follows_kubernetes_rules() {
        // The cases of k8s.io/kubernetes/third_party/forked/golang/expansion.
        check_expand("$(VAR_A)", "A");
        check_expand("___$(VAR_A)___", "___A___");
        check_expand("$(VAR_A)-$(VAR_A)", "A-A");
        check_expand("$(VAR_A)$(VAR_C)", "AC");
        check_expand("$(VAR_B)", "B2");
        check_expand("$(VAR_REF)", "$(VAR_A)");
        check_expand("x$(VAR_EMPTY)y", "xy");
        check_expand("$$(VAR_A)", "$(VAR_A)");
        check_expand("$$$(VAR_A)", "$A");
        check_expand("$$$$(VAR_A)", "$$(VAR_A)");
        check_expand("$$", "$");
        check_expand("$$$", "$$");
        check_expand("$", "$");
        check_expand("x$", "x$");
        check_expand("$(VAR_DNE)", "$(VAR_DNE)");
        check_expand("$()", "$()");
        check_expand("$(VAR_A", "$(VAR_A");
        check_expand("$(VAR_A$(VAR_B)", "$(VAR_A$(VAR_B)");
        check_expand("$(VAR_$(VAR_A))", "$(VAR_$(VAR_A))");
        check_expand("$VAR_A", "$VAR_A");
        check_expand("$é$(VAR_A)", "$éA");
        check_expand("no refs", "no refs");
        check_expand("", "");
    }

    #[tokio::test]
    async fn env_from_then_env_with_order_of_first_appearance() {
        let pod = pod(
            json!([
                {"configMapRef": {"name": "app"}},
                {"secretRef": {"name": "creds"}, "prefix": "DB_"},
                {"configMapRef": {"name": "missing", "optional": true}}
            ]),
            json!([
                {"name": "URL", "value": "http://$(DB_USER)@host:$(PORT)/$(LATER)"},
                {"name": "LEVEL", "value": "info"},
                {"name": "LATER", "value": "x"},
                {"name": "EMPTY"},
                {"name": "COST", "value": "$$5 $(NOPE)"}
            ]),
        );
        let env = env_of(&pod, &source()).await.unwrap();
        // `1BAD` is not a variable name: skipped. ConfigMap keys come
        // sorted; LEVEL keeps its place and takes env's value.
        assert_eq!(
            env,
            pairs(&[
                ("LEVEL", "info"),
                ("PORT", "8080"),
                ("a.b-c", "ok"),
                ("DB_PASS", "s3cr$t"),
                ("DB_USER", "admin"),
                ("URL", "http://admin@host:8080/$(LATER)"),
                ("LATER", "x"),
                ("EMPTY", ""),
                ("COST", "$5 $(NOPE)"),
            ])
        );
    }

    #[tokio::test]
    async fn key_refs_honour_optional() {
        let env = json!([
            {"name": "A", "valueFrom": {"configMapKeyRef": {"name": "app", "key": "PORT"}}},
            {"name": "B", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "USER"}}},
            {"name": "C", "valueFrom": {"configMapKeyRef": {"name": "app", "key": "nope", "optional": true}}},
            {"name": "D", "valueFrom": {"configMapKeyRef": {"name": "gone", "key": "k", "optional": true}}},
            {"name": "E", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "nope", "optional": true}}},
            {"name": "F", "valueFrom": {"secretKeyRef": {"name": "gone", "key": "k", "optional": true}}},
            {"name": "LEVEL", "valueFrom": {"configMapKeyRef": {"name": "app", "key": "nope", "optional": true}}}
        ]);
        let pod = pod(json!([{"configMapRef": {"name": "app"}}]), env);
        let env = env_of(&pod, &source()).await.unwrap();
        // A missing optional value leaves the variable unset (LEVEL keeps
        // its envFrom value).
        assert_eq!(
            env,
            pairs(&[
                ("LEVEL", "debug"),
                ("PORT", "8080"),
                ("a.b-c", "ok"),
                ("A", "8080"),
                ("B", "admin"),
            ])
        );
    }

    #[tokio::test]
    async fn errors_carry_the_kubelet_messages() {
        let source = source();
        let cases = [
            (
                json!([{"configMapRef": {"name": "gone"}}]),
                json!([]),
                r#"configmap "gone" not found"#,
            ),
            (
                json!([{"secretRef": {"name": "gone"}}]),
                json!([]),
                r#"secret "gone" not found"#,
            ),
            (
                json!([]),
                json!([{"name": "A", "valueFrom": {"configMapKeyRef": {"name": "gone", "key": "k"}}}]),
                r#"configmap "gone" not found"#,
            ),
            (
                json!([]),
                json!([{"name": "A", "valueFrom": {"secretKeyRef": {"name": "gone", "key": "k"}}}]),
                r#"secret "gone" not found"#,
            ),
            (
                json!([]),
                json!([{"name": "A", "valueFrom": {"configMapKeyRef": {"name": "app", "key": "K"}}}]),
                "couldn't find key K in ConfigMap ns/app",
            ),
            (
                json!([]),
                json!([{"name": "A", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "K"}}}]),
                "couldn't find key K in Secret ns/creds",
            ),
            (
                json!([]),
                json!([{"name": "A", "valueFrom": {"secretKeyRef": {"name": "binary", "key": "BLOB"}}}]),
                "key BLOB in Secret ns/binary is not valid UTF-8",
            ),
            (
                json!([{"secretRef": {"name": "binary"}}]),
                json!([]),
                "key BLOB in Secret ns/binary is not valid UTF-8",
            ),
            (
                json!([]),
                json!([{"name": "A", "valueFrom": {"fieldRef": {"fieldPath": "spec.containers"}}}]),
                "unsupported fieldPath: spec.containers",
            ),
            (
                json!([]),
                json!([{"name": "A", "valueFrom": {"resourceFieldRef": {"resource": "limits.gpu"}}}]),
                "unsupported container resource : limits.gpu",
            ),
            (
                json!([]),
                json!([{"name": "A", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu", "containerName": "ghost"}}}]),
                "container ghost not found",
            ),
            (
                json!([]),
                json!([{"name": "A", "valueFrom": {"fileKeyRef": {"volumeName": "v", "path": "p", "key": "k"}}}]),
                "env var A: valueFrom.fileKeyRef is not supported on this node",
            ),
        ];
        for (env_from, env, message) in cases {
            let pod = pod(env_from, env);
            assert_eq!(env_of(&pod, &source).await.unwrap_err(), message);
        }
    }

    #[tokio::test]
    async fn source_failures_name_the_object() {
        let source = source().failing_on("app");
        let pod = pod(
            json!([{"configMapRef": {"name": "app", "optional": true}}]),
            json!([]),
        );
        let container = &pod.spec.as_ref().unwrap().containers[0];
        let err = container_env(&pod, container, &node(), &source)
            .await
            .unwrap_err();
        assert_eq!(err.to_string(), "couldn't get configmap ns/app");
        let cause = std::error::Error::source(&err).unwrap();
        assert_eq!(cause.to_string(), "the API request failed");
    }

    #[tokio::test]
    async fn field_refs() {
        let refs = [
            ("metadata.name", "web-1"),
            ("metadata.namespace", "ns"),
            ("metadata.uid", "u-1"),
            ("metadata.labels['app']", "web"),
            ("metadata.labels['none']", ""),
            ("metadata.annotations['note']", "say \"hi\"\n"),
            ("metadata.labels", "app=\"web\"\ntier=\"front\""),
            ("metadata.annotations", r#"note="say \"hi\"\n""#),
            ("spec.nodeName", "node-a"),
            ("spec.serviceAccountName", "robot"),
            ("status.hostIP", "10.0.0.7"),
            ("status.hostIPs", "10.0.0.7"),
            ("status.podIP", "10.0.0.7"),
            ("status.podIPs", "10.0.0.7"),
        ];
        let env: Vec<_> = refs
            .iter()
            .enumerate()
            .map(|(i, (path, _))| {
                json!({"name": format!("V{i}"), "valueFrom": {"fieldRef": {"fieldPath": path}}})
            })
            .collect();
        let pod = pod(json!([]), json!(env));
        let got = env_of(&pod, &source()).await.unwrap();
        for (i, (path, expect)) in refs.iter().enumerate() {
            assert_eq!(got[i].1, *expect, "{path}");
        }
    }

    #[tokio::test]
    async fn resource_field_refs_divide_round_up_and_default_limits_to_allocatable() {
        let refs = [
            // No CPU limit: the node's 4000m.
            (json!({"resource": "limits.cpu"}), "4"),
            (json!({"resource": "limits.cpu", "divisor": "1m"}), "4000"),
            (json!({"resource": "limits.memory"}), "268435456"),
            (
                json!({"resource": "limits.memory", "divisor": "1Mi"}),
                "256",
            ),
            (json!({"resource": "limits.memory", "divisor": "1G"}), "1"),
            (
                json!({"resource": "limits.memory", "divisor": "0"}),
                "268435456",
            ),
            (json!({"resource": "requests.cpu"}), "1"),
            (json!({"resource": "requests.cpu", "divisor": "1m"}), "250"),
            (
                json!({"resource": "requests.memory", "divisor": "1Mi"}),
                "100",
            ),
            (
                json!({"resource": "limits.cpu", "containerName": "side", "divisor": "1m"}),
                "1500",
            ),
            (
                json!({"resource": "limits.cpu", "containerName": "side"}),
                "2",
            ),
            // No memory limit on `side`: the node's 8Gi.
            (
                json!({"resource": "limits.memory", "containerName": "side", "divisor": "1Gi"}),
                "8",
            ),
            (
                json!({"resource": "requests.memory", "containerName": "side"}),
                "0",
            ),
        ];
        let env: Vec<_> = refs
            .iter()
            .enumerate()
            .map(|(i, (selector, _))| {
                json!({"name": format!("R{i}"), "valueFrom": {"resourceFieldRef": selector}})
            })
            .collect();
        let pod = pod(json!([]), json!(env));
        let got = env_of(&pod, &source()).await.unwrap();
        for (i, (selector, expect)) in refs.iter().enumerate() {
            assert_eq!(got[i].1, *expect, "{selector}");
        }
    }

    #[test]
    fn env_var_names_and_quoting() {
        for good in ["A", "a.b-c", "_x", "-x", ".x", "MY_ENV.NAME1"] {
            assert!(is_env_var_name(good), "{good}");
        }
        for bad in ["", "1A", "A=B", "A B", ".", "..", "..x", "é"] {
            assert!(!is_env_var_name(bad), "{bad}");
        }
        assert_eq!(
            go_quote("a\"b\\c\td\u{1}\u{7f}\u{a0}é"),
            r#""a\"b\\c\td\x01\x7f\u00a0é""#
        );
        assert_eq!(ceil_div(7, 2), 4);
        assert_eq!(ceil_div(-7, 2), -3);
        assert_eq!(ceil_div(6, 3), 2);
    }

    #[test]
    fn security_merges_the_pod_and_container_contexts() {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p"},
            "spec": {
                "securityContext": {
                    "runAsUser": 1000, "runAsGroup": 3000,
                    "supplementalGroups": [5, 4], "fsGroup": 2000
                },
                "containers": [
                    {"name": "a", "image": "x", "securityContext": {
                        "runAsUser": 7, "readOnlyRootFilesystem": true,
                        "allowPrivilegeEscalation": false,
                        "capabilities": {"add": ["NET_ADMIN"], "drop": ["ALL"]}
                    }},
                    {"name": "b", "image": "x"}
                ]
            }
        }))
        .unwrap();
        let containers = &pod.spec.as_ref().unwrap().containers;
        let a = security(&pod, &containers[0]);
        assert_eq!((a.run_as_user, a.run_as_group), (Some(7), Some(3000)));
        assert_eq!(a.supplemental_groups, [4, 5, 2000]);
        assert!(a.read_only_root_filesystem);
        assert_eq!(a.capabilities_add, ["NET_ADMIN"]);
        assert_eq!(a.capabilities_drop, ["ALL"]);
        assert_eq!(a.allow_privilege_escalation, Some(false));
        let b = security(&pod, &containers[1]);
        assert_eq!((b.run_as_user, b.run_as_group), (Some(1000), Some(3000)));
        assert!(!b.read_only_root_filesystem && !b.privileged);
        assert_eq!(b.allow_privilege_escalation, None);
    }
}
