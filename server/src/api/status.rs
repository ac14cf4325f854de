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
        BrokerError::NotHosted { .. } | BrokerError::NotLeader { .. } => {
            (Code::Unavailable, R::NotLeader)
        }
        BrokerError::QuorumUnavailable(_) => (Code::Unavailable, R::QuorumUnavailable),
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
        // A listed object that is gone is as lost as a corrupt one: not
        // retriable (an outage stays `StorageUnavailable` below).
        BrokerError::Tiering(
            TieringError::Corrupt { .. }
            | TieringError::Missing { .. }
            | TieringError::BucketLost { .. },
        ) => (Code::DataLoss, R::RemoteDataLoss),
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

/// Converts a broker error to a status carrying the reason in metadata
/// (and, for NOT_LEADER, who leads).
pub fn to_status(e: &BrokerError) -> Status {
    let mut status = with_reason(classify(e), e.to_string());
    if let BrokerError::NotLeader {
        leader: Some((id, address)),
        ..
    } = e
    {
        if let (Ok(id), Ok(address)) = (id.to_string().parse(), address.parse()) {
            status
                .metadata_mut()
                .insert(tidelog_proto::LEADER_ID_KEY, id);
            status
                .metadata_mut()
                .insert(tidelog_proto::LEADER_ADDRESS_KEY, address);
        }
    }
    status
}

/// Converts a group error to a status carrying the reason in metadata.
pub fn group_status(e: &GroupError) -> Status {
    with_reason(classify_group(e), e.to_string())
}

fn with_reason((code, reason): (Code, ErrorReason), message: String) -> Status {
    // Clients print the message as one line (a CLI error, a log field):
    // an error that wraps a multi-line text must not break that.
    let message = if message.contains('\n') {
        message.split_whitespace().collect::<Vec<_>>().join(" ")
    } else {
        message
    };
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

    #[test]
    fn a_missing_remote_object_is_data_loss_and_an_outage_is_retriable() {
        let missing = BrokerError::Tiering(TieringError::Missing {
            partition: "t/0".into(),
            key: "topics/t/1/0/segments/a.log".into(),
            from: 0,
            to: 120,
        });
        assert_eq!(
            classify(&missing),
            (Code::DataLoss, ErrorReason::RemoteDataLoss)
        );
        let s = to_status(&missing);
        assert!(s.message().contains("t/0"), "{}", s.message());
        assert!(s.message().contains("0..120"), "{}", s.message());
        assert!(
            s.message().contains("read from offset 120"),
            "{}",
            s.message()
        );
        let outage = BrokerError::Tiering(TieringError::store(
            "get range",
            "k",
            object_store::Error::Generic {
                store: "S3",
                source: "connection refused".into(),
            },
        ));
        assert_eq!(
            classify(&outage),
            (Code::Unavailable, ErrorReason::StorageUnavailable)
        );
        let multi = BrokerError::Storage("line one\nline two".into());
        assert!(!to_status(&multi).message().contains('\n'));
    }
}
