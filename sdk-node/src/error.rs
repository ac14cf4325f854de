//! Client errors become JavaScript errors whose message starts with a
//! stable code in brackets, `[UNKNOWN_TOPIC] ...`; `index.js` turns that
//! into the matching `TidelogError` subclass with a `code` property.

use napi::Status;

/// The stable code of a client error (`TidelogError.code` in JavaScript).
pub(crate) fn code(e: &tidelog::Error) -> &'static str {
    use tidelog::Error as E;
    match e {
        E::UnknownTopic(_) => "UNKNOWN_TOPIC",
        E::UnknownPartition(_) => "UNKNOWN_PARTITION",
        E::TopicAlreadyExists(_) => "TOPIC_ALREADY_EXISTS",
        E::InvalidTopicName(_) => "INVALID_TOPIC_NAME",
        E::InvalidConfig(_) => "INVALID_CONFIG",
        E::RecordTooLarge(_) => "RECORD_TOO_LARGE",
        E::CorruptBatch(_) => "CORRUPT_BATCH",
        E::OffsetOutOfRange(_) => "OFFSET_OUT_OF_RANGE",
        E::OutOfOrderSequence(_) => "OUT_OF_ORDER_SEQUENCE",
        E::ProducerFenced(_) => "PRODUCER_FENCED",
        E::UnknownGroup(_) => "UNKNOWN_GROUP",
        E::UnknownMember(_) => "UNKNOWN_MEMBER",
        E::FencedMemberEpoch(_) => "FENCED_MEMBER_EPOCH",
        E::NotAssigned(_) => "NOT_ASSIGNED",
        E::GroupNotEmpty(_) => "GROUP_NOT_EMPTY",
        E::InvalidGroupId(_) => "INVALID_GROUP_ID",
        E::InvalidRequest(_) => "INVALID_REQUEST",
        E::NotLeader(_) => "NOT_LEADER",
        E::Unavailable(_) => "UNAVAILABLE",
        E::Timeout(_) => "TIMEOUT",
        E::Connect { .. } => "CONNECTION_ERROR",
        E::Decode(_) => "DECODE_ERROR",
        E::Closed => "CLOSED",
        E::Broker { .. } => "BROKER_ERROR",
        _ => "UNKNOWN_ERROR",
    }
}

/// A client error as a JavaScript error.
pub(crate) fn to_napi(e: tidelog::Error) -> napi::Error {
    napi::Error::new(Status::GenericFailure, format!("[{}] {e}", code(&e)))
}

/// A bad argument from the caller.
pub(crate) fn invalid(msg: impl std::fmt::Display) -> napi::Error {
    napi::Error::new(Status::InvalidArg, format!("[INVALID_ARGUMENT] {msg}"))
}

/// Use of a producer or consumer after `disconnect()`.
pub(crate) fn closed(what: &str) -> napi::Error {
    napi::Error::new(
        Status::GenericFailure,
        format!("[CLOSED] the {what} is disconnected"),
    )
}
