//! Limits the broker and the clients must agree on. A value here that
//! differs between the two ends fails requests, so each lives once.

/// Largest gRPC message a broker or client sends or accepts. A produce
/// request may carry many batches and a pushed fetch many more, so this is
/// well above any topic's `max.message.bytes`.
pub const MAX_MESSAGE_BYTES: usize = 128 * 1024 * 1024;

/// Batches per producer and partition that a broker remembers to recognise
/// retries (FORMAT.md, "Idempotence"). A client must never have more
/// batches of a partition unanswered than this, or a retry of the oldest
/// could no longer be recognised.
pub const DEDUPE_WINDOW_BATCHES: usize = 256;
