//! Every error the API answers with, as JSON: `{"error": "...", "problems": [...]?,
//! "leader_api": ...?}`, with the status that tells a client what to do next (fix the request,
//! authenticate, retry at the leader, retry later).

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use meridian_controller::ops::OpError;
use meridian_controller::sync::SyncError;
use meridian_model::Problem;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub body: ErrorBody,
    /// The `WWW-Authenticate` challenge of a 401.
    challenge: Option<&'static str>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ErrorBody {
    pub error: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problems: Option<Vec<Problem>>,
    /// Set on 503 "not the leader": where the leader's API is (null when unknown). The body is
    /// then also a valid `meridian_wire::NotLeader`, so agents and the CLI read it alike.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub leader_api: Option<Option<String>>,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            body: ErrorBody {
                error: message.into(),
                problems: None,
                leader_api: None,
            },
            challenge: None,
        }
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, message)
    }

    /// 401: no usable credentials. The challenge says a bearer token is expected (and, for a
    /// token we do not know, that it was the token that failed).
    pub fn unauthorized(message: impl Into<String>, token_given: bool) -> ApiError {
        let mut error = ApiError::new(StatusCode::UNAUTHORIZED, message);
        error.challenge = Some(if token_given {
            r#"Bearer realm="meridian", error="invalid_token""#
        } else {
            r#"Bearer realm="meridian""#
        });
        error
    }

    pub fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, message)
    }

    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, message)
    }

    /// 503 with where to go instead.
    pub fn not_leader(leader_api: Option<String>) -> ApiError {
        let mut error = ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            match &leader_api {
                Some(url) => format!("this controller does not lead; the leader is at {url}"),
                None => "this controller does not lead, and no leader is known yet".to_string(),
            },
        );
        error.body.leader_api = Some(leader_api);
        error
    }
}

impl From<OpError> for ApiError {
    fn from(error: OpError) -> ApiError {
        match error {
            OpError::NotLeader(leader) => ApiError::not_leader(leader.map(|l| l.api_url)),
            OpError::NotFound(message) => ApiError::not_found(message),
            OpError::Invalid { message, problems } => {
                let mut error = ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, message);
                error.body.problems = (!problems.is_empty()).then_some(problems);
                error
            }
            OpError::Conflict(message) => ApiError::new(StatusCode::CONFLICT, message),
            OpError::Store(message) => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, format!("store: {message}"))
            }
        }
    }
}

impl From<SyncError> for ApiError {
    fn from(error: SyncError) -> ApiError {
        match error {
            SyncError::NotLeader(not_leader) => ApiError::not_leader(not_leader.leader_api),
            SyncError::UnknownNode(_) => ApiError::not_found(error.to_string()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, axum::Json(self.body)).into_response();
        if let Some(challenge) = self.challenge {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(challenge),
            );
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn op_errors_map_to_the_statuses_clients_act_on() {
        let cases = [
            (OpError::NotFound("x".into()), StatusCode::NOT_FOUND),
            (OpError::Conflict("x".into()), StatusCode::CONFLICT),
            (OpError::Store("x".into()), StatusCode::SERVICE_UNAVAILABLE),
            (OpError::NotLeader(None), StatusCode::SERVICE_UNAVAILABLE),
            (
                OpError::Invalid {
                    message: "x".into(),
                    problems: vec![],
                },
                StatusCode::UNPROCESSABLE_ENTITY,
            ),
        ];
        for (error, status) in cases {
            assert_eq!(ApiError::from(error).status, status);
        }
    }

    #[test]
    fn not_leader_bodies_read_as_the_wire_type() {
        let error = ApiError::not_leader(Some("https://c2:7400".into()));
        let json = serde_json::to_string(&error.body).expect("json");
        let wire: meridian_wire::NotLeader = serde_json::from_str(&json).expect("wire");
        assert_eq!(wire.leader_api.as_deref(), Some("https://c2:7400"));
        let unknown = serde_json::to_value(ApiError::not_leader(None).body).expect("json");
        assert!(unknown["leader_api"].is_null() && unknown.get("leader_api").is_some());
    }
}
