//! Reading and writing `metadata` and a few well-known fields of objects held
//! as JSON values, and the defaults the server fills in on create.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use crate::store::Revision;

/// `metadata`, created if missing.
pub fn metadata_mut(obj: &mut Value) -> &mut Map<String, Value> {
    if !obj.get("metadata").is_some_and(Value::is_object) {
        obj["metadata"] = json!({});
    }
    obj["metadata"]
        .as_object_mut()
        .expect("metadata is an object")
}

/// A string field of `metadata`.
pub fn meta_str<'a>(obj: &'a Value, field: &str) -> Option<&'a str> {
    obj.get("metadata")?.get(field)?.as_str()
}

/// The object's name ("" if none).
pub fn name(obj: &Value) -> &str {
    meta_str(obj, "name").unwrap_or("")
}

/// The object's namespace, if any.
pub fn namespace(obj: &Value) -> Option<&str> {
    meta_str(obj, "namespace").filter(|ns| !ns.is_empty())
}

/// The object's labels.
pub fn labels(obj: &Value) -> BTreeMap<String, String> {
    obj.get("metadata")
        .and_then(|m| m.get("labels"))
        .and_then(Value::as_object)
        .map(|labels| {
            labels
                .iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                .collect()
        })
        .unwrap_or_default()
}

/// The object's finalizers.
pub fn finalizers(obj: &Value) -> Vec<String> {
    obj.get("metadata")
        .and_then(|m| m.get("finalizers"))
        .and_then(Value::as_array)
        .map(|f| {
            f.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// Replaces the finalizers (removing the field when empty).
pub fn set_finalizers(obj: &mut Value, finalizers: &[String]) {
    let meta = metadata_mut(obj);
    if finalizers.is_empty() {
        meta.remove("finalizers");
    } else {
        meta.insert("finalizers".into(), json!(finalizers));
    }
}

/// Whether the object is being deleted.
pub fn deleting(obj: &Value) -> bool {
    meta_str(obj, "deletionTimestamp").is_some()
}

/// Sets `metadata.resourceVersion`.
pub fn set_resource_version(obj: &mut Value, revision: Revision) {
    metadata_mut(obj).insert("resourceVersion".into(), json!(revision.to_string()));
}

/// Now, as Kubernetes writes timestamps (RFC 3339, seconds).
pub fn now() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// Now, whole seconds, as a typed timestamp.
pub fn now_time() -> k8s_openapi::apimachinery::pkg::apis::meta::v1::Time {
    let now = jiff::Timestamp::now();
    k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
        jiff::Timestamp::from_second(now.as_second()).unwrap_or(now),
    )
}

/// A timestamp `seconds` from now.
pub fn now_plus(seconds: i64) -> String {
    let at = jiff::Timestamp::now()
        .checked_add(jiff::SignedDuration::from_secs(seconds))
        .unwrap_or_else(|_| jiff::Timestamp::now());
    at.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// A name from `generateName`: the prefix and five random characters from
/// Kubernetes' alphabet (no vowels, no look-alikes).
pub fn generate_name(prefix: &str) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let prefix: String = prefix.chars().take(58).collect();
    let suffix: String = (0..5)
        .map(|_| ALPHABET[rand::random_range(0..ALPHABET.len())] as char)
        .collect();
    format!("{prefix}{suffix}")
}

/// The JSON of a typed object as serialized (`{"apiVersion":..,"kind":..,
/// "metadata":{...},...}`, the field order of k8s-openapi's types) with
/// `metadata.resourceVersion` set to `revision`, without serializing the
/// object again: the create path stores the object before its revision is
/// known and answers with the same bytes plus the revision. `None` if the
/// JSON does not start that way (the caller serializes again) or already
/// has a resource version.
pub fn with_resource_version(json: &[u8], revision: Revision) -> Option<bytes::Bytes> {
    /// The index after a JSON string starting at `at` (a quote).
    fn skip_string(json: &[u8], at: usize) -> Option<usize> {
        if json.get(at) != Some(&b'"') {
            return None;
        }
        let mut i = at + 1;
        while i < json.len() {
            match json[i] {
                b'\\' => i += 2,
                b'"' => return Some(i + 1),
                _ => i += 1,
            }
        }
        None
    }
    let rest = json.strip_prefix(b"{\"apiVersion\":")?;
    let mut at = json.len() - rest.len();
    at = skip_string(json, at)?;
    at += json[at..].strip_prefix(b",\"kind\":").map(|_| 8)?;
    at = skip_string(json, at)?;
    at += json[at..].strip_prefix(b",\"metadata\":{").map(|_| 13)?;
    if contains_bytes(&json[at..], b"\"resourceVersion\":") {
        return None;
    }
    let field = format!("\"resourceVersion\":\"{revision}\"");
    let separator = if json.get(at) == Some(&b'}') { "" } else { "," };
    let mut out = Vec::with_capacity(json.len() + field.len() + 1);
    out.extend_from_slice(&json[..at]);
    out.extend_from_slice(field.as_bytes());
    out.extend_from_slice(separator.as_bytes());
    out.extend_from_slice(&json[at..]);
    Some(out.into())
}

/// Whether `needle` occurs in `haystack` (a conservative check: a match
/// inside a string value only costs a second serialization).
fn contains_bytes(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_resource_version_is_spliced_into_serialized_metadata() {
        use k8s_openapi::api::core::v1::{ConfigMap, Pod};
        use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "p", "namespace": "default", "labels": {"a": "\"}\\"}},
            "spec": {"containers": [{"name": "c", "image": "i"}]},
        }))
        .unwrap();
        let json = serde_json::to_vec(&pod).unwrap();
        let spliced = with_resource_version(&json, 42).expect("spliced");
        let mut expected = pod.clone();
        expected.metadata.resource_version = Some("42".into());
        assert_eq!(serde_json::from_slice::<Pod>(&spliced).unwrap(), expected);

        // Empty metadata: no dangling comma.
        let empty = ConfigMap {
            metadata: ObjectMeta::default(),
            ..Default::default()
        };
        let spliced = with_resource_version(&serde_json::to_vec(&empty).unwrap(), 7).unwrap();
        let value: Value = serde_json::from_slice(&spliced).unwrap();
        assert_eq!(value["metadata"], json!({"resourceVersion": "7"}));

        // Not the expected shape, or a version already there: not spliced.
        assert!(with_resource_version(br#"{"kind":"Pod","metadata":{}}"#, 1).is_none());
        assert!(with_resource_version(b"[]", 1).is_none());
        let mut versioned = pod;
        versioned.metadata.resource_version = Some("3".into());
        assert!(with_resource_version(&serde_json::to_vec(&versioned).unwrap(), 4).is_none());
    }

    #[test]
    fn generated_names_keep_the_prefix() {
        let name = generate_name("web-");
        assert!(name.starts_with("web-") && name.len() == 9, "{name}");
        assert!(
            name[4..]
                .bytes()
                .all(|b| b"bcdfghjklmnpqrstvwxz2456789".contains(&b))
        );
    }
}
