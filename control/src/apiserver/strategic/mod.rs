//! Strategic merge patch (`application/strategic-merge-patch+json`) for the
//! built-in types, with Kubernetes' merge keys and directives.
//!
//! [`apply`] merges a patch into an object the way kube-apiserver does
//! (apimachinery's `strategicpatch`, with the server's options: parallel
//! `$deleteFromPrimitiveList` lists are applied and unmatched nulls
//! ignored). The type walk uses [`meta::field`]: a field with a merge
//! strategy and a merge key merges its list item by item, a merge list of
//! primitives is an ordered set, everything else follows JSON merge patch
//! (objects merge, lists and primitives are replaced, `null` deletes).
//!
//! Directives:
//! - `$patch: replace` in an object replaces the object; as a list item it
//!   replaces the whole list with the patch's other items;
//! - `$patch: delete` in an object deletes it; in a list item it deletes the
//!   items with that merge key;
//! - `$patch: merge` is the default and changes nothing;
//! - `$setElementOrder/<list>` orders the merged list: listed items first in
//!   the given order, each item the order leaves out kept before the listed
//!   items that followed it in the original;
//! - `$deleteFromPrimitiveList/<list>` removes values from a merge list of
//!   primitives, after the patch's additions;
//! - `$retainKeys` clears every key of the original object it does not list.
//!
//! Without `$setElementOrder`, a merged list keeps the patch's items in the
//! patch's order and slots the original's other items in by their original
//! positions; a new item with no original position to compare goes first,
//! as in Kubernetes (`kubectl patch` adding a container puts it first;
//! `kubectl apply` always sends `$setElementOrder` and so orders exactly).
//!
//! Unlike Kubernetes, which copies a patch value verbatim into a field the
//! original lacks, this applies such values to an empty original, so
//! directive keys never reach the result.
//!
//! Architecture invariant: pure functions over `serde_json::Value`; the
//! caller decodes and validates the result and maps [`StrategicError`] to a
//! status.

pub mod meta;
#[cfg(test)]
mod tests;

use serde_json::{Map, Value};

use meta::FieldMeta;

/// The key of the `$patch` directive.
const PATCH_DIRECTIVE: &str = "$patch";
/// The key of the `$retainKeys` directive.
const RETAIN_KEYS: &str = "$retainKeys";
/// The prefix of `$setElementOrder/<list>` keys (without the slash).
const SET_ELEMENT_ORDER: &str = "$setElementOrder";
/// The prefix of `$deleteFromPrimitiveList/<list>` keys (without the slash).
const DELETE_FROM_PRIMITIVE_LIST: &str = "$deleteFromPrimitiveList";

/// Why a strategic merge patch could not be applied. Messages are
/// kube-apiserver's (apimachinery's `mergepatch` errors). kube-apiserver
/// answers [`NotAnObject`](Self::NotAnObject) and the `Bad…` format errors
/// with 400, [`ListOfLists`](Self::ListOfLists) and
/// [`RetainKeysMismatch`](Self::RetainKeysMismatch) with 422.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StrategicError {
    /// The original object or the patch is not a JSON object.
    #[error("invalid JSON document")]
    NotAnObject,
    /// A `$patch` directive other than `replace`, `delete` or `merge`.
    #[error("unknown patch type: {directive} in map: {map}")]
    UnknownPatchType {
        /// The directive's value, as JSON.
        directive: String,
        /// The object that held it, as JSON.
        map: String,
    },
    /// An item of a list merged by key lacks the key.
    #[error("map: {item} does not contain declared merge key: {merge_key}")]
    MissingMergeKey {
        /// The item, as JSON.
        item: String,
        /// The field's merge key.
        merge_key: &'static str,
    },
    /// Objects in a merge list that declares no merge key (a list of
    /// primitives such as `finalizers`).
    #[error("cannot merge lists without merge key for {field}")]
    NoMergeKeyDeclared {
        /// The list's field name.
        field: String,
    },
    /// A list of lists in a merge list.
    #[error("lists of lists are not supported")]
    ListOfLists,
    /// A merge list whose items (original and patch together) are not all
    /// of one JSON type.
    #[error("list element types are not identical: {field}")]
    MixedListElements {
        /// The list's field name.
        field: String,
    },
    /// A `$setElementOrder` key without `/<list>`, or whose value is not a
    /// list of the list's items (of merge-key objects for a list of
    /// objects).
    #[error("invalid patch format of setElementOrder list")]
    BadSetElementOrder,
    /// The patch list orders its items differently from its
    /// `$setElementOrder` list.
    #[error("The order in patch list:\n{patch}\n doesn't match $setElementOrder list:\n{order}\n")]
    SetElementOrderMismatch {
        /// The patch list, as JSON.
        patch: String,
        /// The `$setElementOrder` list, as JSON.
        order: String,
    },
    /// A `$deleteFromPrimitiveList` key without `/<list>`, or whose value
    /// is not a list.
    #[error("invalid patch format of primitive list")]
    BadDeleteFromPrimitiveList,
    /// A `$retainKeys` value that is not a list of strings.
    #[error("invalid patch format of retainKeys")]
    BadRetainKeys,
    /// The patch sets a key that its own `$retainKeys` list leaves out.
    #[error("patch content doesn't match retainKeys list")]
    RetainKeysMismatch,
    /// The patch gives a field with patch metadata a JSON type the
    /// strategy cannot take (e.g. an object for `containers`).
    #[error("expected a {expected}, but received a {actual} for field {field}")]
    WrongType {
        /// The field's name.
        field: String,
        /// The JSON type the strategy needs, in Go's kind words.
        expected: &'static str,
        /// The JSON type the patch gave.
        actual: &'static str,
    },
}

