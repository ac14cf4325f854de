//! The HTTP side: Prometheus `/metrics`, liveness `/healthz` and readiness
//! `/readyz` (ready once recovery finished and the gRPC port serves).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;

use crate::broker::Broker;
use crate::metrics::Metrics;

/// Shared state of the HTTP endpoints.
#[derive(Debug)]
pub struct HttpState {
    /// Set once the broker serves gRPC.
    pub ready: AtomicBool,
    /// The broker, once opened.
    pub broker: OnceLock<Arc<Broker>>,
    /// Metrics to render.
    pub metrics: Metrics,
}

/// The router.
pub fn router(state: Arc<HttpState>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .with_state(state)
}

async fn metrics(State(s): State<Arc<HttpState>>) -> String {
    if let Some(b) = s.broker.get() {
        b.refresh_gauges();
    }
    s.metrics.render()
}

/// Ready (200) once serving. The body says whether tiered storage is
/// healthy: uploads failing (bucket unreachable) or a fenced partition make
/// it `tiering: degraded`, with the backlog and last error, while the broker
/// stays ready because producing and hot reads do not need the bucket.
async fn readyz(State(s): State<Arc<HttpState>>) -> (StatusCode, String) {
    if !s.ready.load(Ordering::Acquire) {
        return (StatusCode::SERVICE_UNAVAILABLE, "recovering\n".into());
    }
    let tiering = s.broker.get().and_then(|b| b.tiering()).map(|t| t.status());
    let body = match tiering {
        Some(st) if st.degraded() => format!(
            "ready\ntiering: degraded (upload backlog {} segments, {} bytes; fenced partitions: [{}]; last error: {})\n",
            st.backlog_segments,
            st.backlog_bytes,
            st.fenced.join(", "),
            st.last_error.as_deref().unwrap_or("-")
        ),
        Some(st) => format!(
            "ready\ntiering: ok (upload backlog {} segments, {} bytes)\n",
            st.backlog_segments, st.backlog_bytes
        ),
        None => "ready\n".into(),
    };
    (StatusCode::OK, body)
}
