//! `tidelog._native`: the Python binding of the Tidelog Rust client.
//!
//! All client logic lives in `sdk-rust`; this module adapts it to Python:
//! one shared multi-thread Tokio runtime, blocking calls that release the
//! GIL and wake every [`SLICE`] to let Ctrl-C through, and sync fast paths
//! (`enqueue` polled once in place, `try_next_record`) so a send or a
//! buffered record costs no async round trip.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex as StdMutex, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::FutureExt;
use pyo3::exceptions::{PyRuntimeError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBytes, PyDict, PyList, PyString, PyTuple};
use pyo3::IntoPyObjectExt;
use tidelog::{
    Acks, Admin, Client, ClientConfig, Compression, Consumer, ConsumerConfig, ConsumerRecord,
    DeliveryFuture, GroupConsumer, GroupConsumerConfig, NewTopic, OffsetReset, OffsetSpec,
    Producer, ProducerConfig, ProducerRecord, RebalanceEvent, RecordMetadata as RustMetadata,
    ResetSpec, SeekTo, TopicPartition,
};
use tokio::runtime::Runtime;
use tokio::sync::{oneshot, Mutex as TMutex, OwnedMutexGuard};
use tokio::task::{AbortHandle, JoinHandle};

/// Longest time a blocking call waits without checking for signals.
const SLICE: Duration = Duration::from_millis(50);

static RUNTIME: OnceLock<Runtime> = OnceLock::new();

/// The one Tokio runtime of the extension, built on first use.
fn runtime() -> PyResult<&'static Runtime> {
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

// ---------------------------------------------------------------- errors

static ERRORS: PyOnceLock<Py<PyModule>> = PyOnceLock::new();
static TYPES: PyOnceLock<Py<PyModule>> = PyOnceLock::new();

fn errors_module(py: Python<'_>) -> PyResult<&Bound<'_, PyModule>> {
    ERRORS
        .get_or_try_init(py, || Ok::<_, PyErr>(py.import("tidelog.errors")?.unbind()))
        .map(|m| m.bind(py))
}

fn types_module(py: Python<'_>) -> PyResult<&Bound<'_, PyModule>> {
    TYPES
        .get_or_try_init(py, || Ok::<_, PyErr>(py.import("tidelog._types")?.unbind()))
        .map(|m| m.bind(py))
}

/// The Python exception class name of each client error.
fn error_class(e: &tidelog::Error) -> &'static str {
    use tidelog::Error as E;
    match e {
        E::UnknownTopic(_) => "UnknownTopicError",
        E::UnknownPartition(_) => "UnknownPartitionError",
        E::TopicAlreadyExists(_) => "TopicAlreadyExistsError",
        E::InvalidTopicName(_) => "InvalidTopicNameError",
        E::InvalidConfig(_) => "InvalidConfigError",
        E::RecordTooLarge(_) => "RecordTooLargeError",
        E::CorruptBatch(_) => "CorruptBatchError",
        E::OffsetOutOfRange(_) => "OffsetOutOfRangeError",
        E::OutOfOrderSequence(_) => "OutOfOrderSequenceError",
        E::ProducerFenced(_) => "ProducerFencedError",
        E::UnknownGroup(_) => "UnknownGroupError",
        E::UnknownMember(_) => "UnknownMemberError",
        E::FencedMemberEpoch(_) => "FencedMemberEpochError",
        E::NotAssigned(_) => "NotAssignedError",
        E::GroupNotEmpty(_) => "GroupNotEmptyError",
        E::InvalidGroupId(_) => "InvalidGroupIdError",
        E::InvalidRequest(_) => "InvalidRequestError",
        E::NotLeader(_) => "NotLeaderError",
        E::Unavailable(_) => "UnavailableError",
        E::Timeout(_) => "RequestTimeoutError",
        E::Connect { .. } => "BrokerConnectionError",
        E::Decode(_) => "DecodeError",
        E::Closed => "ClosedError",
        E::Broker { .. } => "BrokerError",
        _ => "TidelogError",
    }
}

/// Builds the Python exception for a client error.
fn py_err(e: tidelog::Error) -> PyErr {
    Python::attach(|py| named_err(py, error_class(&e), e.to_string()))
}

fn named_err(py: Python<'_>, class: &str, message: String) -> PyErr {
    match errors_module(py).and_then(|m| m.getattr(class)) {
        Ok(cls) => match cls.call1((message.clone(),)) {
            Ok(exc) => PyErr::from_value(exc),
            Err(e) => e,
        },
        Err(_) => PyRuntimeError::new_err(message),
    }
}

fn timeout_err(what: &str) -> PyErr {
    Python::attach(|py| {
        named_err(
            py,
            "RequestTimeoutError",
            format!("{what} did not finish in time"),
        )
    })
}

// ---------------------------------------------------------------- waiting

/// Drives `fut` on the runtime with the GIL released, in slices of at most
/// [`SLICE`], checking for signals (Ctrl-C) between slices. `Ok(None)` when
/// `timeout` passed first; the future is polled at least once. Dropping
/// `fut` on timeout or signal must be harmless: callers pass cancel-safe
/// futures (join handles, receivers, lock acquisitions).
fn wait_for<F>(py: Python<'_>, fut: F, timeout: Option<Duration>) -> PyResult<Option<F::Output>>
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
fn run<F, T>(py: Python<'_>, fut: F) -> PyResult<T>
where
    F: Future<Output = tidelog::Result<T>> + Send,
    T: Send,
{
    match wait_for(py, fut, None)? {
        Some(r) => r.map_err(py_err),
        None => Err(timeout_err("the call")),
    }
}

fn seconds(timeout: Option<f64>) -> PyResult<Option<Duration>> {
    match timeout {
        None => Ok(None),
        Some(t) if t.is_nan() => Err(PyValueError::new_err("timeout is NaN")),
        Some(t) if t < 0.0 => Ok(None),
        Some(t) => Duration::try_from_secs_f64(t)
            .map(Some)
            .map_err(|e| PyValueError::new_err(format!("bad timeout: {e}"))),
    }
}

fn millis(ms: f64, what: &str) -> PyResult<Duration> {
    if !ms.is_finite() || ms < 0.0 {
        return Err(PyValueError::new_err(format!(
            "{what} must be a non-negative number of milliseconds"
        )));
    }
    Duration::try_from_secs_f64(ms / 1000.0)
        .map_err(|e| PyValueError::new_err(format!("bad {what}: {e}")))
}

fn connect(py: Python<'_>, bootstrap: &str, request_timeout_ms: f64) -> PyResult<Client> {
    let mut config = ClientConfig::new(bootstrap);
    config.request_timeout = millis(request_timeout_ms, "request_timeout_ms")?;
    run(py, Client::connect_with(config))
}

// ---------------------------------------------------------------- conversions

/// Bytes of a key, value or header value: `bytes`, `bytearray`,
/// `memoryview` or anything with the buffer protocol, or `str` (UTF-8).
fn to_bytes(obj: &Bound<'_, PyAny>) -> PyResult<Bytes> {
    if let Ok(b) = obj.cast::<PyBytes>() {
        return Ok(Bytes::copy_from_slice(b.as_bytes()));
    }
    if let Ok(s) = obj.cast::<PyString>() {
        return Ok(Bytes::copy_from_slice(s.to_cow()?.as_bytes()));
    }
    match obj.extract::<Vec<u8>>() {
        Ok(v) if !obj.is_instance_of::<PyList>() && !obj.is_instance_of::<PyTuple>() => {
            Ok(Bytes::from(v))
        }
        _ => {
            // Buffer protocol (bytearray, memoryview, array, numpy...).
            let py = obj.py();
            let builtins = py.import("builtins")?;
            let as_bytes = builtins.getattr("bytes")?.call1((obj,)).map_err(|_| {
                PyTypeError::new_err(format!(
                    "expected bytes, bytearray, memoryview or str, got {}",
                    obj.get_type()
                        .name()
                        .map(|n| n.to_string())
                        .unwrap_or_default()
                ))
            })?;
            let b = as_bytes.cast::<PyBytes>()?;
            Ok(Bytes::copy_from_slice(b.as_bytes()))
        }
    }
}

fn opt_bytes(obj: Option<&Bound<'_, PyAny>>) -> PyResult<Option<Bytes>> {
    match obj {
        None => Ok(None),
        Some(o) if o.is_none() => Ok(None),
        Some(o) => to_bytes(o).map(Some),
    }
}

/// Headers: a dict or a sequence of `(name, value)` pairs.
fn to_headers(obj: Option<&Bound<'_, PyAny>>) -> PyResult<Vec<(String, Bytes)>> {
    let Some(obj) = obj else {
        return Ok(Vec::new());
    };
    if obj.is_none() {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    if let Ok(d) = obj.cast::<PyDict>() {
        for (k, v) in d.iter() {
            out.push((k.extract::<String>()?, to_bytes(&v)?));
        }
        return Ok(out);
    }
    for item in obj.try_iter()? {
        let item = item?;
        let (k, v): (String, Bound<'_, PyAny>) = item.extract().map_err(|_| {
            PyTypeError::new_err("headers must be a dict or a sequence of (str, bytes) pairs")
        })?;
        out.push((k, to_bytes(&v)?));
    }
    Ok(out)
}

/// Milliseconds since the epoch from an int (ms) or a `datetime` (naive
/// datetimes are taken as UTC).
fn to_millis(obj: &Bound<'_, PyAny>) -> PyResult<i64> {
    if let Ok(ms) = obj.extract::<i64>() {
        return Ok(ms);
    }
    types_module(obj.py())?
        .getattr("_datetime_to_ms")?
        .call1((obj,))?
        .extract()
}

fn ms_to_datetime<'py>(py: Python<'py>, ms: i64) -> PyResult<Bound<'py, PyAny>> {
    types_module(py)?.getattr("_ms_to_datetime")?.call1((ms,))
}

fn topic_partition<'py>(py: Python<'py>, tp: &TopicPartition) -> PyResult<Bound<'py, PyAny>> {
    types_module(py)?
        .getattr("TopicPartition")?
        .call1((tp.topic.as_str(), tp.partition))
}

