//! The record types handed to Python: where a record was written and a
//! record read.

use bytes::Bytes;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList};
use tidelog::{ConsumerRecord, RecordMetadata as RustMetadata, TopicPartition};

use crate::convert::{ms_to_datetime, topic_partition};

/// Where a record was written.
#[pyclass(module = "tidelog._native", frozen, get_all)]
pub(crate) struct RecordMetadata {
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
pub(crate) struct Message {
    pub(crate) record: ConsumerRecord,
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
