//! `tidelog serve`: wires config, broker, gRPC and HTTP together and runs
//! until SIGTERM/SIGINT, then shuts down in order (stop accepting, finish
//! requests, final fsync).

use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tidelog_proto::limits::MAX_MESSAGE_BYTES;
use tidelog_proto::v1::{
    admin_server::AdminServer, consumer_server::ConsumerServer, groups_server::GroupsServer,
    producer_server::ProducerServer,
};
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tokio_stream::StreamExt;
use tokio_util::sync::CancellationToken;

use crate::api::Api;
use crate::broker::{Broker, BrokerError};
use crate::cluster_snapshot::SnapshotPublisher;
use crate::config::ServeConfig;
use crate::groups::{GroupCoordinator, GroupError};
use crate::http::{router, HttpState};
use crate::metrics::Metrics;

/// Why the broker could not run.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// A listener could not be bound.
    #[error("cannot listen on {address}: {source}")]
    Bind {
        /// Address.
        address: String,
        /// OS error.
        source: std::io::Error,
    },
    /// The broker failed to open its data.
    #[error(transparent)]
    Broker(#[from] BrokerError),
    /// The group coordinator failed to open.
    #[error(transparent)]
    Groups(#[from] GroupError),
    /// Metrics registration failed.
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    /// Tiered storage could not start (bad URL, unreachable cache dir).
    #[error(transparent)]
    Tiering(#[from] crate::tiering::TieringError),
    /// The bucket holds topics the data directory lacks.
    #[error(transparent)]
    Restore(#[from] crate::restore::RestoreError),
    /// The gRPC server failed.
    #[error("gRPC server: {0}")]
    Transport(#[from] tonic::transport::Error),
}

/// Longest wait for in-flight requests at shutdown.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs a broker until a termination signal.
pub async fn run(cfg: ServeConfig) -> Result<(), ServeError> {
    tracing::info!(config = ?cfg, "starting tidelog broker");
    let shutdown = CancellationToken::new();
    spawn_signal_handler(shutdown.clone());
    run_until(cfg, shutdown).await
}

/// Runs a broker until `shutdown` is cancelled.
pub async fn run_until(cfg: ServeConfig, shutdown: CancellationToken) -> Result<(), ServeError> {
    let bind = |address: &str| {
        let address = address.to_string();
        async move {
            TcpListener::bind(&address)
                .await
                .map_err(|source| ServeError::Bind { address, source })
        }
    };
    let grpc_listener = bind(&cfg.listen).await?;
    let http_listener = bind(&cfg.http_listen).await?;
    let metrics = Metrics::new()?;
    let http_state = Arc::new(HttpState {
        ready: Default::default(),
        broker: OnceLock::new(),
        metrics: metrics.clone(),
    });
    let http_shutdown = shutdown.clone();
    let http_task = tokio::spawn({
        let app = router(Arc::clone(&http_state));
        async move {
            if let Err(e) = axum::serve(http_listener, app)
                .with_graceful_shutdown(http_shutdown.cancelled_owned())
                .await
            {
                tracing::error!(error = %e, "HTTP server failed");
            }
        }
    });

    // Refuse a data directory in use before touching anything in it (the
    // remote-read disk cache lives there); the broker takes the lock for good.
    Broker::check_not_in_use(&cfg.data_dir)?;
    let tiering =
        crate::tiering::Tiering::open(cfg.tiering_settings(), metrics.tiering.clone()).await?;
    tracing::info!(object_store = %tiering.store.url(), "tiered storage on");
    // Never start a fresh log over a bucket that holds topics.
    crate::restore::check_start(&tiering.store, &cfg.data_dir).await?;
    let broker = Broker::open(
        cfg.broker_settings(),
        metrics,
        shutdown.child_token(),
        Some(Arc::clone(&tiering)),
    )?;
    broker.load_remote_state().await;
    let _ = http_state.broker.set(Arc::clone(&broker));
    let groups = GroupCoordinator::open(
        Arc::clone(&broker),
        Duration::from_millis(cfg.group_heartbeat_interval_ms),
    )?;
    // Writes cluster.json now and whenever topics or committed offsets change.
    SnapshotPublisher::start(Arc::clone(&broker), Arc::clone(&groups), tiering).await;
    let api = Api::new(Arc::clone(&broker), groups);
    let server = tonic::transport::Server::builder()
        .tcp_nodelay(true)
        .initial_stream_window_size(Some(16 * 1024 * 1024))
        .initial_connection_window_size(Some(32 * 1024 * 1024))
        .max_frame_size(Some(1024 * 1024))
        .add_service(
            ProducerServer::new(api.clone())
                .max_decoding_message_size(MAX_MESSAGE_BYTES)
                .max_encoding_message_size(MAX_MESSAGE_BYTES),
        )
        .add_service(
            ConsumerServer::new(api.clone())
                .max_decoding_message_size(MAX_MESSAGE_BYTES)
                .max_encoding_message_size(MAX_MESSAGE_BYTES),
        )
        .add_service(AdminServer::new(api.clone()))
        .add_service(GroupsServer::new(api))
        .serve_with_incoming_shutdown(
            // The builder's `tcp_nodelay` only reaches listeners tonic binds
            // itself: set it here, or small answers wait out Nagle's 40 ms.
            TcpListenerStream::new(grpc_listener).map(|conn| {
                conn.inspect(|stream| {
                    if let Err(e) = stream.set_nodelay(true) {
                        tracing::warn!(error = %e, "could not set TCP_NODELAY");
                    }
                })
            }),
            shutdown.clone().cancelled_owned(),
        );
    http_state.ready.store(true, Ordering::Release);
    tracing::info!(grpc = %cfg.listen, http = %cfg.http_listen, data_dir = %cfg.data_dir.display(), "broker ready");
    let mut server = tokio::spawn(server);
    let served = tokio::select! {
        r = &mut server => Some(r),
        _ = shutdown.cancelled() => None,
    };
    http_state.ready.store(false, Ordering::Release);
    tracing::info!("shutting down");
    // Stop broker tasks (subscriptions end, flushers do a last fsync) so
    // streaming calls finish and the server can drain.
    broker.close().await;
    let served = match served {
        Some(r) => Some(r),
        None => tokio::time::timeout(DRAIN_TIMEOUT, &mut server).await.ok(),
    };
    let _ = http_task.await;
    tracing::info!("stopped");
    match served {
        Some(Ok(Err(e))) => Err(e.into()),
        _ => Ok(()),
    }
}

fn spawn_signal_handler(shutdown: CancellationToken) {
    tokio::spawn(async move {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            match signal(SignalKind::terminate()) {
                Ok(mut term) => {
                    tokio::select! {
                        _ = term.recv() => {}
                        _ = tokio::signal::ctrl_c() => {}
                    }
                }
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
        shutdown.cancel();
    });
}
