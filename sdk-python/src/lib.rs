//! `tidelog._native`: the Python binding of the Tidelog Rust client.
//!
//! All client logic lives in `sdk-rust`; this crate adapts it to Python:
//! one shared multi-thread Tokio runtime, blocking calls that release the
//! GIL and wake often to let Ctrl-C through (`runtime`), and sync fast
//! paths (`enqueue` polled once in place, `try_next_record`) so a send or a
//! buffered record costs no async round trip.
//!
//! Modules follow `sdk-node/src`: `producer` (+ `delivery`), `consumer`,
//! `admin`, `errors`, `convert` (values) and `records` (result classes).

mod admin;
mod consumer;
mod convert;
mod delivery;
mod errors;
mod producer;
mod records;
mod runtime;

use pyo3::prelude::*;

use admin::{
    GroupDescription, GroupListing, GroupMember, NativeAdmin, OffsetResetPlan, PartitionInfo,
    PartitionLag, TopicDescription, TopicListing,
};
use consumer::NativeConsumer;
use delivery::PyDeliveryFuture;
use producer::NativeProducer;
use records::{Message, RecordMetadata};

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
    m.add_function(wrap_pyfunction!(errors::error_codes, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
