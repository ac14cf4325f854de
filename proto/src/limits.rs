//! Limits the broker and the clients must agree on. A value here that
//! differs between the two ends fails requests, so each lives once.

/// Largest gRPC message a broker or client sends or accepts. A produce
/// request may carry many batches and a pushed fetch many more, so this is
/// well above any topic's `max.message.bytes`.
pub const MAX_MESSAGE_BYTES: usize = 128 * 1024 * 1024;

/// Largest uncompressed records section of one batch (FORMAT.md,
/// "Records section"): a decoder refuses more before allocating it.
pub const MAX_BATCH_DECOMPRESSED: usize = 64 * 1024 * 1024;

/// Largest total a produce request's compressed batches may inflate to on
/// the broker: bounds the work one request can cause, whatever ratio its
/// sections claim.
pub const MAX_REQUEST_DECOMPRESSED: usize = MAX_MESSAGE_BYTES;

/// Batches per producer and partition that a broker remembers to recognise
/// retries (FORMAT.md, "Idempotence"). A client must never have more
/// batches of a partition unanswered than this, or a retry of the oldest
/// could no longer be recognised.
pub const DEDUPE_WINDOW_BATCHES: usize = 256;
