//! The API server's error type and the one place where errors become
//! Kubernetes `Status` responses with their HTTP codes.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::store::StoreError;

/// Why a field failed validation, as Kubernetes names it in
/// `details.causes[].reason`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CauseType {
    /// A required field is missing.
    Required,
    /// A field has a malformed or out-of-range value.
    Invalid,
    /// A value repeats where values must be unique.
    Duplicate,
    /// A value is not one of the supported ones.
    NotSupported,
    /// A field may not be set or changed.
    Forbidden,
    /// A value is longer than allowed.
    TooLong,
    /// A list has more items than allowed.
    TooMany,
}

impl CauseType {
    /// The `reason` string of a cause.
    pub fn reason(self) -> &'static str {
        match self {
            CauseType::Required => "FieldValueRequired",
            CauseType::Invalid => "FieldValueInvalid",
            CauseType::Duplicate => "FieldValueDuplicate",
            CauseType::NotSupported => "FieldValueNotSupported",
            CauseType::Forbidden => "FieldValueForbidden",
            CauseType::TooLong => "FieldValueTooLong",
            CauseType::TooMany => "FieldValueTooMany",
        }
    }

    /// How Kubernetes starts the message of such a cause.
    fn prefix(self) -> &'static str {
        match self {
            CauseType::Required => "Required value",
            CauseType::Invalid => "Invalid value",
            CauseType::Duplicate => "Duplicate value",
            CauseType::NotSupported => "Unsupported value",
            CauseType::Forbidden => "Forbidden",
            CauseType::TooLong => "Too long",
            CauseType::TooMany => "Too many",
        }
    }
}

/// One field that failed validation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cause {
    /// What kind of failure.
    pub kind: CauseType,
    /// The field path, e.g. `spec.containers[0].image`.
    pub field: String,
    /// The human-readable detail, e.g. `Invalid value: "Web": a lowercase
    /// RFC 1123 subdomain must consist of ...`.
    pub message: String,
}

impl Cause {
    /// A missing required field.
    pub fn required(field: impl Into<String>) -> Self {
        Self::new(CauseType::Required, field, "")
    }

    /// A malformed value; `value` is shown quoted, as Kubernetes does.
    pub fn invalid(field: impl Into<String>, value: impl std::fmt::Debug, detail: &str) -> Self {
        Self::new(CauseType::Invalid, field, &format!("{value:?}: {detail}"))
    }

    /// A cause of any type with a free detail.
    pub fn new(kind: CauseType, field: impl Into<String>, detail: &str) -> Self {
        let message = if detail.is_empty() {
            kind.prefix().to_owned()
        } else {
            format!("{}: {detail}", kind.prefix())
        };
        Self {
            kind,
            field: field.into(),
            message,
        }
    }
}

