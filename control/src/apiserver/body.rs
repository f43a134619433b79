//! Request bodies and response formats: reading a body within a size limit,
//! choosing the decoder from `Content-Type`, parsing JSON or YAML into a
//! `serde_json::Value` without letting a hostile body cost more than its
//! size, decoding typed objects under Kubernetes' field validation
//! (`fieldValidation=Ignore|Warn|Strict`), and negotiating the response
//! format from `Accept`. Everything but [`read_body`] is pure.
//!
//! Status codes and messages follow kube-apiserver 1.30+: 413 for oversize
//! bodies, 415 "the body of the request was in an unknown format - accepted
//! media types include: ..." for content types it does not decode, 400 for
//! bodies that do not parse or decode, and 406 "only the following media
//! types are accepted: ..." when nothing in `Accept` can be served.

use std::collections::HashSet;
use std::fmt;

use axum::body::Body;
use bytes::{Bytes, BytesMut};
use http::HeaderValue;
use http_body_util::BodyExt;
use serde::de::{self, DeserializeOwned, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

use super::error::ApiError;
use super::protobuf::{self, ProtobufError};

/// The largest request body accepted, as kube-apiserver's
/// `MaxRequestBodyBytes` (3 MiB: twice etcd's recommended 1.5 MiB request).
pub const MAX_BODY_BYTES: usize = 3 * 1024 * 1024;

/// How deeply arrays and objects may nest in a body or a patched object.
///
/// Kubernetes' Go decoder allows 10,000 levels; serde_json stops at 127
/// (more would need a growable stack), and real objects stay far below 100:
/// a CRD whose schema is 30 properties deep is about 65 levels. One limit,
/// checked by our own parser, gives JSON and YAML the same error.
pub const MAX_NESTING_DEPTH: usize = 100;

/// Reads a request body into memory, failing with 413 as soon as it is
/// known to exceed `limit` bytes: at once when the body announces its
/// length (`Content-Length`), otherwise when the chunk that crosses the
/// limit arrives. Never buffers more than `limit` bytes.
pub async fn read_body(mut body: Body, limit: usize) -> Result<Bytes, ApiError> {
    let announced = http_body::Body::size_hint(&body).lower();
    if usize::try_from(announced).map_or(true, |announced| announced > limit) {
        return Err(ApiError::TooLarge { limit });
    }
    let mut buffer = BytesMut::new();
    while let Some(frame) = body.frame().await {
        // A failed read is a broken or malformed upload (kube-apiserver
        // answers 500, but the fault is the client's).
        let frame = frame.map_err(|error| {
            ApiError::BadRequest(format!("unable to read the request body: {error}"))
        })?;
        if let Ok(data) = frame.into_data() {
            if data.len() > limit - buffer.len() {
                return Err(ApiError::TooLarge { limit });
            }
            buffer.extend_from_slice(&data);
        }
    }
    Ok(buffer.freeze())
}

/// The media types create and update bodies may have.
const BODY_MEDIA_TYPES: &[&str] = &["application/json", "application/yaml", protobuf::MEDIA_TYPE];

/// The media types a patch may have, in kube-apiserver's order (its
/// `application/apply-patch+cbor` is behind the CBORServingAndStorage
/// feature gate, off by default, so it is not accepted here either).
const PATCH_MEDIA_TYPES: &[&str] = &[
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
    "application/apply-patch+yaml",
];

/// How a create or update body is encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyFormat {
    /// `application/json`, also assumed when there is no `Content-Type`.
    Json,
    /// `application/yaml`: one YAML document.
    Yaml,
    /// `application/vnd.kubernetes.protobuf`, as kubectl's typed commands
    /// send bodies (`kubectl create configmap`, `auth can-i`...).
    Protobuf,
}

/// The decoder for a create or update body, from its `Content-Type`.
///
/// As kube-apiserver: a missing header means JSON; parameters such as
/// `charset` are ignored; only the exact media types `application/json`,
/// `application/yaml` and `application/vnd.kubernetes.protobuf` are
/// decoded (no `application/*+json`, no `text/yaml`), and anything else is
/// 415.
pub fn body_format(content_type: Option<&HeaderValue>) -> Result<BodyFormat, ApiError> {
    let Some(content_type) = content_type.filter(|value| !value.is_empty()) else {
        return Ok(BodyFormat::Json);
    };
    match media_type(content_type).as_deref() {
        Some("application/json") => Ok(BodyFormat::Json),
        Some("application/yaml") => Ok(BodyFormat::Yaml),
        Some(protobuf::MEDIA_TYPE) => Ok(BodyFormat::Protobuf),
        _ => Err(unsupported_media_type(BODY_MEDIA_TYPES)),
    }
}

/// The kind of a PATCH request, from its `Content-Type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PatchType {
    /// RFC 6902 JSON patch: `application/json-patch+json`.
    Json,
    /// RFC 7386 JSON merge patch: `application/merge-patch+json`.
    Merge,
    /// Kubernetes' strategic merge patch:
    /// `application/strategic-merge-patch+json`.
    StrategicMerge,
    /// Server-side apply: `application/apply-patch+yaml`.
    Apply,
}

impl PatchType {
    /// The media type that selects this patch type.
    pub fn media_type(self) -> &'static str {
        match self {
            PatchType::Json => "application/json-patch+json",
            PatchType::Merge => "application/merge-patch+json",
            PatchType::StrategicMerge => "application/strategic-merge-patch+json",
            PatchType::Apply => "application/apply-patch+yaml",
        }
    }
}

/// The patch type of a PATCH request from its `Content-Type`; 415 listing
/// the four patch media types for anything else, a missing header included
/// (kube-apiserver does not default it).
pub fn patch_type(content_type: Option<&HeaderValue>) -> Result<PatchType, ApiError> {
    let patch_type = match content_type.and_then(media_type).as_deref() {
        Some("application/json-patch+json") => PatchType::Json,
        Some("application/merge-patch+json") => PatchType::Merge,
        Some("application/strategic-merge-patch+json") => PatchType::StrategicMerge,
        Some("application/apply-patch+yaml") => PatchType::Apply,
        _ => return Err(unsupported_media_type(PATCH_MEDIA_TYPES)),
    };
    Ok(patch_type)
}

/// `type/subtype` of a media type, lowercased and without parameters, or
/// `None` if it is not of that shape.
fn media_type(value: &HeaderValue) -> Option<String> {
    let value = value.to_str().ok()?;
    let essence = value.split(';').next()?.trim().to_ascii_lowercase();
    let (kind, subtype) = essence.split_once('/')?;
    let is_token = |part: &str| {
        !part.is_empty()
            && part
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$&^_.+-*".contains(&b))
    };
    (is_token(kind) && is_token(subtype)).then_some(essence)
}

fn unsupported_media_type(accepted: &[&str]) -> ApiError {
    ApiError::UnsupportedMediaType(format!(
        "the body of the request was in an unknown format - accepted media types include: {}",
        accepted.join(", ")
    ))
}

/// A parsed body, and what only its text shows.
#[derive(Clone, Debug, PartialEq)]
pub struct ParsedBody {
    /// The document; of a key given twice, the last value (as Go's decoder).
    pub value: Value,
    /// Paths of keys given twice in one object, e.g. `spec.replicas`, in
    /// document order. Strict field validation rejects them.
    pub duplicate_fields: Vec<String>,
}

/// Parses a create or update body, which must be one JSON object or one
/// YAML document holding an object. See [`parse_body`] for the limits.
pub fn parse_value(bytes: &[u8], format: BodyFormat) -> Result<Value, ApiError> {
    parse_body(bytes, format).map(|parsed| parsed.value)
}

