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
    /// The bucket holds topics the data directory lacks. Boxed: the
    /// restore error is large and start-up errors are rare.
    #[error(transparent)]
    Restore(#[from] Box<crate::restore::RestoreError>),
    /// The cluster settings are invalid.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// The metadata quorum could not start.
    #[error(transparent)]
    Cluster(#[from] crate::cluster::node::ClusterError),
    /// The object store prefix belongs to another cluster or broker.
    #[error(transparent)]
    Owner(crate::cluster::owner::OwnerError),
    /// The gRPC server failed.
    #[error("gRPC server: {0}")]
    Transport(#[from] tonic::transport::Error),
    /// The data directory path is not usable (e.g. a regular file).
    #[error("data directory {path}: {reason}")]
    DataDir {
        /// Path given.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The default `file://` bucket beside the data directory could not be made.
    #[error("cannot create the default bucket directory {path}: {source}")]
    DefaultBucket {
        /// Directory.
        path: String,
        /// OS error.
        source: std::io::Error,
    },
    /// Start-up ran out of file descriptors: say which limit to raise.
    #[error(
        "{source}; the open-file limit ({limit}) is too low for this data directory: \
         raise it (`ulimit -n`, or `LimitNOFILE=` in the systemd unit) and start again"
    )]
    TooManyOpenFiles {
        /// What failed.
        source: Box<ServeError>,
        /// The current soft/hard limit, as read from /proc/self/limits.
        limit: String,
    },
}

/// `EMFILE` ("Too many open files") on Linux and macOS.
const EMFILE: i32 = 24;

impl ServeError {
    /// Whether the error comes from running out of file descriptors. Lower
    /// layers sometimes flatten I/O errors into strings, so the message is
    /// checked as well as the source chain.
    fn is_emfile(&self) -> bool {
        let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(self);
        while let Some(e) = cur {
            if let Some(io) = e.downcast_ref::<std::io::Error>() {
                if io.raw_os_error() == Some(EMFILE) {
                    return true;
                }
            }
            cur = e.source();
        }
        self.to_string().contains(&format!("(os error {EMFILE})"))
    }

    /// Adds what to raise to an `EMFILE` failure; other errors pass through.
    fn explain_emfile(self) -> Self {
        if !self.is_emfile() {
            return self;
        }
        ServeError::TooManyOpenFiles {
            source: Box::new(self),
            limit: open_file_limit(),
        }
    }
}

/// The soft and hard open-file limits of this process, e.g. "soft 1024,
/// hard 4096" (from /proc/self/limits; "unknown" where that is missing).
fn open_file_limit() -> String {
    let Ok(limits) = std::fs::read_to_string("/proc/self/limits") else {
        return "unknown".into();
    };
    limits
        .lines()
        .find_map(|l| l.strip_prefix("Max open files"))
        .and_then(|rest| {
            let mut f = rest.split_whitespace();
            Some(format!("soft {}, hard {}", f.next()?, f.next()?))
        })
        .unwrap_or_else(|| "unknown".into())
}

/// Refuses a data directory that exists but is not a directory, before
/// anything (the default bucket beside it, the cache inside it) is created.
fn check_data_dir(dir: &std::path::Path) -> Result<(), ServeError> {
    match std::fs::metadata(dir) {
        Ok(m) if !m.is_dir() => Err(ServeError::DataDir {
            path: dir.display().to_string(),
            reason: "exists and is not a directory".into(),
        }),
        _ => Ok(()),
    }
}

/// Longest wait for in-flight requests at shutdown.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs a broker until a termination signal.
pub async fn run(cfg: ServeConfig) -> Result<(), ServeError> {
    tracing::info!(config = ?cfg, "starting tidelog broker");
    let shutdown = CancellationToken::new();
    spawn_signal_handler(shutdown.clone());
    run_until(cfg, shutdown)
        .await
        .map_err(ServeError::explain_emfile)
}

/// Runs a broker until `shutdown` is cancelled.
pub async fn run_until(cfg: ServeConfig, shutdown: CancellationToken) -> Result<(), ServeError> {
    check_data_dir(&cfg.data_dir)?;
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
    if cfg.object_store.is_empty() {
        // Only the default bucket is created; one named with
        // --object-store must exist.
        let dir = crate::tiering::default_bucket_dir(&cfg.data_dir);
        std::fs::create_dir_all(&dir).map_err(|source| ServeError::DefaultBucket {
            path: dir.display().to_string(),
            source,
        })?;
    }
    // The metadata quorum (a one-node cluster without --voters).
    let cluster = crate::cluster::node::ClusterNode::start(
        cfg.cluster_settings()?,
        Some(metrics.cluster.clone()),
        shutdown.child_token(),
    )
    .await?;
    let tiering =
        crate::tiering::Tiering::open(cfg.tiering_settings(), metrics.tiering.clone()).await?;
    tracing::info!(object_store = %tiering.store.url(), "tiered storage on");
    // The cluster must have taken this broker (its id, addresses) before
    // it touches the bucket.
    tokio::select! {
        _ = cluster.wait_registered() => {}
        why = cluster.wait_refused() => {
            cluster.shutdown().await;
            return Err(crate::cluster::node::ClusterError::Config(why).into());
        }
        _ = shutdown.cancelled() => {
            cluster.shutdown().await;
            return Ok(());
        }
    }
    // Never start a fresh log over a bucket that holds topics.
    crate::restore::check_start(&tiering.store, &cfg.data_dir)
        .await
        .map_err(Box::new)?;
    // Claimed after the check above, which fails fast on an unreachable
    // bucket; the prefix is claimed in the cluster's name.
    let owner = crate::cluster::owner::Owner {
        cluster_id: cluster.metadata().cluster_id.clone(),
        node_id: cfg.node_id(),
    };
    if let Err(e) = crate::cluster::owner::claim(&tiering.store, &owner).await {
        cluster.shutdown().await;
        return Err(ServeError::Owner(e));
    }
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
    groups.set_directory(Arc::clone(&cluster) as Arc<dyn crate::groups::PartitionDirectory>);
    // Local topics follow the cluster's metadata from here on.
    let mut reconciled = crate::cluster::reconcile::start(
        Arc::clone(&cluster),
        Arc::clone(&broker),
        shutdown.child_token(),
    );
    // Writes cluster.json now and whenever topics or committed offsets change.
    SnapshotPublisher::start(
        Arc::clone(&broker),
        Arc::clone(&groups),
        tiering,
        cluster.metadata().cluster_id.clone(),
    )
    .await;
    let api = Api::new(Arc::clone(&broker), groups, Arc::clone(&cluster));
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
    let mut server = tokio::spawn(server);
    // Ready once the quorum has taken this broker's registration (it has
    // caught up with the metadata far enough to see itself) and the local
    // topics match the metadata.
    tokio::select! {
        _ = reconciled.wait_for(|done| *done) => {}
        why = cluster.wait_refused() => {
            shutdown.cancel();
            broker.close().await;
            cluster.shutdown().await;
            return Err(crate::cluster::node::ClusterError::Config(why).into());
        }
        _ = shutdown.cancelled() => {}
    }
    http_state.ready.store(true, Ordering::Release);
    tracing::info!(grpc = %cfg.listen, http = %cfg.http_listen, data_dir = %cfg.data_dir.display(), node_id = cfg.node_id(), "broker ready");
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
    cluster.shutdown().await;
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
