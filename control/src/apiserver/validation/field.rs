//! Field paths and field errors worded as Kubernetes' `field` package words
//! them (`Invalid value: "Web": ...`, `Unsupported value: ...`), built as
//! [`Cause`]s.

use std::fmt;

use serde::Serialize;

use crate::apiserver::error::{Cause, CauseType};

/// A path to a field, e.g. `spec.containers[0].image`, built like
/// Kubernetes' `field.Path`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldPath(String);

impl FieldPath {
    /// A root path, e.g. `metadata` or `spec`.
    pub fn new(root: &str) -> Self {
        Self(root.to_owned())
    }

    // Paths are built for every field validated, so they are concatenated
    // by hand rather than through `format!`.

    /// `self.name`.
    pub fn child(&self, name: &str) -> Self {
        if self.0.is_empty() {
            return Self(name.to_owned());
        }
        let mut path = String::with_capacity(self.0.len() + 1 + name.len());
        path.push_str(&self.0);
        path.push('.');
        path.push_str(name);
        Self(path)
    }

    /// `self[index]`.
    pub fn index(&self, index: usize) -> Self {
        let mut digits = [0u8; 20];
        let mut at = digits.len();
        let mut rest = index;
        loop {
            at -= 1;
            digits[at] = b'0' + (rest % 10) as u8;
            rest /= 10;
            if rest == 0 {
                break;
            }
        }
        let digits = std::str::from_utf8(&digits[at..]).expect("ASCII digits");
        self.bracket(digits)
    }

    /// `self[key]`, for map entries.
    pub fn key(&self, key: &str) -> Self {
        self.bracket(key)
    }

    fn bracket(&self, inner: &str) -> Self {
        let mut path = String::with_capacity(self.0.len() + 2 + inner.len());
        path.push_str(&self.0);
        path.push('[');
        path.push_str(inner);
        path.push(']');
        Self(path)
    }

    /// The path as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&FieldPath> for String {
    fn from(path: &FieldPath) -> Self {
        path.0.clone()
    }
}

/// A rejected value, rendered as Kubernetes renders `BadValue`: strings
/// quoted, numbers and booleans bare, anything else as JSON.
pub trait BadValue {
    /// The rendering that follows `Invalid value: `.
    fn render(&self) -> String;
}

impl BadValue for &str {
    fn render(&self) -> String {
        go_quote(self)
    }
}

impl BadValue for String {
    fn render(&self) -> String {
        go_quote(self)
    }
}

macro_rules! bare_bad_value {
    ($($t:ty),*) => {$(
        impl BadValue for $t {
            fn render(&self) -> String {
                self.to_string()
            }
        }
    )*};
}

bare_bad_value!(i32, i64, u32, u64, usize, bool);

/// A structured bad value (a map, a list, an object), rendered as JSON the
/// way Kubernetes renders such values.
pub struct Json<'a, T: Serialize + ?Sized>(pub &'a T);

impl<T: Serialize + ?Sized> BadValue for Json<'_, T> {
    fn render(&self) -> String {
        serde_json::to_string(self.0).unwrap_or_else(|_| "null".to_owned())
    }
}

/// An already rendered bad value.
pub struct Rendered(pub String);

impl BadValue for Rendered {
    fn render(&self) -> String {
        self.0.clone()
    }
}

