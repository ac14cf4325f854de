//! The one error type of the client.

use tidelog_proto::batch::BatchError;
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
    /// Whether retrying the same call may succeed.
    pub fn is_retriable(&self) -> bool {
        matches!(
            self,
            Error::NotLeader(_) | Error::Unavailable(_) | Error::Timeout(_)
        )
    }
}

impl From<tonic::Status> for Error {
    fn from(s: tonic::Status) -> Self {
        let reason = s
            .metadata()
            .get(ERROR_REASON_KEY)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let msg = s.message().to_string();
        match reason.as_str() {
            "UNKNOWN_TOPIC" => Error::UnknownTopic(msg),
            "UNKNOWN_PARTITION" => Error::UnknownPartition(msg),
            "TOPIC_ALREADY_EXISTS" => Error::TopicAlreadyExists(msg),
            "INVALID_TOPIC_NAME" => Error::InvalidTopicName(msg),
            "INVALID_CONFIG" => Error::InvalidConfig(msg),
            "RECORD_TOO_LARGE" => Error::RecordTooLarge(msg),
            "CORRUPT_BATCH" => Error::CorruptBatch(msg),
            "OFFSET_OUT_OF_RANGE" => Error::OffsetOutOfRange(msg),
            "OUT_OF_ORDER_SEQUENCE" => Error::OutOfOrderSequence(msg),
            "PRODUCER_FENCED" => Error::ProducerFenced(msg),
            "INVALID_REQUEST" => Error::InvalidRequest(msg),
            "NOT_LEADER" => Error::NotLeader(msg),
            "UNKNOWN_GROUP" => Error::UnknownGroup(msg),
            "UNKNOWN_MEMBER" => Error::UnknownMember(msg),
            "FENCED_MEMBER_EPOCH" => Error::FencedMemberEpoch(msg),
            "NOT_ASSIGNED" => Error::NotAssigned(msg),
            "GROUP_NOT_EMPTY" => Error::GroupNotEmpty(msg),
            "INVALID_GROUP_ID" => Error::InvalidGroupId(msg),
            "STORAGE_UNAVAILABLE" | "SHUTTING_DOWN" => Error::Unavailable(msg),
            _ => match s.code() {
                Code::Unavailable | Code::Cancelled | Code::Unknown => Error::Unavailable(msg),
                Code::DeadlineExceeded => Error::Timeout(msg),
                Code::NotFound => Error::UnknownTopic(msg),
                Code::InvalidArgument => Error::InvalidRequest(msg),
                Code::OutOfRange => Error::OffsetOutOfRange(msg),
                code => Error::Broker { code, message: msg },
            },
        }
    }
}

impl From<tidelog_proto::v1::ProduceError> for Error {
    /// An error answer on a produce stream, read exactly like the status a
    /// unary call would have returned.
    fn from(e: tidelog_proto::v1::ProduceError) -> Self {
        let mut status = tonic::Status::new(Code::from(e.code), e.message);
        let reason = tidelog_proto::v1::ErrorReason::try_from(e.reason)
            .unwrap_or(tidelog_proto::v1::ErrorReason::Unspecified);
        if let Ok(v) = reason.as_str_name().parse() {
            status.metadata_mut().insert(ERROR_REASON_KEY, v);
        }
        Error::from(status)
    }
}
