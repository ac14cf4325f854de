//! The one error type of the client, and how broker statuses become it.
//! Each error has a stable [`ErrorCode`] (see `code.rs` for which are
//! retriable and why).

mod code;

pub use code::ErrorCode;

use tidelog_proto::batch::BatchError;
use tidelog_proto::v1::ErrorReason;
use tidelog_proto::ERROR_REASON_KEY;
use tonic::Code;

/// Result alias for client calls.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in a client call. Broker errors keep the
/// broker's message, which says what to do.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The topic does not exist.
    #[error("{0}")]
    UnknownTopic(String),
    /// The partition does not exist.
    #[error("{0}")]
    UnknownPartition(String),
    /// A topic with that name exists.
    #[error("{0}")]
    TopicAlreadyExists(String),
    /// The topic name is not valid.
    #[error("{0}")]
    InvalidTopicName(String),
    /// A topic config key or value is not valid.
    #[error("{0}")]
    InvalidConfig(String),
    /// A batch (or record) exceeds the topic's `max.message.bytes`.
    #[error("{0}")]
    RecordTooLarge(String),
    /// The broker found a batch corrupt.
    #[error("{0}")]
    CorruptBatch(String),
    /// The offset is outside the log.
    #[error("{0}")]
    OffsetOutOfRange(String),
    /// The idempotent producer's sequence was rejected.
    #[error("{0}")]
    OutOfOrderSequence(String),
    /// The idempotent producer re-sent a batch older than the broker's
    /// dedupe window: it was written long ago (not a loss).
    #[error("{0}")]
    DuplicateSequence(String),
    /// Another producer instance with a newer epoch took over.
    #[error("{0}")]
    ProducerFenced(String),
    /// The consumer group does not exist.
    #[error("{0}")]
    UnknownGroup(String),
    /// The group member is unknown to the coordinator (left or timed out).
    #[error("{0}")]
    UnknownMember(String),
    /// The member's epoch is stale (its assignment changed or it was fenced).
    #[error("{0}")]
    FencedMemberEpoch(String),
    /// A commit named a partition not assigned to the member.
    #[error("{0}")]
    NotAssigned(String),
    /// The operation needs a group without active members.
    #[error("{0}")]
    GroupNotEmpty(String),
    /// The group id is not valid.
    #[error("{0}")]
    InvalidGroupId(String),
    /// A request was invalid (bad argument from the caller).
    #[error("{0}")]
    InvalidRequest(String),
    /// This broker does not lead the partition (retriable).
    #[error("{0}")]
    NotLeader(String),
    /// The broker cannot serve now: storage trouble, shutting down,
    /// unreachable (retriable).
    #[error("{0}")]
    Unavailable(String),
    /// Stored data is damaged: a batch on the broker's disk or in the
    /// object store failed its checksum or is truncated (not retriable).
    #[error("{0}")]
    DataLoss(String),
    /// The call took longer than its timeout (retriable).
    #[error("timed out: {0}")]
    Timeout(String),
    /// Could not connect to the bootstrap address.
    #[error("cannot connect to {address}: {message}")]
    Connect {
        /// Address tried.
        address: String,
        /// Why it failed.
        message: String,
    },
    /// A batch from the broker could not be decoded.
    #[error("cannot decode batch: {0}")]
    Decode(#[from] BatchError),
    /// A batch of a partition failed its CRC or could not be decoded (a
    /// batch stored before the broker validated records, or damaged on
    /// the way). Every record before it was delivered; the consumer's
    /// position is `first_offset`. Seek to `next_offset` to skip it (its
    /// records are then lost to this consumer), as Kafka users seek past
    /// a poison record.
    #[error("{topic}/{partition}: the batch of offsets {first_offset}..{next_offset} is unreadable ({source}); records before {first_offset} were delivered; seek to offset {next_offset} to skip it")]
    UnreadableBatch {
        /// Topic.
        topic: String,
        /// Partition.
        partition: u32,
        /// First offset of the batch.
        first_offset: i64,
        /// Offset after the batch; equal to `first_offset` when not even
        /// the batch's header could be read (the broker serves only whole
        /// batches with readable headers, so this needs a damaged wire).
        next_offset: i64,
        /// What is wrong with it.
        source: BatchError,
    },
    /// The producer or consumer was closed.
    #[error("client closed")]
    Closed,
    /// Any other broker-side failure.
    #[error("broker error ({code:?}): {message}")]
    Broker {
        /// gRPC status code.
        code: Code,
        /// Message.
        message: String,
    },
}

impl Error {
    /// The stable code of this error.
    pub fn code(&self) -> ErrorCode {
        use ErrorCode as C;
        match self {
            Error::UnknownTopic(_) => C::UnknownTopic,
            Error::UnknownPartition(_) => C::UnknownPartition,
            Error::TopicAlreadyExists(_) => C::TopicAlreadyExists,
            Error::InvalidTopicName(_) => C::InvalidTopicName,
            Error::InvalidConfig(_) => C::InvalidConfig,
            Error::RecordTooLarge(_) => C::RecordTooLarge,
            Error::CorruptBatch(_) => C::CorruptBatch,
            Error::OffsetOutOfRange(_) => C::OffsetOutOfRange,
            Error::OutOfOrderSequence(_) => C::OutOfOrderSequence,
            Error::DuplicateSequence(_) => C::DuplicateSequence,
            Error::ProducerFenced(_) => C::ProducerFenced,
            Error::UnknownGroup(_) => C::UnknownGroup,
            Error::UnknownMember(_) => C::UnknownMember,
            Error::FencedMemberEpoch(_) => C::FencedMemberEpoch,
            Error::NotAssigned(_) => C::NotAssigned,
            Error::GroupNotEmpty(_) => C::GroupNotEmpty,
            Error::InvalidGroupId(_) => C::InvalidGroupId,
            Error::InvalidRequest(_) => C::InvalidRequest,
            Error::NotLeader(_) => C::NotLeader,
            Error::Unavailable(_) => C::Unavailable,
            Error::DataLoss(_) => C::DataLoss,
            Error::Timeout(_) => C::Timeout,
            Error::Connect { .. } => C::ConnectionError,
            Error::Decode(_) | Error::UnreadableBatch { .. } => C::DecodeError,
            Error::Closed => C::Closed,
            Error::Broker { .. } => C::BrokerError,
        }
    }

