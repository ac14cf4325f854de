//! Errors of the tiering layer (object store, manifests, remote reads).

use std::path::PathBuf;

/// Why a tiering operation failed.
#[derive(Debug, thiserror::Error)]
pub enum TieringError {
    /// The `--object-store` URL is not usable.
    #[error("invalid object store URL '{url}': {reason}")]
    InvalidUrl {
        /// The URL given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A call to the object store failed (network, permissions, missing bucket).
    #[error("object store {op} of '{key}' failed: {source}")]
    Store {
        /// Operation (get, put, delete, ...).
        op: &'static str,
        /// Object key.
        key: String,
        /// The store's error.
        source: object_store::Error,
    },
    /// A conditional manifest write lost: another writer changed it.
    #[error("fenced: the manifest '{key}' was changed by another writer ({detail}); is a second broker using the same bucket prefix? Uploads for this partition stop until restart")]
    Fenced {
        /// Manifest key.
        key: String,
        /// What the store said.
        detail: String,
    },
    /// Remote data failed a checksum or does not parse.
    #[error("remote data loss: object '{key}' is corrupt: {detail}")]
    Corrupt {
        /// Object key.
        key: String,
        /// What is wrong.
        detail: String,
    },
    /// A manifest or cluster snapshot could not be decoded.
    #[error("cannot decode '{key}': {detail}")]
    Decode {
        /// Object key.
        key: String,
        /// Parser error.
        detail: String,
    },
    /// A local file could not be read or written.
    #[error("I/O error on {path}: {source}")]
    Io {
        /// File involved.
        path: PathBuf,
        /// OS error.
        source: std::io::Error,
    },
    /// Remote state of a partition is not known yet (the bucket was
    /// unreachable when the broker started).
    #[error(
        "remote storage state of {0} is not loaded yet (object store unreachable?); retry later"
    )]
    NotLoaded(String),
    /// The foyer cache could not be built.
    #[error("remote read cache: {0}")]
    Cache(String),
}

impl TieringError {
    /// Wraps an object store error.
    pub fn store(op: &'static str, key: &str, source: object_store::Error) -> Self {
        TieringError::Store {
            op,
            key: key.to_string(),
            source,
        }
    }

    /// Wraps an I/O error with its path.
    pub fn io(path: &std::path::Path, source: std::io::Error) -> Self {
        TieringError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}
