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
    /// Shown as one line (kind and key): the store's error can carry the
    /// server's raw XML body, which a client or a log line should not get.
    #[error("object store {op} of '{key}' failed: {}", summarize(source))]
    Store {
        /// Operation (get, put, delete, ...).
        op: &'static str,
        /// Object key.
        key: String,
        /// The store's error.
        #[source]
        source: object_store::Error,
    },
    /// A conditional manifest write lost: another writer changed it.
    #[error("fenced: the manifest '{key}' was changed by another writer: {detail}; uploads for this partition stop until restart")]
    Fenced {
        /// Manifest key.
        key: String,
        /// Who wrote it, or what the store said.
        detail: String,
    },
    /// An object the manifest lists is gone from the bucket (deleted behind
    /// the broker's back): its offsets are lost, retrying cannot help.
    #[error("remote data loss in partition {partition}: object '{key}' holding offsets {from}..{to} is missing from the bucket; read from offset {to} to go past them")]
    Missing {
        /// `topic/partition`.
        partition: String,
        /// Object key (relative to the store's prefix).
        key: String,
        /// First offset the object held.
        from: i64,
        /// Offset after the last one it held.
        to: i64,
    },
    /// The manifest this broker wrote is gone from the bucket: everything
    /// uploaded for the partition is lost. Local data is kept and uploaded
    /// again under a fresh manifest.
    #[error("the bucket lost partition {partition}'s data: the manifest '{key}' this broker wrote is gone from {url} (offsets {lost} uploaded there are lost); local data is kept and uploaded again under a new manifest")]
    BucketLost {
        /// `topic/partition`.
        partition: String,
        /// Manifest key.
        key: String,
        /// The object store URL (bucket and prefix).
        url: String,
        /// The offset range the manifest listed, for the message.
        lost: String,
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

/// One line naming an object store error's kind, without the server's
/// response body (S3 errors carry XML).
pub fn summarize(e: &object_store::Error) -> String {
    let kind = match e {
        object_store::Error::NotFound { .. } => "not found",
        object_store::Error::AlreadyExists { .. } => "already exists",
        object_store::Error::Precondition { .. } => "precondition failed",
        object_store::Error::NotModified { .. } => "not modified",
        object_store::Error::PermissionDenied { .. } => "permission denied",
        object_store::Error::Unauthenticated { .. } => "unauthenticated",
        object_store::Error::NotSupported { .. } | object_store::Error::NotImplemented { .. } => {
            "not supported"
        }
        _ => return first_line(&e.to_string()),
    };
    format!("{kind} ({})", first_line(&e.to_string()))
}

/// The start of an error text: its first line, cut before any XML or
/// HTML body and at 200 characters.
fn first_line(text: &str) -> String {
    let line = text.lines().next().unwrap_or_default();
    let line = line.split('<').next().unwrap_or_default();
    let line = line.trim().trim_end_matches(':').trim_end();
    if line.chars().count() > 200 {
        let cut: String = line.chars().take(200).collect();
        format!("{cut}...")
    } else {
        line.to_string()
    }
}

impl TieringError {
    /// True when the error is the store saying the object does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(
            self,
            TieringError::Store {
                source: object_store::Error::NotFound { .. },
                ..
            }
        )
    }

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_errors_are_one_line_without_the_response_body() {
        let body = "Client error with status 404 Not Found: <?xml version=\"1.0\"?>\n<Error><Code>NoSuchKey</Code>\n<Message>gone</Message></Error>";
        let e = TieringError::store(
            "get range",
            "topics/t/1/0/segments/x.log",
            object_store::Error::NotFound {
                path: "p/topics/t/1/0/segments/x.log".into(),
                source: body.into(),
            },
        );
        let msg = e.to_string();
        assert!(!msg.contains('\n'), "{msg}");
        assert!(!msg.contains('<'), "{msg}");
        assert!(msg.contains("not found"), "{msg}");
        assert!(msg.contains("topics/t/1/0/segments/x.log"), "{msg}");
        assert!(e.is_not_found());
        let generic = TieringError::store(
            "get",
            "k",
            object_store::Error::Generic {
                store: "S3",
                source: format!("Error performing GET: {}", "x".repeat(500)).into(),
            },
        );
        assert!(generic.to_string().len() < 320, "{generic}");
        assert!(!generic.is_not_found());
    }
}
