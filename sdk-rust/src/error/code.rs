//! The one table of error codes: every code a client error can carry, the
//! stable name the bindings show (`err.code` in Node, `err.code` in Python)
//! and whether retrying may help. The bindings translate this table; they
//! keep no list of their own.
//!
//! # Which errors are retriable
//!
//! Retriable means "the same call, unchanged, may succeed later", as in
//! Kafka's `RetriableException`:
//!
//! * `NOT_LEADER`, `UNAVAILABLE` (storage trouble, shutting down, a dropped
//!   connection) and `TIMEOUT` are the broker's transient states; the
//!   producer, the fetchers and the heartbeat already retry them, so a
//!   caller sees one only once those retries ran out.
//! * `CONNECTION_ERROR` (the bootstrap broker did not answer) is retriable:
//!   a broker that is starting or restarting answers later, as Kafka's
//!   `NetworkException` and kafkajs' `KafkaJSConnectionError` say.
//! * `DATA_LOSS` is not: the stored copy is damaged, so reading it again
//!   returns the same bytes.
//! * Everything else is the caller's mistake (bad name, config, offset,
//!   group state) or a fenced producer or member; retrying the same request
//!   fails the same way.

/// Declares the codes once: the enum, its names, its retriability and
/// the list of all codes.
macro_rules! codes {
    ($($(#[$doc:meta])* $variant:ident = $name:literal, retriable: $retriable:literal;)*) => {
        /// The stable code of a client error (see the module docs).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[non_exhaustive]
        pub enum ErrorCode {
            $($(#[$doc])* $variant,)*
        }

        impl ErrorCode {
            /// Every code, in table order.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant,)*];

            /// The stable name, e.g. `UNKNOWN_TOPIC`.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(ErrorCode::$variant => $name,)*
                }
            }

            /// Whether the same call may succeed when retried.
            pub fn is_retriable(self) -> bool {
                match self {
                    $(ErrorCode::$variant => $retriable,)*
                }
            }
        }
    };
}

codes! {
    /// The topic does not exist.
    UnknownTopic = "UNKNOWN_TOPIC", retriable: false;
    /// The partition does not exist.
    UnknownPartition = "UNKNOWN_PARTITION", retriable: false;
    /// A topic with that name exists.
    TopicAlreadyExists = "TOPIC_ALREADY_EXISTS", retriable: false;
    /// The topic name is not valid.
    InvalidTopicName = "INVALID_TOPIC_NAME", retriable: false;
    /// A topic config key or value is not valid.
    InvalidConfig = "INVALID_CONFIG", retriable: false;
    /// A batch exceeds the topic's `max.message.bytes`.
    RecordTooLarge = "RECORD_TOO_LARGE", retriable: false;
    /// The broker found a batch of the request corrupt.
    CorruptBatch = "CORRUPT_BATCH", retriable: false;
    /// The offset is outside the log.
    OffsetOutOfRange = "OFFSET_OUT_OF_RANGE", retriable: false;
    /// The idempotent producer's sequence was rejected.
    OutOfOrderSequence = "OUT_OF_ORDER_SEQUENCE", retriable: false;
    /// The idempotent producer re-sent a batch written long ago, older than
    /// the broker's dedupe window: treat it as delivered.
    DuplicateSequence = "DUPLICATE_SEQUENCE_NUMBER", retriable: false;
    /// Another producer instance took over.
    ProducerFenced = "PRODUCER_FENCED", retriable: false;
    /// The consumer group does not exist.
    UnknownGroup = "UNKNOWN_GROUP", retriable: false;
    /// The group member is unknown to the coordinator.
    UnknownMember = "UNKNOWN_MEMBER", retriable: false;
    /// The member's epoch is stale.
    FencedMemberEpoch = "FENCED_MEMBER_EPOCH", retriable: false;
    /// A commit named a partition not assigned to the member.
    NotAssigned = "NOT_ASSIGNED", retriable: false;
    /// The operation needs a group without members.
    GroupNotEmpty = "GROUP_NOT_EMPTY", retriable: false;
    /// The group id is not valid.
    InvalidGroupId = "INVALID_GROUP_ID", retriable: false;
    /// A request was invalid (bad argument from the caller).
    InvalidRequest = "INVALID_REQUEST", retriable: false;
    /// This broker does not lead the partition.
    NotLeader = "NOT_LEADER", retriable: true;
    /// The broker cannot serve now.
    Unavailable = "UNAVAILABLE", retriable: true;
    /// Stored data (on the broker's disk or in the bucket) is damaged.
    DataLoss = "DATA_LOSS", retriable: false;
    /// The call took longer than its timeout.
    Timeout = "TIMEOUT", retriable: true;
    /// Could not connect to the bootstrap address.
    ConnectionError = "CONNECTION_ERROR", retriable: true;
    /// A batch from the broker could not be decoded.
    DecodeError = "DECODE_ERROR", retriable: false;
    /// The producer or consumer was closed.
    Closed = "CLOSED", retriable: false;
    /// Any other broker-side failure.
    BrokerError = "BROKER_ERROR", retriable: false;
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_upper_snake() {
        let mut names: Vec<&str> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
        assert!(names
            .iter()
            .all(|n| n.chars().all(|c| c.is_ascii_uppercase() || c == '_')));
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), ErrorCode::ALL.len());
    }
}
