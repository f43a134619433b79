//! Applying PATCH bodies to the stored object: RFC 6902 JSON patch and
//! RFC 7386 JSON merge patch, with kube-apiserver's status codes and the
//! same size and depth limits as request bodies, and Kubernetes' strategic
//! merge patch ([`super::strategic`]). Server-side apply is answered with
//! 415 until it exists. Pure.
//!
//! Status codes follow kube-apiserver 1.30+ (`applyJSPatch` in
//! `handlers/patch.go`): a patch that does not decode is 400; more than
//! 10,000 JSON patch operations is 413; an operation that cannot be applied
//! (a failed `test`, a path that does not exist, a `copy` that grows the
//! object too much) is 422 Invalid; and a patched object that does not
//! decode is 422 Invalid on the field `patch`, strict field validation
//! included. kube-apiserver's 422 for a failed operation carries only "the
//! server rejected our request due to an error in our request"; ours names
//! the operation.

use json_patch::PatchOperation;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::body::{
    BodyFormat, FieldValidation, MAX_BODY_BYTES, MAX_NESTING_DEPTH, PatchType,
    decode_with_unknown_fields, describe, parse_document, validate_fields,
};
use super::error::{ApiError, Cause, CauseType};
use super::strategic::{self, StrategicError};

/// The most operations one JSON patch may have (kube-apiserver's
/// `maxJSONPatchOperations`).
pub const MAX_JSON_PATCH_OPERATIONS: usize = 10_000;

/// How many bytes the `copy` operations of one JSON patch may add in total
/// (kube-apiserver's `JSONPatchMaxCopyBytes`). Without it, thirty
/// `{"op": "copy", "from": "/a", "path": "/a/-"}` double an array thirty
/// times: a kilobyte object becomes a terabyte from one small request.
pub const MAX_JSON_PATCH_COPY_BYTES: usize = 3 * 1024 * 1024;

/// Applies `patch`, of type `patch_type`, to `current` and returns the
/// patched object. `current` is not changed; a patch applies completely or
/// not at all.
pub fn apply_patch(
    current: &Value,
    patch: &[u8],
    patch_type: PatchType,
) -> Result<Value, ApiError> {
    if patch.len() > MAX_BODY_BYTES {
        return Err(ApiError::TooLarge {
            limit: MAX_BODY_BYTES,
        });
    }
    let patched = match patch_type {
        PatchType::Json => apply_json_patch(current, patch)?,
        PatchType::Merge => apply_merge_patch(current, patch)?,
        PatchType::StrategicMerge => apply_strategic_merge_patch(current, patch)?,
        PatchType::Apply => {
            return Err(ApiError::UnsupportedMediaType(
                "server-side apply (application/apply-patch+yaml) is not supported by this server \
                 yet; use kubectl create or kubectl replace, or send a JSON merge patch \
                 (application/merge-patch+json)."
                    .to_owned(),
            ));
        }
    };
    if !patched.is_object() {
        return Err(invalid(
            current,
            format!(
                "the patched object must be a JSON object, not {}",
                describe(&patched)
            ),
        ));
    }
    Ok(patched)
}

/// Decodes a patched object into `T` under `validation`, returning it and
/// the warnings to send. As kube-apiserver, any failure (a value of the
/// wrong type, or unknown fields under [`FieldValidation::Strict`]) is 422
/// Invalid on the field `patch`, not the 400 that create and update give.
pub fn decode_patched<T: DeserializeOwned>(
    patched: Value,
    validation: FieldValidation,
) -> Result<(T, Vec<String>), ApiError> {
    let identity = Identity::of(&patched);
    let (object, unknown) =
        decode_with_unknown_fields(patched).map_err(|error| identity.invalid(error))?;
    let warnings = validate_fields(unknown, validation).map_err(|error| identity.invalid(error))?;
    Ok((object, warnings))
}