fn extract_tp(obj: &Bound<'_, PyAny>) -> PyResult<TopicPartition> {
    let (topic, partition): (String, u32) = obj.extract().map_err(|_| {
        PyTypeError::new_err("expected a TopicPartition or a (topic, partition) tuple")
    })?;
    Ok(TopicPartition::new(topic, partition))
}

fn extract_tps(obj: &Bound<'_, PyAny>) -> PyResult<Vec<TopicPartition>> {
    obj.try_iter()?.map(|i| extract_tp(&i?)).collect()
}

fn compression(name: &str) -> PyResult<Compression> {
    match name.to_ascii_lowercase().as_str() {
        "none" | "" => Ok(Compression::None),
        "lz4" => Ok(Compression::Lz4),
        "zstd" => Ok(Compression::Zstd),
        other => Err(PyValueError::new_err(format!(
            "compression must be 'none', 'lz4' or 'zstd', not {other:?}"
        ))),
    }
}

fn acks(obj: &Bound<'_, PyAny>) -> PyResult<Acks> {
    if let Ok(s) = obj.extract::<String>() {
        return match s.to_ascii_lowercase().as_str() {
            "all" | "-1" => Ok(Acks::All),
            "leader" | "1" => Ok(Acks::Leader),
            _ => Err(PyValueError::new_err("acks must be 'all' or 'leader'")),
        };
    }
    match obj.extract::<i64>() {
        Ok(-1) => Ok(Acks::All),
        Ok(1) => Ok(Acks::Leader),
        _ => Err(PyValueError::new_err(
            "acks must be 'all' (or -1) or 'leader' (or 1)",
        )),
    }
}

fn offset_reset(name: &str) -> PyResult<OffsetReset> {
    match name.to_ascii_lowercase().as_str() {
        "earliest" | "smallest" | "beginning" => Ok(OffsetReset::Earliest),
        "latest" | "largest" | "end" => Ok(OffsetReset::Latest),
        "none" | "error" => Ok(OffsetReset::None),
        other => Err(PyValueError::new_err(format!(
            "auto_offset_reset must be 'earliest', 'latest' or 'none', not {other:?}"
        ))),
    }
}

// ---------------------------------------------------------------- results

/// Where a record was written.
#[pyclass(module = "tidelog._native", frozen, get_all)]
struct RecordMetadata {
    topic: String,
    partition: u32,
    offset: i64,
    timestamp_ms: i64,
}

#[pymethods]
impl RecordMetadata {
    /// The stored timestamp as a timezone-aware UTC datetime.
    #[getter]
    fn timestamp<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        ms_to_datetime(py, self.timestamp_ms)
    }

    /// `TopicPartition(topic, partition)`.
    #[getter]
    fn topic_partition<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        topic_partition(py, &TopicPartition::new(self.topic.clone(), self.partition))
    }

    fn __repr__(&self) -> String {
        format!(
            "RecordMetadata(topic={:?}, partition={}, offset={}, timestamp_ms={})",
            self.topic, self.partition, self.offset, self.timestamp_ms
        )
    }
}

impl From<RustMetadata> for RecordMetadata {
    fn from(m: RustMetadata) -> Self {
        RecordMetadata {
            topic: m.topic,
            partition: m.partition,
            offset: m.offset,
            timestamp_ms: m.timestamp,
        }
    }
}

/// A record read from a partition. Fields convert to Python objects when
/// read.
#[pyclass(module = "tidelog._native", frozen)]
struct Message {
    record: ConsumerRecord,
}

#[pymethods]
impl Message {
    #[getter]
    fn topic(&self) -> &str {
        &self.record.topic
    }
    #[getter]
    fn partition(&self) -> u32 {
        self.record.partition
    }
    #[getter]
    fn offset(&self) -> i64 {
        self.record.offset
    }
    /// Milliseconds since the Unix epoch.
    #[getter]
    fn timestamp_ms(&self) -> i64 {
        self.record.timestamp
    }
    /// Timezone-aware UTC datetime.
    #[getter]
    fn timestamp<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        ms_to_datetime(py, self.record.timestamp)
    }
    #[getter]
    fn key<'py>(&self, py: Python<'py>) -> Option<Bound<'py, PyBytes>> {
        self.record.key.as_deref().map(|k| PyBytes::new(py, k))
    }
    #[getter]
    fn value<'py>(&self, py: Python<'py>) -> Option<Bound<'py, PyBytes>> {
        self.record.value.as_deref().map(|v| PyBytes::new(py, v))
    }
    /// Headers in order, as `(name, value)` tuples.
    #[getter]
    fn headers<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let items: Vec<(String, Bound<'py, PyBytes>)> = self
            .record
            .headers
            .iter()
            .map(|(k, v)| (k.clone(), PyBytes::new(py, v)))
            .collect();
        PyList::new(py, items)
    }
    #[getter]
    fn topic_partition<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        topic_partition(
            py,
            &TopicPartition::new(&*self.record.topic, self.record.partition),
        )
    }
    fn __repr__(&self) -> String {
        format!(
            "Message(topic={:?}, partition={}, offset={}, timestamp_ms={}, key={:?}, value_len={})",
            &*self.record.topic,
            self.record.partition,
            self.record.offset,
            self.record.timestamp,
            self.record
                .key
                .as_deref()
                .map(|k| String::from_utf8_lossy(k).into_owned()),
            self.record.value.as_ref().map_or(0, Bytes::len)
        )
    }
}

// ---------------------------------------------------------------- producer

enum Delivery {
    Pending(DeliveryFuture),
    Done(tidelog::Result<RustMetadata>),
}

/// The outcome of one `send`: `result(timeout)` waits for the broker's
/// acknowledgement.
#[pyclass(module = "tidelog._native", frozen, name = "DeliveryFuture")]
struct PyDeliveryFuture {
    state: TMutex<Delivery>,
}

impl PyDeliveryFuture {
    fn wait(
        &self,
        py: Python<'_>,
        timeout: Option<f64>,
    ) -> PyResult<tidelog::Result<RustMetadata>> {
        let timeout = seconds(timeout)?;
        let mut guard = match self.state.try_lock() {
            Ok(g) => g,
            Err(_) => match wait_for(py, self.state.lock(), timeout)? {
                Some(g) => g,
                None => return Err(timeout_err("the delivery")),
            },
        };
        if let Delivery::Pending(f) = &mut *guard {
            let outcome = match f.now_or_never() {
                Some(r) => r,
                None => match wait_for(py, &mut *f, timeout)? {
                    Some(r) => r,
                    None => return Err(timeout_err("the delivery")),
                },
            };
            *guard = Delivery::Done(outcome);
        }
        match &*guard {
            Delivery::Done(r) => Ok(r.clone()),
            Delivery::Pending(_) => Err(timeout_err("the delivery")),
        }
    }
}