/// Go's `%q`: double-quoted with Go escapes.
pub fn go_quote(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Go's `%#v` of a `[]string`: `[]string{"a", "b"}`.
pub fn go_string_slice(values: &[String]) -> String {
    let quoted: Vec<String> = values.iter().map(|v| go_quote(v)).collect();
    format!("[]string{{{}}}", quoted.join(", "))
}

fn with_value(value: &dyn BadValue, detail: &str) -> String {
    if detail.is_empty() {
        value.render()
    } else {
        format!("{}: {detail}", value.render())
    }
}

/// `Required value` (with an optional detail).
pub fn required(path: &FieldPath, detail: &str) -> Cause {
    Cause::new(CauseType::Required, path, detail)
}

/// `Invalid value: <value>: <detail>`.
pub fn invalid(path: &FieldPath, value: &dyn BadValue, detail: &str) -> Cause {
    Cause::new(CauseType::Invalid, path, &with_value(value, detail))
}

/// `Duplicate value: <value>`.
pub fn duplicate(path: &FieldPath, value: &dyn BadValue) -> Cause {
    Cause::new(CauseType::Duplicate, path, &value.render())
}

/// `Unsupported value: <value>: supported values: "a", "b"`.
pub fn not_supported(path: &FieldPath, value: &dyn BadValue, supported: &[&str]) -> Cause {
    let detail = if supported.is_empty() {
        String::new()
    } else {
        let quoted: Vec<String> = supported.iter().map(|s| go_quote(s)).collect();
        format!("supported values: {}", quoted.join(", "))
    };
    Cause::new(CauseType::NotSupported, path, &with_value(value, &detail))
}

/// `Forbidden: <detail>`.
pub fn forbidden(path: &FieldPath, detail: &str) -> Cause {
    Cause::new(CauseType::Forbidden, path, detail)
}

/// `Too long: may not be more than <max> bytes`.
pub fn too_long(path: &FieldPath, max: usize) -> Cause {
    let unit = if max == 1 { "byte" } else { "bytes" };
    Cause::new(
        CauseType::TooLong,
        path,
        &format!("may not be more than {max} {unit}"),
    )
}

/// `Too many: <actual>: must have at most <max> items`.
pub fn too_many(path: &FieldPath, actual: usize, max: usize) -> Cause {
    let unit = if max == 1 { "item" } else { "items" };
    Cause::new(
        CauseType::TooMany,
        path,
        &format!("{actual}: must have at most {max} {unit}"),
    )
}

/// `Not found: <value>`, for a reference to something that does not exist
/// (a volume mount naming no volume).
///
/// [`CauseType`] has no `FieldValueNotFound`, so the reason is
/// `FieldValueInvalid`; the message is Kubernetes'.
pub fn not_found(path: &FieldPath, value: &dyn BadValue) -> Cause {
    Cause {
        kind: CauseType::Invalid,
        field: path.to_string(),
        message: format!("Not found: {}", value.render()),
    }
}

/// One `Invalid` cause per message of a format rule, as Kubernetes reports
/// them (`for _, msg := range IsDNS1123Label(v) { field.Invalid(...) }`).
pub fn invalid_each(path: &FieldPath, value: &str, messages: Vec<String>) -> Vec<Cause> {
    messages
        .into_iter()
        .map(|m| invalid(path, &value, &m))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_messages_read_like_kubernetes() {
        let path = FieldPath::new("spec")
            .child("containers")
            .index(0)
            .child("resources")
            .child("limits")
            .key("cpu");
        assert_eq!(path.as_str(), "spec.containers[0].resources.limits[cpu]");
        assert_eq!(FieldPath::new("").child("data").as_str(), "data");
        assert_eq!(FieldPath::new("x").index(10_203).as_str(), "x[10203]");
        assert_eq!(
            FieldPath::new("x").index(usize::MAX).as_str(),
            format!("x[{}]", usize::MAX)
        );

        let check = |cause: Cause, expected: &str| assert_eq!(cause.message, expected);
        check(invalid(&path, &"Web", "bad"), "Invalid value: \"Web\": bad");
        check(
            invalid(&path, &70000, "must be between 1 and 65535, inclusive"),
            "Invalid value: 70000: must be between 1 and 65535, inclusive",
        );
        check(
            invalid(&path, &Json(&serde_json::json!({"app": "web"})), "x"),
            "Invalid value: {\"app\":\"web\"}: x",
        );
        check(required(&path, ""), "Required value");
        check(
            not_supported(&path, &"Sometimes", &["Always", "OnFailure", "Never"]),
            "Unsupported value: \"Sometimes\": supported values: \"Always\", \"OnFailure\", \"Never\"",
        );
        check(duplicate(&path, &"web"), "Duplicate value: \"web\"");
        check(
            too_long(&path, 262144),
            "Too long: may not be more than 262144 bytes",
        );
        check(
            too_many(&path, 1001, 1000),
            "Too many: 1001: must have at most 1000 items",
        );
        check(not_found(&path, &"data"), "Not found: \"data\"");
        check(
            forbidden(&path, "may not be set"),
            "Forbidden: may not be set",
        );
        assert_eq!(go_quote("a\"b\n\u{1}"), "\"a\\\"b\\n\\x01\"");
        assert_eq!(
            go_string_slice(&["a".into(), "b".into()]),
            "[]string{\"a\", \"b\"}"
        );
    }
}