/// Parses a create or update body, keeping the duplicate keys that strict
/// field validation reports. 400 with the decoder's error (worded as
/// kube-apiserver's decoder) for malformed text, nesting deeper than
/// [`MAX_NESTING_DEPTH`], YAML aliases that expand far beyond the body,
/// more than one YAML document, and a top level that is not an object.
pub fn parse_body(bytes: &[u8], format: BodyFormat) -> Result<ParsedBody, ApiError> {
    if format == BodyFormat::Protobuf {
        // Decoded to the object's JSON, then on the JSON path; protobuf has
        // no duplicate keys, and kube-apiserver reports no unknown fields
        // for it either.
        let value = protobuf::decode(bytes).map_err(|error| match error {
            ProtobufError::UnknownKind { .. } | ProtobufError::UnsupportedEncoding { .. } => {
                ApiError::UnsupportedMediaType(format!(
                    "{error}; send it as application/json or application/yaml"
                ))
            }
            other => ApiError::BadRequest(other.to_string()),
        })?;
        return Ok(ParsedBody {
            value,
            duplicate_fields: Vec::new(),
        });
    }
    let parsed = parse_document(bytes, format).map_err(|error| {
        ApiError::BadRequest(match format {
            BodyFormat::Json | BodyFormat::Protobuf => {
                format!("couldn't get version/kind; json parse error: {error}")
            }
            BodyFormat::Yaml => format!("error converting YAML to JSON: yaml: {error}"),
        })
    })?;
    if !parsed.value.is_object() {
        return Err(ApiError::BadRequest(format!(
            "couldn't get version/kind; json parse error: the object must be a JSON object, not {}",
            describe(&parsed.value)
        )));
    }
    Ok(parsed)
}

/// "an array", "a string"...: what a value is, for messages.
pub(crate) fn describe(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Parses any one JSON value or YAML document under the nesting and
/// expansion limits; the error is the bare decoder message.
pub(crate) fn parse_document(bytes: &[u8], format: BodyFormat) -> Result<ParsedBody, String> {
    let mut tree = Tree::new(format, bytes.len());
    let value = match format {
        BodyFormat::Protobuf => return Err("protobuf bodies are decoded by parse_body".into()),
        BodyFormat::Json => {
            let mut deserializer = serde_json::Deserializer::from_slice(bytes);
            let value = Node(&mut tree)
                .deserialize(&mut deserializer)
                .map_err(|error| error.to_string())?;
            deserializer.end().map_err(|error| error.to_string())?;
            value
        }
        BodyFormat::Yaml => {
            check_yaml_nesting(bytes)?;
            let mut documents = serde_yaml::Deserializer::from_slice(bytes);
            let value = match documents.next() {
                Some(document) => Node(&mut tree)
                    .deserialize(document)
                    .map_err(|error| error.to_string())?,
                None => Value::Null,
            };
            // Empty documents after a trailing `---` are harmless; any
            // other is a second object. (kube-apiserver silently uses the
            // first document; a second one is more likely a mistake.)
            // serde_yaml repeats a parse error forever, so stop at the first.
            for document in documents {
                let extra = Node(&mut tree)
                    .deserialize(document)
                    .map_err(|error| error.to_string())?;
                if !extra.is_null() {
                    return Err(
                        "the body holds more than one YAML document; send one object per request"
                            .into(),
                    );
                }
            }
            value
        }
    };
    Ok(ParsedBody {
        value,
        duplicate_fields: tree.duplicates,
    })
}

/// Estimated bytes of memory of one node of the decoded tree.
const NODE_COST: usize = 32;

/// The state of one parse: where we are, how much more we may build, and
/// the duplicate keys found so far.
struct Tree {
    format: BodyFormat,
    depth: usize,
    /// Estimated bytes the decoded tree may still take. Text without YAML
    /// aliases decodes to a tree about as big as itself; aliases can repeat
    /// a large anchor many times, which serde_yaml's own repetition limit
    /// (100 alias jumps per event) does not bound in bytes.
    remaining: usize,
    path: Vec<Segment>,
    duplicates: Vec<String>,
}

/// One step of the path to the node being parsed.
enum Segment {
    Key(String),
    Index(usize),
}

impl Tree {
    fn new(format: BodyFormat, input_len: usize) -> Self {
        Self {
            format,
            depth: 0,
            remaining: (16 << 20).max(input_len.saturating_mul(24)),
            path: Vec::new(),
            duplicates: Vec::new(),
        }
    }

    fn charge<E: de::Error>(&mut self, bytes: usize) -> Result<(), E> {
        self.remaining = self.remaining.checked_sub(bytes).ok_or_else(|| {
            E::custom("document contains excessive aliasing: it expands far beyond its size")
        })?;
        Ok(())
    }

    fn enter<E: de::Error>(&mut self) -> Result<(), E> {
        if self.depth == MAX_NESTING_DEPTH {
            return Err(E::custom(format_args!(
                "exceeded max depth of {MAX_NESTING_DEPTH}"
            )));
        }
        self.depth += 1;
        self.charge(NODE_COST)
    }

    /// `spec.template.spec.containers[0]`, plus `key` if given.
    fn render_path(&self, key: &str) -> String {
        let mut rendered = String::new();
        for segment in &self.path {
            match segment {
                Segment::Key(key) => {
                    if !rendered.is_empty() {
                        rendered.push('.');
                    }
                    rendered.push_str(key);
                }
                Segment::Index(index) => {
                    rendered.push_str(&format!("[{index}]"));
                }
            }
        }
        if !rendered.is_empty() {
            rendered.push('.');
        }
        rendered.push_str(key);
        rendered
    }
}

/// Builds a `serde_json::Value` from any self-describing deserializer
/// (serde_json, serde_yaml) under the limits of its [`Tree`].
struct Node<'t>(&'t mut Tree);

impl<'de> DeserializeSeed<'de> for Node<'_> {
    type Value = Value;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Node<'_> {
    type Value = Value;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("a JSON value")
    }

    fn visit_bool<E: de::Error>(self, value: bool) -> Result<Value, E> {
        self.0.charge(NODE_COST)?;
        Ok(Value::Bool(value))
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<Value, E> {
        self.0.charge(NODE_COST)?;
        Ok(Value::Number(value.into()))
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<Value, E> {
        self.0.charge(NODE_COST)?;
        Ok(Value::Number(value.into()))
    }

    // YAML integers beyond 64 bits become floats, as Go's YAML decoder does.
    fn visit_i128<E: de::Error>(self, value: i128) -> Result<Value, E> {
        match i64::try_from(value) {
            Ok(value) => self.visit_i64(value),
            Err(_) => self.visit_f64(value as f64),
        }
    }

    fn visit_u128<E: de::Error>(self, value: u128) -> Result<Value, E> {
        match u64::try_from(value) {
            Ok(value) => self.visit_u64(value),
            Err(_) => self.visit_f64(value as f64),
        }
    }

    fn visit_f64<E: de::Error>(self, value: f64) -> Result<Value, E> {
        self.0.charge(NODE_COST)?;
        Number::from_f64(value)
            .map(Value::Number)
            .ok_or_else(|| E::custom(format_args!("{value} cannot be represented in JSON")))
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<Value, E> {
        self.visit_string(value.to_owned())
    }

    fn visit_string<E: de::Error>(self, value: String) -> Result<Value, E> {
        self.0.charge(NODE_COST + value.len())?;
        Ok(Value::String(value))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        self.0.charge(NODE_COST)?;
        Ok(Value::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        self.visit_unit()
    }

    fn visit_some<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let tree = self.0;
        tree.enter()?;
        let mut items = Vec::new();
        loop {
            tree.path.push(Segment::Index(items.len()));
            let item = seq.next_element_seed(Node(tree));
            tree.path.pop();
            match item? {
                Some(item) => items.push(item),
                None => break,
            }
        }
        tree.depth -= 1;
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let tree = self.0;
        tree.enter()?;
        let mut object = Map::new();
        // Keys that came from YAML merge keys (`<<: *base`) rather than
        // being written in this mapping: overriding them is no duplicate.
        let mut merged: HashSet<String> = HashSet::new();
        while let Some(key) = map.next_key_seed(Key(&mut *tree))? {
            tree.path.push(Segment::Key(key));
            let value = map.next_value_seed(Node(&mut *tree));
            let key = match tree.path.pop() {
                Some(Segment::Key(key)) => key,
                _ => String::new(),
            };
            let value = value?;
            if tree.format == BodyFormat::Yaml && key == "<<" {
                merge_yaml(&mut object, value, &mut merged).map_err(de::Error::custom)?;
                continue;
            }
            if object.contains_key(&key) && !merged.remove(&key) {
                let path = tree.render_path(&key);
                tree.duplicates.push(path);
            }
            object.insert(key, value);
        }
        tree.depth -= 1;
        Ok(Value::Object(object))
    }
}

/// Applies a YAML merge key (`<<: *base` or `<<: [*a, *b]`) as Go's YAML
/// decoder (yaml.v2, under sigs.k8s.io/yaml) does: entries are set in
/// document order, so later explicit keys override merged ones, and of a
/// list of mappings the first wins.
fn merge_yaml(
    object: &mut Map<String, Value>,
    value: Value,
    merged: &mut HashSet<String>,
) -> Result<(), &'static str> {
    let sources = match value {
        Value::Object(source) => vec![source],
        Value::Array(sources) => sources
            .into_iter()
            .rev()
            .map(|source| match source {
                Value::Object(source) => Ok(source),
                _ => Err(()),
            })
            .collect::<Result<_, _>>()
            .map_err(|()| "map merge requires map or sequence of maps as the value")?,
        _ => return Err("map merge requires map or sequence of maps as the value"),
    };
    for source in sources {
        for (key, value) in source {
            merged.insert(key.clone());
            object.insert(key, value);
        }
    }
    Ok(())
}

/// A mapping key: a string, or a YAML scalar of another type turned into
/// its text as Go's YAML-to-JSON conversion does (`1: x` has key "1").
struct Key<'t>(&'t mut Tree);