#[pymethods]
impl PyDeliveryFuture {
    /// Waits for the acknowledgement and returns the `RecordMetadata`;
    /// raises the delivery error. `timeout` in seconds (None: no limit).
    #[pyo3(signature = (timeout=None))]
    fn result(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<RecordMetadata> {
        self.wait(py, timeout)?.map(Into::into).map_err(py_err)
    }

    /// The delivery error, or None when it succeeded.
    #[pyo3(signature = (timeout=None))]
    fn exception(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<Option<PyErr>> {
        Ok(self.wait(py, timeout)?.err().map(py_err))
    }

    /// Whether the outcome is known.
    fn done(&self) -> bool {
        match self.state.try_lock() {
            Ok(mut g) => {
                if let Delivery::Pending(f) = &mut *g {
                    match f.now_or_never() {
                        Some(r) => *g = Delivery::Done(r),
                        None => return false,
                    }
                }
                true
            }
            Err(_) => false,
        }
    }

    /// Resolves the asyncio future `fut` of `loop` with the outcome, from
    /// the runtime (for `tidelog.aio`).
    fn _bridge(&self, py: Python<'_>, event_loop: Py<PyAny>, fut: Py<PyAny>) -> PyResult<()> {
        let state = match self.state.try_lock() {
            Ok(mut g) => {
                match std::mem::replace(&mut *g, Delivery::Done(Err(tidelog::Error::Closed))) {
                    Delivery::Pending(f) => Ok(f),
                    Delivery::Done(r) => {
                        *g = Delivery::Done(r.clone());
                        Err(r)
                    }
                }
            }
            Err(_) => return Err(PyRuntimeError::new_err("delivery future busy")),
        };
        match state {
            Ok(f) => {
                let rt = runtime()?;
                rt.spawn(async move {
                    let r = f.await;
                    resolve(event_loop, fut, r.map(RecordMetadata::from));
                });
                Ok(())
            }
            Err(r) => {
                resolve_now(py, &event_loop, &fut, r.map(RecordMetadata::from));
                Ok(())
            }
        }
    }
}

/// Hands an outcome to an asyncio future through its loop (thread-safe).
fn resolve<T>(event_loop: Py<PyAny>, fut: Py<PyAny>, outcome: tidelog::Result<T>)
where
    T: for<'py> IntoPyObject<'py> + Send,
{
    Python::attach(|py| resolve_now(py, &event_loop, &fut, outcome));
}

fn resolve_now<T>(
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
fn spawn_async<F, T>(
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

type Callback = (DeliveryFuture, Py<PyAny>);
type EnqueueResult = tidelog::Result<DeliveryFuture>;
type Enqueue = std::pin::Pin<Box<dyn Future<Output = EnqueueResult> + Send>>;

/// Sends records to topics; see the Python docs of `tidelog.Producer`.
#[pyclass(module = "tidelog._native", frozen, subclass)]
struct NativeProducer {
    producer: StdMutex<Option<Producer>>,
    callbacks: StdMutex<VecDeque<Callback>>,
}

impl NativeProducer {
    fn get(&self) -> PyResult<Producer> {
        self.producer
            .lock()
            .map_err(|_| PyRuntimeError::new_err("producer lock poisoned"))?
            .clone()
            .ok_or_else(|| py_err(tidelog::Error::Closed))
    }

    #[allow(clippy::too_many_arguments)]
    fn record(
        topic: String,
        value: Option<&Bound<'_, PyAny>>,
        key: Option<&Bound<'_, PyAny>>,
        headers: Option<&Bound<'_, PyAny>>,
        partition: Option<u32>,
        timestamp: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<ProducerRecord> {
        Ok(ProducerRecord {
            topic,
            partition,
            key: opt_bytes(key)?,
            value: opt_bytes(value)?,
            headers: to_headers(headers)?,
            timestamp: match timestamp {
                Some(t) if !t.is_none() => Some(to_millis(t)?),
                _ => None,
            },
        })
    }

    /// Queues a record, waiting (GIL released) only when the topic's
    /// metadata is unknown or the buffer is full.
    fn enqueue(&self, py: Python<'_>, record: ProducerRecord) -> PyResult<DeliveryFuture> {
        match self.start_enqueue(record)? {
            Ok(r) => r.map_err(py_err),
            Err(pending) => run(py, pending),
        }
    }

    /// Polls `Producer::enqueue` once, synchronously: when the topic's
    /// partition count is cached and the buffer has room (the common case)
    /// the record is queued right here, with no async round trip.
    /// Otherwise hands back the started future, to be awaited.
    fn start_enqueue(&self, record: ProducerRecord) -> PyResult<Result<EnqueueResult, Enqueue>> {
        let producer = self.get()?;
        let mut fut: Enqueue = Box::pin(async move { producer.enqueue(record).await });
        let first = {
            let _guard = runtime()?.enter();
            (&mut fut).now_or_never()
        };
        Ok(first.ok_or(fut))
    }

    /// Runs the delivery callbacks of acknowledged records, in order.
    fn serve_callbacks(&self, py: Python<'_>, all: bool) -> PyResult<usize> {
        let mut served = 0;
        loop {
            let ready = {
                let mut q = self
                    .callbacks
                    .lock()
                    .map_err(|_| PyRuntimeError::new_err("producer lock poisoned"))?;
                let Some(front) = q.front_mut() else {
                    break;
                };
                match (&mut front.0).now_or_never() {
                    Some(r) => {
                        let cb = q.pop_front().map(|(_, cb)| cb);
                        cb.map(|cb| (cb, r))
                    }
                    None if all => {
                        // Everything was flushed: it resolves at once.
                        let mut item = q.pop_front();
                        let r = item
                            .as_mut()
                            .map(|(f, _)| f.now_or_never().unwrap_or(Err(tidelog::Error::Closed)));
                        item.zip(r).map(|((_, cb), r)| (cb, r))
                    }
                    None => None,
                }
            };
            let Some((cb, outcome)) = ready else {
                break;
            };
            served += 1;
            let args = match outcome {
                Ok(m) => (py.None(), Py::new(py, RecordMetadata::from(m))?.into_any()),
                Err(e) => (py_err(e).into_value(py).into_any(), py.None()),
            };
            cb.call1(py, args)?;
        }
        Ok(served)
    }
}

#[pymethods]
impl NativeProducer {
    #[new]
    #[pyo3(signature = (
        bootstrap = "127.0.0.1:7070".to_string(),
        *,
        linger_ms = 5.0,
        batch_bytes = 256 * 1024,
        compression = "none".to_string(),
        acks = None,
        buffer_bytes = 64 * 1024 * 1024,
        delivery_timeout_ms = 120_000.0,
        request_timeout_ms = 30_000.0,
    ))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        bootstrap: String,
        linger_ms: f64,
        batch_bytes: usize,
        compression: String,
        acks: Option<&Bound<'_, PyAny>>,
        buffer_bytes: usize,
        delivery_timeout_ms: f64,
        request_timeout_ms: f64,
    ) -> PyResult<Self> {
        let config = ProducerConfig {
            linger: millis(linger_ms, "linger_ms")?,
            batch_bytes: batch_bytes.max(1),
            compression: self::compression(&compression)?,
            acks: match acks {
                Some(a) if !a.is_none() => self::acks(a)?,
                _ => Acks::All,
            },
            buffer_bytes: buffer_bytes.max(1),
            delivery_timeout: millis(delivery_timeout_ms, "delivery_timeout_ms")?,
            ..ProducerConfig::default()
        };
        let client = connect(py, &bootstrap, request_timeout_ms)?;
        let producer = {
            let _guard = runtime()?.enter();
            client.producer_with(config)
        };
        Ok(NativeProducer {
            producer: StdMutex::new(Some(producer)),
            callbacks: StdMutex::new(VecDeque::new()),
        })
    }

    /// Queues a record. Returns a `DeliveryFuture`, or None when
    /// `on_delivery(err, metadata)` is given (called from `send`, `poll`
    /// and `flush` on this thread once the broker answered).
    #[pyo3(signature = (topic, value=None, key=None, headers=None, partition=None, timestamp=None, on_delivery=None))]
    #[allow(clippy::too_many_arguments)]
    fn send(
        &self,
        py: Python<'_>,
        topic: String,
        value: Option<&Bound<'_, PyAny>>,
        key: Option<&Bound<'_, PyAny>>,
        headers: Option<&Bound<'_, PyAny>>,
        partition: Option<u32>,
        timestamp: Option<&Bound<'_, PyAny>>,
        on_delivery: Option<Py<PyAny>>,
    ) -> PyResult<Option<PyDeliveryFuture>> {
        let record = Self::record(topic, value, key, headers, partition, timestamp)?;
        let fut = self.enqueue(py, record)?;
        match on_delivery {
            Some(cb) if !cb.is_none(py) => {
                self.callbacks
                    .lock()
                    .map_err(|_| PyRuntimeError::new_err("producer lock poisoned"))?
                    .push_back((fut, cb));
                self.serve_callbacks(py, false)?;
                Ok(None)
            }
            _ => Ok(Some(PyDeliveryFuture {
                state: TMutex::new(Delivery::Pending(fut)),
            })),
        }
    }

    /// Runs pending delivery callbacks; returns how many ran. Waits up to
    /// `timeout` seconds for at least one when any is pending.
    #[pyo3(signature = (timeout=0.0))]
    fn poll(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<usize> {
        let served = self.serve_callbacks(py, false)?;
        if served > 0 {
            return Ok(served);
        }
        let deadline = seconds(timeout)?.map(|t| Instant::now() + t);
        loop {
            let pending = self
                .callbacks
                .lock()
                .map_err(|_| PyRuntimeError::new_err("producer lock poisoned"))?
                .len();
            if pending == 0 || deadline.is_some_and(|d| Instant::now() >= d) {
                return Ok(0);
            }
            wait_for(py, tokio::time::sleep(Duration::from_millis(1)), None)?;
            let served = self.serve_callbacks(py, false)?;
            if served > 0 {
                return Ok(served);
            }
        }
    }

    /// Sends everything queued and waits until each record is acknowledged
    /// or failed; then runs the delivery callbacks. Raises
    /// `RequestTimeoutError` if `timeout` (seconds) passes first.
    #[pyo3(signature = (timeout=None))]
    fn flush(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<()> {
        let producer = self.get()?;
        let timeout = seconds(timeout)?;
        // A task, so giving up on the wait never leaves the flush half done.
        let task = runtime()?.spawn(async move { producer.flush().await });
        match wait_for(py, task, timeout)? {
            Some(Ok(r)) => r.map_err(py_err)?,
            Some(Err(e)) => return Err(PyRuntimeError::new_err(format!("flush failed: {e}"))),
            None => return Err(timeout_err("flush")),
        }
        self.serve_callbacks(py, true)?;
        Ok(())
    }

    /// Flushes (up to `timeout` seconds) and releases the producer.
    #[pyo3(signature = (timeout=None))]
    fn close(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<()> {
        let open = self
            .producer
            .lock()
            .map_err(|_| PyRuntimeError::new_err("producer lock poisoned"))?
            .is_some();
        if !open {
            return Ok(());
        }
        let flushed = self.flush(py, timeout);
        if let Ok(mut p) = self.producer.lock() {
            *p = None;
        }
        flushed
    }

    /// The idempotent producer id.
    #[getter]
    fn producer_id(&self) -> PyResult<i64> {
        Ok(self.get()?.producer_id())
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, py: Python<'_>, _args: &Bound<'_, PyTuple>) -> PyResult<bool> {
        self.close(py, None)?;
        Ok(false)
    }

    /// For `tidelog.aio`: queues the record; returns a `DeliveryFuture`
    /// when that needed no waiting, else an asyncio future of `loop`
    /// resolved with one once queued.
    #[pyo3(signature = (event_loop, topic, value=None, key=None, headers=None, partition=None, timestamp=None))]
    #[allow(clippy::too_many_arguments)]
    fn _send_async(
        &self,
        py: Python<'_>,
        event_loop: Py<PyAny>,
        topic: String,
        value: Option<&Bound<'_, PyAny>>,
        key: Option<&Bound<'_, PyAny>>,
        headers: Option<&Bound<'_, PyAny>>,
        partition: Option<u32>,
        timestamp: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        let record = Self::record(topic, value, key, headers, partition, timestamp)?;
        match self.start_enqueue(record)? {
            Ok(r) => {
                let f = r.map_err(py_err)?;
                Ok(Py::new(
                    py,
                    PyDeliveryFuture {
                        state: TMutex::new(Delivery::Pending(f)),
                    },
                )?
                .into_any())
            }
            Err(pending) => {
                let (fut, _) = spawn_async(py, event_loop, async move {
                    pending.await.map(|f| PyDeliveryFuture {
                        state: TMutex::new(Delivery::Pending(f)),
                    })
                })?;
                Ok(fut)
            }
        }
    }

    /// For `tidelog.aio`: flushes on the runtime.
    fn _flush_async(&self, py: Python<'_>, event_loop: Py<PyAny>) -> PyResult<Py<PyAny>> {
        let producer = self.get()?;
        let (fut, _) = spawn_async(py, event_loop, async move { producer.flush().await })?;
        Ok(fut)
    }
}

// ---------------------------------------------------------------- consumer

enum Kind {
    Manual(Box<Consumer>),
    Group(Box<GroupConsumer>),
    Closed,
}

type Next = Option<tidelog::Result<ConsumerRecord>>;

impl Kind {
    fn try_next(&mut self) -> Option<ConsumerRecord> {
        match self {
            Kind::Manual(c) => c.try_next_record(),
            Kind::Group(g) => g.try_next_record(),
            Kind::Closed => None,
        }
    }

    /// The next record, waiting; `None` once closed or when `stop` fired.
    /// A group member only stops where that is safe (never in the middle
    /// of applying a rebalance or a commit); a manual consumer's wait is
    /// cancel-safe anyway.
    async fn next(&mut self, stop: oneshot::Receiver<()>) -> Next {
        let stop = async move {
            let _ = stop.await;
        };
        match self {
            Kind::Manual(c) => {
                tokio::select! {
                    r = c.next_record() => match r {
                        None => Some(Err(tidelog::Error::InvalidRequest(
                            "nothing is assigned to this consumer: call subscribe() or assign() first"
                                .into(),
                        ))),
                        some => some,
                    },
                    _ = stop => None,
                }
            }
            Kind::Group(g) => g.next_record_until(stop).await,
            Kind::Closed => None,
        }
    }
}

/// State of the caller's side: records handed back and the fetch that is
/// under way (kept across timeouts so nothing is lost or reordered).
#[derive(Default)]
struct Local {
    pending: Option<Fetch>,
}

/// A fetch task and the switch that stops it early.
struct Fetch {
    handle: JoinHandle<Next>,
    stop: Option<oneshot::Sender<()>>,
}

impl Local {
    /// The next record: the pending fetch's, or a new fetch's.
    /// Cancel-safe: dropped while waiting, the fetch stays pending.
    async fn next(&mut self, shared: &Arc<TMutex<Kind>>) -> Next {
        let fetch = self.pending.get_or_insert_with(|| {
            let shared = Arc::clone(shared);
            let (tx, rx) = oneshot::channel();
            Fetch {
                handle: tokio::spawn(async move { shared.lock_owned().await.next(rx).await }),
                stop: Some(tx),
            }
        });
        let joined = (&mut fetch.handle).await;
        self.pending = None;
        match joined {
            Ok(n) => n,
            Err(e) => Some(Err(tidelog::Error::Unavailable(format!(
                "fetch task failed: {e}"
            )))),
        }
    }
}

/// Reads records: a consumer-group member with `group_id`, otherwise a
/// consumer of explicitly assigned partitions.
#[pyclass(module = "tidelog._native", frozen, subclass)]
struct NativeConsumer {
    shared: Arc<TMutex<Kind>>,
    local: Arc<TMutex<Local>>,
    waiters: StdMutex<Vec<AbortHandle>>,
    group: bool,
    subscribed: AtomicBool,
    closed: AtomicBool,
}

impl NativeConsumer {
    fn message(py: Python<'_>, record: ConsumerRecord) -> PyResult<Py<Message>> {
        Py::new(py, Message { record })
    }

    /// The consumer itself, after cancelling the fetch under way (its
    /// record, if one arrived, is read again by the next poll).
    fn acquire(&self, py: Python<'_>) -> PyResult<OwnedMutexGuard<Kind>> {
        let local = Arc::clone(&self.local);
        let shared = Arc::clone(&self.shared);
        let got = wait_for(
            py,
            async move {
                let mut local = local.lock_owned().await;
                if let Some(mut fetch) = local.pending.take() {
                    // Stops an idle wait; a rebalance being applied
                    // completes first.
                    if let Some(stop) = fetch.stop.take() {
                        let _ = stop.send(());
                    }
                    if let Ok(Some(Ok(r))) = fetch.handle.await {
                        let mut kind = shared.lock_owned().await;
                        rewind(&mut kind, &r).await;
                        return kind;
                    }
                }
                drop(local);
                shared.lock_owned().await
            },
            None,
        )?;
        got.ok_or_else(|| timeout_err("acquiring the consumer"))
    }

    fn group_mut(kind: &mut Kind) -> PyResult<&mut GroupConsumer> {
        match kind {
            Kind::Group(g) => Ok(g),
            Kind::Manual(_) => Err(py_err(tidelog::Error::InvalidRequest(
                "this consumer has no group_id: group operations need Consumer(group_id=...)"
                    .into(),
            ))),
            Kind::Closed => Err(py_err(tidelog::Error::Closed)),
        }
    }

    fn fast_next(&self) -> Option<ConsumerRecord> {
        let local = self.local.try_lock().ok()?;
        if local.pending.is_some() {
            return None;
        }
        self.shared.try_lock().ok()?.try_next()
    }

    fn poll_inner(
        &self,
        py: Python<'_>,
        timeout: Option<Duration>,
    ) -> PyResult<Option<Py<Message>>> {
        if let Some(r) = self.fast_next() {
            return Ok(Some(Self::message(py, r)?));
        }
        if self.closed.load(Ordering::Acquire) {
            return Err(py_err(tidelog::Error::Closed));
        }
        if self.group && !self.subscribed.load(Ordering::Acquire) {
            return Err(py_err(tidelog::Error::InvalidRequest(
                "this group consumer is not subscribed: call subscribe(topics) first".into(),
            )));
        }
        let local = Arc::clone(&self.local);
        let shared = Arc::clone(&self.shared);
        let started = Instant::now();
        let Some(mut guard) = wait_for(py, local.lock_owned(), timeout)? else {
            return Ok(None);
        };
        let left = timeout.map(|t| t.saturating_sub(started.elapsed()));
        match wait_for(py, guard.next(&shared), left)? {
            None => Ok(None),
            Some(None) => Ok(None),
            Some(Some(Ok(r))) => Ok(Some(Self::message(py, r)?)),
            Some(Some(Err(e))) => Err(py_err(e)),
        }
    }

    fn seek_to(&self, py: Python<'_>, tp: TopicPartition, to: SeekTo) -> PyResult<i64> {
        let mut kind = self.acquire(py)?;
        run(py, async move {
            match &mut *kind {
                Kind::Manual(c) => c.seek(&tp, to).await,
                Kind::Group(g) => g.seek(&tp, to).await,
                Kind::Closed => Err(tidelog::Error::Closed),
            }
        })
    }

    fn assignment_of(kind: &Kind) -> Vec<TopicPartition> {
        match kind {
            Kind::Manual(c) => c.assignment(),
            Kind::Group(g) => g.assignment(),
            Kind::Closed => Vec::new(),
        }
    }

    fn targets(
        &self,
        py: Python<'_>,
        partitions: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Vec<TopicPartition>> {
        match partitions {
            Some(p) if !p.is_none() => extract_tps(p),
            _ => {
                let kind = self.acquire(py)?;
                Ok(Self::assignment_of(&kind))
            }
        }
    }

    fn seek_many<'py>(
        &self,
        py: Python<'py>,
        partitions: Option<&Bound<'py, PyAny>>,
        to: SeekTo,
    ) -> PyResult<Bound<'py, PyDict>> {
        let out = PyDict::new(py);
        for tp in self.targets(py, partitions)? {
            let offset = self.seek_to(py, tp.clone(), to)?;
            out.set_item(topic_partition(py, &tp)?, offset)?;
        }
        Ok(out)
    }
}

#[pymethods]
impl NativeConsumer {
    #[new]
    #[pyo3(signature = (
        bootstrap = "127.0.0.1:7070".to_string(),
        *,
        group_id = None,
        auto_commit = true,
        auto_commit_interval_ms = 5000.0,
        auto_offset_reset = "latest".to_string(),
        session_timeout_ms = 10_000.0,
        client_id = "tidelog-python".to_string(),
        max_bytes = 1024 * 1024,
        request_timeout_ms = 30_000.0,
    ))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        bootstrap: String,
        group_id: Option<String>,
        auto_commit: bool,
        auto_commit_interval_ms: f64,
        auto_offset_reset: String,
        session_timeout_ms: f64,
        client_id: String,
        max_bytes: u32,
        request_timeout_ms: f64,
    ) -> PyResult<Self> {
        let reset = offset_reset(&auto_offset_reset)?;
        let client = connect(py, &bootstrap, request_timeout_ms)?;
        let kind = match &group_id {
            Some(id) => {
                let mut config = GroupConsumerConfig::new(id.clone());
                config.auto_commit = auto_commit;
                config.auto_commit_interval =
                    millis(auto_commit_interval_ms, "auto_commit_interval_ms")?;
                config.auto_offset_reset = reset;
                config.session_timeout = millis(session_timeout_ms, "session_timeout_ms")?;
                config.client_id = client_id;
                config.max_bytes = max_bytes;
                Kind::Group(Box::new(client.group_consumer(config)))
            }
            None => Kind::Manual(Box::new(client.consumer_with(ConsumerConfig {
                auto_offset_reset: reset,
                max_bytes,
                ..ConsumerConfig::default()
            }))),
        };
        Ok(NativeConsumer {
            shared: Arc::new(TMutex::new(kind)),
            local: Arc::new(TMutex::new(Local::default())),
            waiters: StdMutex::new(Vec::new()),
            group: group_id.is_some(),
            subscribed: AtomicBool::new(false),
            closed: AtomicBool::new(false),
        })
    }

    /// The group id given at construction, or None.
    #[getter]
    fn is_group_member(&self) -> bool {
        self.group
    }

    /// With a group: joins it subscribed to `topics`. Without: assigns
    /// every partition of `topics`.
    fn subscribe(&self, py: Python<'_>, topics: Vec<String>) -> PyResult<()> {
        let mut kind = self.acquire(py)?;
        let subscribed = &self.subscribed;
        run(py, async move {
            let names: Vec<&str> = topics.iter().map(String::as_str).collect();
            match &mut *kind {
                Kind::Manual(c) => c.assign_topics(&names).await,
                Kind::Group(g) => {
                    g.subscribe(&names).await?;
                    subscribed.store(true, Ordering::Release);
                    Ok(())
                }
                Kind::Closed => Err(tidelog::Error::Closed),
            }
        })
    }

    /// Replaces the assignment with these `TopicPartition`s (no group).
    fn assign(&self, py: Python<'_>, partitions: &Bound<'_, PyAny>) -> PyResult<()> {
        let tps = extract_tps(partitions)?;
        let mut kind = self.acquire(py)?;
        match &mut *kind {
            Kind::Manual(c) => {
                c.assign(tps);
                Ok(())
            }
            Kind::Group(_) => Err(py_err(tidelog::Error::InvalidRequest(
                "a group member gets its partitions from the group: use subscribe()".into(),
            ))),
            Kind::Closed => Err(py_err(tidelog::Error::Closed)),
        }
    }

    /// The partitions this consumer reads now.
    fn assignment<'py>(&self, py: Python<'py>) -> PyResult<Vec<Bound<'py, PyAny>>> {
        let kind = self.acquire(py)?;
        Self::assignment_of(&kind)
            .iter()
            .map(|tp| topic_partition(py, tp))
            .collect()
    }

    /// The next record, or None after `timeout` seconds (None: wait as long
    /// as it takes). Ctrl-C interrupts the wait.
    #[pyo3(signature = (timeout=None))]
    fn poll(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<Option<Py<Message>>> {
        self.poll_inner(py, seconds(timeout)?)
    }

    /// Up to `max_records` records: those already fetched, or, when none
    /// is, the first to arrive within `timeout` seconds.
    #[pyo3(signature = (max_records=500, timeout=None))]
    fn consume(
        &self,
        py: Python<'_>,
        max_records: usize,
        timeout: Option<f64>,
    ) -> PyResult<Vec<Py<Message>>> {
        let mut out = Vec::new();
        while out.len() < max_records {
            match self.fast_next() {
                Some(r) => out.push(Self::message(py, r)?),
                None => break,
            }
        }
        if out.is_empty() && max_records > 0 {
            if let Some(m) = self.poll_inner(py, seconds(timeout)?)? {
                out.push(m);
                while out.len() < max_records {
                    match self.fast_next() {
                        Some(r) => out.push(Self::message(py, r)?),
                        None => break,
                    }
                }
            }
        }
        Ok(out)
    }

    fn __iter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __next__(&self, py: Python<'_>) -> PyResult<Option<Py<Message>>> {
        if self.closed.load(Ordering::Acquire) {
            return Ok(None); // StopIteration
        }
        self.poll_inner(py, None)
    }

    /// Commits offsets to the group: the current positions (no argument),
    /// `message.offset + 1` of its partition, or `offsets` (a dict
    /// `{TopicPartition: next_offset}`). `asynchronous=True` commits the
    /// positions in the background.
    #[pyo3(signature = (message=None, offsets=None, asynchronous=false))]
    fn commit(
        &self,
        py: Python<'_>,
        message: Option<PyRef<'_, Message>>,
        offsets: Option<&Bound<'_, PyAny>>,
        asynchronous: bool,
    ) -> PyResult<()> {
        let explicit: Option<Vec<(TopicPartition, i64)>> = match (message, offsets) {
            (Some(m), _) => Some(vec![(
                TopicPartition::new(&*m.record.topic, m.record.partition),
                m.record.offset + 1,
            )]),
            (None, Some(o)) if !o.is_none() => {
                let mut v = Vec::new();
                let items = match o.cast::<PyDict>() {
                    Ok(d) => d.items().into_any(),
                    Err(_) => o.clone(),
                };
                for item in items.try_iter()? {
                    let item = item?;
                    let (tp, off): (Bound<'_, PyAny>, i64) = item.extract().map_err(|_| {
                        PyTypeError::new_err(
                            "offsets must be a dict {TopicPartition: offset} or (tp, offset) pairs",
                        )
                    })?;
                    v.push((extract_tp(&tp)?, off));
                }
                Some(v)
            }
            _ => None,
        };
        let mut kind = self.acquire(py)?;
        let group = Self::group_mut(&mut kind)?;
        match explicit {
            Some(offsets) => run(py, group.commit_offsets(&offsets)),
            None if asynchronous => {
                let _guard = runtime()?.enter();
                group.commit_in_background();
                Ok(())
            }
            None => run(py, group.commit()),
        }
    }

    /// The group's committed offsets of these partitions (default: the
    /// assignment), as `{TopicPartition: offset or None}`.
    #[pyo3(signature = (partitions=None))]
    fn committed<'py>(
        &self,
        py: Python<'py>,
        partitions: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let tps = self.targets(py, partitions)?;
        let mut kind = self.acquire(py)?;
        let group = Self::group_mut(&mut kind)?;
        let got = run(py, group.committed(&tps))?;
        let out = PyDict::new(py);
        for (tp, o) in got {
            out.set_item(topic_partition(py, &tp)?, o)?;
        }
        Ok(out)
    }

    /// Next offset this consumer returns for a partition (None until
    /// positioned).
    fn position(&self, py: Python<'_>, partition: &Bound<'_, PyAny>) -> PyResult<Option<i64>> {
        let tp = extract_tp(partition)?;
        let kind = self.acquire(py)?;
        Ok(match &*kind {
            Kind::Manual(c) => c.position(&tp),
            Kind::Group(g) => g.position(&tp),
            Kind::Closed => None,
        })
    }

    /// Lag per owned partition (group members): `{TopicPartition: lag}`.
    fn lag<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let mut kind = self.acquire(py)?;
        let group = Self::group_mut(&mut kind)?;
        let lags = run(py, group.lag())?;
        let out = PyDict::new(py);
        for (tp, l) in lags {
            out.set_item(topic_partition(py, &tp)?, l)?;
        }
        Ok(out)
    }

    /// Rebalance events since the last call: `("assigned" | "revoked" |
    /// "lost", [TopicPartition, ...])` tuples.
    fn rebalance_events<'py>(&self, py: Python<'py>) -> PyResult<Vec<Bound<'py, PyTuple>>> {
        let mut kind = self.acquire(py)?;
        let events = match &mut *kind {
            Kind::Group(g) => g.take_events(),
            _ => Vec::new(),
        };
        events
            .into_iter()
            .map(|e| {
                let (name, tps) = match e {
                    RebalanceEvent::Assigned(t) => ("assigned", t),
                    RebalanceEvent::Revoked(t) => ("revoked", t),
                    RebalanceEvent::Lost(t) => ("lost", t),
                };
                let list = tps
                    .iter()
                    .map(|tp| topic_partition(py, tp))
                    .collect::<PyResult<Vec<_>>>()?;
                PyTuple::new(
                    py,
                    [
                        name.into_pyobject(py)?.into_any(),
                        PyList::new(py, list)?.into_any(),
                    ],
                )
            })
            .collect()
    }

    /// Moves a partition to `offset` (the next record read).
    fn seek(&self, py: Python<'_>, partition: &Bound<'_, PyAny>, offset: i64) -> PyResult<()> {
        let tp = extract_tp(partition)?;
        self.seek_to(py, tp, SeekTo::Offset(offset)).map(|_| ())
    }

    /// Moves partitions (default: all assigned) to the log start; returns
    /// `{TopicPartition: offset}`.
    #[pyo3(signature = (partitions=None))]
    fn seek_to_beginning<'py>(
        &self,
        py: Python<'py>,
        partitions: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyDict>> {
        self.seek_many(py, partitions, SeekTo::Beginning)
    }

    /// Moves partitions (default: all assigned) to the log end.
    #[pyo3(signature = (partitions=None))]
    fn seek_to_end<'py>(
        &self,
        py: Python<'py>,
        partitions: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyDict>> {
        self.seek_many(py, partitions, SeekTo::End)
    }

    /// Moves partitions (default: all assigned) to the first record at or
    /// after `when` (a datetime, or ms since the epoch).
    #[pyo3(signature = (when, partitions=None))]
    fn seek_to_timestamp<'py>(
        &self,
        py: Python<'py>,
        when: &Bound<'py, PyAny>,
        partitions: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let ms = to_millis(when)?;
        self.seek_many(py, partitions, SeekTo::Timestamp(ms))
    }

    /// Commits (group with auto-commit), leaves the group and stops.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        self.closed.store(true, Ordering::Release);
        if let Ok(mut w) = self.waiters.lock() {
            for h in w.drain(..) {
                h.abort();
            }
        }
        let mut kind = self.acquire(py)?;
        let old = std::mem::replace(&mut *kind, Kind::Closed);
        drop(kind);
        match old {
            Kind::Group(g) => run(py, g.close()),
            _ => Ok(()),
        }
    }

    /// Whether `close` was called.
    #[getter]
    fn closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, py: Python<'_>, _args: &Bound<'_, PyTuple>) -> PyResult<bool> {
        self.close(py)?;
        Ok(false)
    }

    /// For `tidelog.aio`: a record already fetched, without waiting.
    fn _poll_nowait(&self, py: Python<'_>) -> PyResult<Option<Py<Message>>> {
        match self.fast_next() {
            Some(r) => Ok(Some(Self::message(py, r)?)),
            None => Ok(None),
        }
    }

    /// For `tidelog.aio`: an asyncio future of `loop` resolved with the
    /// next record (None once closed). If the asyncio future is cancelled
    /// meanwhile, the record stays for the next call.
    fn _next_async(slf: Py<Self>, py: Python<'_>, event_loop: Py<PyAny>) -> PyResult<Py<PyAny>> {
        let this = slf.get();
        if this.group && !this.subscribed.load(Ordering::Acquire) {
            return Err(py_err(tidelog::Error::InvalidRequest(
                "this group consumer is not subscribed: call subscribe(topics) first".into(),
            )));
        }
        let afut = event_loop.bind(py).call_method0("create_future")?.unbind();
        let out = afut.clone_ref(py);
        let local = Arc::clone(&this.local);
        let shared = Arc::clone(&this.shared);
        let slf = slf.clone_ref(py);
        let handle = runtime()?.spawn(async move {
            let mut guard = local.lock_owned().await;
            let next = guard.next(&shared).await;
            // Decide under the lock, so a record of a cancelled call is
            // read again before anything else.
            let cancelled = Python::attach(|py| {
                afut.bind(py)
                    .call_method0("cancelled")
                    .and_then(|c| c.extract::<bool>())
                    .unwrap_or(true)
            });
            if cancelled {
                if let Some(Ok(r)) = next {
                    rewind(&mut *shared.lock().await, &r).await;
                }
                return;
            }
            drop(guard);
            let outcome = match next {
                None => Ok(None),
                Some(Ok(r)) => Ok(Some(Message { record: r })),
                Some(Err(e)) => Err(e),
            };
            resolve_message(event_loop, afut, outcome, slf);
        });
        if let Ok(mut w) = this.waiters.lock() {
            w.retain(|h| !h.is_finished());
            w.push(handle.abort_handle());
        }
        Ok(out)
    }

    /// For `tidelog.aio`: moves back to a record whose asyncio future was
    /// cancelled after it was resolved, so it is read again.
    fn _rewind(&self, message: PyRef<'_, Message>) -> PyResult<()> {
        let record = message.record.clone();
        let local = Arc::clone(&self.local);
        let shared = Arc::clone(&self.shared);
        runtime()?.spawn(async move {
            let _local = local.lock_owned().await;
            rewind(&mut *shared.lock().await, &record).await;
        });
        Ok(())
    }
}

