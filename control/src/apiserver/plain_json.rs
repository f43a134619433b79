//! JSON bodies decoded straight into their typed object, for the common
//! case: a well-formed object with no key given twice, no field its type
//! does not know, nesting within [`MAX_NESTING_DEPTH`], and the kind and
//! apiVersion of its type (or none). Such a body decodes to the same object
//! as on the careful path of [`super::body`] (a JSON value tree, then the
//! typed decode with duplicate, unknown-field and path tracking), without
//! building the tree or tracking paths.
//!
//! Anything else is `None`, and the caller takes the careful path, which
//! finds and words the error or the warnings; a body on this path never
//! gets an answer the careful path would not give it.

use std::borrow::Cow;
use std::fmt;

use serde::de::{
    self, DeserializeOwned, DeserializeSeed, Deserializer, EnumAccess, MapAccess, SeqAccess,
    Visitor,
};

use super::body::MAX_NESTING_DEPTH;

/// Keys of one object checked for repeats by comparison with each other;
/// an object with more goes the careful way (which uses a map).
const MAX_KEYS: usize = 64;

/// `bytes` as a `T`, if it is a plain body (see the module documentation).
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Option<T> {
    let mut json = serde_json::Deserializer::from_slice(bytes);
    let object = T::deserialize(Plain {
        inner: &mut json,
        depth: 0,
    })
    .ok()?;
    json.end().ok()?;
    Some(object)
}

/// The error that sends a body the careful way; never shown to anyone.
fn not_plain<E: de::Error>() -> E {
    E::custom("not a plain body")
}

/// A deserializer that hands out only plain content: objects and arrays
/// nested at most [`MAX_NESTING_DEPTH`] deep, objects without repeated
/// keys, and no ignored (unknown) fields.
struct Plain<D> {
    inner: D,
    /// Objects and arrays around the value.
    depth: usize,
}

/// The methods of a deserializer that hands each visitor, wrapped as
/// `$wrapped` (an expression of `$visitor` and `$this`'s fields), to the
/// deserializer in `$this.inner`; all but `deserialize_enum` and
/// `deserialize_ignored_any`, which each wrapper decides for itself.
macro_rules! forward_deserializer {
    ($this:ident, $visitor:ident => $wrapped:expr) => {
        forward_deserializer! {
            @plain $this, $visitor => $wrapped;
            deserialize_any deserialize_bool
            deserialize_i8 deserialize_i16 deserialize_i32 deserialize_i64 deserialize_i128
            deserialize_u8 deserialize_u16 deserialize_u32 deserialize_u64 deserialize_u128
            deserialize_f32 deserialize_f64 deserialize_char deserialize_str deserialize_string
            deserialize_bytes deserialize_byte_buf deserialize_option deserialize_unit
            deserialize_seq deserialize_map deserialize_identifier
        }

        fn deserialize_unit_struct<V: Visitor<'de>>(
            $this,
            name: &'static str,
            $visitor: V,
        ) -> Result<V::Value, D::Error> {
            $this.inner.deserialize_unit_struct(name, $wrapped)
        }

        fn deserialize_newtype_struct<V: Visitor<'de>>(
            $this,
            name: &'static str,
            $visitor: V,
        ) -> Result<V::Value, D::Error> {
            $this.inner.deserialize_newtype_struct(name, $wrapped)
        }

        fn deserialize_tuple<V: Visitor<'de>>(
            $this,
            len: usize,
            $visitor: V,
        ) -> Result<V::Value, D::Error> {
            $this.inner.deserialize_tuple(len, $wrapped)
        }

        fn deserialize_tuple_struct<V: Visitor<'de>>(
            $this,
            name: &'static str,
            len: usize,
            $visitor: V,
        ) -> Result<V::Value, D::Error> {
            $this.inner.deserialize_tuple_struct(name, len, $wrapped)
        }

        fn deserialize_struct<V: Visitor<'de>>(
            $this,
            name: &'static str,
            fields: &'static [&'static str],
            $visitor: V,
        ) -> Result<V::Value, D::Error> {
            $this.inner.deserialize_struct(name, fields, $wrapped)
        }

        fn is_human_readable(&$this) -> bool {
            $this.inner.is_human_readable()
        }
    };
    (@plain $this:ident, $visitor:ident => $wrapped:expr; $($method:ident)*) => {$(
        fn $method<V: Visitor<'de>>($this, $visitor: V) -> Result<V::Value, D::Error> {
            $this.inner.$method($wrapped)
        }
    )*};
}

