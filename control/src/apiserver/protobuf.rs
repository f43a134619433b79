//! Request bodies in Kubernetes' protobuf encoding
//! (`application/vnd.kubernetes.protobuf`), which kubectl's typed commands
//! send (`create configmap|secret|deployment|service|namespace|token`,
//! `run`, `auth can-i`), decoded into the JSON that Kubernetes' own JSON
//! encoding gives the same Go object, so that they take the JSON path from
//! there. Responses stay JSON, which kubectl accepts.
//!
//! A body is the magic `k8s\0`, then a `runtime.Unknown` envelope whose
//! `typeMeta` names the kind and whose `raw` holds the object's message as
//! Kubernetes' `generated.proto` files define it. The messages are
//! k8s-pb's (prost, generated from those files); the table below says,
//! message by message, how Kubernetes' JSON writes each field, because the
//! protobuf schema does not carry all of it:
//! - the JSON name, when it is not the field's name in lowerCamelCase
//!   (`pod_cidr = "podCIDR"`); a unit test checks every name against
//!   Kubernetes' OpenAPI schema (k8s-openapi's);
//! - `#[inline]`: a Go embedded struct (`Volume.volumeSource`,
//!   `ConfigMapKeySelector.localObjectReference`), whose fields JSON writes
//!   into the enclosing object;
//! - what a zero value means. Go's encoder writes every non-pointer field,
//!   even `""`, `0` and `false`, and only set pointer fields; Go's JSON
//!   leaves out zero non-pointer fields tagged `omitempty` and keeps a set
//!   pointer's zero (`replicas: 0`, `automountServiceAccountToken: false`).
//!   By default an empty string is left out (almost every string is a
//!   non-pointer `omitempty` field) and a zero number or `false` is kept
//!   (so a pointer's zero is never lost); `#[omitempty]` marks the
//!   non-pointer `omitempty` numbers and booleans, whose zero is left out,
//!   and `#[pointer]` the pointer strings whose `""` is a value.
//!
//! Messages, set or not, are written as objects (Go writes non-pointer
//! structs even when empty: `"resources": {}`, `"status": {}`), empty lists
//! and maps are left out, and the well-known messages take their JSON form:
//! `meta.v1.Time` (RFC 3339 in seconds, `null` when zero) and `MicroTime`
//! (in microseconds), `Duration` (Go's `1h2m3s`), `resource.Quantity` (its
//! string), `intstr.IntOrString` (a number or a string), bytes (base64),
//! and `runtime.RawExtension` and `meta.v1.FieldsV1` (the JSON they hold).
//!
//! Fields that the message does not know are skipped, as Kubernetes' own
//! protobuf decoder does. k8s-pb 0.9 has Kubernetes 1.35's messages, so the
//! fields added since (1.36, 1.37) are skipped for now; a newer k8s-pb
//! fails to compile here until the table lists its new fields.
//!
//! Architecture invariant: everything here is pure; the status codes of
//! [`ProtobufError`] are chosen by the caller.

use std::collections::BTreeMap;

use base64::Engine as _;
use k8s_pb::api::apps::v1 as apps;
use k8s_pb::api::authentication::v1 as authentication;
use k8s_pb::api::authorization::v1 as authorization;
use k8s_pb::api::autoscaling::v1 as autoscaling;
use k8s_pb::api::coordination::v1 as coordination;
use k8s_pb::api::core::v1 as core;
use k8s_pb::api::discovery::v1 as discovery;
use k8s_pb::api::node::v1 as node;
use k8s_pb::api::policy::v1 as policy;
use k8s_pb::apimachinery::pkg::api::resource;
use k8s_pb::apimachinery::pkg::apis::meta::v1 as meta;
use k8s_pb::apimachinery::pkg::runtime;
use k8s_pb::apimachinery::pkg::util::intstr;
use prost::Message;
use serde_json::{Map, Value};

/// The media type of Kubernetes' protobuf encoding.
pub const MEDIA_TYPE: &str = "application/vnd.kubernetes.protobuf";

/// The four bytes every protobuf-encoded Kubernetes object starts with.
const MAGIC: &[u8] = b"k8s\0";

/// Decodes a protobuf-encoded Kubernetes object into its JSON form, with
/// `apiVersion` and `kind` from the envelope; see the module docs.
pub fn decode(bytes: &[u8]) -> Result<Value, ProtobufError> {
    let envelope = bytes
        .strip_prefix(MAGIC)
        .ok_or(ProtobufError::MissingMagic)?;
    let runtime::Unknown {
        type_meta,
        raw,
        content_encoding,
        content_type,
    } = runtime::Unknown::decode(envelope).map_err(|source| ProtobufError::Malformed {
        what: "envelope (runtime.Unknown)",
        source,
    })?;
    let content_encoding = content_encoding.unwrap_or_default();
    let content_type = content_type.unwrap_or_default();
    if !content_encoding.is_empty() || !(content_type.is_empty() || content_type == MEDIA_TYPE) {
        return Err(ProtobufError::UnsupportedEncoding {
            content_encoding,
            content_type,
        });
    }
    let runtime::TypeMeta { api_version, kind } = type_meta.unwrap_or_default();
    let (api_version, kind) = (api_version.unwrap_or_default(), kind.unwrap_or_default());
    if kind.is_empty() {
        return Err(ProtobufError::MissingKind);
    }
    let decoder = decoder(&api_version, &kind).ok_or_else(|| ProtobufError::UnknownKind {
        api_version: api_version.clone(),
        kind: kind.clone(),
    })?;
    let mut object = (decoder.decode)(raw.as_deref().unwrap_or_default())?;
    if !api_version.is_empty() {
        object.insert("apiVersion".to_owned(), Value::String(api_version));
    }
    object.insert("kind".to_owned(), Value::String(kind));
    Ok(Value::Object(object))
}

/// Why a protobuf body could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum ProtobufError {
    /// The body does not start with the magic `k8s\0` of Kubernetes'
    /// protobuf encoding.
    #[error("the body does not start with the Kubernetes protobuf prefix \"k8s\\x00\"")]
    MissingMagic,
    /// The envelope or the object in it is not a valid protobuf message of
    /// its type (truncated, wrong wire types, a string that is not UTF-8,
    /// nested too deeply).
    #[error("the protobuf {what} is malformed: {source}")]
    Malformed {
        /// `envelope (runtime.Unknown)` or `object`.
        what: &'static str,
        /// prost's error, with the path of the field it failed in.
        #[source]
        source: prost::DecodeError,
    },
    /// The envelope says the object is compressed, or encoded other than
    /// in protobuf.
    #[error(
        "unsupported protobuf envelope: contentEncoding {content_encoding:?}, contentType {content_type:?}"
    )]
    UnsupportedEncoding {
        /// The envelope's `contentEncoding`.
        content_encoding: String,
        /// The envelope's `contentType`.
        content_type: String,
    },
    /// The envelope's `typeMeta` has no kind.
    #[error("Object 'Kind' is missing in the protobuf envelope")]
    MissingKind,
    /// The envelope names a kind this decoder does not know; such an object
    /// must be sent as JSON or YAML.
    #[error("no protobuf decoding for kind {kind:?} in version {api_version:?}")]
    UnknownKind {
        /// The envelope's `apiVersion`.
        api_version: String,
        /// The envelope's `kind`.
        kind: String,
    },
    /// An `IntOrString` whose type is neither 0 (int) nor 1 (string), which
    /// Go's JSON encoder refuses too.
    #[error("invalid IntOrString: type {0} is neither 0 (int) nor 1 (string)")]
    IntOrStringType(i64),
    /// A `Time` or `MicroTime` outside the years -9999 to 9999.
    #[error("time out of range: {seconds} seconds and {nanos} nanoseconds since 1970")]
    TimeOutOfRange {
        /// The message's `seconds`.
        seconds: i64,
        /// The message's `nanos`.
        nanos: i32,
    },
    /// A `RawExtension` or `FieldsV1` whose bytes are not JSON.
    #[error("embedded object is not valid JSON: {0}")]
    EmbeddedJson(#[source] serde_json::Error),
}

/// A JSON object.
type Object = Map<String, Value>;

/// How one kind's object is decoded.
struct Decoder {
    api_version: &'static str,
    kind: &'static str,
    decode: fn(&[u8]) -> Result<Object, ProtobufError>,
}

const fn kind<M: Message + Default + Json>(
    api_version: &'static str,
    kind: &'static str,
) -> Decoder {
    Decoder {
        api_version,
        kind,
        decode: decode_object::<M>,
    }
}