/// Moves a partition back to a record that was fetched but not delivered.
async fn rewind(kind: &mut Kind, record: &ConsumerRecord) {
    let tp = TopicPartition::new(&*record.topic, record.partition);
    let to = SeekTo::Offset(record.offset);
    let _ = match kind {
        Kind::Manual(c) => c.seek(&tp, to).await,
        Kind::Group(g) => g.seek(&tp, to).await,
        Kind::Closed => Ok(0),
    };
}

/// Resolves an asyncio future with the next record; if the future was
/// cancelled meanwhile, the record is read again by the next call.
fn resolve_message(
    event_loop: Py<PyAny>,
    fut: Py<PyAny>,
    outcome: tidelog::Result<Option<Message>>,
    consumer: Py<NativeConsumer>,
) {
    Python::attach(|py| {
        let call = || -> PyResult<()> {
            let helper = types_module(py)?.getattr("_resolve_message")?;
            let (value, error): (Py<PyAny>, Py<PyAny>) = match outcome {
                Ok(v) => (v.into_py_any(py)?, py.None()),
                Err(e) => (py.None(), py_err(e).into_value(py).into_any()),
            };
            event_loop.bind(py).call_method1(
                "call_soon_threadsafe",
                (helper, fut, value, error, consumer),
            )?;
            Ok(())
        };
        if let Err(e) = call() {
            e.print(py);
        }
    });
}

