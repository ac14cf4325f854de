//! The object store behind tiering: `file:///dir` (a local directory) or
//! `s3://bucket/prefix` (credentials, region, endpoint, path style and
//! server-side encryption from the standard `AWS_*` environment
//! variables). Adds what the layers above need: a prefix, multipart upload
//! of large files, and conditional (fenced) writes for manifests.

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjPath;
use object_store::{
    BackoffConfig, ClientOptions, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload,
    RetryConfig, UpdateVersion,
};

use super::error::TieringError;

/// Parts of a multipart upload (and the threshold to use one).
pub const MULTIPART_PART_BYTES: u64 = 8 * 1024 * 1024;

/// A version of an object for a conditional write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectVersion {
    /// E-tag as the store reports it.
    pub e_tag: Option<String>,
    /// Version id, where the store has one.
    pub version: Option<String>,
}

/// The bucket (or directory) and prefix tiering writes to.
#[derive(Debug, Clone)]
pub struct RemoteStore {
    inner: Arc<dyn ObjectStore>,
    prefix: String,
    /// Root directory for `file://` stores (conditional writes use a lock
    /// file there, since the local store has no compare-and-swap).
    local_root: Option<PathBuf>,
    url: String,
}

impl RemoteStore {
    /// Opens the store named by `url`.
    pub fn open(url: &str) -> Result<Self, TieringError> {
        let bad = |reason: String| TieringError::InvalidUrl {
            url: url.to_string(),
            reason,
        };
        if let Some(path) = url.strip_prefix("file://") {
            if !path.starts_with('/') {
                return Err(bad(
                    "file:// needs an absolute path, e.g. file:///var/lib/tidelog-bucket".into(),
                ));
            }
            let root = PathBuf::from(path);
            // The bucket must exist, as an S3 bucket must: creating it would
            // hide a typo (and `restore` would read an empty bucket).
            match std::fs::metadata(&root) {
                Ok(m) if m.is_dir() => {}
                Ok(_) => return Err(bad(format!("{} is not a directory", root.display()))),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    return Err(bad(format!(
                        "directory {} does not exist; create it first",
                        root.display()
                    )))
                }
                Err(e) => return Err(TieringError::io(&root, e)),
            }
            let fs = LocalFileSystem::new_with_prefix(&root).map_err(|e| bad(e.to_string()))?;
            return Ok(RemoteStore {
                inner: Arc::new(fs),
                prefix: String::new(),
                local_root: Some(root),
                url: url.to_string(),
            });
        }
        if let Some(rest) = url.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(bad("no bucket name: use s3://bucket/prefix".into()));
            }
            let retry = RetryConfig {
                backoff: BackoffConfig::default(),
                max_retries: 2,
                retry_timeout: Duration::from_secs(10),
            };
            let client = ClientOptions::new()
                .with_timeout(Duration::from_secs(30))
                .with_connect_timeout(Duration::from_secs(3));
            // Our timeouts and retries first, then every `AWS_*` variable
            // (as `AmazonS3Builder::from_env` reads them) so the environment
            // wins: credentials, region, endpoint, AWS_ALLOW_HTTP, path
            // style (AWS_VIRTUAL_HOSTED_STYLE_REQUEST), SSE
            // (AWS_SERVER_SIDE_ENCRYPTION, AWS_SSE_KMS_KEY_ID), ...
            let mut builder = AmazonS3Builder::new()
                .with_client_options(client)
                .with_retry(retry);
            for (k, v) in std::env::vars_os() {
                if let (Some(k), Some(v)) = (k.to_str(), v.to_str()) {
                    if k.starts_with("AWS_") {
                        if let Ok(key) = k.to_ascii_lowercase().parse::<AmazonS3ConfigKey>() {
                            builder = builder.with_config(key, v);
                        }
                    }
                }
            }
            let s3 = builder
                .with_bucket_name(bucket)
                .build()
                .map_err(|e| bad(e.to_string()))?;
            return Ok(RemoteStore {
                inner: Arc::new(s3),
                prefix: prefix.trim_matches('/').to_string(),
                local_root: None,
                url: url.to_string(),
            });
        }
        Err(bad("use file:///path or s3://bucket/prefix".into()))
    }

    /// The URL it was opened from.
    pub fn url(&self) -> &str {
        &self.url
    }

    fn path(&self, key: &str) -> ObjPath {
        if self.prefix.is_empty() {
            ObjPath::from(key)
        } else {
            ObjPath::from(format!("{}/{key}", self.prefix))
        }
    }

    fn local_file(&self, key: &str) -> Option<PathBuf> {
        self.local_root.as_ref().map(|r| r.join(key))
    }

    /// Writes a whole object (overwrite).
    pub async fn put(&self, key: &str, bytes: Bytes) -> Result<(), TieringError> {
        self.inner
            .put(&self.path(key), PutPayload::from(bytes))
            .await
            .map(|_| ())
            .map_err(|e| TieringError::store("put", key, e))
    }

    /// Uploads `size` bytes of `file`: one put when small, a multipart
    /// upload of [`MULTIPART_PART_BYTES`] parts otherwise (aborted on error,
    /// so a failed upload leaves no object behind).
    pub async fn put_file(
        &self,
        key: &str,
        file: Arc<File>,
        size: u64,
    ) -> Result<(), TieringError> {
        let read = |file: Arc<File>, pos: u64, len: usize| async move {
            tokio::task::spawn_blocking(move || {
                let mut buf = vec![0u8; len];
                file.read_exact_at(&mut buf, pos).map(|_| Bytes::from(buf))
            })
            .await
            .map_err(std::io::Error::other)
            .and_then(|r| r)
        };
        let io = |e| TieringError::io(std::path::Path::new(key), e);
        if size <= MULTIPART_PART_BYTES {
            let bytes = read(file, 0, size as usize).await.map_err(io)?;
            return self.put(key, bytes).await;
        }
        let path = self.path(key);
        let mut upload = self
            .inner
            .put_multipart(&path)
            .await
            .map_err(|e| TieringError::store("multipart start", key, e))?;
        let mut pos = 0u64;
        let mut result = Ok(());
        while pos < size {
            let len = (size - pos).min(MULTIPART_PART_BYTES) as usize;
            match read(Arc::clone(&file), pos, len).await {
                Ok(bytes) => {
                    if let Err(e) = upload.put_part(PutPayload::from(bytes)).await {
                        result = Err(TieringError::store("multipart part", key, e));
                        break;
                    }
                }
                Err(e) => {
                    result = Err(io(e));
                    break;
                }
            }
            pos += len as u64;
        }
        if let Err(e) = result {
            let _ = upload.abort().await;
            return Err(e);
        }
        upload
            .complete()
            .await
            .map(|_| ())
            .map_err(|e| TieringError::store("multipart complete", key, e))
    }

    /// Reads a whole object with its version; `None` when it does not exist.
    pub async fn get(&self, key: &str) -> Result<Option<(Bytes, ObjectVersion)>, TieringError> {
        if let Some(file) = self.local_file(key) {
            return local_get(file).await;
        }
        match self.inner.get(&self.path(key)).await {
            Ok(r) => {
                let version = ObjectVersion {
                    e_tag: r.meta.e_tag.clone(),
                    version: r.meta.version.clone(),
                };
                let bytes = r
                    .bytes()
                    .await
                    .map_err(|e| TieringError::store("get", key, e))?;
                Ok(Some((bytes, version)))
            }
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(TieringError::store("get", key, e)),
        }
    }

    /// Reads a byte range of an object.
    pub async fn get_range(
        &self,
        key: &str,
        range: std::ops::Range<u64>,
    ) -> Result<Bytes, TieringError> {
        self.inner
            .get_range(&self.path(key), range)
            .await
            .map_err(|e| TieringError::store("get range", key, e))
    }

    /// Objects under `prefix` (keys relative to the store's prefix) with
    /// their last-modified time (ms).
    pub async fn list(&self, prefix: &str) -> Result<Vec<(String, i64)>, TieringError> {
        use futures::TryStreamExt;
        let path = self.path(prefix.trim_end_matches('/'));
        let metas: Vec<object_store::ObjectMeta> =
            match self.inner.list(Some(&path)).try_collect().await {
                Ok(m) => m,
                Err(object_store::Error::NotFound { .. }) => Vec::new(),
                Err(e) => return Err(TieringError::store("list", prefix, e)),
            };
        let strip = if self.prefix.is_empty() {
            String::new()
        } else {
            format!("{}/", self.prefix)
        };
        Ok(metas
            .into_iter()
            .map(|m| {
                let full = m.location.to_string();
                let key = full.strip_prefix(&strip).unwrap_or(&full).to_string();
                (key, m.last_modified.timestamp_millis())
            })
            .collect())
    }

    /// Deletes an object; a missing one is fine.
    pub async fn delete(&self, key: &str) -> Result<(), TieringError> {
        match self.inner.delete(&self.path(key)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(TieringError::store("delete", key, e)),
        }
    }

    /// Writes `bytes` only if the object is still at `expected` (`None`:
    /// only if it does not exist). Another writer's change gives
    /// [`TieringError::Fenced`]. Returns the new version.
    pub async fn put_conditional(
        &self,
        key: &str,
        bytes: Bytes,
        expected: Option<&ObjectVersion>,
    ) -> Result<ObjectVersion, TieringError> {
        if let Some(file) = self.local_file(key) {
            return local_put_conditional(key.to_string(), file, bytes, expected.cloned()).await;
        }
        let mode = match expected {
            None => PutMode::Create,
            Some(v) => PutMode::Update(UpdateVersion {
                e_tag: v.e_tag.clone(),
                version: v.version.clone(),
            }),
        };
        let opts = PutOptions {
            mode,
            ..PutOptions::default()
        };
        match self
            .inner
            .put_opts(&self.path(key), PutPayload::from(bytes), opts)
            .await
        {
            Ok(r) => Ok(ObjectVersion {
                e_tag: r.e_tag,
                version: r.version,
            }),
            Err(e @ object_store::Error::Precondition { .. })
            | Err(e @ object_store::Error::AlreadyExists { .. }) => Err(TieringError::Fenced {
                key: key.to_string(),
                detail: e.to_string(),
            }),
            Err(e) => Err(TieringError::store("conditional put", key, e)),
        }
    }
}