/// Applies the strategic merge patch `patch` to `original`, an object of
/// the OpenAPI definition `definition` (e.g. `io.k8s.api.core.v1.Pod`, see
/// [`meta::root`]), and returns the patched object. An unknown definition
/// patches like JSON merge patch, with directives still honoured.
pub fn apply(original: &Value, patch: &Value, definition: &str) -> Result<Value, StrategicError> {
    let (Value::Object(original), Value::Object(patch)) = (original, patch) else {
        return Err(StrategicError::NotAnObject);
    };
    let merged = merge_map(Some(original.clone()), patch, Some(definition))?;
    // `$patch: delete` at the top leaves an empty object, as in Kubernetes.
    Ok(Value::Object(merged.unwrap_or_default()))
}

/// Merges `patch` into the object `original` (absent: applies it to
/// nothing) of `definition`. `None` means the patch deletes the object.
fn merge_map(
    original: Option<Map<String, Value>>,
    patch: &Map<String, Value>,
    definition: Option<&str>,
) -> Result<Option<Map<String, Value>>, StrategicError> {
    if let Some(directive) = patch.get(PATCH_DIRECTIVE) {
        match directive.as_str() {
            Some("delete") => return Ok(None),
            Some("replace") => {
                let mut rest = patch.clone();
                rest.remove(PATCH_DIRECTIVE);
                return merge_map(None, &rest, definition);
            }
            Some("merge") => {}
            _ => {
                return Err(StrategicError::UnknownPatchType {
                    directive: directive_text(directive),
                    map: Value::Object(patch.clone()).to_string(),
                });
            }
        }
    }
    let mut original = original.unwrap_or_default();
    if let Some(retained) = patch.get(RETAIN_KEYS) {
        retain_keys(&mut original, patch, retained)?;
    }

    // Lists named by `$setElementOrder` are merged and ordered first.
    let mut ordered: Vec<&str> = Vec::new();
    for (key, order) in patch {
        if let Some(list) = directive_target(key, SET_ELEMENT_ORDER)? {
            let meta = field_meta(definition, list);
            order_list(&mut original, patch, list, order, meta)?;
            ordered.push(list);
        }
    }

    for (key, value) in patch {
        if is_directive(key) || ordered.contains(&key.as_str()) {
            continue;
        }
        let meta = field_meta(definition, key);
        let current = original.get_mut(key).map(Value::take);
        match merge_value(current, value, meta, key)? {
            Some(merged) => {
                original.insert(key.clone(), merged);
            }
            None => {
                original.remove(key);
            }
        }
    }

    // Deletions from primitive lists come after the patch's additions.
    for (key, values) in patch {
        if let Some(list) = directive_target(key, DELETE_FROM_PRIMITIVE_LIST)? {
            let Value::Array(values) = values else {
                return Err(StrategicError::BadDeleteFromPrimitiveList);
            };
            if let Some(Value::Array(items)) = original.get_mut(list) {
                items.retain(|item| !values.iter().any(|value| same_value(value, item)));
            }
        }
    }
    Ok(Some(original))
}