// ---------------------------------------------------------------- admin

#[pyclass(module = "tidelog._native", frozen, get_all)]
struct TopicListing {
    name: String,
    partitions: u32,
}

#[pymethods]
impl TopicListing {
    fn __repr__(&self) -> String {
        format!(
            "TopicListing(name={:?}, partitions={})",
            self.name, self.partitions
        )
    }
}

#[pyclass(module = "tidelog._native", frozen, get_all)]
struct PartitionInfo {
    partition: u32,
    log_start_offset: i64,
    log_end_offset: i64,
    size_bytes: u64,
    segments: u32,
    leader: u32,
}

#[pymethods]
impl PartitionInfo {
    fn __repr__(&self) -> String {
        format!(
            "PartitionInfo(partition={}, log_start_offset={}, log_end_offset={}, size_bytes={}, segments={}, leader={})",
            self.partition, self.log_start_offset, self.log_end_offset, self.size_bytes, self.segments, self.leader
        )
    }
}

#[pyclass(module = "tidelog._native", frozen, get_all)]
struct TopicDescription {
    name: String,
    config: std::collections::BTreeMap<String, String>,
    partitions: Vec<Py<PartitionInfo>>,
}

#[pymethods]
impl TopicDescription {
    fn __repr__(&self) -> String {
        format!(
            "TopicDescription(name={:?}, partitions={}, config={:?})",
            self.name,
            self.partitions.len(),
            self.config
        )
    }
}

