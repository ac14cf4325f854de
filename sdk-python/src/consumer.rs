//! `NativeConsumer`: `tidelog.Consumer` over `tidelog::UnifiedConsumer`
//! (a group member with `group_id`, else a consumer of assigned
//! partitions). This module only adapts it to Python threads and asyncio:
//! a fetch runs as a task that survives a timed-out `poll`, so no record is
//! lost or reordered when a caller gives up waiting.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex as StdMutex};
use std::time::{Duration, Instant};

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyTuple};
use pyo3::IntoPyObjectExt;
use tidelog::{
    ConsumerConfig, ConsumerMode, ConsumerRecord, GroupConsumerConfig, RebalanceEvent, SeekTo,
    TopicPartition, UnifiedConsumer,
};
use tokio::sync::{oneshot, Mutex as TMutex, OwnedMutexGuard};
use tokio::task::{AbortHandle, JoinHandle};

use crate::convert::{
    extract_tp, extract_tps, offset_reset, to_millis, topic_partition, types_module,
};
use crate::errors::{py_err, timeout_err};
use crate::records::Message;
use crate::runtime::{connect, millis, run, runtime, seconds, wait_for, Bootstrap};

type Next = Option<tidelog::Result<ConsumerRecord>>;

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
    async fn next(&mut self, shared: &Arc<TMutex<UnifiedConsumer>>) -> Next {
        let fetch = self.pending.get_or_insert_with(|| {
            let shared = Arc::clone(shared);
            let (tx, rx) = oneshot::channel::<()>();
            let stop = async move {
                let _ = rx.await;
            };
            Fetch {
                handle: tokio::spawn(async move {
                    shared.lock_owned().await.next_record_until(stop).await
                }),
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
pub(crate) struct NativeConsumer {
    shared: Arc<TMutex<UnifiedConsumer>>,
    local: Arc<TMutex<Local>>,
    waiters: StdMutex<Vec<AbortHandle>>,
    group: bool,
    closed: AtomicBool,
}

impl NativeConsumer {
    fn message(py: Python<'_>, record: ConsumerRecord) -> PyResult<Py<Message>> {
        Py::new(py, Message { record })
    }

    /// The consumer itself, after cancelling the fetch under way (its
    /// record, if one arrived, is read again by the next poll).
    fn acquire(&self, py: Python<'_>) -> PyResult<OwnedMutexGuard<UnifiedConsumer>> {
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
                        let mut consumer = shared.lock_owned().await;
                        // Best effort: a failed seek shows on the next read.
                        let _ = consumer.rewind(&r).await;
                        return consumer;
                    }
                }
                drop(local);
                shared.lock_owned().await
            },
            None,
        )?;
        got.ok_or_else(|| timeout_err("acquiring the consumer"))
    }

    fn fast_next(&self) -> Option<ConsumerRecord> {
        let local = self.local.try_lock().ok()?;
        if local.pending.is_some() {
            return None;
        }
        self.shared.try_lock().ok()?.try_next_record()
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
        let mut consumer = self.acquire(py)?;
        run(py, async move { consumer.seek(&tp, to).await })
    }

    fn targets(
        &self,
        py: Python<'_>,
        partitions: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Vec<TopicPartition>> {
        match partitions {
            Some(p) if !p.is_none() => extract_tps(p),
            _ => Ok(self.acquire(py)?.assignment()),
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
        bootstrap = Bootstrap::default(),
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
        bootstrap: Bootstrap,
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
        let mode = match group_id {
            Some(id) => {
                let mut config = GroupConsumerConfig::new(id);
                config.auto_commit = auto_commit;
                config.auto_commit_interval =
                    millis(auto_commit_interval_ms, "auto_commit_interval_ms")?;
                config.auto_offset_reset = reset;
                config.session_timeout = millis(session_timeout_ms, "session_timeout_ms")?;
                config.client_id = client_id;
                config.max_bytes = max_bytes;
                ConsumerMode::Subscribe(config)
            }
            None => ConsumerMode::Assign(ConsumerConfig {
                auto_offset_reset: reset,
                max_bytes,
                ..ConsumerConfig::default()
            }),
        };
        let consumer = client.unified_consumer(mode);
        Ok(NativeConsumer {
            group: consumer.is_group(),
            shared: Arc::new(TMutex::new(consumer)),
            local: Arc::new(TMutex::new(Local::default())),
            waiters: StdMutex::new(Vec::new()),
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
        let mut consumer = self.acquire(py)?;
        run(py, async move {
            let names: Vec<&str> = topics.iter().map(String::as_str).collect();
            consumer.subscribe(&names).await
        })
    }

    /// Replaces the assignment with these `TopicPartition`s (no group).
    fn assign(&self, py: Python<'_>, partitions: &Bound<'_, PyAny>) -> PyResult<()> {
        let tps = extract_tps(partitions)?;
        self.acquire(py)?.assign(tps).map_err(py_err)
    }

    /// The partitions this consumer reads now.
    fn assignment<'py>(&self, py: Python<'py>) -> PyResult<Vec<Bound<'py, PyAny>>> {
        let consumer = self.acquire(py)?;
        consumer
            .assignment()
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
        let mut consumer = self.acquire(py)?;
        match explicit {
            Some(offsets) => run(py, consumer.commit_offsets(&offsets)),
            None if asynchronous => {
                let _guard = runtime()?.enter();
                consumer.commit_in_background().map_err(py_err)
            }
            None => run(py, consumer.commit()),
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
        let consumer = self.acquire(py)?;
        let got = run(py, consumer.committed(&tps))?;
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
        Ok(self.acquire(py)?.position(&tp))
    }

    /// Lag per owned partition (group members): `{TopicPartition: lag}`.
    fn lag<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let consumer = self.acquire(py)?;
        let lags = run(py, consumer.lag())?;
        let out = PyDict::new(py);
        for (tp, l) in lags {
            out.set_item(topic_partition(py, &tp)?, l)?;
        }
        Ok(out)
    }

    /// Rebalance events since the last call: `("assigned" | "revoked" |
    /// "lost", [TopicPartition, ...])` tuples.
    fn rebalance_events<'py>(&self, py: Python<'py>) -> PyResult<Vec<Bound<'py, PyTuple>>> {
        let events = self.acquire(py)?.take_events();
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
        let mut consumer = self.acquire(py)?;
        run(py, async move { consumer.close().await })
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
                    let _ = shared.lock().await.rewind(&r).await;
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
            let _ = shared.lock().await.rewind(&record).await;
        });
        Ok(())
    }
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