/// The kinds whose protobuf bodies decode: those the server serves, and
/// those kubectl sends typed to them (reviews, tokens, evictions, scale).
static DECODERS: &[Decoder] = &[
    kind::<core::Binding>("v1", "Binding"),
    kind::<core::ConfigMap>("v1", "ConfigMap"),
    kind::<core::Endpoints>("v1", "Endpoints"),
    kind::<core::Event>("v1", "Event"),
    kind::<core::Namespace>("v1", "Namespace"),
    kind::<core::Node>("v1", "Node"),
    kind::<core::Pod>("v1", "Pod"),
    kind::<core::Secret>("v1", "Secret"),
    kind::<core::Service>("v1", "Service"),
    kind::<apps::Deployment>("apps/v1", "Deployment"),
    kind::<apps::ReplicaSet>("apps/v1", "ReplicaSet"),
    kind::<authentication::SelfSubjectReview>("authentication.k8s.io/v1", "SelfSubjectReview"),
    kind::<authentication::TokenRequest>("authentication.k8s.io/v1", "TokenRequest"),
    kind::<authorization::SelfSubjectAccessReview>(
        "authorization.k8s.io/v1",
        "SelfSubjectAccessReview",
    ),
    kind::<authorization::SelfSubjectRulesReview>(
        "authorization.k8s.io/v1",
        "SelfSubjectRulesReview",
    ),
    kind::<autoscaling::Scale>("autoscaling/v1", "Scale"),
    kind::<coordination::Lease>("coordination.k8s.io/v1", "Lease"),
    kind::<discovery::EndpointSlice>("discovery.k8s.io/v1", "EndpointSlice"),
    kind::<node::RuntimeClass>("node.k8s.io/v1", "RuntimeClass"),
    kind::<policy::Eviction>("policy/v1", "Eviction"),
];

/// `DeleteOptions`, which Kubernetes registers in every group-version.
static DELETE_OPTIONS: Decoder = kind::<meta::DeleteOptions>("", "DeleteOptions");

fn decoder(api_version: &str, kind: &str) -> Option<&'static Decoder> {
    if kind == DELETE_OPTIONS.kind {
        return Some(&DELETE_OPTIONS);
    }
    DECODERS
        .iter()
        .find(|decoder| decoder.api_version == api_version && decoder.kind == kind)
}

fn decode_object<M: Message + Default + Json>(raw: &[u8]) -> Result<Object, ProtobufError> {
    let message = M::decode(raw).map_err(|source| ProtobufError::Malformed {
        what: "object",
        source,
    })?;
    match message.to_json()? {
        Value::Object(object) => Ok(object),
        _ => unreachable!("a kind's message renders as an object"),
    }
}

/// A decoded protobuf value, as Kubernetes' JSON encoding writes the Go
/// value it decodes into.
trait Json {
    /// Whether a field whose value is this type's zero is left out when the
    /// table says nothing: yes for strings and bytes (mostly non-pointer
    /// `omitempty` fields in Go), no for numbers and booleans (often
    /// pointers, whose zero is a choice).
    const OMIT_ZERO: bool = false;

    /// Whether this is `""`, `0`, `false` or no bytes. Messages never are:
    /// Go writes a struct field even when it is empty.
    fn is_zero(&self) -> bool {
        false
    }

    /// The JSON value.
    fn to_json(&self) -> Result<Value, ProtobufError>;
}

/// What a field's zero value means, when present on the wire.
#[derive(Clone, Copy)]
enum Zero {
    /// As [`Json::OMIT_ZERO`] says for the field's type.
    ByType,
    /// A Go non-pointer `omitempty` field: zero is "not set", left out.
    Omitted,
    /// A Go pointer field: zero is a value, written.
    Kept,
}

/// A field of a message: optional (`Option`), repeated (`Vec`) or a map.
trait Field {
    /// Writes the field into `object` under `key`, unless Go's JSON leaves
    /// it out.
    fn put(&self, object: &mut Object, key: &str, zero: Zero) -> Result<(), ProtobufError>;
}

impl<T: Json> Field for Option<T> {
    fn put(&self, object: &mut Object, key: &str, zero: Zero) -> Result<(), ProtobufError> {
        let Some(value) = self else { return Ok(()) };
        let omitted = value.is_zero()
            && match zero {
                Zero::ByType => T::OMIT_ZERO,
                Zero::Omitted => true,
                Zero::Kept => false,
            };
        if !omitted {
            object.insert(key.to_owned(), value.to_json()?);
        }
        Ok(())
    }
}

impl<T: Json> Field for Vec<T> {
    fn put(&self, object: &mut Object, key: &str, _: Zero) -> Result<(), ProtobufError> {
        if !self.is_empty() {
            let items = self.iter().map(Json::to_json).collect::<Result<_, _>>()?;
            object.insert(key.to_owned(), Value::Array(items));
        }
        Ok(())
    }
}

impl<T: Json> Field for BTreeMap<String, T> {
    fn put(&self, object: &mut Object, key: &str, _: Zero) -> Result<(), ProtobufError> {
        if !self.is_empty() {
            let entries = self
                .iter()
                .map(|(name, value)| Ok((name.clone(), value.to_json()?)))
                .collect::<Result<_, ProtobufError>>()?;
            object.insert(key.to_owned(), Value::Object(entries));
        }
        Ok(())
    }
}

/// Writes the fields of a Go embedded struct into the enclosing object.
fn put_inline<T: Json>(object: &mut Object, field: &Option<T>) -> Result<(), ProtobufError> {
    if let Some(Value::Object(fields)) = field.as_ref().map(Json::to_json).transpose()? {
        object.extend(fields);
    }
    Ok(())
}

/// The JSON name of a field named regularly: prost's snake_case name in
/// lowerCamelCase (`binary_data` → `binaryData`, `r#type` → `type`).
fn json_name(field: &str) -> String {
    let field = field.strip_prefix("r#").unwrap_or(field);
    let mut name = String::with_capacity(field.len());
    let mut upper = false;
    for c in field.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            name.push(c.to_ascii_uppercase());
            upper = false;
        } else {
            name.push(c);
        }
    }
    name
}

impl Json for String {
    const OMIT_ZERO: bool = true;

    fn is_zero(&self) -> bool {
        self.is_empty()
    }

    fn to_json(&self) -> Result<Value, ProtobufError> {
        Ok(Value::String(self.clone()))
    }
}

impl Json for bool {
    fn is_zero(&self) -> bool {
        !self
    }

    fn to_json(&self) -> Result<Value, ProtobufError> {
        Ok(Value::Bool(*self))
    }
}

impl Json for i32 {
    fn is_zero(&self) -> bool {
        *self == 0
    }

    fn to_json(&self) -> Result<Value, ProtobufError> {
        Ok(Value::from(*self))
    }
}

impl Json for i64 {
    fn is_zero(&self) -> bool {
        *self == 0
    }

    fn to_json(&self) -> Result<Value, ProtobufError> {
        Ok(Value::from(*self))
    }
}

/// `bytes`: base64, as Go's JSON writes a `[]byte`.
impl Json for Vec<u8> {
    const OMIT_ZERO: bool = true;

    fn is_zero(&self) -> bool {
        self.is_empty()
    }

    fn to_json(&self) -> Result<Value, ProtobufError> {
        Ok(Value::String(
            base64::engine::general_purpose::STANDARD.encode(self),
        ))
    }
}

/// `metav1.Time`: RFC 3339 in whole seconds, `null` when zero.
impl Json for meta::Time {
    fn to_json(&self) -> Result<Value, ProtobufError> {
        time(self.seconds, self.nanos, TimePrecision::Seconds)
    }
}

/// `metav1.MicroTime`: RFC 3339 with six fractional digits, `null` when zero.
impl Json for meta::MicroTime {
    fn to_json(&self) -> Result<Value, ProtobufError> {
        time(self.seconds, self.nanos, TimePrecision::Microseconds)
    }
}

/// `metav1.Duration`: Go's `time.Duration` string (`1h2m3.5s`).
impl Json for meta::Duration {
    fn to_json(&self) -> Result<Value, ProtobufError> {
        Ok(Value::String(go_duration(self.duration.unwrap_or(0))))
    }
}

/// `resource.Quantity`: its string (an unset one is Go's zero, `"0"`).
impl Json for resource::Quantity {
    fn to_json(&self) -> Result<Value, ProtobufError> {
        Ok(Value::String(
            self.string.clone().unwrap_or_else(|| "0".to_owned()),
        ))
    }
}

/// `intstr.IntOrString`: the number or the string its type says.
impl Json for intstr::IntOrString {
    fn to_json(&self) -> Result<Value, ProtobufError> {
        match self.r#type.unwrap_or(0) {
            0 => Ok(Value::from(self.int_val.unwrap_or(0))),
            1 => Ok(Value::String(self.str_val.clone().unwrap_or_default())),
            other => Err(ProtobufError::IntOrStringType(other)),
        }
    }
}

/// `runtime.RawExtension`: the object it holds.
impl Json for runtime::RawExtension {
    fn to_json(&self) -> Result<Value, ProtobufError> {
        embedded(self.raw.as_deref())
    }
}

/// `metav1.FieldsV1` (managed fields): the JSON it holds.
impl Json for meta::FieldsV1 {
    fn to_json(&self) -> Result<Value, ProtobufError> {
        embedded(self.raw.as_deref())
    }
}

/// `authentication.v1.ExtraValue`, a Go `[]string`: a list.
impl Json for authentication::ExtraValue {
    fn to_json(&self) -> Result<Value, ProtobufError> {
        Ok(Value::from(self.items.clone()))
    }
}

/// How precisely a time is written.
#[derive(Clone, Copy)]
enum TimePrecision {
    /// `metav1.Time`: `2006-01-02T15:04:05Z`.
    Seconds,
    /// `metav1.MicroTime`: `2006-01-02T15:04:05.000000Z`.
    Microseconds,
}

/// Seconds since 1970 (`0001-01-01T00:00:00Z`, Go's zero time, is these).
const GO_ZERO_TIME_SECONDS: i64 = -62_135_596_800;