/// Whether `key` is one of the directive keys `merge_map` handles itself.
fn is_directive(key: &str) -> bool {
    key == PATCH_DIRECTIVE
        || key == RETAIN_KEYS
        || key.starts_with(SET_ELEMENT_ORDER)
        || key.starts_with(DELETE_FROM_PRIMITIVE_LIST)
}

/// For a key `<prefix>/<list>`, the list's name; `None` for other keys.
fn directive_target<'a>(key: &'a str, prefix: &str) -> Result<Option<&'a str>, StrategicError> {
    let Some(rest) = key.strip_prefix(prefix) else {
        return Ok(None);
    };
    match rest.strip_prefix('/') {
        Some(list) => Ok(Some(list)),
        None if prefix == SET_ELEMENT_ORDER => Err(StrategicError::BadSetElementOrder),
        None => Err(StrategicError::BadDeleteFromPrimitiveList),
    }
}

/// The patch metadata of `field` of `definition`, if either is known.
fn field_meta(definition: Option<&str>, field: &str) -> Option<FieldMeta> {
    definition.and_then(|definition| meta::field(definition, field))
}

/// Applies `$retainKeys`: the patch may only set listed keys, and the
/// original loses every key not listed.
fn retain_keys(
    original: &mut Map<String, Value>,
    patch: &Map<String, Value>,
    retained: &Value,
) -> Result<(), StrategicError> {
    let Value::Array(retained) = retained else {
        return Err(StrategicError::BadRetainKeys);
    };
    let retained: Vec<&str> = retained
        .iter()
        .map(|key| key.as_str().ok_or(StrategicError::BadRetainKeys))
        .collect::<Result<_, _>>()?;
    for (key, value) in patch {
        if value.is_null() || is_directive(key) {
            continue;
        }
        if !retained.contains(&key.as_str()) {
            return Err(StrategicError::RetainKeysMismatch);
        }
    }
    original.retain(|key, _| retained.contains(&key.as_str()));
    Ok(())
}

/// Whether a field's strategy merges its list (rather than replacing it).
fn merges_list(meta: Option<FieldMeta>) -> bool {
    meta.and_then(|meta| meta.strategy)
        .is_some_and(|strategy| strategy.split(',').any(|part| part == "merge"))
}

/// Merges one field's patch value into its current value (`None`:
/// absent). `None` in the result removes the field.
fn merge_value(
    current: Option<Value>,
    patch: &Value,
    meta: Option<FieldMeta>,
    field: &str,
) -> Result<Option<Value>, StrategicError> {
    if patch.is_null() {
        return Ok(None);
    }
    let strategy = meta.and_then(|meta| meta.strategy);
    let expected = if merges_list(meta) {
        Some(("slice", patch.is_array()))
    } else if strategy == Some("retainKeys") {
        Some(("map", patch.is_object()))
    } else {
        None
    };
    if let Some((expected, false)) = expected {
        return Err(StrategicError::WrongType {
            field: field.to_owned(),
            expected,
            actual: go_kind(patch),
        });
    }
    let definition = meta.and_then(|meta| meta.definition);
    match (current, patch) {
        (Some(Value::Object(current)), Value::Object(patch)) if strategy != Some("replace") => {
            Ok(merge_map(Some(current), patch, definition)?.map(Value::Object))
        }
        (Some(Value::Array(current)), Value::Array(patch)) if merges_list(meta) => {
            Ok(Some(Value::Array(merge_list(current, patch, meta, field)?)))
        }
        // Absent, of another type, a replaced list or a primitive: the
        // patch's value, with its own directives applied to nothing.
        (current, _) => {
            let materialized = materialize(patch, meta, field)?;
            // A patch of nothing but deletions leaves an absent list absent.
            let emptied = match (&materialized, patch) {
                (Some(Value::Array(items)), Value::Array(patch)) => {
                    items.is_empty() && !patch.is_empty()
                }
                _ => false,
            };
            if current.is_none() && emptied {
                return Ok(None);
            }
            Ok(materialized)
        }
    }
}

