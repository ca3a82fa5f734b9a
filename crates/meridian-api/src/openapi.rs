//! The OpenAPI 3.1 document, written by hand in `openapi.yaml` beside this crate's manifest
//! and served as JSON.
//!
//! Hand-written rather than derived: the response types live in the controller and core
//! crates, which should not grow OpenAPI derives for the API's sake. A test keeps it honest:
//! every served route is in the document with its role and every documented route is served,
//! and the main responses are checked against their schemas.

use std::sync::LazyLock;

/// The document's source (YAML: readable and commentable).
pub const SOURCE_YAML: &str = include_str!("../openapi.yaml");

static DOCUMENT_JSON: LazyLock<Result<String, String>> = LazyLock::new(|| {
    let value = document()?;
    serde_json::to_string(&value).map_err(|e| e.to_string())
});

/// The document as a JSON value.
pub fn document() -> Result<serde_json::Value, String> {
    serde_yaml_ng::from_str(SOURCE_YAML).map_err(|e| format!("openapi.yaml: {e}"))
}

/// The document as JSON text (converted once).
pub fn document_json() -> Result<String, String> {
    DOCUMENT_JSON.clone()
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_document_parses_and_is_openapi_3_1() {
        let document = super::document().expect("openapi.yaml parses");
        assert_eq!(document["openapi"], "3.1.0");
        assert!(super::document_json().is_ok());
    }
}