/// A failed API request. Each variant maps to one HTTP code and `Status`
/// reason in [`ApiError::into_response`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    /// 404: the object (or the namespace it would live in) does not exist.
    #[error("{resource} \"{name}\" not found")]
    NotFound {
        /// Group-qualified resource, e.g. `pods` or `deployments.apps`.
        resource: String,
        /// The missing name.
        name: String,
    },
    /// 404: no such API path.
    #[error("the server could not find the requested resource")]
    NoSuchPath,
    /// 409: create of an existing name.
    #[error("{resource} \"{name}\" already exists")]
    AlreadyExists {
        /// Group-qualified resource.
        resource: String,
        /// The name.
        name: String,
    },
    /// 409: a write based on a stale resourceVersion, or a failed precondition.
    #[error("Operation cannot be fulfilled on {resource} \"{name}\": {message}")]
    Conflict {
        /// Group-qualified resource.
        resource: String,
        /// The name.
        name: String,
        /// Why, e.g. "the object has been modified; please apply your
        /// changes to the latest version and try again".
        message: String,
    },
    /// 422: the object failed validation.
    #[error("{kind} \"{name}\" is invalid: {}", summarize(.causes))]
    Invalid {
        /// The object's kind, e.g. `Pod`.
        kind: String,
        /// API group of the kind ("" for core).
        group: String,
        /// The object's name.
        name: String,
        /// Every failed field.
        causes: Vec<Cause>,
    },
    /// 400: the request is malformed (body, parameters, path).
    #[error("{0}")]
    BadRequest(String),
    /// 401: no credentials or unknown ones.
    #[error("Unauthorized")]
    Unauthorized,
    /// 403: the identity may not do this, or the namespace is terminating.
    #[error("{0}")]
    Forbidden(String),
    /// 405: the verb is not supported on this resource.
    #[error("the server does not allow this method on the requested resource")]
    MethodNotAllowed,
    /// 406: no acceptable representation.
    #[error("only the following media types are accepted: {0}")]
    NotAcceptable(String),
    /// 410: the resourceVersion or continue token is too old.
    #[error("{0}")]
    Expired(String),
    /// 413: the body exceeds the limit.
    #[error("the request body is larger than {limit} bytes")]
    TooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// 415: the body's content type is not supported for this request.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// 429: too many requests.
    #[error("too many requests, please try again later")]
    TooManyRequests,
    /// 500: the store failed.
    #[error("storage error: {0}")]
    Store(#[source] StoreError),
    /// 500: an object in the store could not be decoded.
    #[error("stored object {key} cannot be decoded")]
    Decode {
        /// The store key.
        key: String,
        /// The decoding failure.
        #[source]
        source: serde_json::Error,
    },
    /// 500: a certificate could not be issued.
    #[error("cannot issue a certificate")]
    Certificate(#[source] super::tls::TlsError),
    /// 500: the node a request goes to has no address in
    /// `status.addresses`.
    #[error("node \"{node}\" has no address in status.addresses")]
    NodeWithoutAddress {
        /// The node.
        node: String,
    },
    /// 500: the node API could not be reached, or broke off before
    /// answering (refused, TLS failure, timeout).
    #[error("cannot reach node \"{node}\" at {address}: {reason}")]
    NodeUnreachable {
        /// The node.
        node: String,
        /// The `host:port` tried.
        address: String,
        /// What failed, with its causes.
        reason: String,
    },
    /// The node API answered with a failure whose body is not a `Status`:
    /// its code, and its body as the message.
    #[error("{message}")]
    NodeAnswered {
        /// The node's HTTP code (4xx or 5xx).
        code: StatusCode,
        /// The node's body, or a note that it sent none.
        message: String,
    },
}

fn summarize(causes: &[Cause]) -> String {
    let parts: Vec<String> = causes
        .iter()
        .map(|c| {
            if c.field.is_empty() {
                c.message.clone()
            } else {
                format!("{}: {}", c.field, c.message)
            }
        })
        .collect();
    if parts.len() == 1 {
        parts.into_iter().next().unwrap_or_default()
    } else {
        format!("[{}]", parts.join(", "))
    }
}

impl ApiError {
    /// The HTTP code and the Status `reason`.
    pub fn code_and_reason(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::NotFound { .. } | ApiError::NoSuchPath => (StatusCode::NOT_FOUND, "NotFound"),
            ApiError::AlreadyExists { .. } => (StatusCode::CONFLICT, "AlreadyExists"),
            ApiError::Conflict { .. } => (StatusCode::CONFLICT, "Conflict"),
            ApiError::Invalid { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "Invalid"),
            ApiError::BadRequest(_) => (StatusCode::BAD_REQUEST, "BadRequest"),
            ApiError::Unauthorized => (StatusCode::UNAUTHORIZED, "Unauthorized"),
            ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, "Forbidden"),
            ApiError::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, "MethodNotAllowed"),
            ApiError::NotAcceptable(_) => (StatusCode::NOT_ACCEPTABLE, "NotAcceptable"),
            ApiError::Expired(_) => (StatusCode::GONE, "Expired"),
            ApiError::TooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "RequestEntityTooLarge"),
            ApiError::UnsupportedMediaType(_) => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "UnsupportedMediaType")
            }
            ApiError::TooManyRequests => (StatusCode::TOO_MANY_REQUESTS, "TooManyRequests"),
            ApiError::Store(StoreError::Compacted { .. }) => (StatusCode::GONE, "Expired"),
            ApiError::Store(_)
            | ApiError::Decode { .. }
            | ApiError::Certificate(_)
            | ApiError::NodeWithoutAddress { .. }
            | ApiError::NodeUnreachable { .. } => {
                (StatusCode::INTERNAL_SERVER_ERROR, "InternalError")
            }
            ApiError::NodeAnswered { code, .. } => (*code, reason_of(*code)),
        }
    }

    /// The `details` object of the Status, if any.
    fn details(&self) -> Option<Value> {
        match self {
            ApiError::NotFound { resource, name }
            | ApiError::AlreadyExists { resource, name }
            | ApiError::Conflict { resource, name, .. } => {
                let (kind, group) = split_group_resource(resource);
                Some(json!({ "name": name, "group": group, "kind": kind }))
            }
            ApiError::Invalid {
                kind,
                group,
                name,
                causes,
            } => {
                let causes: Vec<Value> = causes
                    .iter()
                    .map(|c| json!({"reason": c.kind.reason(), "message": c.message, "field": c.field}))
                    .collect();
                Some(json!({ "name": name, "group": group, "kind": kind, "causes": causes }))
            }
            _ => None,
        }
    }

    /// The Kubernetes `Status` object for this error.
    pub fn status(&self) -> Value {
        let (code, reason) = self.code_and_reason();
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.to_string(),
            "reason": reason,
            "code": code.as_u16(),
        });
        if let Some(details) = self.details() {
            status["details"] = details;
        }
        status
    }
}

