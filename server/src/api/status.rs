//! The one place where broker errors become gRPC statuses.

use tidelog_proto::v1::ErrorReason;
use tidelog_proto::ERROR_REASON_KEY;
use tonic::{Code, Status};

use crate::broker::BrokerError;
use crate::groups::GroupError;
use crate::log::LogError;
use crate::tiering::TieringError;

/// Code and stable reason for an error.
pub fn classify(e: &BrokerError) -> (Code, ErrorReason) {
    use ErrorReason as R;
    match e {
        BrokerError::UnknownTopic(_) | BrokerError::TopicDeleted(_) => {
            (Code::NotFound, R::UnknownTopic)
        }
        BrokerError::UnknownPartition { .. } => (Code::NotFound, R::UnknownPartition),
        BrokerError::TopicExists(_) => (Code::AlreadyExists, R::TopicAlreadyExists),
        BrokerError::InvalidTopicName { .. } => (Code::InvalidArgument, R::InvalidTopicName),
        BrokerError::InvalidConfig(_) => (Code::InvalidArgument, R::InvalidConfig),
        BrokerError::InvalidRequest(_) => (Code::InvalidArgument, R::InvalidRequest),
        BrokerError::Storage(_) => (Code::Unavailable, R::StorageUnavailable),
        BrokerError::ShuttingDown => (Code::Unavailable, R::ShuttingDown),
        BrokerError::DiskFull { .. } => (Code::Unavailable, R::StorageUnavailable),
        // Damaged stored data, on this broker's disk or in the bucket: the
        // reason says which copy, neither is retriable.
        BrokerError::LocalDataLoss { .. } | BrokerError::MissingOffsets { .. } => {
            (Code::DataLoss, R::LocalDataLoss)
        }
        BrokerError::Tiering(TieringError::Corrupt { .. }) => (Code::DataLoss, R::RemoteDataLoss),
        BrokerError::Tiering(_) => (Code::Unavailable, R::StorageUnavailable),
        BrokerError::Log(l) => match l {
            LogError::Corrupt(_) => (Code::InvalidArgument, R::CorruptBatch),
            // Only reached if a caller did not attach the partition (see
            // `Partition::fetch`); still stored data, still data loss.
            LogError::Damaged { .. } | LogError::Missing { .. } => {
                (Code::DataLoss, R::LocalDataLoss)
            }
            LogError::RecordTooLarge { .. } => (Code::InvalidArgument, R::RecordTooLarge),
            LogError::OutOfOrderSequence { .. } => {
                (Code::FailedPrecondition, R::OutOfOrderSequence)
            }
            LogError::ProducerFenced { .. } => (Code::FailedPrecondition, R::ProducerFenced),
            LogError::DuplicateSequence { .. } => (Code::AlreadyExists, R::DuplicateSequenceNumber),
            LogError::OffsetOutOfRange { .. } => (Code::OutOfRange, R::OffsetOutOfRange),
            LogError::Io { .. }
            | LogError::Failed(_)
            | LogError::LogExists(_)
            | LogError::BelowRecoveryPoint { .. } => (Code::Unavailable, R::StorageUnavailable),
        },
    }
}

/// Code and stable reason for a group error.
pub fn classify_group(e: &GroupError) -> (Code, ErrorReason) {
    use ErrorReason as R;
    match e {
        GroupError::UnknownGroup(_) => (Code::NotFound, R::UnknownGroup),
        GroupError::UnknownMember { .. } => (Code::NotFound, R::UnknownMember),
        GroupError::FencedEpoch { .. } => (Code::FailedPrecondition, R::FencedMemberEpoch),
        GroupError::NotAssigned { .. } => (Code::FailedPrecondition, R::NotAssigned),
        GroupError::GroupNotEmpty { .. } => (Code::FailedPrecondition, R::GroupNotEmpty),
        GroupError::InvalidGroupId(_) => (Code::InvalidArgument, R::InvalidGroupId),
        GroupError::InvalidRequest(_) => (Code::InvalidArgument, R::InvalidRequest),
        GroupError::Storage(_) => (Code::Unavailable, R::StorageUnavailable),
        GroupError::Broker(b) => classify(b),
    }
}

/// Converts a broker error to a status carrying the reason in metadata.
pub fn to_status(e: &BrokerError) -> Status {
    with_reason(classify(e), e.to_string())
}

/// Converts a group error to a status carrying the reason in metadata.
pub fn group_status(e: &GroupError) -> Status {
    with_reason(classify_group(e), e.to_string())
}

fn with_reason((code, reason): (Code, ErrorReason), message: String) -> Status {
    let mut status = Status::new(code, message);
    if let Ok(v) = reason.as_str_name().parse() {
        status.metadata_mut().insert(ERROR_REASON_KEY, v);
    }
    status
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_travel_in_metadata() {
        let s = to_status(&BrokerError::UnknownTopic("t".into()));
        assert_eq!(s.code(), Code::NotFound);
        assert_eq!(
            s.metadata()
                .get(ERROR_REASON_KEY)
                .and_then(|v| v.to_str().ok()),
            Some("UNKNOWN_TOPIC")
        );
        assert!(s.message().contains("tidelog topic create"));
    }
}
