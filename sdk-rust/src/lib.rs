//! # tidelog — the Rust client for Tidelog
//!
//! One client core for producing, consuming and administering a Tidelog
//! cluster over gRPC; the Python and Node packages are thin bindings over it.
//!
//! ```no_run
//! use futures::StreamExt;
//! use tidelog::{Client, NewTopic, ProducerRecord, SeekTo, TopicPartition};
//!
//! # async fn demo() -> tidelog::Result<()> {
//! let client = Client::connect("127.0.0.1:7070").await?;
//! client.admin().create_topic(NewTopic::new("events", 3)).await?;
//!
//! let producer = client.producer();
//! let meta = producer.send(ProducerRecord::new("events", "hello").key("k1")).await?;
//!
//! let mut consumer = client.consumer();
//! let tp = TopicPartition::new("events", meta.partition);
//! consumer.assign([tp.clone()]);
//! consumer.seek(&tp, SeekTo::Offset(meta.offset)).await?;
//! let record = consumer.stream().next().await.expect("assigned")?;
//! assert_eq!(record.value.as_deref(), Some(&b"hello"[..]));
//! # Ok(()) }
//! ```
//!
//! Layers, each using only those below it: [`Client`] assembles the
//! producer, the consumers and the admin; they reach the broker through
//! one connection module that also holds cluster metadata; errors and their
//! codes (one table, shared by every binding) sit at the bottom.
//!
//! Records travel in batches (format: `proto/FORMAT.md`), encoded and
//! decoded here; the broker never re-encodes them.

#![warn(missing_docs)]

pub mod admin;
pub mod client;
mod connection;
pub mod consumer;
pub mod error;
pub mod group;
pub mod partitioner;
pub mod producer;
mod types;
pub mod unified;

pub use admin::{
    Admin, GroupDescription, GroupListing, GroupMemberInfo, NewTopic, OffsetResetPlan, OffsetSpec,
    PartitionInfo, PartitionLag, ResetSpec, TopicDescription, TopicListing,
};
pub use client::{Client, ClientConfig};
pub use consumer::{Consumer, ConsumerConfig, ConsumerRecord, OffsetReset, SeekTo, TopicPartition};
pub use error::{Error, ErrorCode, Result};
pub use group::{GroupConsumer, GroupConsumerConfig, RebalanceEvent};
pub use producer::{
    Acks, DeliveryFuture, Producer, ProducerConfig, ProducerRecord, RecordMetadata, Retrying,
};
pub use tidelog_proto::batch::Compression;
pub use unified::{ConsumerMode, UnifiedConsumer};