/// A patch value applied to nothing: objects lose their directives and
/// nulls, merge lists keep their non-directive items.
fn materialize(
    patch: &Value,
    meta: Option<FieldMeta>,
    field: &str,
) -> Result<Option<Value>, StrategicError> {
    let definition = meta.and_then(|meta| meta.definition);
    match patch {
        Value::Object(patch) => Ok(merge_map(None, patch, definition)?.map(Value::Object)),
        Value::Array(items) if merges_list(meta) => Ok(Some(Value::Array(merge_list(
            Vec::new(),
            items,
            meta,
            field,
        )?))),
        Value::Array(items) => {
            let mut list = Vec::with_capacity(items.len());
            for item in items {
                match item {
                    Value::Object(item) => {
                        if let Some(item) = merge_map(None, item, definition)? {
                            list.push(Value::Object(item));
                        }
                    }
                    other => list.push(other.clone()),
                }
            }
            Ok(Some(Value::Array(list)))
        }
        other => Ok(Some(other.clone())),
    }
}

/// The JSON types a merge list's items can have.
#[derive(Clone, Copy, PartialEq, Eq)]
enum ItemKind {
    Object,
    String,
    Number,
    Bool,
    Null,
}

/// The one kind of all items of `lists` (`None` when they are empty).
fn item_kind(lists: [&[Value]; 2], field: &str) -> Result<Option<ItemKind>, StrategicError> {
    let mut kind = None;
    for item in lists.into_iter().flatten() {
        let this = match item {
            Value::Object(_) => ItemKind::Object,
            Value::String(_) => ItemKind::String,
            Value::Number(_) => ItemKind::Number,
            Value::Bool(_) => ItemKind::Bool,
            Value::Null => ItemKind::Null,
            Value::Array(_) => return Err(StrategicError::ListOfLists),
        };
        match kind {
            None => kind = Some(this),
            Some(kind) if kind != this => return Err(mixed(field)),
            Some(_) => {}
        }
    }
    Ok(kind)
}

/// The error for a merge list whose items are not all of one type.
fn mixed(field: &str) -> StrategicError {
    StrategicError::MixedListElements {
        field: field.to_owned(),
    }
}

/// An item of a merge list of objects (which `item_kind` checked).
fn as_item<'a>(item: &'a Value, field: &str) -> Result<&'a Map<String, Value>, StrategicError> {
    item.as_object().ok_or_else(|| mixed(field))
}

/// Merges the patch list `patch` into the list `original` of a field with
/// a merge strategy.
fn merge_list(
    original: Vec<Value>,
    patch: &[Value],
    meta: Option<FieldMeta>,
    field: &str,
) -> Result<Vec<Value>, StrategicError> {
    let Some(kind) = item_kind([&original, patch], field)? else {
        return Ok(original);
    };
    if kind != ItemKind::Object {
        // An ordered set: the union, then the patch's order.
        let mut merged: Vec<Value> = Vec::with_capacity(original.len() + patch.len());
        for item in original.iter().chain(patch) {
            if !merged.iter().any(|seen| same_value(seen, item)) {
                merged.push(item.clone());
            }
        }
        let patch_order: Vec<&Value> = patch.iter().collect();
        return order_items(merged, &patch_order, &original, None);
    }
    let merge_key =
        meta.and_then(|meta| meta.merge_key)
            .ok_or_else(|| StrategicError::NoMergeKeyDeclared {
                field: field.to_owned(),
            })?;
    let definition = meta.and_then(|meta| meta.definition);

    // Directive items first: deletions, and whether the list is replaced.
    let mut original = original;
    let mut items: Vec<&Value> = Vec::with_capacity(patch.len());
    let mut replace = false;
    for value in patch {
        let item = as_item(value, field)?;
        let Some(directive) = item.get(PATCH_DIRECTIVE) else {
            items.push(value);
            continue;
        };
        match directive.as_str() {
            Some("delete") => {
                let key_value = merge_key_value(item, merge_key)?;
                original.retain(|existing| !has_key_value(existing, merge_key, key_value));
            }
            Some("replace") => replace = true,
            // A bare `{"$patch": "merge"}` asks for the default.
            Some("merge") if item.len() == 1 => {}
            Some("merge") => items.push(value),
            _ => {
                return Err(StrategicError::UnknownPatchType {
                    directive: directive_text(directive),
                    map: Value::Object(item.clone()).to_string(),
                });
            }
        }
    }

    if replace {
        let mut list = Vec::with_capacity(items.len());
        for item in items {
            let item = as_item(item, field)?;
            merge_key_value(item, merge_key)?;
            if let Some(item) = merge_map(None, item, definition)? {
                list.push(Value::Object(item));
            }
        }
        return Ok(list);
    }

    let server_order = original.clone();
    let mut merged = original;
    for item in &items {
        let item = as_item(item, field)?;
        let key_value = merge_key_value(item, merge_key)?;
        let existing = merged
            .iter()
            .position(|existing| has_key_value(existing, merge_key, key_value));
        match existing {
            Some(index) => {
                let current = match merged[index].take() {
                    Value::Object(current) => current,
                    _ => return Err(mixed(field)),
                };
                // Directive items were taken out above, so the item merges.
                let item = merge_map(Some(current), item, definition)?.unwrap_or_default();
                merged[index] = Value::Object(item);
            }
            None => {
                if let Some(item) = merge_map(None, item, definition)? {
                    merged.push(Value::Object(item));
                }
            }
        }
    }
    order_items(merged, &items, &server_order, Some(merge_key))
}

