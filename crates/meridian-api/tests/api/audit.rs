//! The audit trail: every mutating request, refused ones included, leaves one info line with
//! the caller's token name and the outcome; reads leave none.

use std::sync::{Arc, Mutex};

use axum::http::StatusCode;
use tracing_subscriber::fmt::MakeWriter;

use crate::common::*;

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log buffer").extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Captured {
    type Writer = Captured;

    fn make_writer(&'a self) -> Captured {
        self.clone()
    }
}

impl Captured {
    fn audit_lines(&self) -> Vec<String> {
        let text = String::from_utf8_lossy(&self.0.lock().expect("log buffer")).into_owned();
        text.lines()
            .filter(|line| line.contains("meridian::audit"))
            .map(String::from)
            .collect()
    }
}

// One thread, so the thread-local subscriber sees every request.
#[tokio::test(flavor = "current_thread")]
async fn mutating_requests_are_logged_with_caller_and_outcome() {
    let captured = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(captured.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let harness = leading().await;

    assert_eq!(
        harness.post("/v1/nodes/n03/cordon", OPERATOR).await.status,
        StatusCode::OK
    );
    assert_eq!(
        harness.post("/v1/nodes/n04/drain", READ).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        harness.post("/v1/nodes/n05/drain", UNKNOWN).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(harness.get("/v1/nodes", READ).await.status, StatusCode::OK);

    let lines = captured.audit_lines();
    assert_eq!(lines.len(), 3, "{lines:#?}");
    let expected = [
        ("/v1/nodes/n03/cordon", "ops", "200"),
        ("/v1/nodes/n04/drain", "reader", "403"),
        ("/v1/nodes/n05/drain", "-", "401"),
    ];
    for (line, (path, caller, status)) in lines.iter().zip(expected) {
        assert!(line.contains(" INFO "), "{line}");
        assert!(
            line.contains("method=POST") && line.contains(&format!("path=\"{path}\"")),
            "{line}"
        );
        assert!(line.contains(&format!("caller=\"{caller}\"")), "{line}");
        assert!(line.contains(&format!("status={status}")), "{line}");
    }
}