impl<'de, D: Deserializer<'de>> Deserializer<'de> for Plain<D> {
    type Error = D::Error;

    forward_deserializer!(self, visitor => Checked { visitor, depth: self.depth });

    // Enums are left to the careful path (the types served decode none
    // from JSON this way).
    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, D::Error> {
        Err(not_plain())
    }

    // A value the type ignores: an unknown field, which the careful path
    // reports (or rejects under strict field validation).
    fn deserialize_ignored_any<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, D::Error> {
        Err(not_plain())
    }
}

/// A visitor whose nested content is [`Plain`] too.
struct Checked<V> {
    visitor: V,
    depth: usize,
}

macro_rules! forward_visit {
    ($($method:ident($ty:ty))*) => {$(
        fn $method<E: de::Error>(self, value: $ty) -> Result<V::Value, E> {
            self.visitor.$method(value)
        }
    )*};
}

impl<'de, V: Visitor<'de>> Visitor<'de> for Checked<V> {
    type Value = V::Value;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        self.visitor.expecting(formatter)
    }

    forward_visit! {
        visit_bool(bool)
        visit_i8(i8) visit_i16(i16) visit_i32(i32) visit_i64(i64) visit_i128(i128)
        visit_u8(u8) visit_u16(u16) visit_u32(u32) visit_u64(u64) visit_u128(u128)
        visit_f32(f32) visit_f64(f64) visit_char(char)
        visit_str(&str) visit_borrowed_str(&'de str) visit_string(String)
        visit_bytes(&[u8]) visit_borrowed_bytes(&'de [u8]) visit_byte_buf(Vec<u8>)
    }

    fn visit_none<E: de::Error>(self) -> Result<V::Value, E> {
        self.visitor.visit_none()
    }

    fn visit_unit<E: de::Error>(self) -> Result<V::Value, E> {
        self.visitor.visit_unit()
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<V::Value, D::Error> {
        self.visitor.visit_some(Plain {
            inner: deserializer,
            depth: self.depth,
        })
    }

    fn visit_newtype_struct<D: Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<V::Value, D::Error> {
        self.visitor.visit_newtype_struct(Plain {
            inner: deserializer,
            depth: self.depth,
        })
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<V::Value, A::Error> {
        let depth = enter(self.depth)?;
        self.visitor.visit_seq(Elements { inner: seq, depth })
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<V::Value, A::Error> {
        let depth = enter(self.depth)?;
        self.visitor.visit_map(Entries {
            inner: map,
            depth,
            keys: Vec::new(),
        })
    }

    fn visit_enum<A: EnumAccess<'de>>(self, _data: A) -> Result<V::Value, A::Error> {
        Err(not_plain())
    }
}

/// The depth inside one more object or array, as the careful path counts.
fn enter<E: de::Error>(depth: usize) -> Result<usize, E> {
    if depth == MAX_NESTING_DEPTH {
        return Err(not_plain());
    }
    Ok(depth + 1)
}

/// The elements of an array, each [`Plain`].
struct Elements<A> {
    inner: A,
    depth: usize,
}

impl<'de, A: SeqAccess<'de>> SeqAccess<'de> for Elements<A> {
    type Error = A::Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, A::Error> {
        self.inner.next_element_seed(Nested {
            seed,
            depth: self.depth,
        })
    }

    fn size_hint(&self) -> Option<usize> {
        self.inner.size_hint()
    }
}

/// The entries of an object: values [`Plain`], keys checked for repeats.
struct Entries<'de, A> {
    inner: A,
    depth: usize,
    keys: Vec<Cow<'de, str>>,
}

impl<'de, A: MapAccess<'de>> MapAccess<'de> for Entries<'de, A> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, A::Error> {
        self.inner.next_key_seed(KeySeed {
            seed,
            keys: &mut self.keys,
        })
    }

    fn next_value_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<T::Value, A::Error> {
        self.inner.next_value_seed(Nested {
            seed,
            depth: self.depth,
        })
    }

    fn size_hint(&self) -> Option<usize> {
        self.inner.size_hint()
    }
}