fn apply_json_patch(current: &Value, patch: &[u8]) -> Result<Value, ApiError> {
    let operations = match parse_document(patch, BodyFormat::Json) {
        Ok(parsed) => parsed.value,
        Err(error) => return Err(bad_patch(error)),
    };
    let Value::Array(operations) = operations else {
        return Err(bad_patch(format!(
            "a JSON patch must be an array of operations, not {}",
            describe(&operations)
        )));
    };
    if operations.len() > MAX_JSON_PATCH_OPERATIONS {
        // kube-apiserver answers 413 "Request entity too large: ..."; our
        // TooLarge variant can only speak of bytes, so this is a 400 with
        // kube-apiserver's message until it can carry one.
        return Err(ApiError::BadRequest(format!(
            "The allowed maximum operations in a JSON patch is {MAX_JSON_PATCH_OPERATIONS}, got {}",
            operations.len()
        )));
    }
    let operations = operations
        .into_iter()
        .enumerate()
        .map(|(index, operation)| {
            serde_json::from_value::<PatchOperation>(operation)
                .map_err(|error| bad_patch(format!("operation {index}: {error}")))
        })
        .collect::<Result<Vec<_>, _>>()?;

    let mut patched = current.clone();
    let mut copied = 0;
    for (index, operation) in operations.iter().enumerate() {
        check_growth(&patched, operation, &mut copied)
            .map_err(|detail| invalid(current, operation_failed(index, operation, &detail)))?;
        // One operation at a time so each is checked against the object
        // as the earlier ones left it; `patched` is a copy, so a failure
        // leaves nothing half-applied.
        json_patch::patch_unsafe(&mut patched, std::slice::from_ref(operation)).map_err(
            |error| {
                invalid(
                    current,
                    operation_failed(index, operation, &explain(operation, &error.kind)),
                )
            },
        )?;
    }
    Ok(patched)
}

fn apply_merge_patch(current: &Value, patch: &[u8]) -> Result<Value, ApiError> {
    let patch = parse_document(patch, BodyFormat::Json)
        .map_err(bad_patch)?
        .value;
    // kube-apiserver decodes the patch into a map first (under the default
    // Warn and kubectl's Strict validation), so anything else is 400.
    if !patch.is_object() {
        return Err(bad_patch(format!(
            "a merge patch must be a JSON object, not {}",
            describe(&patch)
        )));
    }
    // Merging can make the object no deeper than the deeper of the two,
    // and both are within the nesting limit.
    let mut patched = current.clone();
    json_patch::merge(&mut patched, &patch);
    Ok(patched)
}

/// A strategic merge patch, by the patch metadata of the object's kind
/// (its `apiVersion` and `kind`). Errors are coded as kube-apiserver codes
/// them: a malformed patch or directive is 400, a patch the object's
/// structure cannot take is 422.
fn apply_strategic_merge_patch(current: &Value, patch: &[u8]) -> Result<Value, ApiError> {
    let patch = parse_document(patch, BodyFormat::Json)
        .map_err(bad_patch)?
        .value;
    if !patch.is_object() {
        return Err(bad_patch(format!(
            "a strategic merge patch must be a JSON object, not {}",
            describe(&patch)
        )));
    }
    let text = |field: &str| current.get(field).and_then(Value::as_str).unwrap_or("");
    let definition = strategic::meta::root(text("apiVersion"), text("kind")).unwrap_or("");
    strategic::apply(current, &patch, definition).map_err(|error| match error {
        StrategicError::NotAnObject
        | StrategicError::BadSetElementOrder
        | StrategicError::BadDeleteFromPrimitiveList
        | StrategicError::BadRetainKeys
        | StrategicError::UnknownPatchType { .. } => bad_patch(error.to_string()),
        other => invalid(current, other.to_string()),
    })
}

/// Refuses an operation that would nest the object deeper than
/// [`MAX_NESTING_DEPTH`] or make `copy` add more than
/// [`MAX_JSON_PATCH_COPY_BYTES`] in total. Only `add`, `replace`, `copy`
/// and `move` (to a deeper place) can do either.
fn check_growth(
    patched: &Value,
    operation: &PatchOperation,
    copied: &mut usize,
) -> Result<(), String> {
    let (path, value) = match operation {
        PatchOperation::Add(add) => (&add.path, Some(&add.value)),
        PatchOperation::Replace(replace) => (&replace.path, Some(&replace.value)),
        PatchOperation::Copy(copy) => (&copy.path, patched.pointer(copy.from.as_str())),
        PatchOperation::Move(moved) if moved.path.count() > moved.from.count() => {
            (&moved.path, patched.pointer(moved.from.as_str()))
        }
        _ => return Ok(()),
    };
    // A missing `from` is json_patch's to report.
    let Some(value) = value else { return Ok(()) };
    let is_copy = matches!(operation, PatchOperation::Copy(_));
    // Only copies spend the byte budget; other values are measured whole,
    // for their depth.
    let budget = if is_copy {
        MAX_JSON_PATCH_COPY_BYTES - *copied
    } else {
        usize::MAX
    };
    let measure = Measure::of(value, budget);
    if is_copy {
        if measure.bytes > budget {
            return Err(format!(
                "the copies of this patch would add more than {MAX_JSON_PATCH_COPY_BYTES} bytes"
            ));
        }
        *copied += measure.bytes;
    }
    if path.count() + measure.depth > MAX_NESTING_DEPTH {
        return Err(format!(
            "the object would nest deeper than {MAX_NESTING_DEPTH} levels"
        ));
    }
    Ok(())
}

