//! Logs for the long-running commands (controller, agent, demo) and their shutdown signal.

/// Structured logs on standard error; `RUST_LOG` filters (default `info`), and
/// `MERIDIAN_LOG_FORMAT=json` gives one JSON object per line for log pipelines.
pub fn init() {
    init_with_default("info");
}

/// As [`init`], but only warnings unless `RUST_LOG` says otherwise (the demo prints its own
/// story).
pub fn init_quiet() {
    init_with_default("warn");
}

fn init_with_default(level: &str) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let json = std::env::var("MERIDIAN_LOG_FORMAT").is_ok_and(|f| f == "json");
    // A second init (tests in one process) is harmless: the first subscriber stays.
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(signal) => signal,
                Err(_) => {
                    let _ = interrupt.await;
                    return;
                }
            };
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}
