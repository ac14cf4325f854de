//! `NativeProducer`: `tidelog.Producer` over the Rust producer, with a
//! synchronous fast path for queueing and delivery callbacks run on the
//! caller's thread.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::Mutex as StdMutex;
use std::time::{Duration, Instant};

use futures::FutureExt;
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::types::PyTuple;
use tidelog::{Acks, DeliveryFuture, Producer, ProducerConfig, ProducerRecord};
use tokio::sync::Mutex as TMutex;

use crate::convert::{acks, compression, opt_bytes, to_headers, to_millis};
use crate::delivery::{Delivery, PyDeliveryFuture};
use crate::errors::{py_err, timeout_err};
use crate::records::RecordMetadata;
use crate::runtime::{connect, millis, run, runtime, seconds, spawn_async, wait_for, Bootstrap};

type Callback = (DeliveryFuture, Py<PyAny>);
type EnqueueResult = tidelog::Result<DeliveryFuture>;
type Enqueue = std::pin::Pin<Box<dyn Future<Output = EnqueueResult> + Send>>;

/// Sends records to topics; see the Python docs of `tidelog.Producer`.
#[pyclass(module = "tidelog._native", frozen, subclass)]
pub(crate) struct NativeProducer {
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
        bootstrap = Bootstrap::default(),
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
        bootstrap: Bootstrap,
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