/// The approximate JSON size and the nesting depth of a value, measured
/// without recursion and giving up on the size once past a budget.
struct Measure {
    bytes: usize,
    depth: usize,
}

impl Measure {
    fn of(value: &Value, budget: usize) -> Self {
        let mut measure = Measure { bytes: 0, depth: 0 };
        let mut pending = vec![(value, 0)];
        while let Some((value, depth)) = pending.pop() {
            measure.bytes += match value {
                Value::Null | Value::Bool(_) => 5,
                Value::Number(_) => 8,
                Value::String(text) => text.len() + 2,
                Value::Array(items) => {
                    pending.extend(items.iter().map(|item| (item, depth + 1)));
                    2 + items.len()
                }
                Value::Object(fields) => {
                    pending.extend(fields.values().map(|field| (field, depth + 1)));
                    2 + fields.keys().map(|key| key.len() + 4).sum::<usize>()
                }
            };
            if value.is_array() || value.is_object() {
                measure.depth = measure.depth.max(depth + 1);
            }
            if measure.bytes > budget {
                break;
            }
        }
        measure
    }
}

/// Says why an operation failed, in terms of its own paths.
fn explain(operation: &PatchOperation, kind: &json_patch::PatchErrorKind) -> String {
    use json_patch::PatchErrorKind;
    match (kind, operation) {
        (PatchErrorKind::TestFailed, _) => format!(
            "the value at {:?} is not the expected one",
            operation.path().as_str()
        ),
        (PatchErrorKind::InvalidFromPointer, PatchOperation::Copy(copy)) => {
            format!("\"from\" path {:?} does not exist", copy.from.as_str())
        }
        (PatchErrorKind::InvalidFromPointer, PatchOperation::Move(moved)) => {
            format!("\"from\" path {:?} does not exist", moved.from.as_str())
        }
        (PatchErrorKind::CannotMoveInsideItself, _) => {
            "a value cannot be moved into one of its children".to_owned()
        }
        _ => format!("path {:?} does not exist", operation.path().as_str()),
    }
}

fn operation_failed(index: usize, operation: &PatchOperation, detail: &str) -> String {
    let name = match operation {
        PatchOperation::Add(_) => "add",
        PatchOperation::Remove(_) => "remove",
        PatchOperation::Replace(_) => "replace",
        PatchOperation::Move(_) => "move",
        PatchOperation::Copy(_) => "copy",
        PatchOperation::Test(_) => "test",
    };
    format!("json patch {name} operation {index} failed: {detail}")
}

fn bad_patch(error: String) -> ApiError {
    ApiError::BadRequest(format!("error decoding patch: {error}"))
}

/// 422 Invalid on the field `patch`, named after `object`.
fn invalid(object: &Value, detail: String) -> ApiError {
    Identity::of(object).invalid(detail)
}

/// The kind, group and name of an object, for Invalid errors.
struct Identity {
    kind: String,
    group: String,
    name: String,
}

impl Identity {
    fn of(object: &Value) -> Self {
        let text = |value: Option<&Value>| value.and_then(Value::as_str).unwrap_or("").to_owned();
        let api_version = text(object.get("apiVersion"));
        Identity {
            kind: text(object.get("kind")),
            group: api_version
                .split_once('/')
                .map(|(group, _)| group.to_owned())
                .unwrap_or_default(),
            name: text(object.get("metadata").and_then(|m| m.get("name"))),
        }
    }