    /// Whether retrying the same call may succeed ([`ErrorCode::is_retriable`]).
    pub fn is_retriable(&self) -> bool {
        self.code().is_retriable()
    }

    /// The error a broker answer means: its reason when that names one,
    /// else its gRPC status code.
    fn from_broker(code: Code, reason: Option<ErrorReason>, message: String) -> Self {
        if let Some(make) = reason.and_then(by_reason) {
            return make(message);
        }
        match code {
            Code::Unavailable | Code::Cancelled | Code::Unknown => Error::Unavailable(message),
            Code::DeadlineExceeded => Error::Timeout(message),
            Code::NotFound => Error::UnknownTopic(message),
            Code::InvalidArgument => Error::InvalidRequest(message),
            Code::OutOfRange => Error::OffsetOutOfRange(message),
            Code::DataLoss => Error::DataLoss(message),
            code => Error::Broker { code, message },
        }
    }
}

/// The error of each broker reason; `None` when the reason adds nothing to
/// the status code. Exhaustive, so a reason added to the proto does not
/// compile until it is placed here.
fn by_reason(reason: ErrorReason) -> Option<fn(String) -> Error> {
    use ErrorReason as R;
    Some(match reason {
        R::Unspecified | R::InternalError => return None,
        R::UnknownTopic => Error::UnknownTopic,
        R::UnknownPartition => Error::UnknownPartition,
        R::TopicAlreadyExists => Error::TopicAlreadyExists,
        R::InvalidTopicName => Error::InvalidTopicName,
        R::InvalidConfig => Error::InvalidConfig,
        R::RecordTooLarge => Error::RecordTooLarge,
        R::CorruptBatch => Error::CorruptBatch,
        R::OffsetOutOfRange => Error::OffsetOutOfRange,
        R::OutOfOrderSequence => Error::OutOfOrderSequence,
        R::DuplicateSequenceNumber => Error::DuplicateSequence,
        R::ProducerFenced => Error::ProducerFenced,
        R::InvalidRequest => Error::InvalidRequest,
        R::StorageUnavailable | R::ShuttingDown | R::QuorumUnavailable => Error::Unavailable,
        // Both mean "ask the broker the metadata names": retriable.
        R::NotLeader | R::NotCoordinator => Error::NotLeader,
        R::UnknownGroup => Error::UnknownGroup,
        R::UnknownMember => Error::UnknownMember,
        R::FencedMemberEpoch => Error::FencedMemberEpoch,
        R::NotAssigned => Error::NotAssigned,
        R::GroupNotEmpty => Error::GroupNotEmpty,
        R::InvalidGroupId => Error::InvalidGroupId,
        R::RemoteDataLoss | R::LocalDataLoss => Error::DataLoss,
    })
}

impl From<tonic::Status> for Error {
    fn from(s: tonic::Status) -> Self {
        let reason = s
            .metadata()
            .get(ERROR_REASON_KEY)
            .and_then(|v| v.to_str().ok())
            .and_then(ErrorReason::from_str_name);
        Error::from_broker(s.code(), reason, s.message().to_string())
    }
}

impl From<tidelog_proto::v1::ProduceError> for Error {
    /// An error answer on a produce stream, read exactly like the status a
    /// unary call would have returned.
    fn from(e: tidelog_proto::v1::ProduceError) -> Self {
        let reason = ErrorReason::try_from(e.reason).ok();
        Error::from_broker(Code::from(e.code), reason, e.message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(code: Code, reason: &str) -> tonic::Status {
        let mut s = tonic::Status::new(code, "m");
        if let Ok(v) = reason.parse() {
            s.metadata_mut().insert(ERROR_REASON_KEY, v);
        }
        s
    }

    #[test]
    fn a_reason_named_like_a_code_gives_that_code() {
        for code in ErrorCode::ALL {
            if ErrorReason::from_str_name(code.as_str()).is_some() {
                let e = Error::from(status(Code::Internal, code.as_str()));
                assert_eq!(e.code(), *code);
            }
        }
    }

    #[test]
    fn remote_data_loss_and_unknown_reasons() {
        let e = Error::from(status(Code::DataLoss, "REMOTE_DATA_LOSS"));
        assert!(matches!(e, Error::DataLoss(_)) && !e.is_retriable());
        // A reason this client does not know falls back to the status code.
        let e = Error::from(status(Code::DataLoss, "SOMETHING_NEW"));
        assert_eq!(e.code(), ErrorCode::DataLoss);
        let e = Error::from(status(Code::Unavailable, "SHUTTING_DOWN"));
        assert!(e.is_retriable());
    }

    #[test]
    fn produce_errors_read_like_statuses() {
        let e = Error::from(tidelog_proto::v1::ProduceError {
            code: Code::InvalidArgument as i32,
            reason: ErrorReason::RecordTooLarge as i32,
            message: "big".into(),
        });
        assert_eq!(e.code(), ErrorCode::RecordTooLarge);
    }
}
