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

async fn readyz(State(s): State<Arc<HttpState>>) -> (StatusCode, &'static str) {
    if s.ready.load(Ordering::Acquire) {
        (StatusCode::OK, "ready\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "recovering\n")
    }
}