    fn invalid(&self, detail: String) -> ApiError {
        ApiError::Invalid {
            kind: self.kind.clone(),
            group: self.group.clone(),
            name: self.name.clone(),
            causes: vec![Cause::new(CauseType::Invalid, "patch", &detail)],
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use k8s_openapi::api::apps::v1::Deployment;
    use serde_json::json;

    use super::*;

    fn deployment() -> Value {
        json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web", "labels": {"app": "web", "tier": "front"}},
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}}, "template": {"spec": {"containers": [{"name": "web", "image": "nginx:1"}]}}}
        })
    }

    /// The HTTP code and message of an error, for table tests.
    fn status(error: &ApiError) -> (u16, String) {
        (error.code_and_reason().0.as_u16(), error.to_string())
    }

    /// Applies `patch` to [`deployment`] and compares with `expected`:
    /// `Ok` with the patched object, or `Err` with the code and a part of
    /// the message.
    fn check(patch: Value, patch_type: PatchType, expected: Result<Value, (u16, &str)>) {
        let current = deployment();
        let bytes = serde_json::to_vec(&patch).unwrap();
        match (apply_patch(&current, &bytes, patch_type), expected) {
            (Ok(patched), Ok(expected)) => assert_eq!(patched, expected, "{patch}"),
            (Err(error), Err((code, message))) => {
                let (actual_code, actual_message) = status(&error);
                assert_eq!(actual_code, code, "{patch}: {actual_message}");
                assert!(
                    actual_message.contains(message),
                    "{patch}: {actual_message:?} lacks {message:?}"
                );
            }
            (actual, expected) => panic!("{patch}: got {actual:?}, expected {expected:?}"),
        }
    }

    fn with(change: impl FnOnce(&mut Value)) -> Value {
        let mut object = deployment();
        change(&mut object);
        object
    }

    #[test]
    fn json_patches() {
        use PatchType::Json;
        check(
            json!([{"op": "add", "path": "/metadata/labels/env", "value": "prod"}]),
            Json,
            Ok(with(|d| d["metadata"]["labels"]["env"] = json!("prod"))),
        );
        check(
            json!([{"op": "replace", "path": "/spec/replicas", "value": 5}]),
            Json,
            Ok(with(|d| d["spec"]["replicas"] = json!(5))),
        );
        check(
            json!([{"op": "remove", "path": "/metadata/labels/tier"}]),
            Json,
            Ok(with(|d| d["metadata"]["labels"] = json!({"app": "web"}))),
        );
        check(
            json!([
                {"op": "test", "path": "/spec/replicas", "value": 3},
                {"op": "add", "path": "/spec/template/spec/containers/-", "value": {"name": "side", "image": "busybox"}},
                {"op": "copy", "from": "/metadata/labels", "path": "/spec/template/metadata"},
                {"op": "move", "from": "/metadata/labels/tier", "path": "/metadata/labels/layer"}
            ]),
            Json,
            Ok(with(|d| {
                let containers = d["spec"]["template"]["spec"]["containers"]
                    .as_array_mut()
                    .unwrap();
                containers.push(json!({"name": "side", "image": "busybox"}));
                d["spec"]["template"]["metadata"] = json!({"app": "web", "tier": "front"});
                d["metadata"]["labels"] = json!({"app": "web", "layer": "front"});
            })),
        );
        check(json!([]), Json, Ok(deployment()));
    }

    #[test]
    fn json_patch_failures() {
        use PatchType::Json;
        // Operations that cannot apply are 422 and change nothing, even
        // when earlier operations of the same patch succeeded.
        check(
            json!([{"op": "replace", "path": "/spec/replicas", "value": 1}, {"op": "test", "path": "/spec/replicas", "value": 3}]),
            Json,
            Err((
                422,
                r#"Deployment "web" is invalid: patch: Invalid value: json patch test operation 1 failed: the value at "/spec/replicas" is not the expected one"#,
            )),
        );
        check(
            json!([{"op": "test", "path": "/spec/paused", "value": true}]),
            Json,
            Err((
                422,
                r#"test operation 0 failed: path "/spec/paused" does not exist"#,
            )),
        );
        check(
            json!([{"op": "replace", "path": "/spec/nope", "value": 1}]),
            Json,
            Err((
                422,
                r#"replace operation 0 failed: path "/spec/nope" does not exist"#,
            )),
        );
        check(
            json!([{"op": "remove", "path": "/metadata/annotations/x"}]),
            Json,
            Err((
                422,
                r#"remove operation 0 failed: path "/metadata/annotations/x" does not exist"#,
            )),
        );
        check(
            json!([{"op": "add", "path": "/spec/template/spec/containers/5", "value": {}}]),
            Json,
            Err((
                422,
                r#"add operation 0 failed: path "/spec/template/spec/containers/5" does not exist"#,
            )),
        );
        check(
            json!([{"op": "copy", "from": "/spec/nope", "path": "/spec/x"}]),
            Json,
            Err((
                422,
                r#"copy operation 0 failed: "from" path "/spec/nope" does not exist"#,
            )),
        );
        check(
            json!([{"op": "move", "from": "/spec", "path": "/spec/template/x"}]),
            Json,
            Err((422, "a value cannot be moved into one of its children")),
        );
        check(
            json!([{"op": "replace", "path": "", "value": [1]}]),
            Json,
            Err((
                422,
                "the patched object must be a JSON object, not an array",
            )),
        );
        let error = apply_patch(
            &deployment(),
            br#"[{"op": "test", "path": "/x", "value": 1}]"#,
            Json,
        )
        .unwrap_err();
        assert_eq!(error.status()["reason"], "Invalid");
        assert_eq!(error.status()["details"]["group"], "apps");
    }

    #[test]
    fn malformed_patches_are_400() {
        use PatchType::{Json, Merge};
        let check_bytes = |patch: &[u8], patch_type: PatchType, message: &str| {
            let error = apply_patch(&deployment(), patch, patch_type).unwrap_err();
            let (code, actual) = status(&error);
            assert_eq!(code, 400, "{actual}");
            assert!(actual.contains(message), "{actual:?} lacks {message:?}");
        };
        check_bytes(
            b"[{\"op\":",
            Json,
            "error decoding patch: EOF while parsing",
        );
        check_bytes(
            br#"{"op": "add"}"#,
            Json,
            "error decoding patch: a JSON patch must be an array of operations, not an object",
        );
        check_bytes(
            br#"[{"op": "frobnicate", "path": "/a"}]"#,
            Json,
            "error decoding patch: operation 0: unknown variant `frobnicate`",
        );
        check_bytes(
            br#"[{"op": "add", "path": "/a"}]"#,
            Json,
            "error decoding patch: operation 0: missing field `value`",
        );
        check_bytes(
            br#"[{"op": "add", "path": "a", "value": 1}]"#,
            Json,
            "error decoding patch: operation 0:",
        );
        check_bytes(
            b"{\"a\": ",
            Merge,
            "error decoding patch: EOF while parsing",
        );
        check_bytes(
            b"[1]",
            Merge,
            "error decoding patch: a merge patch must be a JSON object, not an array",
        );
        check_bytes(b"null", Merge, "not null");
        let deep = format!("{{\"a\":{}1{}}}", "[".repeat(10_000), "]".repeat(10_000));
        check_bytes(deep.as_bytes(), Merge, "exceeded max depth of 100");
        check_bytes(
            format!("[{}]", deep).as_bytes(),
            Json,
            "exceeded max depth of 100",
        );
    }

    #[test]
    fn too_many_operations() {
        let operation = r#"{"op": "test", "path": "/kind", "value": "Deployment"}"#;
        let patch = |count: usize| format!("[{}]", vec![operation; count].join(","));
        assert!(
            apply_patch(
                &deployment(),
                patch(MAX_JSON_PATCH_OPERATIONS).as_bytes(),
                PatchType::Json
            )
            .is_ok()
        );
        let error = apply_patch(
            &deployment(),
            patch(MAX_JSON_PATCH_OPERATIONS + 1).as_bytes(),
            PatchType::Json,
        )
        .unwrap_err();
        assert_eq!(
            status(&error),
            (
                400,
                "The allowed maximum operations in a JSON patch is 10000, got 10001".to_owned()
            )
        );
    }

    #[test]
    fn copy_bombs_are_stopped() {
        // Each copy doubles the array: unchecked, 40 of them need 2^40 items.
        let current =
            json!({"kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": vec!["x"; 64]}});
        let doubling: Vec<Value> = (0..40)
            .map(|_| json!({"op": "copy", "from": "/data/a", "path": "/data/a/-"}))
            .collect();
        let start = Instant::now();
        let error = apply_patch(
            &current,
            &serde_json::to_vec(&doubling).unwrap(),
            PatchType::Json,
        )
        .unwrap_err();
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "took {:?}",
            start.elapsed()
        );
        let (code, message) = status(&error);
        assert_eq!(code, 422);
        assert!(
            message.contains("copies of this patch would add more than 3145728 bytes"),
            "{message}"
        );
    }

    #[test]
    fn patches_cannot_nest_deeper_than_bodies() {
        // Each add is 10 levels deep; together they would go 1,000 deep.
        let chain = (0..9).fold(json!({}), |inner, _| json!({"a": inner}));
        let operations: Vec<Value> = (0..100)
            .map(|i| json!({"op": "add", "path": format!("/spec/n{}", "/a".repeat(10 * i)), "value": chain}))
            .collect();
        let error = apply_patch(
            &deployment(),
            &serde_json::to_vec(&operations).unwrap(),
            PatchType::Json,
        )
        .unwrap_err();
        let (code, message) = status(&error);
        assert_eq!(code, 422);
        assert!(
            message.contains("the object would nest deeper than 100 levels"),
            "{message}"
        );
        // Moving a subtree deeper counts too.
        let current =
            with(|d| d["spec"]["deep"] = (0..97).fold(json!(1), |inner, _| json!({"a": inner})));
        let patch =
            json!([{"op": "move", "from": "/spec/deep", "path": "/spec/template/spec/deep"}]);
        let error = apply_patch(
            &current,
            &serde_json::to_vec(&patch).unwrap(),
            PatchType::Json,
        )
        .unwrap_err();
        assert!(
            error.to_string().contains("nest deeper than 100"),
            "{error}"
        );
    }

    #[test]
    fn merge_patches() {
        use PatchType::Merge;
        check(
            json!({"metadata": {"labels": {"tier": null, "env": "prod"}}, "spec": {"replicas": 1}}),
            Merge,
            Ok(with(|d| {
                d["metadata"]["labels"] = json!({"app": "web", "env": "prod"});
                d["spec"]["replicas"] = json!(1);
            })),
        );
        // null deletes whole subtrees; lists are replaced, not merged.
        check(
            json!({"metadata": {"labels": null}, "spec": {"template": {"spec": {"containers": [{"name": "other"}]}}}}),
            Merge,
            Ok(with(|d| {
                d["metadata"].as_object_mut().unwrap().remove("labels");
                d["spec"]["template"]["spec"]["containers"] = json!([{"name": "other"}]);
            })),
        );
        check(json!({}), Merge, Ok(deployment()));
    }

    #[test]
    fn strategic_merge_patches_merge_lists_by_key() {
        check(
            json!({"spec": {"template": {"spec": {"containers": [{"name": "other", "image": "o:1"}]}}}}),
            PatchType::StrategicMerge,
            Ok(with(|d| {
                let containers = d["spec"]["template"]["spec"]["containers"]
                    .as_array_mut()
                    .unwrap();
                containers.insert(0, json!({"name": "other", "image": "o:1"}));
            })),
        );
        check(
            json!({"spec": {"template": {"spec": {"containers": [{"image": "x"}]}}}}),
            PatchType::StrategicMerge,
            Err((422, "does not contain declared merge key: name")),
        );
        check(
            json!([]),
            PatchType::StrategicMerge,
            Err((400, "must be a JSON object")),
        );
        check(
            json!({"$patch": "sideways"}),
            PatchType::StrategicMerge,
            Err((400, "unknown patch type")),
        );
    }

    #[test]
    fn server_side_apply_is_415_for_now() {
        check(json!({}), PatchType::Apply, Err((415, "server-side apply")));
    }

    #[test]
    fn patched_objects_decode_with_422_on_failure() {
        let patched = with(|d| {
            d["spec"]["foo"] = json!(1);
            d["spec"]["template"]["spec"]["containers"][0]["bar"] = json!(2);
        });
        let (_, warnings) =
            decode_patched::<Deployment>(patched.clone(), FieldValidation::Warn).unwrap();
        assert_eq!(
            warnings,
            [
                r#"unknown field "spec.foo""#,
                r#"unknown field "spec.template.spec.containers[0].bar""#
            ]
        );
        let error = decode_patched::<Deployment>(patched, FieldValidation::Strict).unwrap_err();
        assert_eq!(
            status(&error),
            (422, r#"Deployment "web" is invalid: patch: Invalid value: strict decoding error: unknown field "spec.foo", unknown field "spec.template.spec.containers[0].bar""#.to_owned())
        );
        let error = decode_patched::<Deployment>(
            with(|d| d["spec"]["replicas"] = json!("3")),
            FieldValidation::Ignore,
        )
        .unwrap_err();
        assert_eq!(
            status(&error),
            (422, r#"Deployment "web" is invalid: patch: Invalid value: spec.replicas: invalid type: string "3", expected i32"#.to_owned())
        );
    }
}