fn time(
    seconds: Option<i64>,
    nanos: Option<i32>,
    precision: TimePrecision,
) -> Result<Value, ProtobufError> {
    // An empty message is how Go encodes the zero time, which its JSON
    // writes as null; so is an explicit 0001-01-01T00:00:00Z.
    if seconds.is_none() && nanos.is_none() {
        return Ok(Value::Null);
    }
    let (seconds, nanos) = (seconds.unwrap_or(0), nanos.unwrap_or(0));
    if seconds == GO_ZERO_TIME_SECONDS && nanos == 0 {
        return Ok(Value::Null);
    }
    let instant = i128::from(seconds) * 1_000_000_000 + i128::from(nanos);
    let timestamp = jiff::Timestamp::from_nanosecond(instant)
        .map_err(|_| ProtobufError::TimeOutOfRange { seconds, nanos })?;
    let whole = timestamp.strftime("%Y-%m-%dT%H:%M:%S");
    Ok(Value::String(match precision {
        TimePrecision::Seconds => format!("{whole}Z"),
        TimePrecision::Microseconds => {
            // Of the second, counted forward also before 1970.
            let micros = instant.rem_euclid(1_000_000_000) / 1_000;
            format!("{whole}.{micros:06}Z")
        }
    }))
}

/// Go's `time.Duration.String()`: `0s`, `1.5µs`, `100ms`, `2h3m4.5s`.
fn go_duration(nanoseconds: i64) -> String {
    /// `value / 10^digits` with its fraction, trailing zeros and a bare
    /// point dropped: `(1500, 3)` → `1.5`.
    fn decimal(value: u64, digits: u32) -> String {
        let scale = 10u64.pow(digits);
        let fraction = format!("{:0width$}", value % scale, width = digits as usize);
        let fraction = fraction.trim_end_matches('0');
        if fraction.is_empty() {
            (value / scale).to_string()
        } else {
            format!("{}.{fraction}", value / scale)
        }
    }
    const SECOND: u64 = 1_000_000_000;
    let sign = if nanoseconds < 0 { "-" } else { "" };
    let magnitude = nanoseconds.unsigned_abs();
    let text = match magnitude {
        0 => "0s".to_owned(),
        1..1_000 => format!("{magnitude}ns"),
        1_000..1_000_000 => format!("{}µs", decimal(magnitude, 3)),
        1_000_000..SECOND => format!("{}ms", decimal(magnitude, 6)),
        _ => {
            let seconds = decimal(magnitude % (60 * SECOND), 9);
            let minutes = magnitude / (60 * SECOND);
            match (minutes / 60, minutes % 60) {
                (0, 0) => format!("{seconds}s"),
                (0, minutes) => format!("{minutes}m{seconds}s"),
                (hours, minutes) => format!("{hours}h{minutes}m{seconds}s"),
            }
        }
    };
    format!("{sign}{text}")
}

/// The JSON of a `RawExtension` or `FieldsV1`: null when empty, the object
/// when it is itself protobuf-encoded, else the bytes parsed as JSON.
fn embedded(raw: Option<&[u8]>) -> Result<Value, ProtobufError> {
    match raw {
        None | Some([]) => Ok(Value::Null),
        Some(raw) if raw.starts_with(MAGIC) => decode(raw),
        Some(raw) => serde_json::from_slice(raw).map_err(ProtobufError::EmbeddedJson),
    }
}