impl<'de> DeserializeSeed<'de> for Key<'_> {
    type Value = String;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<String, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Key<'_> {
    type Value = String;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("a string key")
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<String, E> {
        self.visit_string(key.to_owned())
    }

    fn visit_string<E: de::Error>(self, key: String) -> Result<String, E> {
        self.0.charge(NODE_COST + key.len())?;
        Ok(key)
    }

    fn visit_bool<E: de::Error>(self, key: bool) -> Result<String, E> {
        self.visit_string(key.to_string())
    }

    fn visit_i64<E: de::Error>(self, key: i64) -> Result<String, E> {
        self.visit_string(key.to_string())
    }

    fn visit_u64<E: de::Error>(self, key: u64) -> Result<String, E> {
        self.visit_string(key.to_string())
    }

    fn visit_f64<E: de::Error>(self, key: f64) -> Result<String, E> {
        self.visit_string(key.to_string())
    }

    fn visit_unit<E: de::Error>(self) -> Result<String, E> {
        self.visit_string("null".to_owned())
    }
}

/// Columns of block indentation (or of compact `- - -` indicators) beyond
/// which a YAML body is rejected before parsing: more than any real object
/// needs, far less than libyaml's cost for a megabyte-deep nesting.
const MAX_YAML_COLUMN: usize = 1000;

/// Rejects YAML nested deeper than [`MAX_NESTING_DEPTH`] before libyaml
/// sees it. libyaml (under serde_yaml) turns the whole document into events
/// before any depth check can run, and its scanner does work proportional
/// to the flow nesting depth for every token: 3 MiB of `{a: ` takes
/// minutes, 3 MiB of `[` over ten seconds, and 3 MiB of `- - -` half a
/// gigabyte. This scan is linear and allocation-free; it follows YAML's
/// rules for flow collections, quoted and block scalars and comments
/// closely enough that brackets inside strings do not count.
fn check_yaml_nesting(text: &[u8]) -> Result<(), String> {
    YamlScan {
        text,
        pos: 0,
        line: 1,
        line_start: 0,
        flow: 0,
        node_start: true,
        expect_node: true,
        after_json_node: false,
        in_plain: false,
        owner: 0,
        candidate: 0,
    }
    .scan()
}

/// The state of [`check_yaml_nesting`].
struct YamlScan<'t> {
    text: &'t [u8],
    pos: usize,
    /// 1-based, for messages.
    line: usize,
    line_start: usize,
    /// Open flow collections (`[`, `{`); 0 in block context.
    flow: usize,
    /// Block context: a node (quoted scalar, flow collection, block scalar)
    /// may start here.
    node_start: bool,
    /// Flow context: a node may start here (after `[`, `{`, `,`, `:`).
    expect_node: bool,
    /// Flow context: the last token was a quoted scalar or a closed
    /// collection, after which `:` is an indicator even without a space.
    after_json_node: bool,
    /// Block context: inside a plain scalar, which may continue on more
    /// indented lines.
    in_plain: bool,
    /// Column of the key or `-` that owns what follows on this line; block
    /// and plain scalar continuation lines are indented more than it.
    owner: usize,
    /// Column where the current block node began; the owner if `: ` follows.
    candidate: usize,
}