fn describe(py: Python<'_>, t: tidelog::TopicDescription) -> PyResult<TopicDescription> {
    Ok(TopicDescription {
        name: t.name,
        config: t.config,
        partitions: t
            .partitions
            .into_iter()
            .map(|p| {
                Py::new(
                    py,
                    PartitionInfo {
                        partition: p.partition,
                        log_start_offset: p.log_start_offset,
                        log_end_offset: p.log_end_offset,
                        size_bytes: p.size_bytes,
                        segments: p.segments,
                        leader: p.leader,
                    },
                )
            })
            .collect::<PyResult<_>>()?,
    })
}

#[pyclass(module = "tidelog._native", frozen, get_all)]
struct GroupListing {
    group_id: String,
    state: String,
    members: u32,
}

#[pymethods]
impl GroupListing {
    fn __repr__(&self) -> String {
        format!(
            "GroupListing(group_id={:?}, state={:?}, members={})",
            self.group_id, self.state, self.members
        )
    }
}

#[pyclass(module = "tidelog._native", frozen, get_all)]
struct GroupMember {
    member_id: String,
    client_id: String,
    member_epoch: i32,
    topics: Vec<String>,
    assignment: Vec<Py<PyAny>>,
}

#[pymethods]
impl GroupMember {
    fn __repr__(&self) -> String {
        format!(
            "GroupMember(member_id={:?}, client_id={:?}, partitions={})",
            self.member_id,
            self.client_id,
            self.assignment.len()
        )
    }
}

