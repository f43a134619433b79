//! ConfigMaps and Secrets: key names, total size, the data a Secret's type
//! requires, and what `immutable` freezes.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ConfigMap, Secret};

use super::field::{self, FieldPath};
use super::meta::{FIELD_IMMUTABLE, NameRule, validate_object_meta, validate_object_meta_update};
use super::{Validate, dedup, rules};
use crate::apiserver::error::Cause;

/// Largest total size of the values of a ConfigMap or Secret.
pub const MAX_SECRET_SIZE: usize = 1024 * 1024;

const IMMUTABLE_SET: &str = "field is immutable when `immutable` is set";

impl Validate for ConfigMap {
    fn validate_create(&self) -> Vec<Cause> {
        let mut causes = validate_object_meta(&self.metadata, true, NameRule::Dns1123Subdomain);
        let data_path = FieldPath::new("data");
        let binary_path = FieldPath::new("binaryData");
        let mut total = 0;
        for (key, value) in self.data.iter().flatten() {
            causes.extend(field::invalid_each(
                &data_path.key(key),
                key,
                rules::config_map_key(key),
            ));
            if self
                .binary_data
                .as_ref()
                .is_some_and(|b| b.contains_key(key))
            {
                causes.push(field::invalid(
                    &data_path.key(key),
                    key,
                    "duplicate of key present in binaryData",
                ));
            }
            total += value.len();
        }
        for (key, value) in self.binary_data.iter().flatten() {
            causes.extend(field::invalid_each(
                &binary_path.key(key),
                key,
                rules::config_map_key(key),
            ));
            total += value.0.len();
        }
        if total > MAX_SECRET_SIZE {
            causes.push(field::too_long(&FieldPath::new(""), MAX_SECRET_SIZE));
        }
        causes
    }

    fn validate_update(&self, old: &Self) -> Vec<Cause> {
        let mut causes = validate_object_meta_update(&self.metadata, &old.metadata);
        if old.immutable == Some(true) {
            if self.immutable != Some(true) {
                causes.push(field::forbidden(
                    &FieldPath::new("immutable"),
                    IMMUTABLE_SET,
                ));
            }
            if self.data.clone().unwrap_or_default() != old.data.clone().unwrap_or_default() {
                causes.push(field::forbidden(&FieldPath::new("data"), IMMUTABLE_SET));
            }
            if self.binary_data.clone().unwrap_or_default()
                != old.binary_data.clone().unwrap_or_default()
            {
                causes.push(field::forbidden(
                    &FieldPath::new("binaryData"),
                    IMMUTABLE_SET,
                ));
            }
        }
        causes.extend(self.validate_create());
        dedup(causes)
    }
}

/// A Secret's data as stored: `stringData` merged over `data`.
fn secret_data(secret: &Secret) -> BTreeMap<String, Vec<u8>> {
    let mut data: BTreeMap<String, Vec<u8>> = secret
        .data
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.0.clone()))
        .collect();
    for (key, value) in secret.string_data.iter().flatten() {
        data.insert(key.clone(), value.clone().into_bytes());
    }
    data
}

/// The type Kubernetes defaults an untyped Secret to.
fn secret_type(secret: &Secret) -> &str {
    secret
        .type_
        .as_deref()
        .filter(|t| !t.is_empty())
        .unwrap_or("Opaque")
}