impl YamlScan<'_> {
    fn scan(mut self) -> Result<(), String> {
        let mut at_line_start = true;
        // Owner column of a block scalar whose content lines are skipped.
        let mut block_scalar: Option<usize> = None;
        // Owner column of a plain scalar that may continue.
        let mut plain_owner: Option<usize> = None;
        while self.pos < self.text.len() {
            if at_line_start {
                at_line_start = false;
                self.line_start = self.pos;
                let indent = self.text[self.pos..]
                    .iter()
                    .take_while(|&&b| b == b' ')
                    .count();
                let content = self.pos + indent;
                let blank = matches!(self.text.get(content), None | Some(b'\n' | b'\r'));
                if let Some(owner) = block_scalar {
                    if blank || indent > owner {
                        self.skip_line();
                        at_line_start = true;
                        continue;
                    }
                    block_scalar = None;
                }
                self.pos = content;
                if self.flow == 0 {
                    let comment = self.text.get(content) == Some(&b'#');
                    match plain_owner {
                        Some(_) if blank || comment => continue,
                        Some(owner) if indent > owner => {
                            self.node_start = false;
                            self.in_plain = true;
                            continue;
                        }
                        _ => {}
                    }
                    plain_owner = None;
                    if indent > MAX_YAML_COLUMN {
                        return Err(self.too_deep());
                    }
                    self.node_start = true;
                    self.owner = indent;
                    self.candidate = indent;
                }
                continue;
            }
            let byte = self.text[self.pos];
            match byte {
                b'\n' => {
                    if self.flow == 0 && self.in_plain {
                        plain_owner.get_or_insert(self.owner);
                    }
                    self.in_plain = false;
                    self.line += 1;
                    self.pos += 1;
                    at_line_start = true;
                }
                b' ' | b'\t' | b'\r' => self.pos += 1,
                b'#' if self.pos == self.line_start
                    || matches!(self.text[self.pos - 1], b' ' | b'\t') =>
                {
                    self.in_plain = false;
                    self.skip_to_line_end();
                }
                _ if self.flow > 0 => self.flow_byte(byte)?,
                _ => {
                    if let Some(owner) = self.block_byte(byte)? {
                        block_scalar = Some(owner);
                    }
                }
            }
        }
        Ok(())
    }

    /// One byte in block context; returns the owner column when a block
    /// scalar (`|`, `>`) starts.
    fn block_byte(&mut self, byte: u8) -> Result<Option<usize>, String> {
        let column = self.pos - self.line_start;
        let indicator = self.next_is_blank();
        if self.node_start {
            match byte {
                b'-' | b'?' | b':' if indicator => {
                    if column > MAX_YAML_COLUMN {
                        return Err(self.too_deep());
                    }
                    if byte != b':' {
                        self.owner = column;
                    }
                    self.in_plain = false;
                    self.pos += 1;
                    return Ok(None);
                }
                b'[' | b'{' => {
                    self.flow = 1;
                    self.expect_node = true;
                    self.after_json_node = false;
                    self.node_start = false;
                    self.in_plain = false;
                    self.candidate = column;
                    self.pos += 1;
                    return Ok(None);
                }
                b'\'' | b'"' => {
                    self.candidate = column;
                    self.skip_quoted(byte);
                    self.node_start = false;
                    self.in_plain = false;
                    return Ok(None);
                }
                b'|' | b'>' => {
                    self.in_plain = false;
                    self.skip_to_line_end();
                    return Ok(Some(self.owner));
                }
                b'&' | b'!' => {
                    self.skip_token();
                    return Ok(None);
                }
                b'*' => {
                    self.skip_token();
                    self.node_start = false;
                    self.in_plain = false;
                    return Ok(None);
                }
                _ => self.candidate = column,
            }
        }
        // Plain text, or the `: ` that makes the text before it a key.
        if byte == b':' && indicator {
            self.owner = self.candidate;
            self.node_start = true;
            self.in_plain = false;
        } else {
            self.node_start = false;
            self.in_plain = true;
        }
        self.pos += 1;
        Ok(None)
    }

    /// One byte in flow context.
    fn flow_byte(&mut self, byte: u8) -> Result<(), String> {
        match byte {
            b'[' | b'{' => {
                self.flow += 1;
                if self.flow > MAX_NESTING_DEPTH {
                    return Err(self.too_deep());
                }
                self.expect_node = true;
                self.after_json_node = false;
            }
            b']' | b'}' => {
                self.flow -= 1;
                self.expect_node = false;
                self.after_json_node = true;
                if self.flow == 0 {
                    self.node_start = false;
                    self.in_plain = false;
                }
            }
            b',' => {
                self.expect_node = true;
                self.after_json_node = false;
            }
            b'\'' | b'"' if self.expect_node => {
                self.skip_quoted(byte);
                self.expect_node = false;
                self.after_json_node = true;
                return Ok(());
            }
            b'&' | b'!' if self.expect_node => {
                self.skip_token();
                return Ok(());
            }
            b':' | b'?' if self.next_is_blank() || (byte == b':' && self.after_json_node) => {
                self.expect_node = true;
                self.after_json_node = false;
            }
            _ => {
                self.expect_node = false;
                self.after_json_node = false;
            }
        }
        self.pos += 1;
        Ok(())
    }

    fn next_is_blank(&self) -> bool {
        matches!(
            self.text.get(self.pos + 1),
            None | Some(b' ' | b'\t' | b'\r' | b'\n')
        )
    }

    /// Skips a single- or double-quoted scalar, which may span lines; an
    /// unterminated one runs to the end, where libyaml reports it.
    fn skip_quoted(&mut self, quote: u8) {
        self.pos += 1;
        while let Some(&byte) = self.text.get(self.pos) {
            self.pos += 1;
            match byte {
                b'\n' => {
                    self.line += 1;
                    self.line_start = self.pos;
                }
                b'\\' if quote == b'"' => {
                    if self.text.get(self.pos) == Some(&b'\n') {
                        self.line += 1;
                        self.line_start = self.pos + 1;
                    }
                    self.pos += 1;
                }
                b'\'' if quote == b'\'' => {
                    if self.text.get(self.pos) == Some(&b'\'') {
                        self.pos += 1;
                    } else {
                        return;
                    }
                }
                b'"' if quote == b'"' => return,
                _ => {}
            }
        }
    }

    /// Skips an anchor, tag or alias token.
    fn skip_token(&mut self) {
        while let Some(&byte) = self.text.get(self.pos) {
            if matches!(byte, b' ' | b'\t' | b'\r' | b'\n')
                || (self.flow > 0 && matches!(byte, b',' | b'[' | b']' | b'{' | b'}'))
            {
                return;
            }
            self.pos += 1;
        }
    }

    /// Moves to the line's `\n` (or the end).
    fn skip_to_line_end(&mut self) {
        self.pos = self.text[self.pos..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(self.text.len(), |offset| self.pos + offset);
    }

    /// Moves past the line's `\n`.
    fn skip_line(&mut self) {
        self.skip_to_line_end();
        if self.pos < self.text.len() {
            self.pos += 1;
            self.line += 1;
        }
    }

    fn too_deep(&self) -> String {
        format!(
            "exceeded max depth of {MAX_NESTING_DEPTH} at line {}",
            self.line
        )
    }
}

/// What to do about fields the decoder does not know and keys given twice:
/// the `fieldValidation` query parameter of create, update and patch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldValidation {
    /// Drop them silently (the behaviour before Kubernetes 1.25).
    Ignore,
    /// Accept the object and return a `Warning` header for each (default).
    Warn,
    /// Reject the request with 400 listing all of them. kubectl sends this
    /// unless run with `--validate=false|warn`.
    Strict,
}

/// The `fieldValidation` query parameter; absent or empty means
/// [`FieldValidation::Warn`]. Values are case-sensitive, as in Kubernetes;
/// an unknown one is 400 with Kubernetes' wording: `fieldValidation:
/// Unsupported value: "strict": supported values: "", "Ignore", "Strict",
/// "Warn"`. (kube-apiserver reports it as 422 Invalid on the verb's options
/// kind, `CreateOptions.meta.k8s.io "" is invalid: ...`; that needs the verb.)
pub fn field_validation(query_value: Option<&str>) -> Result<FieldValidation, ApiError> {
    match query_value.unwrap_or("") {
        "" | "Warn" => Ok(FieldValidation::Warn),
        "Ignore" => Ok(FieldValidation::Ignore),
        "Strict" => Ok(FieldValidation::Strict),
        other => Err(ApiError::BadRequest(format!(
            "fieldValidation: Unsupported value: {other:?}: supported values: \"\", \"Ignore\", \"Strict\", \"Warn\""
        ))),
    }
}

/// Decodes `value` into `T` under `validation`, returning the object and
/// the warnings to send (`unknown field "spec.foo"`, one per field, for
/// [`FieldValidation::Warn`]; none otherwise).
///
/// 400 for a value of the wrong type, naming its path
/// (`spec.replicas: invalid type: string "abc", expected i32`), and under
/// [`FieldValidation::Strict`] for unknown fields, all of them in one
/// message: `strict decoding error: unknown field "spec.foo", unknown field
/// "spec.bar"`. Create and update use [`decode_body`], which also reports
/// duplicate keys and words errors as kube-apiserver does for them.
pub fn decode_typed<T: DeserializeOwned>(
    value: Value,
    validation: FieldValidation,
) -> Result<(T, Vec<String>), ApiError> {
    let (object, unknown) = decode_with_unknown_fields(value).map_err(ApiError::BadRequest)?;
    let warnings = validate_fields(unknown, validation).map_err(ApiError::BadRequest)?;
    Ok((object, warnings))
}

/// Decodes a parsed create or update body into `T`, as [`decode_typed`]
/// but also reporting duplicate keys (`duplicate field "spec.replicas"`),
/// before unknown fields, and prefixing errors as kube-apiserver does:
/// `Deployment in version "v1" cannot be handled as a Deployment: strict
/// decoding error: unknown field "spec.foo"`.
pub fn decode_body<T: DeserializeOwned>(
    parsed: ParsedBody,
    validation: FieldValidation,
) -> Result<(T, Vec<String>), ApiError> {
    let prefix = handled_as_prefix(&parsed.value);
    let (object, unknown) = decode_with_unknown_fields(parsed.value)
        .map_err(|error| ApiError::BadRequest(format!("{prefix}{error}")))?;
    let problems = parsed
        .duplicate_fields
        .iter()
        .map(|path| format!("duplicate field \"{path}\""))
        .chain(unknown)
        .collect();
    let warnings = validate_fields(problems, validation)
        .map_err(|error| ApiError::BadRequest(format!("{prefix}{error}")))?;
    Ok((object, warnings))
}

/// `Deployment in version "v1" cannot be handled as a Deployment: `, from
/// the body's own `kind` and `apiVersion`; empty if it names no kind.
fn handled_as_prefix(value: &Value) -> String {
    let Some(kind) = value
        .get("kind")
        .and_then(Value::as_str)
        .filter(|k| !k.is_empty())
    else {
        return String::new();
    };
    let api_version = value
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or("");
    let version = api_version.rsplit('/').next().unwrap_or(api_version);
    format!("{kind} in version {version:?} cannot be handled as a {kind}: ")
}

