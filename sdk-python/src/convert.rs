//! Python values to client values and back: bytes, headers, times,
//! partitions and option names.

use bytes::Bytes;
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBytes, PyDict, PyList, PyString, PyTuple};
use tidelog::{Acks, Compression, OffsetReset, TopicPartition};

static TYPES: PyOnceLock<Py<PyModule>> = PyOnceLock::new();

/// `tidelog._types`, the Python helpers (TopicPartition, datetimes).
pub(crate) fn types_module(py: Python<'_>) -> PyResult<&Bound<'_, PyModule>> {
    TYPES
        .get_or_try_init(py, || Ok::<_, PyErr>(py.import("tidelog._types")?.unbind()))
        .map(|m| m.bind(py))
}

/// Bytes of a key, value or header value: `bytes`, `bytearray`,
/// `memoryview` or anything with the buffer protocol, or `str` (UTF-8).
pub(crate) fn to_bytes(obj: &Bound<'_, PyAny>) -> PyResult<Bytes> {
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

pub(crate) fn opt_bytes(obj: Option<&Bound<'_, PyAny>>) -> PyResult<Option<Bytes>> {
    match obj {
        None => Ok(None),
        Some(o) if o.is_none() => Ok(None),
        Some(o) => to_bytes(o).map(Some),
    }
}

/// Headers: a dict or a sequence of `(name, value)` pairs.
pub(crate) fn to_headers(obj: Option<&Bound<'_, PyAny>>) -> PyResult<Vec<(String, Bytes)>> {
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
pub(crate) fn to_millis(obj: &Bound<'_, PyAny>) -> PyResult<i64> {
    if let Ok(ms) = obj.extract::<i64>() {
        return Ok(ms);
    }
    types_module(obj.py())?
        .getattr("_datetime_to_ms")?
        .call1((obj,))?
        .extract()
}

pub(crate) fn ms_to_datetime<'py>(py: Python<'py>, ms: i64) -> PyResult<Bound<'py, PyAny>> {
    types_module(py)?.getattr("_ms_to_datetime")?.call1((ms,))
}

pub(crate) fn topic_partition<'py>(
    py: Python<'py>,
    tp: &TopicPartition,
) -> PyResult<Bound<'py, PyAny>> {
    types_module(py)?
        .getattr("TopicPartition")?
        .call1((tp.topic.as_str(), tp.partition))
}

pub(crate) fn extract_tp(obj: &Bound<'_, PyAny>) -> PyResult<TopicPartition> {
    let (topic, partition): (String, u32) = obj.extract().map_err(|_| {
        PyTypeError::new_err("expected a TopicPartition or a (topic, partition) tuple")
    })?;
    Ok(TopicPartition::new(topic, partition))
}

pub(crate) fn extract_tps(obj: &Bound<'_, PyAny>) -> PyResult<Vec<TopicPartition>> {
    obj.try_iter()?.map(|i| extract_tp(&i?)).collect()
}

pub(crate) fn compression(name: &str) -> PyResult<Compression> {
    match name.to_ascii_lowercase().as_str() {
        "none" | "" => Ok(Compression::None),
        "lz4" => Ok(Compression::Lz4),
        "zstd" => Ok(Compression::Zstd),
        other => Err(PyValueError::new_err(format!(
            "compression must be 'none', 'lz4' or 'zstd', not {other:?}"
        ))),
    }
}

pub(crate) fn acks(obj: &Bound<'_, PyAny>) -> PyResult<Acks> {
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

pub(crate) fn offset_reset(name: &str) -> PyResult<OffsetReset> {
    match name.to_ascii_lowercase().as_str() {
        "earliest" | "smallest" | "beginning" => Ok(OffsetReset::Earliest),
        "latest" | "largest" | "end" => Ok(OffsetReset::Latest),
        "none" | "error" => Ok(OffsetReset::None),
        other => Err(PyValueError::new_err(format!(
            "auto_offset_reset must be 'earliest', 'latest' or 'none', not {other:?}"
        ))),
    }
}
