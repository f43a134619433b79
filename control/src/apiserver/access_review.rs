//! `SelfSubjectAccessReview` (authorization.k8s.io/v1): "may I do this?",
//! answered by the same authorizer every request goes through, as
//! `kubectl auth can-i` asks it. Nothing is stored. Pure.

use serde_json::{Value, json};

use super::auth::{Identity, authorize, is_public_path};
use super::error::{ApiError, Cause, CauseType};
use super::request::{RequestInfo, Verb};

/// Whether a request is the creation of a self access review.
pub fn is_self_review(info: &RequestInfo) -> bool {
    info.group == "authorization.k8s.io"
        && info.resource == "selfsubjectaccessreviews"
        && info.verb == Verb::Create
        && info.name.is_none()
        && info.subresource.is_none()
}

const ALL_VERBS: [Verb; 8] = [
    Verb::Get,
    Verb::List,
    Verb::Watch,
    Verb::Create,
    Verb::Update,
    Verb::Patch,
    Verb::Delete,
    Verb::DeleteCollection,
];

fn verb(name: &str) -> Option<Verb> {
    ALL_VERBS.into_iter().find(|verb| verb.as_str() == name)
}

/// Answers the review `body` for `identity`: the review with its `status`
/// (`allowed`, and a `reason` when denied). 422 for a review that asks
/// nothing or both kinds of attributes, 400 for one that is not an object.
pub fn review(identity: &Identity, mut body: Value) -> Result<Value, ApiError> {
    let invalid = |field: &str, detail: &str| ApiError::Invalid {
        kind: "SelfSubjectAccessReview".into(),
        group: "authorization.k8s.io".into(),
        name: String::new(),
        causes: vec![Cause::new(CauseType::Required, field, detail)],
    };
    let spec = body.get("spec").cloned().unwrap_or(Value::Null);
    let resource = spec.get("resourceAttributes").filter(|v| v.is_object());
    let non_resource = spec.get("nonResourceAttributes").filter(|v| v.is_object());
    let text = |attributes: &Value, field: &str| {
        attributes
            .get(field)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned()
    };
    let allowed = match (resource, non_resource) {
        (Some(_), Some(_)) => {
            return Err(invalid(
                "spec.resourceAttributes",
                "resourceAttributes and nonResourceAttributes are mutually exclusive",
            ));
        }
        (None, None) => {
            return Err(invalid(
                "spec.resourceAttributes",
                "exactly one of nonResourceAttributes or resourceAttributes must be specified",
            ));
        }
        (Some(attributes), None) => {
            let resource = text(attributes, "resource");
            let asked = text(attributes, "verb");
            let verbs: Vec<Verb> = match asked.as_str() {
                "*" => ALL_VERBS.to_vec(),
                other => verb(other).into_iter().collect(),
            };
            let group = text(attributes, "group");
            let namespace = Some(text(attributes, "namespace")).filter(|ns| !ns.is_empty());
            let name = Some(text(attributes, "name")).filter(|n| !n.is_empty());
            let subresource = Some(text(attributes, "subresource")).filter(|s| !s.is_empty());
            let everything = matches!(identity, Identity::Admin | Identity::Component(_));
            !verbs.is_empty()
                && (everything
                    || (resource != "*"
                        && group != "*"
                        && verbs.into_iter().all(|verb| {
                            let info = RequestInfo {
                                verb,
                                group: group.clone(),
                                version: text(attributes, "version"),
                                namespace: namespace.clone(),
                                resource: resource.clone(),
                                name: name.clone(),
                                subresource: subresource.clone(),
                            };
                            authorize(identity, &info).is_ok()
                        })))
        }
        (None, Some(attributes)) => {
            matches!(identity, Identity::Admin | Identity::Component(_))
                || (text(attributes, "verb") == "get" && is_public_path(&text(attributes, "path")))
        }
    };
    let status = if allowed {
        json!({"allowed": true})
    } else {
        json!({"allowed": false, "reason": format!("{} may not do this", identity.user_name())})
    };
    let Some(object) = body.as_object_mut() else {
        return Err(ApiError::BadRequest(
            "a SelfSubjectAccessReview must be an object".into(),
        ));
    };
    object.insert("status".into(), status);
    object.insert("apiVersion".into(), json!("authorization.k8s.io/v1"));
    object.insert("kind".into(), json!("SelfSubjectAccessReview"));
    object
        .entry("metadata")
        .or_insert_with(|| json!({"creationTimestamp": null}));
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ask(identity: &Identity, attributes: Value) -> bool {
        let review = review(
            identity,
            json!({"spec": {"resourceAttributes": attributes}}),
        )
        .unwrap();
        review["status"]["allowed"].as_bool().unwrap()
    }

    #[test]
    fn reviews_answer_as_the_authorizer_does() {
        let node = Identity::Node("n1".into());
        assert!(ask(
            &Identity::Admin,
            json!({"verb": "delete", "resource": "pods", "namespace": "a"})
        ));
        assert!(ask(
            &Identity::Admin,
            json!({"verb": "*", "resource": "*", "group": "*"})
        ));
        assert!(ask(&node, json!({"verb": "list", "resource": "pods"})));
        assert!(!ask(
            &node,
            json!({"verb": "create", "resource": "pods", "namespace": "a"})
        ));
        assert!(ask(
            &node,
            json!({"verb": "patch", "resource": "nodes", "name": "n1"})
        ));
        assert!(!ask(
            &node,
            json!({"verb": "patch", "resource": "nodes", "name": "n2"})
        ));
        assert!(!ask(&node, json!({"verb": "*", "resource": "pods"})));
        assert!(!ask(&node, json!({"verb": "list", "resource": "*"})));
        assert!(!ask(
            &Identity::Joining,
            json!({"verb": "get", "resource": "pods"})
        ));
        assert!(!ask(
            &Identity::Admin,
            json!({"verb": "fly", "resource": "pods"})
        ));
        let denied = review(
            &node,
            json!({"spec": {"resourceAttributes": {"verb": "delete", "resource": "secrets"}}}),
        )
        .unwrap();
        assert_eq!(denied["kind"], "SelfSubjectAccessReview");
        assert_eq!(denied["status"]["reason"], "system:node:n1 may not do this");
    }

    #[test]
    fn non_resource_reviews_and_bad_reviews() {
        let node = Identity::Node("n1".into());
        let check = |identity: &Identity, path: &str| {
            review(
                identity,
                json!({"spec": {"nonResourceAttributes": {"verb": "get", "path": path}}}),
            )
            .unwrap()["status"]["allowed"]
                .as_bool()
                .unwrap()
        };
        assert!(check(&node, "/healthz"));
        assert!(!check(&node, "/metrics"));
        assert!(check(&Identity::Admin, "/metrics"));
        let error = review(&node, json!({"spec": {}})).unwrap_err();
        assert_eq!(error.status()["code"], 422);
        let error = review(
            &node,
            json!({"spec": {"resourceAttributes": {}, "nonResourceAttributes": {}}}),
        )
        .unwrap_err();
        assert_eq!(error.status()["code"], 422);
    }
}