/// Decodes `value` into `T`, collecting `unknown field "path"` for every
/// field `T` ignores; the error names the path of the offending value.
pub(crate) fn decode_with_unknown_fields<T: DeserializeOwned>(
    value: Value,
) -> Result<(T, Vec<String>), String> {
    let mut unknown = Vec::new();
    let mut record = |path: serde_ignored::Path| {
        unknown.push(format!("unknown field \"{}\"", ignored_path(&path)));
    };
    let decoded: Result<T, _> =
        serde_path_to_error::deserialize(serde_ignored::Deserializer::new(value, &mut record));
    match decoded {
        Ok(object) => Ok((object, unknown)),
        Err(error) => {
            let path = error.path().to_string();
            Err(if path == "." {
                error.inner().to_string()
            } else {
                format!("{path}: {}", error.inner())
            })
        }
    }
}

/// Applies field validation to the strictness problems of one object:
/// the warnings to send, or the `strict decoding error: ...` message.
pub(crate) fn validate_fields(
    problems: Vec<String>,
    validation: FieldValidation,
) -> Result<Vec<String>, String> {
    match validation {
        FieldValidation::Ignore => Ok(Vec::new()),
        FieldValidation::Warn => Ok(problems),
        FieldValidation::Strict if problems.is_empty() => Ok(problems),
        FieldValidation::Strict => Err(format!("strict decoding error: {}", problems.join(", "))),
    }
}

/// `spec.template.spec.containers[0].foo` from serde_ignored's path, whose
/// own rendering (`containers.0.foo`, `?` for options) is not Kubernetes'.
fn ignored_path(path: &serde_ignored::Path) -> String {
    fn write(path: &serde_ignored::Path, out: &mut String) {
        match path {
            serde_ignored::Path::Root => {}
            serde_ignored::Path::Seq { parent, index } => {
                write(parent, out);
                out.push_str(&format!("[{index}]"));
            }
            serde_ignored::Path::Map { parent, key } => {
                write(parent, out);
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(key);
            }
            serde_ignored::Path::Some { parent }
            | serde_ignored::Path::NewtypeStruct { parent }
            | serde_ignored::Path::NewtypeVariant { parent } => write(parent, out),
        }
    }
    let mut out = String::new();
    write(path, &mut out);
    out
}

/// A `Warning` response header as kube-apiserver writes it:
/// `299 - "unknown field \"spec.foo\""` (quotes and backslashes escaped;
/// control characters, which a header cannot carry, become spaces).
/// Deduplicating and truncating many warnings is the caller's business.
pub fn warning_header(text: &str) -> HeaderValue {
    let mut header = String::with_capacity(text.len() + 10);
    header.push_str("299 - \"");
    for c in text.chars() {
        match c {
            '"' | '\\' => {
                header.push('\\');
                header.push(c);
            }
            c if c.is_control() => header.push(' '),
            c => header.push(c),
        }
    }
    header.push('"');
    HeaderValue::from_str(&header).unwrap_or_else(|_| HeaderValue::from_static("299 - \"\""))
}

/// How to encode a response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResponseFormat {
    /// `application/json`.
    Json,
    /// `application/yaml`.
    Yaml,
    /// A `meta.k8s.io` Table in JSON, as `kubectl get` asks for.
    Table(TableVersion),
}

/// The version of `meta.k8s.io` a Table is asked in (kubectl offers v1,
/// then v1beta1; both have the same shape).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TableVersion {
    /// `meta.k8s.io/v1`.
    V1,
    /// `meta.k8s.io/v1beta1`.
    V1beta1,
}

impl TableVersion {
    /// `apiVersion` of the Table and of the PartialObjectMetadata in it.
    pub fn api_version(self) -> &'static str {
        match self {
            TableVersion::V1 => "meta.k8s.io/v1",
            TableVersion::V1beta1 => "meta.k8s.io/v1beta1",
        }
    }
}

impl ResponseFormat {
    /// The `Content-Type` of a response in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            ResponseFormat::Json => "application/json",
            ResponseFormat::Yaml => "application/yaml",
            ResponseFormat::Table(TableVersion::V1) => {
                "application/json;as=Table;v=v1;g=meta.k8s.io"
            }
            ResponseFormat::Table(TableVersion::V1beta1) => {
                "application/json;as=Table;v=v1beta1;g=meta.k8s.io"
            }
        }
    }
}

/// Chooses the response format from `Accept`, as kube-apiserver: no header
/// (or an empty one) means JSON; otherwise the media ranges in order of
/// q-value (more specific first among equals) and the first we can serve
/// wins. `*/*` and `application/*` are JSON. `as=Table;g=meta.k8s.io` with
/// `v=v1` or `v=v1beta1` on JSON is [`ResponseFormat::Table`]; other
/// conversions (PartialObjectMetadata) are skipped, so a client's list of
/// alternatives falls through to what we serve. `stream=watch` is allowed
/// on JSON only, other parameters are ignored, and `q=0` means "not
/// acceptable" (RFC 9110; kube-apiserver ignores q=0). 406 if nothing can
/// be served.
pub fn negotiate(accept: Option<&HeaderValue>) -> Result<ResponseFormat, ApiError> {
    let header = accept.map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned());
    let header = header.as_deref().map(str::trim).unwrap_or("");
    if header.is_empty() {
        return Ok(ResponseFormat::Json);
    }
    let mut ranges: Vec<MediaRange> = header.split(',').filter_map(MediaRange::parse).collect();
    ranges.sort_by(|a, b| {
        b.quality
            .total_cmp(&a.quality)
            .then(b.specificity().cmp(&a.specificity()))
    });
    ranges
        .iter()
        .filter(|range| range.quality > 0.0)
        .find_map(MediaRange::format)
        .ok_or_else(|| ApiError::NotAcceptable("application/json, application/yaml".to_owned()))
}

/// One media range of an `Accept` header.
struct MediaRange {
    kind: String,
    subtype: String,
    quality: f32,
    /// Parameters other than `q`, names lowercased.
    parameters: Vec<(String, String)>,
}

impl MediaRange {
    fn parse(text: &str) -> Option<Self> {
        let mut parts = text.split(';');
        let essence = parts.next()?.trim().to_ascii_lowercase();
        let (kind, subtype) = essence.split_once('/')?;
        let mut range = MediaRange {
            kind: kind.trim().to_owned(),
            subtype: subtype.trim().to_owned(),
            quality: 1.0,
            parameters: Vec::new(),
        };
        for parameter in parts {
            let Some((name, value)) = parameter.split_once('=') else {
                continue;
            };
            let name = name.trim().to_ascii_lowercase();
            let value = value.trim().trim_matches('"');
            if name == "q" {
                // A malformed q is read as 1, so the range still counts.
                range.quality = value.parse().unwrap_or(1.0);
            } else {
                range.parameters.push((name, value.to_owned()));
            }
        }
        Some(range)
    }

    fn specificity(&self) -> u8 {
        u8::from(self.kind != "*") + u8::from(self.subtype != "*")
    }

