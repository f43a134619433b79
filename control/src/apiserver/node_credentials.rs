//! `POST /skiff/v1/node-credentials`: a node agent holding the shared join
//! token claims its node name and gets the credential that identifies it
//! alone (see [`super::auth`]), as k3s agents register with a node
//! password.
//!
//! The request is `{"nodeName": "n1", "password": "<secret the agent keeps>"}`.
//! The first claim of a name stores a hash of the password under
//! `/skiff/node-passwords/<name>`; later claims of the same name must bring
//! the same password, so that a second machine holding the join token
//! cannot take over a node that already registered. The answer is
//! `{"kind": "NodeCredential", "apiVersion": "skiff.dev/v1", "nodeName":
//! "n1", "token": "skiff-node:n1:..."}`. The join token and the admin token
//! may ask; nothing else may.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use bytes::Bytes;
use serde::Deserialize;
use serde_json::json;

use super::auth::{Authenticator, Identity};
use super::body;
use super::error::{ApiError, Cause, CauseType};
use super::tls::hex;
use super::validation::rules;
use crate::store::{Store, StoreError};

/// The path of the endpoint.
pub const PATH: &str = "/skiff/v1/node-credentials";
/// Where claimed node names keep their password hash.
const PASSWORD_PREFIX: &str = "/skiff/node-passwords/";
/// Bounds of a node password, in bytes.
const PASSWORD_LEN: std::ops::RangeInclusive<usize> = 16..=256;
/// The largest request body.
const MAX_REQUEST_BYTES: usize = 16 * 1024;

#[derive(Clone)]
struct Issuer {
    store: Arc<dyn Store>,
    authenticator: Arc<Authenticator>,
}

/// The route, over the store that keeps the claimed names.
pub fn router(store: Arc<dyn Store>, authenticator: Arc<Authenticator>) -> Router {
    Router::new().route(PATH, post(issue)).with_state(Issuer {
        store,
        authenticator,
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Claim {
    node_name: String,
    password: String,
}

async fn issue(State(issuer): State<Issuer>, request: Request) -> Response {
    match claim(&issuer, request).await {
        Ok(body) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response(),
        Err(error) => error.into_response(),
    }
}

async fn claim(issuer: &Issuer, request: Request) -> Result<Bytes, ApiError> {
    match request.extensions().get::<Identity>() {
        Some(Identity::Joining | Identity::Admin) => {}
        Some(other) => {
            return Err(ApiError::Forbidden(format!(
                "User \"{}\" cannot claim node credentials: only the node join token can",
                other.user_name()
            )));
        }
        None => return Err(ApiError::Unauthorized),
    }
    let bytes = body::read_body(request.into_body(), MAX_REQUEST_BYTES).await?;
    let claim: Claim = serde_json::from_slice(&bytes)
        .map_err(|error| ApiError::BadRequest(format!("invalid node credential claim: {error}")))?;
    let mut causes: Vec<Cause> = rules::dns1123_subdomain(&claim.node_name)
        .into_iter()
        .map(|message| {
            Cause::new(
                CauseType::Invalid,
                "nodeName",
                &format!("{:?}: {message}", claim.node_name),
            )
        })
        .collect();
    if !PASSWORD_LEN.contains(&claim.password.len()) {
        causes.push(Cause::new(
            CauseType::Invalid,
            "password",
            &format!(
                "must be between {} and {} bytes long",
                PASSWORD_LEN.start(),
                PASSWORD_LEN.end()
            ),
        ));
    }
    if !causes.is_empty() {
        return Err(ApiError::Invalid {
            kind: "NodeCredential".into(),
            group: "skiff.dev".into(),
            name: claim.node_name,
            causes,
        });
    }

    let key = format!("{PASSWORD_PREFIX}{}", claim.node_name);
    let hash = Bytes::from(hex(ring::digest::digest(
        &ring::digest::SHA256,
        claim.password.as_bytes(),
    )
    .as_ref()));
    let stored = match issuer.store.create(&key, hash.clone(), None).await {
        Ok(_) => hash.clone(),
        Err(StoreError::AlreadyExists { .. }) => issuer
            .store
            .get(&key)
            .await?
            .map(|kv| kv.value)
            .unwrap_or_default(),
        Err(error) => return Err(error.into()),
    };
    // Both are hashes of fixed length: comparing them leaks nothing useful.
    if stored != hash {
        return Err(ApiError::Forbidden(format!(
            "node \"{}\" is already registered with a different password",
            claim.node_name
        )));
    }
    let answer = json!({
        "kind": "NodeCredential",
        "apiVersion": "skiff.dev/v1",
        "nodeName": claim.node_name,
        "token": issuer.authenticator.node_credential(&claim.node_name),
    });
    Ok(Bytes::from(answer.to_string()))
}