#[pyclass(module = "tidelog._native", frozen, get_all)]
struct PartitionLag {
    topic: String,
    partition: u32,
    committed_offset: Option<i64>,
    log_end_offset: i64,
    lag: i64,
    owner: Option<String>,
    metadata: String,
}

#[pymethods]
impl PartitionLag {
    fn __repr__(&self) -> String {
        format!(
            "PartitionLag(topic={:?}, partition={}, committed_offset={:?}, log_end_offset={}, lag={})",
            self.topic, self.partition, self.committed_offset, self.log_end_offset, self.lag
        )
    }
}

#[pyclass(module = "tidelog._native", frozen, get_all)]
struct GroupDescription {
    group_id: String,
    state: String,
    group_epoch: i32,
    members: Vec<Py<GroupMember>>,
    partitions: Vec<Py<PartitionLag>>,
}

#[pymethods]
impl GroupDescription {
    fn __repr__(&self) -> String {
        format!(
            "GroupDescription(group_id={:?}, state={:?}, members={}, partitions={})",
            self.group_id,
            self.state,
            self.members.len(),
            self.partitions.len()
        )
    }
}

#[pyclass(module = "tidelog._native", frozen, get_all)]
struct OffsetResetPlan {
    topic: String,
    partition: u32,
    old_offset: Option<i64>,
    new_offset: i64,
}

#[pymethods]
impl OffsetResetPlan {
    fn __repr__(&self) -> String {
        format!(
            "OffsetResetPlan(topic={:?}, partition={}, old_offset={:?}, new_offset={})",
            self.topic, self.partition, self.old_offset, self.new_offset
        )
    }
}

/// Topic and group administration.
#[pyclass(module = "tidelog._native", frozen, subclass)]
struct NativeAdmin {
    admin: Admin,
}

#[pymethods]
impl NativeAdmin {
    #[new]
    #[pyo3(signature = (bootstrap = "127.0.0.1:7070".to_string(), *, request_timeout_ms = 30_000.0))]
    fn new(py: Python<'_>, bootstrap: String, request_timeout_ms: f64) -> PyResult<Self> {
        let client = connect(py, &bootstrap, request_timeout_ms)?;
        Ok(NativeAdmin {
            admin: client.admin(),
        })
    }

