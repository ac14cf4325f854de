//! The consumer-group protocol as `proto/tidelog/v1/tidelog.proto` states
//! it, driven over raw gRPC: which member epochs the coordinator accepts
//! (KIP-848's rules), commits of partitions being revoked, and offset
//! resets that clamp.

use tidelog::NewTopic;
use tidelog_e2e::error_reason as reason;
use tidelog_e2e::BrokerProcess;
use tidelog_proto::v1::{
    groups_client::GroupsClient, reset_spec, CommitOffsetsRequest, GroupHeartbeatRequest,
    GroupHeartbeatResponse, OffsetCommit, ResetOffsetsRequest, ResetSpec, TopicPartitions,
};
use tonic::transport::Channel;
use tonic::Code;

struct Member {
    c: GroupsClient<Channel>,
    id: String,
}

impl Member {
    async fn join(addr: &str) -> (Self, GroupHeartbeatResponse) {
        let mut m = Member {
            c: GroupsClient::connect(format!("http://{addr}"))
                .await
                .expect("connect"),
            id: String::new(),
        };
        let r = m.beat(0, &[]).await.expect("join");
        m.id = r.member_id.clone();
        (m, r)
    }

    async fn beat(
        &mut self,
        epoch: i32,
        owned: &[u32],
    ) -> Result<GroupHeartbeatResponse, tonic::Status> {
        self.c
            .heartbeat(GroupHeartbeatRequest {
                group_id: "g".into(),
                member_id: self.id.clone(),
                member_epoch: epoch,
                topics: vec!["t".into()],
                owned: vec![TopicPartitions {
                    topic: "t".into(),
                    partitions: owned.to_vec(),
                }],
                session_timeout_ms: 30_000,
                client_id: "test".into(),
            })
            .await
            .map(|r| r.into_inner())
    }

    async fn commit(&mut self, epoch: i32, partition: u32) -> Result<(), tonic::Status> {
        self.c
            .commit_offsets(CommitOffsetsRequest {
                group_id: "g".into(),
                member_id: self.id.clone(),
                member_epoch: epoch,
                offsets: vec![OffsetCommit {
                    topic: "t".into(),
                    partition,
                    offset: 0,
                    metadata: String::new(),
                }],
            })
            .await
            .map(|_| ())
    }
}

fn partitions(r: &GroupHeartbeatResponse) -> Vec<u32> {
    let mut v: Vec<u32> = r
        .assignment
        .iter()
        .flat_map(|t| t.partitions.iter().copied())
        .collect();
    v.sort_unstable();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn epochs_revocation_commits_and_resets_follow_the_contract() {
    let broker = BrokerProcess::start();
    let client = broker.client().await;
    client
        .admin()
        .create_topic(NewTopic::new("t", 2))
        .await
        .expect("create");

    let (mut a, joined) = Member::join(&broker.addr).await;
    assert_eq!(partitions(&joined), vec![0, 1]);
    let e1 = joined.member_epoch;
    assert_eq!(a.beat(e1, &[0, 1]).await.expect("beat").member_epoch, e1);

    // B joins; A's next answer revokes one partition and bumps its epoch.
    let (mut b, b_joined) = Member::join(&broker.addr).await;
    // B claims to own everything it was never given: the coordinator does
    // not believe it, so B can neither commit nor pin those partitions.
    let eb = b
        .beat(b_joined.member_epoch, &[0, 1])
        .await
        .expect("beat")
        .member_epoch;
    let s = b.commit(eb, 0).await.expect_err("never assigned");
    assert_eq!(reason(&s), "NOT_ASSIGNED");
    let r = a.beat(e1, &[0, 1]).await.expect("beat");
    let e2 = r.member_epoch;
    assert!(e2 > e1);
    let kept = partitions(&r);
    assert_eq!(kept.len(), 1);
    let revoked = 1 - kept[0];

    // That answer was "lost": A comes back with its previous epoch while
    // still owning the revoked partition. KIP-848 fences it.
    let s = a.beat(e1, &[0, 1]).await.expect_err("stale epoch");
    assert_eq!(
        (s.code(), reason(&s).as_str()),
        (Code::FailedPrecondition, "FENCED_MEMBER_EPOCH")
    );

    // Revocation: while A still reports owning the revoked partition it
    // may commit it (its progress before giving it up)...
    let r = a.beat(e2, &[0, 1]).await.expect("beat");
    assert_eq!(r.member_epoch, e2);
    a.commit(e2, revoked)
        .await
        .expect("commit while still owned");
    // ...and not once its heartbeat stops listing it; nor can it take the
    // partition back by listing it again.
    a.beat(e2, &kept).await.expect("beat");
    let s = a.commit(e2, revoked).await.expect_err("revoked");
    assert_eq!(
        (s.code(), reason(&s).as_str()),
        (Code::FailedPrecondition, "NOT_ASSIGNED")
    );
    a.beat(e2, &[0, 1]).await.expect("beat");
    assert_eq!(
        reason(&a.commit(e2, revoked).await.expect_err("given up")),
        "NOT_ASSIGNED"
    );

    // With only its current assignment owned, the previous epoch is a lost
    // answer: accepted, and answered with the current epoch again.
    let r = a.beat(e1, &kept).await.expect("lost answer");
    assert_eq!((r.member_epoch, partitions(&r)), (e2, kept.clone()));
    // Commits take the current or previous epoch, nothing older.
    a.commit(e2, kept[0]).await.expect("current epoch");
    let s = a.commit(e1 - 1, kept[0]).await.expect_err("older epoch");
    assert_eq!(reason(&s), "FENCED_MEMBER_EPOCH");

    // ResetSpec.offset is clamped to [log start, log end], -5 included.
    let r =
        a.c.reset_offsets(ResetOffsetsRequest {
            group_id: "g".into(),
            topic: "t".into(),
            partitions: vec![],
            spec: Some(ResetSpec {
                spec: Some(reset_spec::Spec::Offset(-5)),
            }),
            dry_run: true,
            force: false,
        })
        .await
        .expect("clamped, not refused")
        .into_inner();
    assert!(r.plan.iter().all(|e| e.new_offset == 0), "{:?}", r.plan);
}