    fn parameter(&self, name: &str) -> Option<&str> {
        self.parameters
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// What this range selects among the formats we serve, if anything.
    fn format(&self) -> Option<ResponseFormat> {
        [
            ("json", ResponseFormat::Json),
            ("yaml", ResponseFormat::Yaml),
        ]
        .into_iter()
        .find_map(|(subtype, format)| {
            let matches = (self.kind == "application"
                && (self.subtype == subtype || self.subtype == "*"))
                || (self.kind == "*" && self.subtype == "*");
            if !matches {
                return None;
            }
            if let Some(stream) = self.parameter("stream").filter(|s| !s.is_empty())
                && (format != ResponseFormat::Json || stream != "watch")
            {
                return None;
            }
            let conversion = (
                self.parameter("as"),
                self.parameter("g"),
                self.parameter("v"),
            );
            match conversion {
                (None, None, None) => Some(format),
                (Some("Table"), Some("meta.k8s.io"), Some(version))
                    if format == ResponseFormat::Json =>
                {
                    match version {
                        "v1" => Some(ResponseFormat::Table(TableVersion::V1)),
                        "v1beta1" => Some(ResponseFormat::Table(TableVersion::V1beta1)),
                        _ => None,
                    }
                }
                _ => None,
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use futures::stream;
    use k8s_openapi::api::apps::v1::Deployment;
    use serde_json::json;

    use super::*;

    fn header(value: &str) -> HeaderValue {
        HeaderValue::from_str(value).unwrap()
    }

    /// The HTTP code and message of an error, for table tests.
    fn status(error: &ApiError) -> (u16, String) {
        (error.code_and_reason().0.as_u16(), error.to_string())
    }

    const BODY_415: &str = "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml, application/vnd.kubernetes.protobuf";
    const PATCH_415: &str = "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json, application/apply-patch+yaml";

    #[test]
    fn body_content_types() {
        let check = |content_type: Option<&str>, expected: Result<BodyFormat, (u16, &str)>| {
            let value = content_type.map(header);
            let actual = body_format(value.as_ref()).map_err(|e| status(&e));
            let expected = expected.map_err(|(code, message)| (code, message.to_owned()));
            assert_eq!(actual, expected, "Content-Type: {content_type:?}");
        };
        check(None, Ok(BodyFormat::Json));
        check(Some(""), Ok(BodyFormat::Json));
        check(Some("application/json"), Ok(BodyFormat::Json));
        check(
            Some("application/json; charset=utf-8"),
            Ok(BodyFormat::Json),
        );
        check(Some("Application/JSON;charset=UTF-8"), Ok(BodyFormat::Json));
        check(Some("application/yaml"), Ok(BodyFormat::Yaml));
        check(
            Some("application/yaml; charset=utf-8"),
            Ok(BodyFormat::Yaml),
        );
        check(
            Some("application/vnd.kubernetes.protobuf"),
            Ok(BodyFormat::Protobuf),
        );
        check(Some("application/merge-patch+json"), Err((415, BODY_415)));
        check(Some("application/x-yaml"), Err((415, BODY_415)));
        check(Some("text/yaml"), Err((415, BODY_415)));
        check(Some("text/plain"), Err((415, BODY_415)));
        check(Some("application/cbor"), Err((415, BODY_415)));
        check(Some("json"), Err((415, BODY_415)));
    }

    #[test]
    fn patch_content_types() {
        let check = |content_type: Option<&str>, expected: Result<PatchType, (u16, &str)>| {
            let value = content_type.map(header);
            let actual = patch_type(value.as_ref()).map_err(|e| status(&e));
            let expected = expected.map_err(|(code, message)| (code, message.to_owned()));
            assert_eq!(actual, expected, "Content-Type: {content_type:?}");
        };
        check(Some("application/json-patch+json"), Ok(PatchType::Json));
        check(Some("application/merge-patch+json"), Ok(PatchType::Merge));
        check(
            Some("application/merge-patch+json; charset=utf-8"),
            Ok(PatchType::Merge),
        );
        check(
            Some("application/strategic-merge-patch+json"),
            Ok(PatchType::StrategicMerge),
        );
        check(Some("application/apply-patch+yaml"), Ok(PatchType::Apply));
        check(Some("application/apply-patch+cbor"), Err((415, PATCH_415)));
        check(Some("application/json"), Err((415, PATCH_415)));
        check(Some("application/yaml"), Err((415, PATCH_415)));
        check(None, Err((415, PATCH_415)));
        for patch_type in [
            PatchType::Json,
            PatchType::Merge,
            PatchType::StrategicMerge,
            PatchType::Apply,
        ] {
            check(Some(patch_type.media_type()), Ok(patch_type));
        }
    }

    async fn read(body: Body, limit: usize) -> Result<Bytes, (u16, String)> {
        read_body(body, limit).await.map_err(|e| status(&e))
    }

    #[tokio::test]
    async fn bodies_within_the_limit_are_read_whole() {
        assert_eq!(read(Body::from("12345"), 5).await, Ok(Bytes::from("12345")));
        assert_eq!(read(Body::empty(), 0).await, Ok(Bytes::new()));
        let chunks =
            stream::iter(["12", "34", "5"].map(|c| Ok::<_, std::io::Error>(Bytes::from(c))));
        assert_eq!(
            read(Body::from_stream(chunks), 5).await,
            Ok(Bytes::from("12345"))
        );
    }

    #[tokio::test]
    async fn announced_oversize_is_413_before_reading() {
        let error = read(Body::from(vec![b'x'; MAX_BODY_BYTES + 1]), MAX_BODY_BYTES).await;
        assert_eq!(error.unwrap_err().0, 413);
    }

    #[tokio::test]
    async fn chunked_oversize_is_413_as_soon_as_the_limit_is_crossed() {
        // An endless stream without a length: reading must stop at the
        // chunk that crosses the limit instead of buffering forever.
        let pulled = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = pulled.clone();
        let chunks = stream::repeat_with(move || {
            counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            Ok::<_, std::io::Error>(Bytes::from(vec![b'x'; 64 * 1024]))
        });
        let error = read(Body::from_stream(chunks), MAX_BODY_BYTES)
            .await
            .unwrap_err();
        assert_eq!(
            error,
            (
                413,
                ApiError::TooLarge {
                    limit: MAX_BODY_BYTES
                }
                .to_string()
            )
        );
        assert_eq!(
            pulled.load(std::sync::atomic::Ordering::Relaxed),
            MAX_BODY_BYTES / (64 * 1024) + 1
        );
    }

    #[tokio::test]
    async fn a_failing_stream_is_400() {
        let chunks = stream::iter([
            Ok(Bytes::from("{")),
            Err(std::io::Error::other("connection reset")),
        ]);
        let (code, message) = read(Body::from_stream(chunks), 100).await.unwrap_err();
        assert_eq!(code, 400);
        assert!(message.contains("connection reset"), "{message}");
    }

    fn parse(text: &str, format: BodyFormat) -> Result<ParsedBody, (u16, String)> {
        parse_body(text.as_bytes(), format).map_err(|e| status(&e))
    }

    /// Asserts the body parses to `expected`, or fails with 400 and a
    /// message containing `expected_error`.
    fn check_parse(text: &str, format: BodyFormat, expected: Result<Value, &str>) {
        match (parse(text, format), expected) {
            (Ok(parsed), Ok(expected)) => assert_eq!(parsed.value, expected, "{text}"),
            (Err((code, message)), Err(expected)) => {
                assert_eq!(code, 400, "{message}");
                assert!(
                    message.contains(expected),
                    "{text:?}: {message:?} lacks {expected:?}"
                );
            }
            (actual, expected) => panic!("{text:?}: got {actual:?}, expected {expected:?}"),
        }
    }

    #[test]
    fn json_bodies() {
        use BodyFormat::Json;
        check_parse(
            r#"{"a": [1, -2, 2.5, "x", true, null]}"#,
            Json,
            Ok(json!({"a": [1, -2, 2.5, "x", true, null]})),
        );
        check_parse(r#"{"a": 1, "a": 2}"#, Json, Ok(json!({"a": 2})));
        check_parse(
            "",
            Json,
            Err("couldn't get version/kind; json parse error: EOF while parsing"),
        );
        check_parse(
            "{",
            Json,
            Err("couldn't get version/kind; json parse error: EOF while parsing"),
        );
        check_parse(r#"{"a": 1} trailing"#, Json, Err("trailing characters"));
        check_parse(
            "[]",
            Json,
            Err("the object must be a JSON object, not an array"),
        );
        check_parse("\"x\"", Json, Err("not a string"));
        check_parse("null", Json, Err("not null"));
        check_parse("{\"a\": 1e400}", Json, Err("number out of range"));
    }

    #[test]
    fn yaml_bodies() {
        use BodyFormat::Yaml;
        check_parse(
            "a: [1, x]\nb:\n  c: true\n",
            Yaml,
            Ok(json!({"a": [1, "x"], "b": {"c": true}})),
        );
        check_parse("---\na: 1\n", Yaml, Ok(json!({"a": 1})));
        check_parse("a: 1\n---\n", Yaml, Ok(json!({"a": 1})));
        check_parse("a: 1\n...\n", Yaml, Ok(json!({"a": 1})));
        check_parse("1: x\ntrue: y\n", Yaml, Ok(json!({"1": "x", "true": "y"})));
        check_parse(
            "a: 1\n---\nb: 2\n",
            Yaml,
            Err("more than one YAML document"),
        );
        check_parse(
            "a: 1\n---\n[\n",
            Yaml,
            Err("error converting YAML to JSON: yaml: did not find expected node content"),
        );
        check_parse(
            "a: [1\n",
            Yaml,
            Err("error converting YAML to JSON: yaml: "),
        );
        check_parse("- 1\n", Yaml, Err("not an array"));
        check_parse("", Yaml, Err("not null"));
        check_parse("a: *x\n", Yaml, Err("unknown anchor"));
        check_parse("a: .inf\n", Yaml, Err("inf cannot be represented in JSON"));
        check_parse(
            "a: 123456789012345678901234\n",
            Yaml,
            Ok(json!({"a": 1.2345678901234568e23})),
        );
        // Merge keys, as Go's YAML decoder applies them: later keys win.
        check_parse(
            "base: &base {a: 1, b: 2}\nx:\n  <<: *base\n  b: 3\n",
            Yaml,
            Ok(json!({"base": {"a": 1, "b": 2}, "x": {"a": 1, "b": 3}})),
        );
        check_parse(
            "p: &p {a: 1}\nq: &q {a: 2, b: 2}\nx:\n  <<: [*p, *q]\n",
            Yaml,
            Ok(json!({"p": {"a": 1}, "q": {"a": 2, "b": 2}, "x": {"a": 1, "b": 2}})),
        );
        check_parse(
            "x:\n  <<: 1\n",
            Yaml,
            Err("map merge requires map or sequence of maps"),
        );
    }

    #[test]
    fn duplicate_keys_are_found_with_their_paths() {
        let check = |text: &str, format: BodyFormat, expected: &[&str]| {
            let parsed = parse(text, format).unwrap();
            assert_eq!(parsed.duplicate_fields, expected, "{text}");
        };
        check(
            r#"{"spec": {"replicas": 1, "replicas": 2}}"#,
            BodyFormat::Json,
            &["spec.replicas"],
        );
        check(
            r#"{"spec": {"containers": [{"name": "a", "name": "b"}]}, "kind": "x", "kind": "y"}"#,
            BodyFormat::Json,
            &["spec.containers[0].name", "kind"],
        );
        check("a: 1\nb:\n  c: 1\n  c: 2\n", BodyFormat::Yaml, &["b.c"]);
        check(
            "base: &b {a: 1}\nx:\n  <<: *b\n  a: 2\n",
            BodyFormat::Yaml,
            &[],
        );
        check(r#"{"a": {"b": 1}, "c": {"b": 2}}"#, BodyFormat::Json, &[]);
    }

    /// Fails unless `run` finishes within `limit` (measured; a hang shows as
    /// a slow test, the assertion as a failure).
    fn within<T>(limit: Duration, run: impl FnOnce() -> T) -> T {
        let start = Instant::now();
        let result = run();
        assert!(start.elapsed() < limit, "took {:?}", start.elapsed());
        result
    }

    #[test]
    fn deep_json_is_rejected_without_overflowing_the_stack() {
        for (open, close) in [("[", "]"), ("{\"a\":", "}")] {
            let text = format!("{{\"a\":{}{}}}", open.repeat(10_000), close.repeat(10_000));
            let (code, message) = within(Duration::from_millis(100), || {
                parse(&text, BodyFormat::Json)
            })
            .unwrap_err();
            assert_eq!(code, 400);
            assert!(message.contains("exceeded max depth of 100"), "{message}");
        }
        // Exactly at the limit is fine.
        let nested = |depth: usize| format!("{}1{}", "{\"a\":".repeat(depth), "}".repeat(depth));
        assert!(parse(&nested(MAX_NESTING_DEPTH), BodyFormat::Json).is_ok());
        assert!(parse(&nested(MAX_NESTING_DEPTH + 1), BodyFormat::Json).is_err());
    }

    #[test]
    fn deep_yaml_is_rejected_before_libyaml_parses_it() {
        let deep = [
            format!("a: {}{}", "[".repeat(10_000), "]".repeat(10_000)),
            format!("a: {}", "[".repeat(MAX_BODY_BYTES - 3)),
            format!("a: {}", "{a: ".repeat(MAX_BODY_BYTES / 4 - 1)),
            format!("- {}x", "- ".repeat(MAX_BODY_BYTES / 2 - 2)),
            format!("{}x", "? ".repeat(MAX_BODY_BYTES / 2 - 1)),
            // Brackets in strings cannot hide real nesting.
            format!("a: {}", "[ \"]]]]\", ']]', ".repeat(200)),
            // Nor can an apostrophe inside a plain scalar look like a quote.
            format!("a: don't\nb: {}", "[".repeat(10_000)),
            format!("a: x\n  'continued\nb: {}", "{".repeat(10_000)),
            format!("a: [x'y, {}", "[".repeat(10_000)),
        ];
        for text in deep {
            let (code, message) = within(Duration::from_millis(200), || {
                parse(&text, BodyFormat::Yaml)
            })
            .unwrap_err();
            assert_eq!(code, 400);
            assert!(message.contains("exceeded max depth of 100"), "{message}");
        }
    }

    #[test]
    fn yaml_scan_ignores_brackets_in_strings_comments_and_block_scalars() {
        let opens = "[[[[[[[[[[".repeat(20);
        let text = format!(
            "# {opens}\n\
             a: \"{opens}\"\n\
             b: '{opens} it''s'\n\
             c: x{opens}\n\
             d: |\n  {opens}\n\n  {opens}\n\
             e: >-\n    {opens}\n\
             f: [\"{opens}\", '{opens}', {{k: \"{opens}\"}}] # {opens}\n\
             g: plain\n  continued {opens}\n\
             - - [[[1]]]\n"
        );
        // The last line makes it invalid YAML, but only after the scan: the
        // error must come from libyaml, not from the nesting check.
        let message = parse(&text, BodyFormat::Yaml).unwrap_err().1;
        assert!(!message.contains("max depth"), "{message}");
        let text = text.rsplit_once("- - ").unwrap().0;
        let parsed = parse(text, BodyFormat::Yaml).unwrap().value;
        assert_eq!(parsed["d"], format!("{opens}\n\n{opens}\n"));
        assert_eq!(parsed["g"], format!("plain continued {opens}"));
    }

    #[test]
    fn yaml_alias_bomb_is_rejected_quickly() {
        let lol = r#"
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
"#;
        let (code, message) =
            within(Duration::from_millis(500), || parse(lol, BodyFormat::Yaml)).unwrap_err();
        assert_eq!(code, 400);
        assert!(
            message.contains("repetition limit exceeded") || message.contains("excessive aliasing"),
            "{message}"
        );

        // Few aliases of a big anchor pass serde_yaml's repetition limit
        // (it counts jumps, not bytes); the expansion budget stops them.
        let big = "x".repeat(64 << 10);
        let wide = format!("a: &a \"{big}\"\nb: [{}]\n", "*a,".repeat(1000));
        let (code, message) = within(Duration::from_millis(500), || {
            parse(&wide, BodyFormat::Yaml)
        })
        .unwrap_err();
        assert_eq!(code, 400);
        assert!(message.contains("excessive aliasing"), "{message}");

        // Modest reuse is fine.
        let reuse = "labels: &l {app: web}\nx: *l\ny: *l\n";
        assert_eq!(
            parse(reuse, BodyFormat::Yaml).unwrap().value["y"],
            json!({"app": "web"})
        );
    }

    #[test]
    fn field_validation_values() {
        let check = |value: Option<&str>, expected: Result<FieldValidation, (u16, &str)>| {
            let actual = field_validation(value).map_err(|e| status(&e));
            let expected = expected.map_err(|(code, message)| (code, message.to_owned()));
            assert_eq!(actual, expected, "{value:?}");
        };
        check(None, Ok(FieldValidation::Warn));
        check(Some(""), Ok(FieldValidation::Warn));
        check(Some("Warn"), Ok(FieldValidation::Warn));
        check(Some("Ignore"), Ok(FieldValidation::Ignore));
        check(Some("Strict"), Ok(FieldValidation::Strict));
        check(
            Some("strict"),
            Err((
                400,
                "fieldValidation: Unsupported value: \"strict\": supported values: \"\", \"Ignore\", \"Strict\", \"Warn\"",
            )),
        );
    }

    fn deployment_with_unknown_fields() -> &'static str {
        r#"{
          "apiVersion": "apps/v1",
          "kind": "Deployment",
          "bogus": 1,
          "metadata": {"name": "web", "labels": {"any": "label"}, "nope": true},
          "spec": {
            "replicas": 2,
            "replicas": 3,
            "foo": "bar",
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
              "metadata": {"labels": {"app": "web"}},
              "spec": {"containers": [
                {"name": "web", "image": "nginx"},
                {"name": "side", "image": "busybox", "imagePullPolicyy": "Always", "ports": [{"containerPort": 80, "bad": 1}]}
              ]}
            }
          }
        }"#
    }

    const UNKNOWN: [&str; 5] = [
        r#"unknown field "bogus""#,
        r#"unknown field "metadata.nope""#,
        r#"unknown field "spec.foo""#,
        r#"unknown field "spec.template.spec.containers[1].imagePullPolicyy""#,
        r#"unknown field "spec.template.spec.containers[1].ports[0].bad""#,
    ];

    #[test]
    fn unknown_fields_under_each_validation() {
        let parsed = || parse(deployment_with_unknown_fields(), BodyFormat::Json).unwrap();

        let (deployment, warnings) =
            decode_typed::<Deployment>(parsed().value, FieldValidation::Warn).unwrap();
        assert_eq!(deployment.spec.replicas, Some(3));
        assert_eq!(warnings, UNKNOWN);

        let (_, warnings) =
            decode_typed::<Deployment>(parsed().value, FieldValidation::Ignore).unwrap();
        assert!(warnings.is_empty());

        let error =
            decode_typed::<Deployment>(parsed().value, FieldValidation::Strict).unwrap_err();
        assert_eq!(
            status(&error),
            (
                400,
                format!("strict decoding error: {}", UNKNOWN.join(", "))
            )
        );

        // The create/update path also reports the duplicate key, first.
        let (_, warnings) = decode_body::<Deployment>(parsed(), FieldValidation::Warn).unwrap();
        let mut expected = vec![r#"duplicate field "spec.replicas""#];
        expected.extend(UNKNOWN);
        assert_eq!(warnings, expected);
        let error = decode_body::<Deployment>(parsed(), FieldValidation::Strict).unwrap_err();
        assert_eq!(
            status(&error),
            (
                400,
                format!(
                    "Deployment in version \"v1\" cannot be handled as a Deployment: strict decoding error: {}",
                    expected.join(", ")
                )
            )
        );
        let (_, warnings) = decode_body::<Deployment>(parsed(), FieldValidation::Ignore).unwrap();
        assert!(warnings.is_empty());
    }

    #[test]
    fn yaml_bodies_get_the_same_field_validation() {
        let text = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  foo: 1\n  selector: {}\n  template:\n    spec:\n      containers:\n      - name: a\n        bar: 2\n";
        let parsed = parse(text, BodyFormat::Yaml).unwrap();
        let (_, warnings) = decode_body::<Deployment>(parsed, FieldValidation::Warn).unwrap();
        assert_eq!(
            warnings,
            [
                r#"unknown field "spec.foo""#,
                r#"unknown field "spec.template.spec.containers[0].bar""#
            ]
        );
    }

    #[test]
    fn type_errors_name_the_field() {
        let check = |body: Value, expected: &str| {
            let error =
                decode_typed::<Deployment>(body.clone(), FieldValidation::Ignore).unwrap_err();
            assert_eq!(status(&error), (400, expected.to_owned()), "{body}");
        };
        check(
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "spec": {"replicas": "abc"}}),
            r#"spec.replicas: invalid type: string "abc", expected i32"#,
        );
        check(
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "spec": {"selector": {}, "template": {"spec": {"containers": [{"name": "a", "ports": [{"containerPort": "80"}]}]}}}}),
            r#"spec.template.spec.containers[0].ports[0].containerPort: invalid type: string "80", expected i32"#,
        );
        let parsed = parse(
            r#"{"apiVersion": "apps/v1", "kind": "Deployment", "spec": {"replicas": true}}"#,
            BodyFormat::Json,
        )
        .unwrap();
        let error = decode_body::<Deployment>(parsed, FieldValidation::Strict).unwrap_err();
        assert_eq!(
            status(&error),
            (400, "Deployment in version \"v1\" cannot be handled as a Deployment: spec.replicas: invalid type: boolean `true`, expected i32".to_owned())
        );
    }

    #[test]
    fn warning_headers() {
        let check = |text: &str, expected: &str| assert_eq!(warning_header(text), expected);
        check(
            r#"unknown field "spec.foo""#,
            r#"299 - "unknown field \"spec.foo\"""#,
        );
        check(r"a\b", r#"299 - "a\\b""#);
        check("line\nbreak", r#"299 - "line break""#);
        check("café", "299 - \"café\"");
    }

    #[test]
    fn accept_negotiation() {
        let check = |accept: Option<&str>, expected: Result<ResponseFormat, u16>| {
            let value = accept.map(header);
            let actual = negotiate(value.as_ref()).map_err(|e| status(&e).0);
            assert_eq!(actual, expected, "Accept: {accept:?}");
        };
        use ResponseFormat::*;
        check(None, Ok(Json));
        check(Some(""), Ok(Json));
        check(Some("application/json"), Ok(Json));
        check(Some("application/json; charset=utf-8"), Ok(Json));
        check(Some("*/*"), Ok(Json));
        check(Some("application/*"), Ok(Json));
        check(Some("application/yaml"), Ok(Yaml));
        check(Some("application/json;stream=watch"), Ok(Json));
        check(Some("application/yaml;stream=watch"), Err(406));
        check(
            Some("application/json;as=Table;v=v1;g=meta.k8s.io"),
            Ok(Table(TableVersion::V1)),
        );
        check(
            Some(
                "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json",
            ),
            Ok(Table(TableVersion::V1)),
        );
        check(
            Some("application/json;as=Table;v=v1beta1;g=meta.k8s.io, application/json"),
            Ok(Table(TableVersion::V1beta1)),
        );
        check(
            Some("application/json;as=Table;v=v2;g=meta.k8s.io, application/json"),
            Ok(Json),
        );
        check(
            Some("application/json;as=Table;v=v1;g=example.com, application/yaml"),
            Ok(Yaml),
        );
        check(
            Some("application/json;as=PartialObjectMetadataList;v=v1;g=meta.k8s.io"),
            Err(406),
        );
        check(
            Some("application/yaml;as=Table;v=v1;g=meta.k8s.io"),
            Err(406),
        );
        check(Some("application/vnd.kubernetes.protobuf"), Err(406));
        check(
            Some("application/vnd.kubernetes.protobuf, application/json"),
            Ok(Json),
        );
        check(Some("text/html"), Err(406));
        check(Some("application/json;q=0.5, application/yaml"), Ok(Yaml));
        check(Some("application/yaml;q=0.9, */*;q=0.9"), Ok(Yaml));
        check(Some("*/*;q=0.9, application/yaml;q=0.9"), Ok(Yaml));
        check(
            Some("application/json;q=0, application/yaml;q=0.1"),
            Ok(Yaml),
        );
        check(Some("application/json;q=0"), Err(406));
        let error = negotiate(Some(&header("text/html"))).unwrap_err();
        assert_eq!(
            error.to_string(),
            "only the following media types are accepted: application/json, application/yaml"
        );
    }
}
