//! `DeliveryFuture`: the outcome of one `send`, waited for from Python
//! threads or bridged to asyncio.

use futures::FutureExt;
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use tidelog::{DeliveryFuture, RecordMetadata as RustMetadata};
use tokio::sync::Mutex as TMutex;

use crate::errors::{py_err, timeout_err};
use crate::records::RecordMetadata;
use crate::runtime::{resolve, resolve_now, runtime, seconds, wait_for};

pub(crate) enum Delivery {
    Pending(DeliveryFuture),
    Done(tidelog::Result<RustMetadata>),
}

/// The outcome of one `send`: `result(timeout)` waits for the broker's
/// acknowledgement.
#[pyclass(module = "tidelog._native", frozen, name = "DeliveryFuture")]
pub(crate) struct PyDeliveryFuture {
    pub(crate) state: TMutex<Delivery>,
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