    /// Creates a topic; returns its description.
    #[pyo3(signature = (name, partitions=1, config=None))]
    fn create_topic(
        &self,
        py: Python<'_>,
        name: String,
        partitions: u32,
        config: Option<std::collections::BTreeMap<String, Bound<'_, PyAny>>>,
    ) -> PyResult<TopicDescription> {
        let mut topic = NewTopic::new(name, partitions);
        for (k, v) in config.unwrap_or_default() {
            topic = topic.config(k, v.str()?.to_string());
        }
        let d = run(py, self.admin.create_topic(topic))?;
        describe(py, d)
    }

    /// All topics.
    fn list_topics(&self, py: Python<'_>) -> PyResult<Vec<TopicListing>> {
        Ok(run(py, self.admin.list_topics())?
            .into_iter()
            .map(|t| TopicListing {
                name: t.name,
                partitions: t.partitions,
            })
            .collect())
    }

    /// A topic's config and partitions.
    fn describe_topic(&self, py: Python<'_>, name: String) -> PyResult<TopicDescription> {
        let d = run(py, self.admin.describe_topic(&name))?;
        describe(py, d)
    }

    /// Deletes a topic and all its data.
    fn delete_topic(&self, py: Python<'_>, name: String) -> PyResult<()> {
        run(py, self.admin.delete_topic(&name))
    }

    /// Sets config keys and resets others (`delete`) to their defaults.
    #[pyo3(signature = (name, set=None, delete=None))]
    fn alter_topic_config(
        &self,
        py: Python<'_>,
        name: String,
        set: Option<std::collections::BTreeMap<String, Bound<'_, PyAny>>>,
        delete: Option<Vec<String>>,
    ) -> PyResult<TopicDescription> {
        let mut pairs = Vec::new();
        for (k, v) in set.unwrap_or_default() {
            pairs.push((k, v.str()?.to_string()));
        }
        let delete = delete.unwrap_or_default();
        let d = run(py, self.admin.alter_topic_config(&name, pairs, delete))?;
        describe(py, d)
    }

    /// All consumer groups.
    fn list_groups(&self, py: Python<'_>) -> PyResult<Vec<GroupListing>> {
        Ok(run(py, self.admin.list_groups())?
            .into_iter()
            .map(|g| GroupListing {
                group_id: g.group_id,
                state: g.state,
                members: g.members,
            })
            .collect())
    }

    /// A group's members, committed offsets and lag.
    fn describe_group(&self, py: Python<'_>, group_id: String) -> PyResult<GroupDescription> {
        let d = run(py, self.admin.describe_group(&group_id))?;
        Ok(GroupDescription {
            group_id: d.group_id,
            state: d.state,
            group_epoch: d.group_epoch,
            members: d
                .members
                .into_iter()
                .map(|m| {
                    let assignment = m
                        .assignment
                        .iter()
                        .map(|tp| topic_partition(py, tp).map(Bound::unbind))
                        .collect::<PyResult<_>>()?;
                    Py::new(
                        py,
                        GroupMember {
                            member_id: m.member_id,
                            client_id: m.client_id,
                            member_epoch: m.member_epoch,
                            topics: m.topics,
                            assignment,
                        },
                    )
                })
                .collect::<PyResult<_>>()?,
            partitions: d
                .partitions
                .into_iter()
                .map(|p| {
                    Py::new(
                        py,
                        PartitionLag {
                            topic: p.topic,
                            partition: p.partition,
                            committed_offset: p.committed_offset,
                            log_end_offset: p.log_end_offset,
                            lag: p.lag,
                            owner: p.owner,
                            metadata: p.metadata,
                        },
                    )
                })
                .collect::<PyResult<_>>()?,
        })
    }

    /// Deletes a group's committed offsets (refused while it has members:
    /// `GroupNotEmptyError`).
    fn delete_group(&self, py: Python<'_>, group_id: String) -> PyResult<()> {
        run(py, self.admin.delete_group(&group_id))
    }

    /// Moves a group's committed offsets of `topic` (all partitions unless
    /// `partitions`). `to`: "earliest", "latest", an int offset, or a
    /// datetime; or `shift_by=n` relative to the committed offsets.
    /// Refused while the group has members unless `force`. Returns the
    /// plan; `dry_run` only plans.
    #[pyo3(signature = (group_id, topic, to=None, *, shift_by=None, partitions=None, dry_run=false, force=false))]
    #[allow(clippy::too_many_arguments)]
    fn reset_offsets(
        &self,
        py: Python<'_>,
        group_id: String,
        topic: String,
        to: Option<&Bound<'_, PyAny>>,
        shift_by: Option<i64>,
        partitions: Option<Vec<u32>>,
        dry_run: bool,
        force: bool,
    ) -> PyResult<Vec<OffsetResetPlan>> {
        let spec = match (to, shift_by) {
            (Some(t), None) if !t.is_none() => {
                if let Ok(s) = t.extract::<String>() {
                    match s.to_ascii_lowercase().as_str() {
                        "earliest" | "beginning" => ResetSpec::Earliest,
                        "latest" | "end" => ResetSpec::Latest,
                        _ => {
                            return Err(PyValueError::new_err(
                                "to must be 'earliest', 'latest', an offset or a datetime",
                            ))
                        }
                    }
                } else if let Ok(o) = t.extract::<i64>() {
                    ResetSpec::Offset(o)
                } else {
                    ResetSpec::Timestamp(to_millis(t)?)
                }
            }
            (None, Some(d)) => ResetSpec::ShiftBy(d),
            _ => {
                return Err(PyValueError::new_err(
                    "give exactly one of to=... and shift_by=...",
                ))
            }
        };
        let parts = partitions.unwrap_or_default();
        let plan = run(
            py,
            self.admin
                .reset_offsets(&group_id, &topic, &parts, spec, dry_run, force),
        )?;
        Ok(plan
            .into_iter()
            .map(|p| OffsetResetPlan {
                topic: p.topic,
                partition: p.partition,
                old_offset: p.old_offset,
                new_offset: p.new_offset,
            })
            .collect())
    }

    /// Commits offsets for a group without members, e.g. to seed it:
    /// `{TopicPartition: next_offset}`.
    fn commit_group_offsets(
        &self,
        py: Python<'_>,
        group_id: String,
        offsets: &Bound<'_, PyDict>,
    ) -> PyResult<()> {
        let mut v = Vec::new();
        for (tp, o) in offsets.iter() {
            v.push((extract_tp(&tp)?, o.extract::<i64>()?));
        }
        run(py, self.admin.commit_group_offsets(&group_id, &v))
    }

    /// Resolves an offset of a partition: `spec` is "earliest", "latest",
    /// or a datetime / ms timestamp. Returns `(offset, timestamp_ms)`
    /// (timestamp -1 unless looked up by time).
    fn list_offsets(
        &self,
        py: Python<'_>,
        topic: String,
        partition: u32,
        spec: &Bound<'_, PyAny>,
    ) -> PyResult<(i64, i64)> {
        let spec = if let Ok(s) = spec.extract::<String>() {
            match s.to_ascii_lowercase().as_str() {
                "earliest" | "beginning" => OffsetSpec::Earliest,
                "latest" | "end" => OffsetSpec::Latest,
                _ => {
                    return Err(PyValueError::new_err(
                        "spec must be 'earliest', 'latest' or a datetime",
                    ))
                }
            }
        } else {
            OffsetSpec::Timestamp(to_millis(spec)?)
        };
        run(py, self.admin.list_offsets(&topic, partition, spec))
    }
}

// ---------------------------------------------------------------- module

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<NativeProducer>()?;
    m.add_class::<NativeConsumer>()?;
    m.add_class::<NativeAdmin>()?;
    m.add_class::<PyDeliveryFuture>()?;
    m.add_class::<RecordMetadata>()?;
    m.add_class::<Message>()?;
    m.add_class::<TopicListing>()?;
    m.add_class::<PartitionInfo>()?;
    m.add_class::<TopicDescription>()?;
    m.add_class::<GroupListing>()?;
    m.add_class::<GroupMember>()?;
    m.add_class::<PartitionLag>()?;
    m.add_class::<GroupDescription>()?;
    m.add_class::<OffsetResetPlan>()?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
