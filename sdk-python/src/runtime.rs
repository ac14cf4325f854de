//! The extension's one Tokio runtime, blocking waits that release the GIL
//! and stay interruptible, and hand-over of results to asyncio futures.

use std::future::Future;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::IntoPyObjectExt;
use tidelog::{Client, ClientConfig};
use tokio::runtime::Runtime;
use tokio::task::AbortHandle;

use crate::convert::types_module;
use crate::errors::{py_err, timeout_err};

/// Longest time a blocking call waits without checking for signals.
const SLICE: Duration = Duration::from_millis(50);

static RUNTIME: OnceLock<Runtime> = OnceLock::new();

/// The one Tokio runtime of the extension, built on first use.
pub(crate) fn runtime() -> PyResult<&'static Runtime> {
    if let Some(rt) = RUNTIME.get() {
        return Ok(rt);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("tidelog-io")
        .enable_all()
        .build()
        .map_err(|e| PyRuntimeError::new_err(format!("cannot start the tidelog runtime: {e}")))?;
    // Another thread may have won the race; either runtime is fine.
    let _ = RUNTIME.set(rt);
    RUNTIME
        .get()
        .ok_or_else(|| PyRuntimeError::new_err("tidelog runtime unavailable"))
}

/// Drives `fut` on the runtime with the GIL released, in slices of at most
/// [`SLICE`], checking for signals (Ctrl-C) between slices. `Ok(None)` when
/// `timeout` passed first; the future is polled at least once. Dropping
/// `fut` on timeout or signal must be harmless: callers pass cancel-safe
/// futures (join handles, receivers, lock acquisitions).
pub(crate) fn wait_for<F>(
    py: Python<'_>,
    fut: F,
    timeout: Option<Duration>,
) -> PyResult<Option<F::Output>>
where
    F: Future + Send,
    F::Output: Send,
{
    let rt = runtime()?;
    let deadline = timeout.map(|t| Instant::now() + t);
    let mut fut = std::pin::pin!(fut);
    loop {
        let slice = match deadline {
            Some(d) => d.saturating_duration_since(Instant::now()).min(SLICE),
            None => SLICE,
        };
        let out = py.detach(|| {
            rt.block_on(async {
                tokio::select! {
                    biased;
                    r = &mut fut => Some(r),
                    _ = tokio::time::sleep(slice) => None,
                }
            })
        });
        if let Some(r) = out {
            return Ok(Some(r));
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return Ok(None);
        }
        py.check_signals()?;
    }
}

/// Waits for `fut` without a timeout, mapping client errors.
pub(crate) fn run<F, T>(py: Python<'_>, fut: F) -> PyResult<T>
where
    F: Future<Output = tidelog::Result<T>> + Send,
    T: Send,
{
    match wait_for(py, fut, None)? {
        Some(r) => r.map_err(py_err),
        None => Err(timeout_err("the call")),
    }
}

pub(crate) fn seconds(timeout: Option<f64>) -> PyResult<Option<Duration>> {
    match timeout {
        None => Ok(None),
        Some(t) if t.is_nan() => Err(PyValueError::new_err("timeout is NaN")),
        Some(t) if t < 0.0 => Ok(None),
        Some(t) => Duration::try_from_secs_f64(t)
            .map(Some)
            .map_err(|e| PyValueError::new_err(format!("bad timeout: {e}"))),
    }
}

pub(crate) fn millis(ms: f64, what: &str) -> PyResult<Duration> {
    if !ms.is_finite() || ms < 0.0 {
        return Err(PyValueError::new_err(format!(
            "{what} must be a non-negative number of milliseconds"
        )));
    }
    Duration::try_from_secs_f64(ms / 1000.0)
        .map_err(|e| PyValueError::new_err(format!("bad {what}: {e}")))
}

/// Where to connect, as Python passes it: `"host:port"`, several of them
/// separated by commas, or a list of them. The client connects to the
/// first that answers.
#[derive(FromPyObject)]
pub(crate) enum Bootstrap {
    One(String),
    List(Vec<String>),
}

impl Default for Bootstrap {
    fn default() -> Self {
        Bootstrap::One("127.0.0.1:7070".to_string())
    }
}

pub(crate) fn connect(
    py: Python<'_>,
    bootstrap: &Bootstrap,
    request_timeout_ms: f64,
) -> PyResult<Client> {
    let mut config = match bootstrap {
        Bootstrap::One(list) => ClientConfig::new(list.as_str()),
        Bootstrap::List(brokers) => ClientConfig::with_brokers(brokers),
    };
    if config.bootstrap_addresses().is_empty() {
        return Err(PyValueError::new_err(
            "bootstrap needs at least one host:port",
        ));
    }
    config.request_timeout = millis(request_timeout_ms, "request_timeout_ms")?;
    run(py, Client::connect_with(config))
}

/// Hands an outcome to an asyncio future through its loop (thread-safe).
pub(crate) fn resolve<T>(event_loop: Py<PyAny>, fut: Py<PyAny>, outcome: tidelog::Result<T>)
where
    T: for<'py> IntoPyObject<'py> + Send,
{
    Python::attach(|py| resolve_now(py, &event_loop, &fut, outcome));
}

pub(crate) fn resolve_now<T>(
    py: Python<'_>,
    event_loop: &Py<PyAny>,
    fut: &Py<PyAny>,
    outcome: tidelog::Result<T>,
) where
    T: for<'py> IntoPyObject<'py>,
{
    let call = || -> PyResult<()> {
        let helper = types_module(py)?.getattr("_resolve_future")?;
        let (value, error): (Py<PyAny>, Py<PyAny>) = match outcome {
            Ok(v) => (v.into_py_any(py)?, py.None()),
            Err(e) => (py.None(), py_err(e).into_value(py).into_any()),
        };
        event_loop
            .bind(py)
            .call_method1("call_soon_threadsafe", (helper, fut, value, error))?;
        Ok(())
    };
    if let Err(e) = call() {
        // The loop is closed: nobody waits any more.
        e.print(py);
    }
}

/// Spawns `fut` on the runtime and returns an asyncio future of `loop`
/// resolved with its outcome.
pub(crate) fn spawn_async<F, T>(
    py: Python<'_>,
    event_loop: Py<PyAny>,
    fut: F,
) -> PyResult<(Py<PyAny>, AbortHandle)>
where
    F: Future<Output = tidelog::Result<T>> + Send + 'static,
    T: for<'py> IntoPyObject<'py> + Send + 'static,
{
    let afut = event_loop.bind(py).call_method0("create_future")?.unbind();
    let out = afut.clone_ref(py);
    let handle = runtime()?.spawn(async move {
        let r = fut.await;
        resolve(event_loop, afut, r);
    });
    Ok((out, handle.abort_handle()))
}