/// Implements [`Json`] for messages from their fields, as the module docs
/// describe: `Message { field, field = "jsonName", #[rule] field, ... }`,
/// every field of the prost struct listed (the destructuring fails to
/// compile otherwise), rules `inline`, `omitempty` and `pointer`.
macro_rules! messages {
    ($(
        $message:ty { $( $(#[$rule:ident])? $field:ident $(= $name:literal)? ),* $(,)? }
    )*) => {
        $(
            impl Json for $message {
                fn to_json(&self) -> Result<Value, ProtobufError> {
                    let Self { $($field),* } = self;
                    let mut object = Map::new();
                    $( field!(object, $field, [$($rule)?] $(, $name)?); )*
                    Ok(Value::Object(object))
                }
            }

            #[cfg(test)]
            impl tests::Described for $message {
                fn fields() -> Vec<tests::FieldName> {
                    let message = Self::default();
                    let Self { $($field),* } = &message;
                    vec![$( field_name!($field, [$($rule)?] $(, $name)?) ),*]
                }
            }
        )*

        /// Every message of the table, by prost type name, with its fields'
        /// JSON names.
        #[cfg(test)]
        fn described() -> Vec<(&'static str, Vec<tests::FieldName>)> {
            vec![$(
                (
                    std::any::type_name::<$message>(),
                    <$message as tests::Described>::fields(),
                )
            ),*]
        }
    };
}

macro_rules! field {
    ($object:ident, $field:ident, [inline]) => {
        put_inline(&mut $object, $field)?
    };
    ($object:ident, $field:ident, [$($rule:ident)?]) => {
        Field::put($field, &mut $object, &json_name(stringify!($field)), zero!($($rule)?))?
    };
    ($object:ident, $field:ident, [$($rule:ident)?], $name:literal) => {
        Field::put($field, &mut $object, $name, zero!($($rule)?))?
    };
}

macro_rules! zero {
    () => {
        Zero::ByType
    };
    (omitempty) => {
        Zero::Omitted
    };
    (pointer) => {
        Zero::Kept
    };
}

#[cfg(test)]
macro_rules! field_name {
    ($field:ident, [inline]) => {
        tests::FieldName::Inline(tests::inline_fields($field))
    };
    ($field:ident, [$($rule:ident)?]) => {{
        let _ = $field;
        tests::FieldName::Named(json_name(stringify!($field)))
    }};
    ($field:ident, [$($rule:ident)?], $name:literal) => {{
        let _ = $field;
        tests::FieldName::Named($name.to_owned())
    }};
}

messages! {
    core::Affinity { node_affinity, pod_affinity, pod_anti_affinity }
    core::AppArmorProfile { r#type, localhost_profile }
    core::AttachedVolume { name, device_path }
    core::AwsElasticBlockStoreVolumeSource {
        volume_id = "volumeID", fs_type, #[omitempty] partition, #[omitempty] read_only,
    }
    core::AzureDiskVolumeSource {
        disk_name, disk_uri = "diskURI", caching_mode, fs_type, read_only, kind,
    }
    core::AzureFileVolumeSource { secret_name, share_name, #[omitempty] read_only }
    core::Binding { metadata, target }
    core::CSIVolumeSource { driver, read_only, fs_type, volume_attributes, node_publish_secret_ref }
    core::Capabilities { add, drop }
    core::CephFsVolumeSource {
        monitors, path, user, secret_file, secret_ref, #[omitempty] read_only,
    }
    core::CinderVolumeSource { volume_id = "volumeID", fs_type, #[omitempty] read_only, secret_ref }
    core::ClientIpConfig { timeout_seconds }
    core::ClusterTrustBundleProjection { name, signer_name, label_selector, optional, path }
    core::ConfigMap { metadata, immutable, data, binary_data }
    core::ConfigMapEnvSource { #[inline] local_object_reference, optional }
    core::ConfigMapKeySelector { #[inline] local_object_reference, key, optional }
    core::ConfigMapNodeConfigSource { namespace, name, uid, resource_version, kubelet_config_key }
    core::ConfigMapProjection { #[inline] local_object_reference, items, optional }
    core::ConfigMapVolumeSource { #[inline] local_object_reference, items, default_mode, optional }
    core::Container {
        name, image, command, args, working_dir, ports, env_from, env, resources, resize_policy,
        restart_policy, restart_policy_rules, volume_mounts, volume_devices, liveness_probe,
        readiness_probe, startup_probe, lifecycle, termination_message_path,
        termination_message_policy, image_pull_policy, security_context, #[omitempty] stdin,
        #[omitempty] stdin_once, #[omitempty] tty,
    }
    core::ContainerExtendedResourceRequest { container_name, resource_name, request_name }
    core::ContainerImage { names, #[omitempty] size_bytes }
    core::ContainerPort { name, #[omitempty] host_port, container_port, protocol, host_ip = "hostIP" }
    core::ContainerResizePolicy { resource_name, restart_policy }
    core::ContainerRestartRule { action, exit_codes }
    core::ContainerRestartRuleOnExitCodes { operator, values }
    core::ContainerState { waiting, running, terminated }
    core::ContainerStateRunning { started_at }
    core::ContainerStateTerminated {
        exit_code, #[omitempty] signal, reason, message, started_at, finished_at,
        container_id = "containerID",
    }
    core::ContainerStateWaiting { reason, message }
    core::ContainerStatus {
        name, state, last_state, ready, restart_count, image, image_id = "imageID",
        container_id = "containerID", started, allocated_resources, resources, volume_mounts, user,
        allocated_resources_status, stop_signal,
    }
    core::ContainerUser { linux }
    core::DaemonEndpoint { port = "Port" }
    core::DownwardAPIProjection { items }
    core::DownwardAPIVolumeFile { path, field_ref, resource_field_ref, mode }
    core::DownwardAPIVolumeSource { items, default_mode }
    core::EmptyDirVolumeSource { medium, size_limit }
    core::EndpointAddress { ip, hostname, node_name, target_ref }
    core::EndpointPort { name, port, protocol, app_protocol }
    core::EndpointSubset { addresses, not_ready_addresses, ports }
    core::Endpoints { metadata, subsets }
    core::EnvFromSource { prefix, config_map_ref, secret_ref }
    core::EnvVar { name, value, value_from }
    core::EnvVarSource {
        field_ref, resource_field_ref, config_map_key_ref, secret_key_ref, file_key_ref,
    }
    core::EphemeralContainer { #[inline] ephemeral_container_common, target_container_name }
    core::EphemeralContainerCommon {
        name, image, command, args, working_dir, ports, env_from, env, resources, resize_policy,
        restart_policy, restart_policy_rules, volume_mounts, volume_devices, liveness_probe,
        readiness_probe, startup_probe, lifecycle, termination_message_path,
        termination_message_policy, image_pull_policy, security_context, #[omitempty] stdin,
        #[omitempty] stdin_once, #[omitempty] tty,
    }
    core::EphemeralVolumeSource { volume_claim_template }
    core::Event {
        metadata, involved_object, reason, message, source, first_timestamp, last_timestamp,
        #[omitempty] count, r#type, event_time, series, action, related, reporting_component,
        reporting_instance,
    }
    core::EventSeries { #[omitempty] count, last_observed_time }
    core::EventSource { component, host }
    core::ExecAction { command }
    core::FcVolumeSource {
        target_ww_ns = "targetWWNs", lun, fs_type, #[omitempty] read_only, wwids,
    }
    core::FileKeySelector { volume_name, path, key, optional }
    core::FlexVolumeSource { driver, fs_type, secret_ref, #[omitempty] read_only, options }
    core::FlockerVolumeSource { dataset_name, dataset_uuid = "datasetUUID" }
    core::GcePersistentDiskVolumeSource {
        pd_name, fs_type, #[omitempty] partition, #[omitempty] read_only,
    }
    core::GitRepoVolumeSource { repository, revision, directory }
    core::GlusterfsVolumeSource { endpoints, path, #[omitempty] read_only }
    core::GrpcAction { port, service }
    core::HostAlias { ip, hostnames }
    core::HostIp { ip }
    core::HostPathVolumeSource { path, r#type }
    core::HttpGetAction { path, port, host, scheme, http_headers }
    core::HttpHeader { name, value }
    core::ImageVolumeSource { reference, pull_policy }
    core::IscsiVolumeSource {
        target_portal, iqn, lun, iscsi_interface, fs_type, #[omitempty] read_only, portals,
        #[omitempty] chap_auth_discovery, #[omitempty] chap_auth_session, secret_ref,
        initiator_name,
    }
    core::KeyToPath { key, path, mode }
    core::Lifecycle { post_start, pre_stop, stop_signal }
    core::LifecycleHandler { exec, http_get, tcp_socket, sleep }
    core::LinuxContainerUser { uid, gid, supplemental_groups }
    core::LoadBalancerIngress { ip, hostname, ip_mode, ports }
    core::LoadBalancerStatus { ingress }
    core::LocalObjectReference { name }
    core::Namespace { metadata, spec, status }
    core::NamespaceCondition { r#type, status, last_transition_time, reason, message }
    core::NamespaceSpec { finalizers }
    core::NamespaceStatus { phase, conditions }
    core::NfsVolumeSource { server, path, #[omitempty] read_only }
    core::Node { metadata, spec, status }
    core::NodeAddress { r#type, address }
    core::NodeAffinity {
        required_during_scheduling_ignored_during_execution,
        preferred_during_scheduling_ignored_during_execution,
    }
    core::NodeCondition {
        r#type, status, last_heartbeat_time, last_transition_time, reason, message,
    }
    core::NodeConfigSource { config_map }
    core::NodeConfigStatus { assigned, active, last_known_good, error }
    core::NodeDaemonEndpoints { kubelet_endpoint }
    core::NodeFeatures { supplemental_groups_policy }
    core::NodeRuntimeHandler { name, features }
    core::NodeRuntimeHandlerFeatures { recursive_read_only_mounts, user_namespaces }
    core::NodeSelector { node_selector_terms }
    core::NodeSelectorRequirement { key, operator, values }
    core::NodeSelectorTerm { match_expressions, match_fields }
    core::NodeSpec {
        pod_cidr = "podCIDR", pod_cid_rs = "podCIDRs", provider_id = "providerID",
        #[omitempty] unschedulable, taints, config_source, external_id = "externalID",
    }
    core::NodeStatus {
        capacity, allocatable, phase, conditions, addresses, daemon_endpoints, node_info, images,
        volumes_in_use, volumes_attached, config, runtime_handlers, features, declared_features,
    }
    core::NodeSwapStatus { capacity }
    core::NodeSystemInfo {
        machine_id = "machineID", system_uuid = "systemUUID", boot_id = "bootID", kernel_version,
        os_image, container_runtime_version, kubelet_version, kube_proxy_version,
        operating_system, architecture, swap,
    }
    core::ObjectFieldSelector { api_version, field_path }
    core::ObjectReference {
        kind, namespace, name, uid, api_version, resource_version, field_path,
    }
    core::PersistentVolumeClaimSpec {
        access_modes, selector, resources, volume_name, #[pointer] storage_class_name,
        volume_mode, data_source, data_source_ref, #[pointer] volume_attributes_class_name,
    }
    core::PersistentVolumeClaimTemplate { metadata, spec }
    core::PersistentVolumeClaimVolumeSource { claim_name, #[omitempty] read_only }
    core::PhotonPersistentDiskVolumeSource { pd_id = "pdID", fs_type }
    core::Pod { metadata, spec, status }
    core::PodAffinity {
        required_during_scheduling_ignored_during_execution,
        preferred_during_scheduling_ignored_during_execution,
    }
    core::PodAffinityTerm {
        label_selector, namespaces, topology_key, namespace_selector, match_label_keys,
        mismatch_label_keys,
    }
    core::PodAntiAffinity {
        required_during_scheduling_ignored_during_execution,
        preferred_during_scheduling_ignored_during_execution,
    }
    core::PodCertificateProjection {
        signer_name, key_type, max_expiration_seconds, credential_bundle_path, key_path,
        certificate_chain_path, user_annotations,
    }
    core::PodCondition {
        r#type, #[omitempty] observed_generation, status, last_probe_time, last_transition_time,
        reason, message,
    }
    core::PodDnsConfig { nameservers, searches, options }
    core::PodDnsConfigOption { name, value }
    core::PodExtendedResourceClaimStatus { request_mappings, resource_claim_name }
    core::PodIp { ip }
    core::PodOs { name }
    core::PodReadinessGate { condition_type }
    core::PodResourceClaim { name, resource_claim_name, resource_claim_template_name }
    core::PodResourceClaimStatus { name, resource_claim_name }
    core::PodSchedulingGate { name }
    core::PodSecurityContext {
        se_linux_options, windows_options, run_as_user, run_as_group, run_as_non_root,
        supplemental_groups, supplemental_groups_policy, fs_group, sysctls,
        fs_group_change_policy, seccomp_profile, app_armor_profile, se_linux_change_policy,
    }
    core::PodSpec {
        volumes, init_containers, containers, ephemeral_containers, restart_policy,
        termination_grace_period_seconds, active_deadline_seconds, dns_policy, node_selector,
        service_account_name, service_account, automount_service_account_token, node_name,
        #[omitempty] host_network, #[omitempty] host_pid = "hostPID",
        #[omitempty] host_ipc = "hostIPC", share_process_namespace, security_context,
        image_pull_secrets, hostname, subdomain, affinity, scheduler_name, tolerations,
        host_aliases, priority_class_name, priority, dns_config, readiness_gates,
        runtime_class_name, enable_service_links, preemption_policy, overhead,
        topology_spread_constraints, set_hostname_as_fqdn = "setHostnameAsFQDN", os, host_users,
        scheduling_gates, resource_claims, resources, hostname_override, workload_ref,
    }
    core::PodStatus {
        #[omitempty] observed_generation, phase, conditions, message, reason, nominated_node_name,
        host_ip = "hostIP", host_ips = "hostIPs", pod_ip = "podIP", pod_ips = "podIPs", start_time,
        init_container_statuses, container_statuses, qos_class, ephemeral_container_statuses,
        resize, resource_claim_statuses, extended_resource_claim_status, allocated_resources,
        resources,
    }
    core::PodTemplateSpec { metadata, spec }
    core::PortStatus { port, protocol, error }
    core::PortworxVolumeSource { volume_id = "volumeID", fs_type, #[omitempty] read_only }
    core::PreferredSchedulingTerm { weight, preference }
    core::Probe {
        #[inline] handler, #[omitempty] initial_delay_seconds, #[omitempty] timeout_seconds,
        #[omitempty] period_seconds, #[omitempty] success_threshold,
        #[omitempty] failure_threshold, termination_grace_period_seconds,
    }
    core::ProbeHandler { exec, http_get, tcp_socket, grpc }
    core::ProjectedVolumeSource { sources, default_mode }
    core::QuobyteVolumeSource { registry, volume, #[omitempty] read_only, user, group, tenant }
    core::RbdVolumeSource {
        monitors, image, fs_type, pool, user, keyring, secret_ref, #[omitempty] read_only,
    }
    core::ResourceClaim { name, request }
    core::ResourceFieldSelector { container_name, resource, divisor }
    core::ResourceHealth { resource_id = "resourceID", health }
    core::ResourceRequirements { limits, requests, claims }
    core::ResourceStatus { name, resources }
    core::ScaleIoVolumeSource {
        gateway, system, secret_ref, #[omitempty] ssl_enabled, protection_domain, storage_pool,
        storage_mode, volume_name, fs_type, #[omitempty] read_only,
    }
    core::SeLinuxOptions { user, role, r#type, level }
    core::SeccompProfile { r#type, localhost_profile }
    core::Secret { metadata, immutable, data, string_data, r#type }
    core::SecretEnvSource { #[inline] local_object_reference, optional }
    core::SecretKeySelector { #[inline] local_object_reference, key, optional }
    core::SecretProjection { #[inline] local_object_reference, items, optional }
    core::SecretVolumeSource { secret_name, items, default_mode, optional }
    core::SecurityContext {
        capabilities, privileged, se_linux_options, windows_options, run_as_user, run_as_group,
        run_as_non_root, read_only_root_filesystem, allow_privilege_escalation, proc_mount,
        seccomp_profile, app_armor_profile,
    }
    core::Service { metadata, spec, status }
    core::ServiceAccountTokenProjection { audience, expiration_seconds, path }
    core::ServicePort { name, protocol, app_protocol, port, target_port, #[omitempty] node_port }
    core::ServiceSpec {
        ports, selector, cluster_ip = "clusterIP", cluster_ips = "clusterIPs", r#type,
        external_ips = "externalIPs", session_affinity, load_balancer_ip = "loadBalancerIP",
        load_balancer_source_ranges, external_name, external_traffic_policy,
        #[omitempty] health_check_node_port, #[omitempty] publish_not_ready_addresses,
        session_affinity_config, ip_families, ip_family_policy, allocate_load_balancer_node_ports,
        load_balancer_class, internal_traffic_policy, traffic_distribution,
    }
    core::ServiceStatus { load_balancer, conditions }
    core::SessionAffinityConfig { client_ip = "clientIP" }
    core::SleepAction { seconds }
    core::StorageOsVolumeSource {
        volume_name, volume_namespace, fs_type, #[omitempty] read_only, secret_ref,
    }
    core::Sysctl { name, value }
    core::Taint { key, value, effect, time_added }
    core::TcpSocketAction { port, host }
    core::Toleration { key, operator, value, effect, toleration_seconds }
    core::TopologySpreadConstraint {
        max_skew, topology_key, when_unsatisfiable, label_selector, min_domains,
        node_affinity_policy, node_taints_policy, match_label_keys,
    }
    core::TypedLocalObjectReference { api_group, kind, name }
    core::TypedObjectReference { api_group, kind, name, namespace }
    core::Volume { name, #[inline] volume_source }
    core::VolumeDevice { name, device_path }
    core::VolumeMount {
        name, #[omitempty] read_only, recursive_read_only, mount_path, sub_path, mount_propagation,
        sub_path_expr,
    }
    core::VolumeMountStatus { name, mount_path, #[omitempty] read_only, recursive_read_only }
    core::VolumeProjection {
        secret, downward_api = "downwardAPI", config_map, service_account_token,
        cluster_trust_bundle, pod_certificate,
    }
    core::VolumeResourceRequirements { limits, requests }
    core::VolumeSource {
        host_path, empty_dir, gce_persistent_disk, aws_elastic_block_store, git_repo, secret, nfs,
        iscsi, glusterfs, persistent_volume_claim, rbd, flex_volume, cinder, cephfs, flocker,
        downward_api = "downwardAPI", fc, azure_file, config_map, vsphere_volume, quobyte,
        azure_disk, photon_persistent_disk, projected, portworx_volume, scale_io = "scaleIO",
        storageos, csi, ephemeral, image,
    }
    core::VsphereVirtualDiskVolumeSource {
        volume_path, fs_type, storage_policy_name, storage_policy_id = "storagePolicyID",
    }
    core::WeightedPodAffinityTerm { weight, pod_affinity_term }
    core::WindowsSecurityContextOptions {
        gmsa_credential_spec_name, gmsa_credential_spec, run_as_user_name, host_process,
    }
    core::WorkloadReference { name, pod_group, pod_group_replica_key }

    apps::Deployment { metadata, spec, status }
    apps::DeploymentCondition {
        r#type, status, last_update_time, last_transition_time, reason, message,
    }
    apps::DeploymentSpec {
        replicas, selector, template, strategy, #[omitempty] min_ready_seconds,
        revision_history_limit, #[omitempty] paused, progress_deadline_seconds,
    }
    apps::DeploymentStatus {
        #[omitempty] observed_generation, #[omitempty] replicas, #[omitempty] updated_replicas,
        #[omitempty] ready_replicas, #[omitempty] available_replicas,
        #[omitempty] unavailable_replicas, terminating_replicas, conditions, collision_count,
    }
    apps::DeploymentStrategy { r#type, rolling_update }
    apps::ReplicaSet { metadata, spec, status }
    apps::ReplicaSetCondition { r#type, status, last_transition_time, reason, message }
    apps::ReplicaSetSpec { replicas, #[omitempty] min_ready_seconds, selector, template }
    apps::ReplicaSetStatus {
        replicas, #[omitempty] fully_labeled_replicas, #[omitempty] ready_replicas,
        #[omitempty] available_replicas, terminating_replicas, #[omitempty] observed_generation,
        conditions,
    }
    apps::RollingUpdateDeployment { max_unavailable, max_surge }

    discovery::Endpoint {
        addresses, conditions, hostname, target_ref, deprecated_topology, node_name, zone, hints,
    }
    discovery::EndpointConditions { ready, serving, terminating }
    discovery::EndpointHints { for_zones, for_nodes }
    discovery::EndpointPort { #[pointer] name, protocol, port, app_protocol }
    discovery::EndpointSlice { metadata, address_type, endpoints, ports }
    discovery::ForNode { name }
    discovery::ForZone { name }

    coordination::Lease { metadata, spec }
    coordination::LeaseSpec {
        #[pointer] holder_identity, lease_duration_seconds, acquire_time, renew_time,
        lease_transitions, strategy, preferred_holder,
    }

    node::Overhead { pod_fixed }
    node::RuntimeClass { metadata, handler, overhead, scheduling }
    node::Scheduling { node_selector, tolerations }

    authorization::FieldSelectorAttributes { raw_selector, requirements }
    authorization::LabelSelectorAttributes { raw_selector, requirements }
    authorization::NonResourceAttributes { path, verb }
    authorization::NonResourceRule { verbs, non_resource_ur_ls = "nonResourceURLs" }
    authorization::ResourceAttributes {
        namespace, verb, group, version, resource, subresource, name, field_selector,
        label_selector,
    }
    authorization::ResourceRule { verbs, api_groups, resources, resource_names }
    authorization::SelfSubjectAccessReview { metadata, spec, status }
    authorization::SelfSubjectAccessReviewSpec { resource_attributes, non_resource_attributes }
    authorization::SelfSubjectRulesReview { metadata, spec, status }
    authorization::SelfSubjectRulesReviewSpec { namespace }
    authorization::SubjectAccessReviewStatus { allowed, #[omitempty] denied, reason, evaluation_error }
    authorization::SubjectRulesReviewStatus {
        resource_rules, non_resource_rules, incomplete, evaluation_error,
    }

    authentication::BoundObjectReference { kind, api_version, name, u_id = "uid" }
    authentication::SelfSubjectReview { metadata, status }
    authentication::SelfSubjectReviewStatus { user_info }
    authentication::TokenRequest { metadata, spec, status }
    authentication::TokenRequestSpec { audiences, expiration_seconds, bound_object_ref }
    authentication::TokenRequestStatus { token, expiration_timestamp }
    authentication::UserInfo { username, uid, groups, extra }

    autoscaling::Scale { metadata, spec, status }
    autoscaling::ScaleSpec { #[omitempty] replicas }
    autoscaling::ScaleStatus { replicas, selector }

    policy::Eviction { metadata, delete_options }

    meta::Condition {
        r#type, status, #[omitempty] observed_generation, last_transition_time, reason, message,
    }
    meta::DeleteOptions {
        grace_period_seconds, preconditions, orphan_dependents, propagation_policy, dry_run,
        ignore_store_read_error_with_cluster_breaking_potential,
    }
    meta::FieldSelectorRequirement { key, operator, values }
    meta::LabelSelector { match_labels, match_expressions }
    meta::LabelSelectorRequirement { key, operator, values }
    meta::ManagedFieldsEntry {
        manager, operation, api_version, time, fields_type, fields_v1, subresource,
    }
    meta::ObjectMeta {
        name, generate_name, namespace, self_link, uid, resource_version,
        #[omitempty] generation, creation_timestamp, deletion_timestamp,
        deletion_grace_period_seconds, labels, annotations, owner_references, finalizers,
        managed_fields,
    }
    meta::OwnerReference { api_version, kind, name, uid, controller, block_owner_deletion }
    meta::Preconditions { uid, resource_version }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use k8s_openapi::schemars::SchemaGenerator;
    use serde_json::json;

    use super::*;

    /// A field of the table, for the checks against Kubernetes' OpenAPI.
    #[derive(Debug)]
    pub(super) enum FieldName {
        /// A field written under this JSON name.
        Named(String),
        /// An embedded struct's fields, written into the enclosing object.
        Inline(Vec<FieldName>),
    }

    /// A message of the table.
    pub(super) trait Described {
        /// Its fields, in the table's order.
        fn fields() -> Vec<FieldName>;
    }

    pub(super) fn inline_fields<T: Described>(_: &Option<T>) -> Vec<FieldName> {
        T::fields()
    }

    fn envelope(api_version: &str, kind: &str, raw: Vec<u8>) -> Vec<u8> {
        let unknown = runtime::Unknown {
            type_meta: Some(runtime::TypeMeta {
                api_version: Some(api_version.to_owned()),
                kind: Some(kind.to_owned()),
            }),
            raw: Some(raw),
            content_encoding: Some(String::new()),
            content_type: Some(String::new()),
        };
        [MAGIC, &unknown.encode_to_vec()].concat()
    }

    fn encode<M: Message>(api_version: &str, kind: &str, message: &M) -> Vec<u8> {
        envelope(api_version, kind, message.encode_to_vec())
    }

    /// Decodes `bytes`, asserts the JSON, and returns it.
    fn check(bytes: &[u8], expected: Value) -> Value {
        let decoded = decode(bytes).unwrap_or_else(|error| panic!("decode failed: {error}"));
        assert_eq!(
            decoded,
            expected,
            "decoded:\n{}",
            serde_json::to_string_pretty(&decoded).unwrap()
        );
        decoded
    }

    fn some(text: &str) -> Option<String> {
        Some(text.to_owned())
    }

    /// ObjectMeta as Go's encoder writes it for a new object: every
    /// non-pointer field, zero or not, and the zero creation time.
    fn object_meta(name: &str, namespace: &str) -> meta::ObjectMeta {
        meta::ObjectMeta {
            name: some(name),
            generate_name: some(""),
            namespace: some(namespace),
            self_link: some(""),
            uid: some(""),
            resource_version: some(""),
            generation: Some(0),
            creation_timestamp: Some(meta::Time::default()),
            ..Default::default()
        }
    }

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(key, value)| (key.to_string(), value.to_string()))
            .collect()
    }

    fn quantities(pairs: &[(&str, &str)]) -> BTreeMap<String, resource::Quantity> {
        pairs
            .iter()
            .map(|(key, value)| {
                (
                    key.to_string(),
                    resource::Quantity {
                        string: some(value),
                    },
                )
            })
            .collect()
    }

    #[test]
    fn config_map() {
        let config_map = core::ConfigMap {
            metadata: Some(meta::ObjectMeta {
                labels: labels(&[("app", "web")]),
                annotations: labels(&[("note", "")]),
                ..object_meta("settings", "default")
            }),
            immutable: Some(false),
            data: labels(&[("a", "b"), ("empty", "")]),
            binary_data: BTreeMap::new(),
        };
        let decoded = check(
            &encode("v1", "ConfigMap", &config_map),
            json!({
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {
                    "name": "settings",
                    "namespace": "default",
                    "creationTimestamp": null,
                    "labels": {"app": "web"},
                    "annotations": {"note": ""},
                },
                "immutable": false,
                "data": {"a": "b", "empty": ""},
            }),
        );
        let typed: k8s_openapi::api::core::v1::ConfigMap = serde_json::from_value(decoded).unwrap();
        assert_eq!(typed.immutable, Some(false));
        assert_eq!(typed.data.unwrap()["empty"], "");
    }

    #[test]
    fn secret_with_binary_data() {
        let secret = core::Secret {
            metadata: Some(object_meta("creds", "default")),
            immutable: None,
            data: [
                ("blob".to_owned(), vec![0u8, 159, 146, 150, 255]),
                ("empty".to_owned(), vec![]),
            ]
            .into(),
            string_data: labels(&[("plain", "text")]),
            r#type: some("Opaque"),
        };
        let decoded = check(
            &encode("v1", "Secret", &secret),
            json!({
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": "creds", "namespace": "default", "creationTimestamp": null},
                "data": {"blob": "AJ+Slv8=", "empty": ""},
                "stringData": {"plain": "text"},
                "type": "Opaque",
            }),
        );
        let typed: k8s_openapi::api::core::v1::Secret = serde_json::from_value(decoded).unwrap();
        assert_eq!(typed.data.unwrap()["blob"].0, [0u8, 159, 146, 150, 255]);
    }

    fn int_or_string_int(value: i32) -> Option<intstr::IntOrString> {
        Some(intstr::IntOrString {
            r#type: Some(0),
            int_val: Some(value),
            str_val: some(""),
        })
    }

    fn int_or_string_str(value: &str) -> Option<intstr::IntOrString> {
        Some(intstr::IntOrString {
            r#type: Some(1),
            int_val: Some(0),
            str_val: some(value),
        })
    }

    #[test]
    fn deployment_with_a_pod_template() {
        let container = core::Container {
            name: some("web"),
            image: some("nginx:1.27"),
            command: vec![
                "nginx".to_owned(),
                "-g".to_owned(),
                "daemon off;".to_owned(),
            ],
            working_dir: some(""),
            ports: vec![core::ContainerPort {
                name: some("http"),
                host_port: Some(0),
                container_port: Some(80),
                protocol: some("TCP"),
                host_ip: some(""),
            }],
            env: vec![
                core::EnvVar {
                    name: some("MODE"),
                    value: some("prod"),
                    value_from: None,
                },
                core::EnvVar {
                    name: some("EMPTY"),
                    value: some(""),
                    value_from: None,
                },
                core::EnvVar {
                    name: some("FROM_SECRET"),
                    value: some(""),
                    value_from: Some(core::EnvVarSource {
                        secret_key_ref: Some(core::SecretKeySelector {
                            local_object_reference: Some(core::LocalObjectReference {
                                name: some("creds"),
                            }),
                            key: some("token"),
                            optional: Some(false),
                        }),
                        ..Default::default()
                    }),
                },
            ],
            resources: Some(core::ResourceRequirements {
                limits: quantities(&[("cpu", "500m"), ("memory", "128Mi")]),
                requests: quantities(&[("cpu", "250m")]),
                claims: vec![],
            }),
            readiness_probe: Some(core::Probe {
                handler: Some(core::ProbeHandler {
                    http_get: Some(core::HttpGetAction {
                        path: some("/healthz"),
                        port: int_or_string_str("http"),
                        host: some(""),
                        scheme: some("HTTP"),
                        http_headers: vec![],
                    }),
                    ..Default::default()
                }),
                initial_delay_seconds: Some(0),
                timeout_seconds: Some(1),
                period_seconds: Some(10),
                success_threshold: Some(1),
                failure_threshold: Some(3),
                termination_grace_period_seconds: None,
            }),
            termination_message_path: some("/dev/termination-log"),
            image_pull_policy: some("IfNotPresent"),
            security_context: Some(core::SecurityContext {
                run_as_user: Some(0),
                allow_privilege_escalation: Some(false),
                ..Default::default()
            }),
            stdin: Some(false),
            stdin_once: Some(false),
            tty: Some(false),
            ..Default::default()
        };
        let deployment = apps::Deployment {
            metadata: Some(meta::ObjectMeta {
                labels: labels(&[("app", "web")]),
                ..object_meta("web", "default")
            }),
            spec: Some(apps::DeploymentSpec {
                replicas: Some(0),
                selector: Some(meta::LabelSelector {
                    match_labels: labels(&[("app", "web")]),
                    match_expressions: vec![],
                }),
                template: Some(core::PodTemplateSpec {
                    metadata: Some(meta::ObjectMeta {
                        labels: labels(&[("app", "web")]),
                        ..object_meta("", "")
                    }),
                    spec: Some(core::PodSpec {
                        volumes: vec![core::Volume {
                            name: some("cache"),
                            volume_source: Some(core::VolumeSource {
                                empty_dir: Some(core::EmptyDirVolumeSource {
                                    medium: some(""),
                                    size_limit: Some(resource::Quantity {
                                        string: some("1Gi"),
                                    }),
                                }),
                                ..Default::default()
                            }),
                        }],
                        containers: vec![container],
                        restart_policy: some("Always"),
                        termination_grace_period_seconds: Some(0),
                        dns_policy: some(""),
                        service_account_name: some(""),
                        automount_service_account_token: Some(false),
                        node_name: some(""),
                        host_network: Some(false),
                        host_pid: Some(false),
                        host_ipc: Some(false),
                        hostname: some(""),
                        subdomain: some(""),
                        scheduler_name: some(""),
                        priority_class_name: some(""),
                        ..Default::default()
                    }),
                }),
                strategy: Some(apps::DeploymentStrategy {
                    r#type: some("RollingUpdate"),
                    rolling_update: Some(apps::RollingUpdateDeployment {
                        max_unavailable: int_or_string_int(0),
                        max_surge: int_or_string_str("25%"),
                    }),
                }),
                min_ready_seconds: Some(0),
                revision_history_limit: Some(0),
                paused: Some(false),
                progress_deadline_seconds: None,
            }),
            status: Some(apps::DeploymentStatus {
                observed_generation: Some(0),
                replicas: Some(0),
                updated_replicas: Some(0),
                ready_replicas: Some(0),
                available_replicas: Some(0),
                unavailable_replicas: Some(0),
                ..Default::default()
            }),
        };
        let decoded = check(
            &encode("apps/v1", "Deployment", &deployment),
            json!({
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {
                    "name": "web",
                    "namespace": "default",
                    "creationTimestamp": null,
                    "labels": {"app": "web"},
                },
                "spec": {
                    "replicas": 0,
                    "revisionHistoryLimit": 0,
                    "selector": {"matchLabels": {"app": "web"}},
                    "strategy": {
                        "type": "RollingUpdate",
                        "rollingUpdate": {"maxUnavailable": 0, "maxSurge": "25%"},
                    },
                    "template": {
                        "metadata": {"creationTimestamp": null, "labels": {"app": "web"}},
                        "spec": {
                            "volumes": [
                                {"name": "cache", "emptyDir": {"sizeLimit": "1Gi"}},
                            ],
                            "containers": [{
                                "name": "web",
                                "image": "nginx:1.27",
                                "command": ["nginx", "-g", "daemon off;"],
                                "ports": [
                                    {"name": "http", "containerPort": 80, "protocol": "TCP"},
                                ],
                                "env": [
                                    {"name": "MODE", "value": "prod"},
                                    {"name": "EMPTY"},
                                    {
                                        "name": "FROM_SECRET",
                                        "valueFrom": {"secretKeyRef": {
                                            "name": "creds",
                                            "key": "token",
                                            "optional": false,
                                        }},
                                    },
                                ],
                                "resources": {
                                    "limits": {"cpu": "500m", "memory": "128Mi"},
                                    "requests": {"cpu": "250m"},
                                },
                                "readinessProbe": {
                                    "httpGet": {"path": "/healthz", "port": "http", "scheme": "HTTP"},
                                    "timeoutSeconds": 1,
                                    "periodSeconds": 10,
                                    "successThreshold": 1,
                                    "failureThreshold": 3,
                                },
                                "terminationMessagePath": "/dev/termination-log",
                                "imagePullPolicy": "IfNotPresent",
                                "securityContext": {
                                    "runAsUser": 0,
                                    "allowPrivilegeEscalation": false,
                                },
                            }],
                            "restartPolicy": "Always",
                            "terminationGracePeriodSeconds": 0,
                            "automountServiceAccountToken": false,
                        },
                    },
                },
                "status": {},
            }),
        );
        let typed: k8s_openapi::api::apps::v1::Deployment =
            serde_json::from_value(decoded).unwrap();
        let spec = typed.spec;
        assert_eq!(spec.replicas, Some(0));
        let container = &spec.template.spec.unwrap().containers[0];
        assert_eq!(
            container
                .resources
                .as_ref()
                .unwrap()
                .limits
                .as_ref()
                .unwrap()["memory"],
            k8s_openapi::apimachinery::pkg::api::resource::Quantity("128Mi".to_owned())
        );
    }

    #[test]
    fn service_with_int_or_string_target_ports() {
        let port = |name: &str, port: i32, target: Option<intstr::IntOrString>| core::ServicePort {
            name: some(name),
            protocol: some("TCP"),
            app_protocol: None,
            port: Some(port),
            target_port: target,
            node_port: Some(0),
        };
        let service = core::Service {
            metadata: Some(object_meta("web", "default")),
            spec: Some(core::ServiceSpec {
                ports: vec![
                    port("http", 80, int_or_string_int(8080)),
                    port("admin", 9000, int_or_string_str("admin")),
                ],
                selector: labels(&[("app", "web")]),
                cluster_ip: some(""),
                r#type: some("ClusterIP"),
                session_affinity: some(""),
                load_balancer_ip: some(""),
                external_name: some(""),
                external_traffic_policy: some(""),
                health_check_node_port: Some(0),
                publish_not_ready_addresses: Some(false),
                ..Default::default()
            }),
            status: Some(core::ServiceStatus {
                load_balancer: Some(core::LoadBalancerStatus::default()),
                conditions: vec![],
            }),
        };
        let decoded = check(
            &encode("v1", "Service", &service),
            json!({
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": "web", "namespace": "default", "creationTimestamp": null},
                "spec": {
                    "ports": [
                        {"name": "http", "protocol": "TCP", "port": 80, "targetPort": 8080},
                        {"name": "admin", "protocol": "TCP", "port": 9000, "targetPort": "admin"},
                    ],
                    "selector": {"app": "web"},
                    "type": "ClusterIP",
                },
                "status": {"loadBalancer": {}},
            }),
        );
        let typed: k8s_openapi::api::core::v1::Service = serde_json::from_value(decoded).unwrap();
        use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
        let ports = typed.spec.unwrap().ports.unwrap();
        assert_eq!(ports[0].target_port, Some(IntOrString::Int(8080)));
        assert_eq!(
            ports[1].target_port,
            Some(IntOrString::String("admin".to_owned()))
        );
    }

    #[test]
    fn self_subject_access_review() {
        let review = authorization::SelfSubjectAccessReview {
            metadata: Some(object_meta("", "")),
            spec: Some(authorization::SelfSubjectAccessReviewSpec {
                resource_attributes: Some(authorization::ResourceAttributes {
                    namespace: some("default"),
                    verb: some("get"),
                    group: some(""),
                    version: some(""),
                    resource: some("pods"),
                    subresource: some(""),
                    name: some(""),
                    field_selector: None,
                    label_selector: None,
                }),
                non_resource_attributes: None,
            }),
            status: Some(authorization::SubjectAccessReviewStatus {
                allowed: Some(false),
                denied: Some(false),
                reason: some(""),
                evaluation_error: some(""),
            }),
        };
        let decoded = check(
            &encode(
                "authorization.k8s.io/v1",
                "SelfSubjectAccessReview",
                &review,
            ),
            json!({
                "apiVersion": "authorization.k8s.io/v1",
                "kind": "SelfSubjectAccessReview",
                "metadata": {"creationTimestamp": null},
                "spec": {"resourceAttributes": {
                    "namespace": "default",
                    "verb": "get",
                    "resource": "pods",
                }},
                "status": {"allowed": false},
            }),
        );
        let typed: k8s_openapi::api::authorization::v1::SelfSubjectAccessReview =
            serde_json::from_value(decoded).unwrap();
        assert_eq!(
            typed.spec.resource_attributes.unwrap().resource.as_deref(),
            Some("pods")
        );
    }

    #[test]
    fn delete_options_in_any_group_version() {
        let options = meta::DeleteOptions {
            grace_period_seconds: Some(0),
            preconditions: Some(meta::Preconditions {
                uid: some("5c1d"),
                resource_version: None,
            }),
            orphan_dependents: None,
            propagation_policy: some("Foreground"),
            dry_run: vec!["All".to_owned()],
            ignore_store_read_error_with_cluster_breaking_potential: None,
        };
        for api_version in ["v1", "apps/v1", "meta.k8s.io/v1"] {
            let decoded = check(
                &encode(api_version, "DeleteOptions", &options),
                json!({
                    "apiVersion": api_version,
                    "kind": "DeleteOptions",
                    "gracePeriodSeconds": 0,
                    "preconditions": {"uid": "5c1d"},
                    "propagationPolicy": "Foreground",
                    "dryRun": ["All"],
                }),
            );
            let typed: k8s_openapi::apimachinery::pkg::apis::meta::v1::DeleteOptions =
                serde_json::from_value(decoded).unwrap();
            assert_eq!(typed.grace_period_seconds, Some(0));
        }
    }

    #[test]
    fn lease_with_micro_times_and_a_released_holder() {
        let lease = coordination::Lease {
            metadata: Some(meta::ObjectMeta {
                creation_timestamp: Some(meta::Time {
                    seconds: Some(1_700_000_000),
                    nanos: Some(999_999_999),
                }),
                deletion_timestamp: Some(meta::Time {
                    seconds: Some(GO_ZERO_TIME_SECONDS),
                    nanos: Some(0),
                }),
                ..object_meta("leader", "kube-system")
            }),
            spec: Some(coordination::LeaseSpec {
                holder_identity: some(""),
                lease_duration_seconds: Some(15),
                acquire_time: Some(meta::MicroTime {
                    seconds: Some(1_700_000_000),
                    nanos: Some(123_456_789),
                }),
                renew_time: Some(meta::MicroTime {
                    seconds: Some(0),
                    nanos: Some(0),
                }),
                lease_transitions: Some(0),
                strategy: None,
                preferred_holder: None,
            }),
        };
        let decoded = check(
            &encode("coordination.k8s.io/v1", "Lease", &lease),
            json!({
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {
                    "name": "leader",
                    "namespace": "kube-system",
                    "creationTimestamp": "2023-11-14T22:13:20Z",
                    "deletionTimestamp": null,
                },
                "spec": {
                    "holderIdentity": "",
                    "leaseDurationSeconds": 15,
                    "acquireTime": "2023-11-14T22:13:20.123456Z",
                    "renewTime": "1970-01-01T00:00:00.000000Z",
                    "leaseTransitions": 0,
                },
            }),
        );
        let typed: k8s_openapi::api::coordination::v1::Lease =
            serde_json::from_value(decoded).unwrap();
        assert_eq!(typed.spec.unwrap().holder_identity.as_deref(), Some(""));
    }

    #[test]
    fn managed_fields_and_owner_references() {
        let config_map = core::ConfigMap {
            metadata: Some(meta::ObjectMeta {
                owner_references: vec![meta::OwnerReference {
                    api_version: some("apps/v1"),
                    kind: some("ReplicaSet"),
                    name: some("web-1"),
                    uid: some("u1"),
                    controller: Some(true),
                    block_owner_deletion: Some(false),
                }],
                managed_fields: vec![meta::ManagedFieldsEntry {
                    manager: some("kubectl"),
                    operation: some("Update"),
                    api_version: some("v1"),
                    time: Some(meta::Time {
                        seconds: Some(0),
                        nanos: Some(0),
                    }),
                    fields_type: some("FieldsV1"),
                    fields_v1: Some(meta::FieldsV1 {
                        raw: Some(br#"{"f:data":{".":{},"f:a":{}}}"#.to_vec()),
                    }),
                    subresource: some(""),
                }],
                ..object_meta("settings", "default")
            }),
            ..Default::default()
        };
        let decoded = check(
            &encode("v1", "ConfigMap", &config_map),
            json!({
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {
                    "name": "settings",
                    "namespace": "default",
                    "creationTimestamp": null,
                    "ownerReferences": [{
                        "apiVersion": "apps/v1",
                        "kind": "ReplicaSet",
                        "name": "web-1",
                        "uid": "u1",
                        "controller": true,
                        "blockOwnerDeletion": false,
                    }],
                    "managedFields": [{
                        "manager": "kubectl",
                        "operation": "Update",
                        "apiVersion": "v1",
                        "time": "1970-01-01T00:00:00Z",
                        "fieldsType": "FieldsV1",
                        "fieldsV1": {"f:data": {".": {}, "f:a": {}}},
                    }],
                },
            }),
        );
        serde_json::from_value::<k8s_openapi::api::core::v1::ConfigMap>(decoded).unwrap();
    }

    #[test]
    fn embedded_objects_are_json_or_protobuf() {
        assert_eq!(embedded(None).unwrap(), Value::Null);
        assert_eq!(embedded(Some(b"")).unwrap(), Value::Null);
        assert_eq!(embedded(Some(br#"{"a":[1]}"#)).unwrap(), json!({"a": [1]}));
        let nested = encode("v1", "Namespace", &core::Namespace::default());
        assert_eq!(
            embedded(Some(&nested)).unwrap(),
            json!({"apiVersion": "v1", "kind": "Namespace"})
        );
        assert!(matches!(
            embedded(Some(b"not json")),
            Err(ProtobufError::EmbeddedJson(_))
        ));
    }

    #[test]
    fn durations_as_go_writes_them() {
        for (nanoseconds, text) in [
            (0, "0s"),
            (1, "1ns"),
            (999, "999ns"),
            (1_500, "1.5µs"),
            (1_000_000, "1ms"),
            (100_000_000, "100ms"),
            (1_500_000_000, "1.5s"),
            (60_000_000_000, "1m0s"),
            (3_600_000_000_000, "1h0m0s"),
            (3_723_500_000_000, "1h2m3.5s"),
            (-90_000_000_000, "-1m30s"),
            (i64::MIN, "-2562047h47m16.854775808s"),
        ] {
            assert_eq!(go_duration(nanoseconds), text, "{nanoseconds}ns");
            let duration = meta::Duration {
                duration: Some(nanoseconds),
            };
            assert_eq!(duration.to_json().unwrap(), Value::from(text));
        }
    }

    #[test]
    fn times_outside_jiffs_range_fail() {
        let time = meta::Time {
            seconds: Some(i64::MAX),
            nanos: Some(0),
        };
        assert!(matches!(
            time.to_json(),
            Err(ProtobufError::TimeOutOfRange { .. })
        ));
    }

    #[test]
    fn bad_input_fails_clearly() {
        let config_map = encode("v1", "ConfigMap", &core::ConfigMap::default());
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (b"{\"kind\":\"ConfigMap\"}".to_vec(), "MissingMagic"),
            (b"k8s".to_vec(), "MissingMagic"),
            ([MAGIC, &[0x0a, 0x05, 0x0a][..]].concat(), "Malformed"),
            (config_map[..config_map.len() - 3].to_vec(), "Malformed"),
            (
                envelope("v1", "ConfigMap", vec![0x0a, 0x02, 0x0a, 0x80]),
                "Malformed",
            ),
            (envelope("v1", "", vec![]), "MissingKind"),
            (envelope("v1", "Widget", vec![]), "UnknownKind"),
            (envelope("v2", "ConfigMap", vec![]), "UnknownKind"),
            (
                {
                    let unknown = runtime::Unknown {
                        type_meta: Some(runtime::TypeMeta {
                            api_version: some("v1"),
                            kind: some("ConfigMap"),
                        }),
                        raw: Some(vec![]),
                        content_encoding: some("gzip"),
                        content_type: None,
                    };
                    [MAGIC, &unknown.encode_to_vec()].concat()
                },
                "UnsupportedEncoding",
            ),
            (
                encode(
                    "v1",
                    "Service",
                    &core::Service {
                        spec: Some(core::ServiceSpec {
                            ports: vec![core::ServicePort {
                                target_port: Some(intstr::IntOrString {
                                    r#type: Some(7),
                                    ..Default::default()
                                }),
                                ..Default::default()
                            }],
                            ..Default::default()
                        }),
                        ..Default::default()
                    },
                ),
                "IntOrStringType",
            ),
        ];
        for (bytes, expected) in cases {
            let error = decode(&bytes).expect_err(expected);
            let debug = format!("{error:?}");
            assert!(
                debug.starts_with(expected),
                "expected {expected}, got {debug} ({error})"
            );
        }
    }

    #[test]
    fn an_empty_object_has_only_its_type() {
        for decoder in DECODERS.iter().chain([&DELETE_OPTIONS]) {
            let api_version = if decoder.api_version.is_empty() {
                "v1"
            } else {
                decoder.api_version
            };
            check(
                &envelope(api_version, decoder.kind, vec![]),
                json!({"apiVersion": api_version, "kind": decoder.kind}),
            );
        }
    }

    /// Fields of k8s-pb's Kubernetes 1.35 that Kubernetes 1.37 dropped.
    const DROPPED_SINCE_1_35: &[&str] = &["io.k8s.api.core.v1.PodSpec.workloadRef"];

    /// Every JSON name of the table is a property of the message's schema
    /// in Kubernetes' OpenAPI (k8s-openapi's), an embedded struct's fields
    /// being properties of the enclosing message's.
    #[test]
    fn json_names_are_kubernetes_openapi_properties() {
        use k8s_openapi::api;
        let mut generator = SchemaGenerator::default();
        generator.subschema_for::<api::core::v1::Pod>();
        generator.subschema_for::<api::core::v1::Node>();
        generator.subschema_for::<api::core::v1::Service>();
        generator.subschema_for::<api::core::v1::Endpoints>();
        generator.subschema_for::<api::core::v1::Event>();
        generator.subschema_for::<api::core::v1::Secret>();
        generator.subschema_for::<api::core::v1::ConfigMap>();
        generator.subschema_for::<api::core::v1::Namespace>();
        generator.subschema_for::<api::core::v1::Binding>();
        generator.subschema_for::<api::apps::v1::Deployment>();
        generator.subschema_for::<api::apps::v1::ReplicaSet>();
        generator.subschema_for::<api::discovery::v1::EndpointSlice>();
        generator.subschema_for::<api::coordination::v1::Lease>();
        generator.subschema_for::<api::node::v1::RuntimeClass>();
        generator.subschema_for::<api::authorization::v1::SelfSubjectAccessReview>();
        generator.subschema_for::<api::authorization::v1::SelfSubjectRulesReview>();
        generator.subschema_for::<api::authentication::v1::TokenRequest>();
        generator.subschema_for::<api::authentication::v1::SelfSubjectReview>();
        generator.subschema_for::<api::autoscaling::v1::Scale>();
        generator.subschema_for::<api::policy::v1::Eviction>();
        // Keyed in lowercase: prost renames `AWSElasticBlockStoreVolumeSource`.
        let definitions: BTreeMap<String, (String, Value)> = generator
            .take_definitions(true)
            .into_iter()
            .map(|(name, schema)| (name.to_lowercase(), (name, schema)))
            .collect();

        fn check_fields(
            definition: &str,
            schema: &Value,
            fields: &[FieldName],
            problems: &mut Vec<String>,
        ) {
            for field in fields {
                match field {
                    FieldName::Named(name) => {
                        let path = format!("{definition}.{name}");
                        if schema["properties"].get(name).is_none()
                            && !DROPPED_SINCE_1_35.contains(&path.as_str())
                        {
                            problems.push(path);
                        }
                    }
                    FieldName::Inline(fields) => check_fields(definition, schema, fields, problems),
                }
            }
        }

        let mut problems = Vec::new();
        let mut checked = 0;
        for (type_name, fields) in described() {
            let name = format!(
                "io.k8s.{}",
                type_name
                    .strip_prefix("k8s_pb::")
                    .unwrap()
                    .replace("::", ".")
            );
            match definitions.get(&name.to_lowercase()) {
                Some((definition, schema)) => {
                    check_fields(definition, schema, &fields, &mut problems);
                    checked += 1;
                }
                // Embedded structs and dropped types have no schema of
                // their own (an embedded one is checked in its parent's).
                None => assert!(
                    [
                        "io.k8s.api.core.v1.VolumeSource",
                        "io.k8s.api.core.v1.ProbeHandler",
                        "io.k8s.api.core.v1.EphemeralContainerCommon",
                        "io.k8s.api.core.v1.WorkloadReference",
                    ]
                    .contains(&name.as_str()),
                    "no OpenAPI schema named {name}"
                ),
            }
        }
        assert!(
            problems.is_empty(),
            "not in Kubernetes' OpenAPI: {problems:#?}"
        );
        assert!(checked > 200, "checked only {checked} messages");
    }
}