/// Handles `$setElementOrder/<list>`: merges the patch's `list` (if any)
/// into the original's and orders the result by `order`.
fn order_list(
    original: &mut Map<String, Value>,
    patch: &Map<String, Value>,
    list: &str,
    order: &Value,
    meta: Option<FieldMeta>,
) -> Result<(), StrategicError> {
    let Value::Array(order) = order else {
        return Err(StrategicError::BadSetElementOrder);
    };
    let merge_key = meta.and_then(|meta| meta.merge_key);
    let current = match original.get_mut(list) {
        None => None,
        Some(Value::Array(items)) => Some(std::mem::take(items)),
        Some(other) => {
            return Err(StrategicError::WrongType {
                field: list.to_owned(),
                expected: "slice",
                actual: go_kind(other),
            });
        }
    };
    let patch_list = match patch.get(list) {
        None => None,
        Some(Value::Array(items)) => Some(items.as_slice()),
        Some(other) => {
            return Err(StrategicError::WrongType {
                field: list.to_owned(),
                expected: "slice",
                actual: go_kind(other),
            });
        }
    };
    if let Some(patch_list) = patch_list {
        check_order_matches_patch(patch_list, order, merge_key)?;
    }
    let server_order = current.clone().unwrap_or_default();
    let merged = match (current, patch_list) {
        (None, None) => return Ok(()),
        (Some(current), None) => current,
        (Some(current), Some(patch_list)) if merges_list(meta) => {
            merge_list(current, patch_list, meta, list)?
        }
        (current, Some(patch_list)) => {
            let materialized = materialize(&Value::Array(patch_list.to_vec()), meta, list)?;
            let Some(Value::Array(items)) = materialized else {
                unreachable!("a list materializes to a list");
            };
            if current.is_none() && items.is_empty() && !patch_list.is_empty() {
                return Ok(());
            }
            items
        }
    };
    for item in order {
        if let Some(merge_key) = merge_key {
            let Value::Object(item) = item else {
                return Err(StrategicError::BadSetElementOrder);
            };
            merge_key_value(item, merge_key)?;
        }
    }
    let order: Vec<&Value> = order.iter().collect();
    let ordered = order_items(merged, &order, &server_order, merge_key)?;
    original.insert(list.to_owned(), Value::Array(ordered));
    Ok(())
}

/// Kubernetes' check that a patch list lists its (non-directive) items in
/// the relative order of its `$setElementOrder` list.
fn check_order_matches_patch(
    patch: &[Value],
    order: &[Value],
    merge_key: Option<&'static str>,
) -> Result<(), StrategicError> {
    if patch.is_empty() || order.is_empty() {
        return Ok(());
    }
    let items: Vec<&Value> = patch
        .iter()
        .filter(|item| item.get(PATCH_DIRECTIVE).is_none())
        .collect();
    let (mut in_patch, mut in_order) = (0, 0);
    while in_patch < items.len() && in_order < order.len() {
        if same_item(items[in_patch], &order[in_order], merge_key)? {
            in_patch += 1;
        }
        in_order += 1;
    }
    if in_patch < items.len() {
        return Err(StrategicError::SetElementOrderMismatch {
            patch: Value::Array(patch.to_vec()).to_string(),
            order: Value::Array(order.to_vec()).to_string(),
        });
    }
    Ok(())
}