/// A seed whose deserializer is [`Plain`].
struct Nested<S> {
    seed: S,
    depth: usize,
}

impl<'de, S: DeserializeSeed<'de>> DeserializeSeed<'de> for Nested<S> {
    type Value = S::Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<S::Value, D::Error> {
        self.seed.deserialize(Plain {
            inner: deserializer,
            depth: self.depth,
        })
    }
}

/// A key seed that records the key among its object's keys.
struct KeySeed<'k, 'de, S> {
    seed: S,
    keys: &'k mut Vec<Cow<'de, str>>,
}

impl<'de, S: DeserializeSeed<'de>> DeserializeSeed<'de> for KeySeed<'_, 'de, S> {
    type Value = S::Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<S::Value, D::Error> {
        self.seed.deserialize(Key {
            inner: deserializer,
            keys: self.keys,
        })
    }
}

/// The deserializer of one key: whatever its type asks for, the key must
/// arrive as a string not seen before in its object (a [`KeyVisitor`]
/// refuses anything else).
struct Key<'k, 'de, D> {
    inner: D,
    keys: &'k mut Vec<Cow<'de, str>>,
}

impl<'de, D: Deserializer<'de>> Deserializer<'de> for Key<'_, 'de, D> {
    type Error = D::Error;

    forward_deserializer!(self, visitor => KeyVisitor { visitor, keys: self.keys });

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        let keys = self.keys;
        self.inner
            .deserialize_enum(name, variants, KeyVisitor { visitor, keys })
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
        let keys = self.keys;
        self.inner
            .deserialize_ignored_any(KeyVisitor { visitor, keys })
    }
}

/// Records a key (given as a string) before its type's visitor sees it;
/// anything but a string key is left to the careful path.
struct KeyVisitor<'k, 'de, V> {
    visitor: V,
    keys: &'k mut Vec<Cow<'de, str>>,
}

/// Adds `key` to the keys of its object; an error if it is there already.
fn record_key<'de, E: de::Error>(
    keys: &mut Vec<Cow<'de, str>>,
    key: Cow<'de, str>,
) -> Result<(), E> {
    if keys.len() == MAX_KEYS || keys.contains(&key) {
        return Err(not_plain());
    }
    keys.push(key);
    Ok(())
}