/// Version token of a local object: its length and CRC32C.
fn local_version(bytes: &[u8]) -> ObjectVersion {
    ObjectVersion {
        e_tag: Some(format!("{:x}-{:08x}", bytes.len(), crc32c::crc32c(bytes))),
        version: None,
    }
}

async fn local_get(file: PathBuf) -> Result<Option<(Bytes, ObjectVersion)>, TieringError> {
    tokio::task::spawn_blocking(move || match std::fs::read(&file) {
        Ok(b) => {
            let v = local_version(&b);
            Ok(Some((Bytes::from(b), v)))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(TieringError::io(&file, e)),
    })
    .await
    .map_err(|e| TieringError::Cache(format!("blocking task failed: {e}")))?
}

/// Compare-and-swap on a local file: under an exclusive `flock` of a
/// sibling `.lock` file, compare the current content's version with the
/// expected one, then write a temp file, fsync and rename.
async fn local_put_conditional(
    key: String,
    file: PathBuf,
    bytes: Bytes,
    expected: Option<ObjectVersion>,
) -> Result<ObjectVersion, TieringError> {
    tokio::task::spawn_blocking(move || {
        let io = |p: &std::path::Path, e| TieringError::io(p, e);
        let dir = file
            .parent()
            .map(std::path::Path::to_path_buf)
            .unwrap_or_default();
        std::fs::create_dir_all(&dir).map_err(|e| io(&dir, e))?;
        let lock_path = file.with_extension("json.lock");
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&lock_path)
            .map_err(|e| io(&lock_path, e))?;
        lock.lock().map_err(|e| io(&lock_path, e))?;
        let current = match std::fs::read(&file) {
            Ok(b) => Some(local_version(&b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(io(&file, e)),
        };
        if current != expected {
            return Err(TieringError::Fenced {
                key,
                detail: format!("expected version {expected:?}, found {current:?}"),
            });
        }
        let tmp = file.with_extension("json.tmp");
        let mut f = File::create(&tmp).map_err(|e| io(&tmp, e))?;
        f.write_all(&bytes).map_err(|e| io(&tmp, e))?;
        f.sync_all().map_err(|e| io(&tmp, e))?;
        std::fs::rename(&tmp, &file).map_err(|e| io(&file, e))?;
        File::open(&dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| io(&dir, e))?;
        let _ = lock.unlock();
        Ok(local_version(&bytes))
    })
    .await
    .map_err(|e| TieringError::Cache(format!("blocking task failed: {e}")))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn local_conditional_writes_fence_a_stale_writer() {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("file://{}", dir.path().display());
        let store = RemoteStore::open(&url).expect("open");
        let key = "topics/t/1/0/manifest.json";
        let v1 = store
            .put_conditional(key, Bytes::from_static(b"one"), None)
            .await
            .expect("create");
        assert!(matches!(
            store
                .put_conditional(key, Bytes::from_static(b"x"), None)
                .await,
            Err(TieringError::Fenced { .. })
        ));
        let v2 = store
            .put_conditional(key, Bytes::from_static(b"two"), Some(&v1))
            .await
            .expect("update");
        let err = store
            .put_conditional(key, Bytes::from_static(b"stale"), Some(&v1))
            .await
            .expect_err("stale version");
        assert!(err.to_string().contains("fenced"), "{err}");
        let (bytes, v) = store.get(key).await.expect("get").expect("exists");
        assert_eq!(&bytes[..], b"two");
        assert_eq!(v, v2);
        assert!(store.get("nope").await.expect("get").is_none());
    }

    #[test]
    fn urls_are_checked() {
        assert!(RemoteStore::open("ftp://x").is_err());
        assert!(RemoteStore::open("file://relative").is_err());
        assert!(RemoteStore::open("s3:///prefix").is_err());
        let dir = tempfile::tempdir().expect("tempdir");
        let missing = dir.path().join("missing");
        let err = RemoteStore::open(&format!("file://{}", missing.display()))
            .expect_err("missing directory");
        assert!(err.to_string().contains("does not exist"), "{err}");
        assert!(!missing.exists(), "not created");
    }
}