/// Whether two list items are the same item: equal merge keys, or equal
/// values for primitives.
fn same_item(
    left: &Value,
    right: &Value,
    merge_key: Option<&'static str>,
) -> Result<bool, StrategicError> {
    let Some(merge_key) = merge_key else {
        return Ok(same_value(left, right));
    };
    let key_of = |item: &Value| match item {
        Value::Object(item) => merge_key_value(item, merge_key).cloned(),
        _ => Err(StrategicError::BadSetElementOrder),
    };
    Ok(same_value(&key_of(left)?, &key_of(right)?))
}

/// Orders `merged`: the items `order` names, sorted by it, interleaved with
/// the others, sorted by `server_order`; an unnamed item goes before the
/// first named item that follows it in `server_order` (Kubernetes'
/// `normalizeElementOrder` and `mergeSortedSlice`).
fn order_items(
    merged: Vec<Value>,
    order: &[&Value],
    server_order: &[Value],
    merge_key: Option<&'static str>,
) -> Result<Vec<Value>, StrategicError> {
    let mut named: Vec<(usize, Value)> = Vec::new();
    let mut unnamed: Vec<(usize, Value)> = Vec::new();
    for item in merged {
        if let (Some(merge_key), Value::Object(map)) = (merge_key, &item) {
            merge_key_value(map, merge_key)?;
        }
        match position(order.iter().copied(), &item, merge_key) {
            Some(index) => named.push((index, item)),
            None => unnamed.push((
                position(server_order, &item, merge_key).unwrap_or(usize::MAX),
                item,
            )),
        }
    }
    named.sort_by_key(|(index, _)| *index);
    unnamed.sort_by_key(|(index, _)| *index);

    let server_index = |item: &Value| position(server_order, item, merge_key);
    let mut ordered = Vec::with_capacity(named.len() + unnamed.len());
    let mut named = named.into_iter().map(|(_, item)| item).peekable();
    let mut unnamed = unnamed.into_iter().map(|(_, item)| item).peekable();
    loop {
        let take_unnamed = match (unnamed.peek(), named.peek()) {
            (None, None) => break,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some(left), Some(right)) => match (server_index(left), server_index(right)) {
                (Some(left), Some(right)) => left < right,
                _ => false,
            },
        };
        let next = if take_unnamed {
            unnamed.next()
        } else {
            named.next()
        };
        ordered.extend(next);
    }
    Ok(ordered)
}

/// The index of `item` in `list`, by merge key or by value.
fn position<'a>(
    list: impl IntoIterator<Item = &'a Value>,
    item: &Value,
    merge_key: Option<&'static str>,
) -> Option<usize> {
    let key_of = |value: &'a Value| -> Option<&'a Value> {
        match merge_key {
            Some(merge_key) => value.get(merge_key),
            None => Some(value),
        }
    };
    let wanted = match merge_key {
        Some(merge_key) => item.get(merge_key)?,
        None => item,
    };
    list.into_iter()
        .position(|candidate| key_of(candidate).is_some_and(|value| same_value(value, wanted)))
}

/// The merge key's value of a list item.
fn merge_key_value<'a>(
    item: &'a Map<String, Value>,
    merge_key: &'static str,
) -> Result<&'a Value, StrategicError> {
    item.get(merge_key)
        .ok_or_else(|| StrategicError::MissingMergeKey {
            item: Value::Object(item.clone()).to_string(),
            merge_key,
        })
}

/// Whether the list item `item` has `value` under `merge_key`.
fn has_key_value(item: &Value, merge_key: &str, value: &Value) -> bool {
    item.get(merge_key)
        .is_some_and(|existing| same_value(existing, value))
}

/// JSON equality with numbers compared by value (`80` equals `80.0`), as
/// Go compares decoded `float64`s.
fn same_value(left: &Value, right: &Value) -> bool {
    match (left, right) {
        (Value::Number(left), Value::Number(right)) => left.as_f64() == right.as_f64(),
        _ => left == right,
    }
}

/// A `$patch` value as Kubernetes prints it: strings without quotes.
fn directive_text(directive: &Value) -> String {
    match directive {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

/// Go's kind word for a JSON value, as Kubernetes' messages use it.
fn go_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "nil",
        Value::Bool(_) => "bool",
        Value::Number(_) => "float64",
        Value::String(_) => "string",
        Value::Array(_) => "slice",
        Value::Object(_) => "map",
    }
}