impl<'de, V: Visitor<'de>> Visitor<'de> for KeyVisitor<'_, 'de, V> {
    type Value = V::Value;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        self.visitor.expecting(formatter)
    }

    fn visit_borrowed_str<E: de::Error>(self, key: &'de str) -> Result<V::Value, E> {
        record_key(self.keys, Cow::Borrowed(key))?;
        self.visitor.visit_borrowed_str(key)
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<V::Value, E> {
        record_key(self.keys, Cow::Owned(key.to_owned()))?;
        self.visitor.visit_str(key)
    }

    fn visit_string<E: de::Error>(self, key: String) -> Result<V::Value, E> {
        record_key(self.keys, Cow::Owned(key.clone()))?;
        self.visitor.visit_string(key)
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::apps::v1::Deployment;
    use k8s_openapi::api::core::v1::{ConfigMap, Pod};
    use serde_json::json;

    use super::*;
    use crate::apiserver::body::{self, BodyFormat, FieldValidation};

    /// What the careful path makes of a JSON body: the object, if it
    /// decodes with no warnings at all.
    fn careful<T: DeserializeOwned>(text: &str) -> Option<T> {
        let parsed = body::parse_body(text.as_bytes(), BodyFormat::Json).ok()?;
        let (object, warnings) = body::decode_body::<T>(parsed, FieldValidation::Warn).ok()?;
        warnings.is_empty().then_some(object)
    }

    fn pod_text() -> String {
        json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "web", "labels": {"app": "web", "tier": "front"},
                         "annotations": {"note": "caf\u{e9} \"quoted\""}},
            "spec": {
                "containers": [{
                    "name": "app", "image": "registry.local/app:1",
                    "args": ["--port", "8080"],
                    "ports": [{"containerPort": 8080, "protocol": "TCP"}],
                    "resources": {"limits": {"cpu": "500m", "memory": "64Mi"}},
                    "env": [{"name": "A", "value": "1"}]
                }],
                "runtimeClassName": "wasmtime",
                "tolerations": [{"key": "k", "operator": "Exists", "tolerationSeconds": 30}],
                "nodeSelector": {"skiff.dev/wasm-enabled": "true"}
            }
        })
        .to_string()
    }

    #[test]
    fn plain_bodies_decode_as_on_the_careful_path() {
        let text = pod_text();
        let plain: Pod = decode(text.as_bytes()).expect("plain");
        assert_eq!(Some(plain), careful::<Pod>(&text));
        // Kind and apiVersion may be left out, as on the careful path.
        let bare = r#"{"metadata":{"name":"c"},"data":{"a":"1","b":"\u0032"}}"#;
        let plain: ConfigMap = decode(bare.as_bytes()).expect("plain");
        assert_eq!(plain.data.as_ref().unwrap()["b"], "2");
        assert_eq!(Some(plain), careful::<ConfigMap>(bare));
        let deployment = r#"{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"d"},
            "spec":{"replicas":2,"selector":{"matchLabels":{"a":"b"}},
            "template":{"metadata":{"labels":{"a":"b"}},"spec":{"containers":[{"name":"c","image":"i"}]}}}}"#;
        let plain: Deployment = decode(deployment.as_bytes()).expect("plain");
        assert_eq!(Some(plain), careful::<Deployment>(deployment));
    }

    #[test]
    fn anything_the_careful_path_words_is_not_plain() {
        let cases = [
            // Repeated keys, at the top and deeper, escaped or not.
            r#"{"metadata":{"name":"a","name":"b"}}"#,
            r#"{"metadata":{"name":"a","labels":{"x":"1","x":"2"}}}"#,
            r#"{"metadata":{"name":"a","n\u0061me":"b"}}"#,
            // Unknown fields.
            r#"{"metadata":{"name":"a"},"spec":{"containers":[],"bogus":1}}"#,
            r#"{"metadata":{"name":"a","bogus":{"deep":[1,2]}}}"#,
            // Other kinds and versions, and empty ones (which the careful
            // path fills in).
            r#"{"kind":"Service","metadata":{"name":"a"}}"#,
            r#"{"apiVersion":"v2","metadata":{"name":"a"}}"#,
            r#"{"kind":"","metadata":{"name":"a"}}"#,
            // Wrong types, malformed text, trailing content, not an object.
            r#"{"metadata":{"name":7}}"#,
            r#"{"metadata":{"name":"a"}"#,
            r#"{"metadata":{"name":"a"}} {}"#,
            r#"[{"metadata":{"name":"a"}}]"#,
            "null",
        ];
        for case in cases {
            assert!(decode::<Pod>(case.as_bytes()).is_none(), "{case}");
        }
    }

    #[test]
    fn nesting_is_limited_as_on_the_careful_path() {
        let deep = |depth: usize| format!("{}{}", "[".repeat(depth), "]".repeat(depth));
        for depth in [MAX_NESTING_DEPTH, MAX_NESTING_DEPTH + 1] {
            let text = deep(depth);
            assert_eq!(
                decode::<serde_json::Value>(text.as_bytes()).is_some(),
                body::parse_document(text.as_bytes(), BodyFormat::Json).is_ok(),
                "{depth}"
            );
        }
        assert!(decode::<serde_json::Value>(deep(MAX_NESTING_DEPTH).as_bytes()).is_some());
    }

    #[test]
    fn objects_with_many_keys_go_the_careful_way() {
        let data: serde_json::Map<String, serde_json::Value> = (0..MAX_KEYS + 1)
            .map(|i| (format!("k{i}"), json!("v")))
            .collect();
        let many = json!({"metadata": {"name": "a"}, "data": data}).to_string();
        assert!(decode::<ConfigMap>(many.as_bytes()).is_none());
        assert!(careful::<ConfigMap>(&many).is_some());
    }
}