impl Validate for Secret {
    fn validate_create(&self) -> Vec<Cause> {
        let mut causes = validate_object_meta(&self.metadata, true, NameRule::Dns1123Subdomain);
        let data_path = FieldPath::new("data");
        let data = secret_data(self);
        let mut total = 0;
        for (key, value) in &data {
            causes.extend(field::invalid_each(
                &data_path.key(key),
                key,
                rules::config_map_key(key),
            ));
            total += value.len();
        }
        if total > MAX_SECRET_SIZE {
            causes.push(field::too_long(&data_path, MAX_SECRET_SIZE));
        }
        let required = |key: &str| field::required(&data_path.key(key), "");
        let json_object = |key: &str, causes: &mut Vec<Cause>| match data.get(key) {
            None => causes.push(required(key)),
            Some(bytes) => {
                if let Err(error) =
                    serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(bytes)
                {
                    causes.push(field::invalid(
                        &data_path.key(key),
                        &"<secret contents redacted>",
                        &error.to_string(),
                    ));
                }
            }
        };
        match secret_type(self) {
            "kubernetes.io/service-account-token" => {
                let annotation = "kubernetes.io/service-account.name";
                let named = self
                    .metadata
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get(annotation))
                    .is_some_and(|v| !v.is_empty());
                if !named {
                    causes.push(field::required(
                        &FieldPath::new("metadata")
                            .child("annotations")
                            .key(annotation),
                        "",
                    ));
                }
            }
            "kubernetes.io/dockercfg" => json_object(".dockercfg", &mut causes),
            "kubernetes.io/dockerconfigjson" => json_object(".dockerconfigjson", &mut causes),
            "kubernetes.io/basic-auth"
                if !data.contains_key("username") && !data.contains_key("password") =>
            {
                causes.push(required("username"));
                causes.push(required("password"));
            }
            "kubernetes.io/ssh-auth" if data.get("ssh-privatekey").is_none_or(Vec::is_empty) => {
                causes.push(required("ssh-privatekey"));
            }
            "kubernetes.io/tls" => {
                for key in ["tls.crt", "tls.key"] {
                    if !data.contains_key(key) {
                        causes.push(required(key));
                    }
                }
            }
            _ => {}
        }
        causes
    }

    fn validate_update(&self, old: &Self) -> Vec<Cause> {
        let mut causes = validate_object_meta_update(&self.metadata, &old.metadata);
        if secret_type(self) != secret_type(old) {
            causes.push(field::invalid(
                &FieldPath::new("type"),
                &secret_type(self),
                FIELD_IMMUTABLE,
            ));
        }
        if old.immutable == Some(true) {
            if self.immutable != Some(true) {
                causes.push(field::forbidden(
                    &FieldPath::new("immutable"),
                    IMMUTABLE_SET,
                ));
            }
            if secret_data(self) != secret_data(old) {
                causes.push(field::forbidden(&FieldPath::new("data"), IMMUTABLE_SET));
            }
        }
        causes.extend(self.validate_create());
        dedup(causes)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::apiserver::error::CauseType::{self, *};
    use crate::apiserver::validation::testing::summary;

    fn with_meta(mut value: Value) -> Value {
        value["metadata"] = json!({"name": "cfg", "namespace": "default"});
        value
    }

    fn check_config_map(value: Value, expected: &[(CauseType, &str)]) {
        let config_map: ConfigMap = serde_json::from_value(with_meta(value.clone())).unwrap();
        assert_eq!(summary(&config_map.validate_create()), expected, "{value}");
    }

    fn check_secret(value: Value, expected: &[(CauseType, &str)]) {
        let secret: Secret = serde_json::from_value(with_meta(value.clone())).unwrap();
        assert_eq!(summary(&secret.validate_create()), expected, "{value}");
    }

    #[test]
    fn config_maps() {
        check_config_map(
            json!({"data": {"app.properties": "a=b", "KEY_1": "x"}, "binaryData": {"logo.png": "aGk="}}),
            &[],
        );
        check_config_map(json!({"data": {"a/b": "x"}}), &[(Invalid, "data[a/b]")]);
        check_config_map(json!({"data": {"..x": "x"}}), &[(Invalid, "data[..x]")]);
        check_config_map(
            json!({"binaryData": {"bad key": "aGk="}}),
            &[(Invalid, "binaryData[bad key]")],
        );
        check_config_map(
            json!({"data": {"k": "x"}, "binaryData": {"k": "aGk="}}),
            &[(Invalid, "data[k]")],
        );
        check_config_map(
            json!({"data": {"big": "x".repeat(MAX_SECRET_SIZE + 1)}}),
            &[(TooLong, "")],
        );

        let old: ConfigMap =
            serde_json::from_value(with_meta(json!({"data": {"k": "1"}, "immutable": true})))
                .unwrap();
        let changed: ConfigMap =
            serde_json::from_value(with_meta(json!({"data": {"k": "2"}, "immutable": true})))
                .unwrap();
        assert_eq!(
            summary(&changed.validate_update(&old)),
            [(Forbidden, "data")]
        );
        let unfrozen: ConfigMap =
            serde_json::from_value(with_meta(json!({"data": {"k": "1"}}))).unwrap();
        assert_eq!(
            summary(&unfrozen.validate_update(&old)),
            [(Forbidden, "immutable")]
        );
        assert_eq!(summary(&old.validate_update(&old)), []);
    }

    #[test]
    fn secrets() {
        check_secret(
            json!({"data": {"password": "aGk="}, "stringData": {"user": "admin"}}),
            &[],
        );
        check_secret(
            json!({"type": "kubernetes.io/tls", "data": {"tls.crt": "aGk=", "tls.key": "aGk="}}),
            &[],
        );
        check_secret(
            json!({"stringData": {"bad/key": "x"}}),
            &[(Invalid, "data[bad/key]")],
        );
        check_secret(
            json!({"data": {"big": base64_of(MAX_SECRET_SIZE + 1)}}),
            &[(TooLong, "data")],
        );
        check_secret(
            json!({"type": "kubernetes.io/tls", "data": {"tls.crt": "aGk="}}),
            &[(Required, "data[tls.key]")],
        );
        check_secret(
            json!({"type": "kubernetes.io/basic-auth"}),
            &[(Required, "data[username]"), (Required, "data[password]")],
        );
        check_secret(
            json!({"type": "kubernetes.io/dockerconfigjson", "stringData": {".dockerconfigjson": "not json"}}),
            &[(Invalid, "data[.dockerconfigjson]")],
        );
        check_secret(
            json!({"type": "kubernetes.io/service-account-token"}),
            &[(
                Required,
                "metadata.annotations[kubernetes.io/service-account.name]",
            )],
        );

        let old: Secret =
            serde_json::from_value(with_meta(json!({"type": "Opaque", "data": {"k": "aGk="}})))
                .unwrap();
        let retyped: Secret = serde_json::from_value(with_meta(
            json!({"type": "kubernetes.io/tls", "data": {"tls.crt": "aGk=", "tls.key": "aGk="}}),
        ))
        .unwrap();
        let causes = retyped.validate_update(&old);
        assert_eq!(summary(&causes), [(Invalid, "type")]);
        assert_eq!(
            causes[0].message,
            "Invalid value: \"kubernetes.io/tls\": field is immutable"
        );
        let untyped: Secret =
            serde_json::from_value(with_meta(json!({"data": {"k": "aGk="}}))).unwrap();
        assert_eq!(summary(&untyped.validate_update(&old)), []);
    }

    fn base64_of(len: usize) -> String {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(vec![b'x'; len])
    }
}