/// The `Status` reason Kubernetes gives an HTTP code (apimachinery's
/// `reasonForError` inverse, as `NewGenericServerResponse` picks it).
fn reason_of(code: StatusCode) -> &'static str {
    match code.as_u16() {
        400 => "BadRequest",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "NotFound",
        405 => "MethodNotAllowed",
        406 => "NotAcceptable",
        409 => "Conflict",
        410 => "Expired",
        413 => "RequestEntityTooLarge",
        415 => "UnsupportedMediaType",
        422 => "Invalid",
        429 => "TooManyRequests",
        500 => "InternalError",
        503 => "ServiceUnavailable",
        504 => "Timeout",
        _ => "Unknown",
    }
}

/// `deployments.apps` → (`deployments`, `apps`); `pods` → (`pods`, ``).
fn split_group_resource(resource: &str) -> (&str, &str) {
    resource.split_once('.').unwrap_or((resource, ""))
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        ApiError::Store(error)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (code, _) = self.code_and_reason();
        if code.is_server_error() {
            tracing::error!(error = %self, source = ?std::error::Error::source(&self), "request failed");
        }
        let body = serde_json::to_vec(&self.status()).unwrap_or_default();
        (
            code,
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_status_lists_every_cause() {
        let error = ApiError::Invalid {
            kind: "Pod".into(),
            group: String::new(),
            name: "web".into(),
            causes: vec![
                Cause::required("spec.containers[0].image"),
                Cause::invalid("metadata.name", "Web", "must be lowercase"),
            ],
        };
        let status = error.status();
        assert_eq!(status["code"], 422);
        assert_eq!(status["reason"], "Invalid");
        assert_eq!(
            status["message"],
            "Pod \"web\" is invalid: [spec.containers[0].image: Required value, metadata.name: Invalid value: \"Web\": must be lowercase]"
        );
        assert_eq!(
            status["details"]["causes"][0]["reason"],
            "FieldValueRequired"
        );
        assert_eq!(status["details"]["causes"][1]["field"], "metadata.name");
    }

    #[test]
    fn codes_follow_kubernetes() {
        let check = |error: ApiError, code: u16, reason: &str| {
            let status = error.status();
            assert_eq!(
                (status["code"].as_u64(), status["reason"].as_str()),
                (Some(code as u64), Some(reason))
            );
        };
        check(
            ApiError::NotFound {
                resource: "pods".into(),
                name: "x".into(),
            },
            404,
            "NotFound",
        );
        check(
            ApiError::AlreadyExists {
                resource: "deployments.apps".into(),
                name: "x".into(),
            },
            409,
            "AlreadyExists",
        );
        check(ApiError::Unauthorized, 401, "Unauthorized");
        check(
            ApiError::TooLarge { limit: 3 << 20 },
            413,
            "RequestEntityTooLarge",
        );
        check(
            ApiError::Store(StoreError::Compacted {
                requested: 1,
                compacted: 5,
            }),
            410,
            "Expired",
        );
        let status = ApiError::AlreadyExists {
            resource: "deployments.apps".into(),
            name: "x".into(),
        }
        .status();
        assert_eq!(status["details"]["group"], "apps");
        assert_eq!(status["details"]["kind"], "deployments");
    }
}
