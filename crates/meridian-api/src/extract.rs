//! Request extractors whose every rejection is an [`ApiError`] (JSON, the right 4xx), so no
//! input can produce a bare-text error or a 5xx.
//!
//! Bodies are read through axum's `Bytes` extractor, which honours the route's
//! `DefaultBodyLimit` (a declared `Content-Length` over it is refused before anything is read;
//! a chunked body is cut off at the limit): oversized bodies are 413.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::{header, request::Parts, HeaderMap, StatusCode};
use serde::de::DeserializeOwned;

use crate::errors::ApiError;

/// The media types a fleet file may be sent as.
const YAML_TYPES: [&str; 4] = [
    "application/yaml",
    "text/yaml",
    "application/x-yaml",
    "text/x-yaml",
];

/// The request's media type (`type/subtype`, lowercase, parameters dropped).
fn media_type(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
    let essence = value.split(';').next()?.trim().to_ascii_lowercase();
    (!essence.is_empty()).then_some(essence)
}

fn is_json(media: &str) -> bool {
    media == "application/json" || (media.starts_with("application/") && media.ends_with("+json"))
}

async fn body_bytes<S: Send + Sync>(request: Request, state: &S) -> Result<Bytes, ApiError> {
    Bytes::from_request(request, state)
        .await
        .map_err(|rejection| {
            let status = rejection.status();
            if status == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(status, "request body too large for this endpoint")
            } else {
                ApiError::new(status, rejection.body_text())
            }
        })
}

fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes).map_err(|e| {
        let status = match e.classify() {
            serde_json::error::Category::Data => StatusCode::UNPROCESSABLE_ENTITY,
            _ => StatusCode::BAD_REQUEST,
        };
        ApiError::new(status, format!("invalid JSON body: {e}"))
    })
}

fn require_json(headers: &HeaderMap) -> Result<(), ApiError> {
    match media_type(headers) {
        Some(media) if is_json(&media) => Ok(()),
        Some(media) => Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("expected Content-Type: application/json, got `{media}`"),
        )),
        None => Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "expected Content-Type: application/json",
        )),
    }
}

/// A JSON body (`Content-Type: application/json` required).
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        require_json(request.headers())?;
        let bytes = body_bytes(request, state).await?;
        parse_json(&bytes).map(JsonBody)
    }
}

/// A JSON body that may be left out entirely (no body means `T::default()`), for requests
/// whose every field is optional.
pub struct OptionalJsonBody<T>(pub T);

impl<T: DeserializeOwned + Default, S: Send + Sync> FromRequest<S> for OptionalJsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let declared_json = media_type(request.headers()).is_some_and(|m| is_json(&m));
        let headers = request.headers().clone();
        let bytes = body_bytes(request, state).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(OptionalJsonBody(T::default()));
        }
        if !declared_json {
            require_json(&headers)?;
        }
        parse_json(&bytes).map(OptionalJsonBody)
    }
}

/// A YAML document sent as text (`Content-Type: application/yaml` or `text/yaml`).
pub struct YamlText(pub String);

impl<S: Send + Sync> FromRequest<S> for YamlText {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        match media_type(request.headers()) {
            Some(media) if YAML_TYPES.contains(&media.as_str()) => {}
            other => {
                return Err(ApiError::new(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    format!(
                        "expected Content-Type: application/yaml or text/yaml, got {}",
                        other.map_or("none".to_string(), |m| format!("`{m}`"))
                    ),
                ))
            }
        }
        let bytes = body_bytes(request, state).await?;
        String::from_utf8(bytes.to_vec())
            .map(YamlText)
            .map_err(|e| ApiError::bad_request(format!("the body is not UTF-8 text: {e}")))
    }
}

/// Reads and discards a body the route does not use, so an oversized one is still a 413
/// rather than silently accepted.
pub struct NoBody;

impl<S: Send + Sync> FromRequest<S> for NoBody {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        body_bytes(request, state).await.map(|_| NoBody)
    }
}

/// Path parameters, with parse failures (e.g. a partition that is not a number) as 400.
pub struct ApiPath<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiPath<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(value)| ApiPath(value))
            .map_err(|rejection| {
                let status = rejection.status();
                let status = if status.is_client_error() {
                    StatusCode::BAD_REQUEST
                } else {
                    status
                };
                ApiError::new(status, rejection.body_text())
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_types_ignore_case_and_parameters() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            "Application/JSON; charset=utf-8".parse().expect("header"),
        );
        assert_eq!(media_type(&headers).as_deref(), Some("application/json"));
        assert!(is_json("application/merge-patch+json") && !is_json("text/json+x"));
        assert!(media_type(&HeaderMap::new()).is_none());
    }
}
