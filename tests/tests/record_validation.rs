//! A client with a correct CRC routine but a bug (or a grudge) must not be
//! able to store a batch that breaks consumers. Each bad batch here is
//! forged from `proto/FORMAT.md` alone and sent over raw gRPC, as a client
//! in another language would send it; the broker must answer
//! `INVALID_ARGUMENT` / `CORRUPT_BATCH`, append nothing, and leave the
//! partition readable.

use bytes::{BufMut, Bytes, BytesMut};
use futures::StreamExt;
use tidelog::{SeekTo, TopicPartition};
use tidelog_e2e::error_reason as reason;
use tidelog_proto::v1::{offset_spec, producer_client::ProducerClient, Acks, ProduceRequest};
use tonic::Code;

const HEADER_LEN: usize = 57;

fn varint(b: &mut BytesMut, mut v: u64) {
    while v >= 0x80 {
        b.put_u8((v as u8) | 0x80);
        v >>= 7;
    }
    b.put_u8(v as u8);
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

/// One record as FORMAT.md lays it out, with every length chosen by the
/// caller (so it can lie).
struct Rec<'a> {
    attributes: u8,
    ts_delta: i64,
    offset_delta: u64,
    key_len: i64,
    key: &'a [u8],
    value_len: i64,
    value: &'a [u8],
    headers: &'a [(&'a [u8], &'a [u8])],
}

impl<'a> Rec<'a> {
    fn ok(offset_delta: u64, value: &'a [u8]) -> Self {
        Rec {
            attributes: 0,
            ts_delta: 0,
            offset_delta,
            key_len: -1,
            key: b"",
            value_len: value.len() as i64,
            value,
            headers: &[],
        }
    }

    fn encode(&self, out: &mut BytesMut) {
        let mut body = BytesMut::new();
        body.put_u8(self.attributes);
        varint(&mut body, zigzag(self.ts_delta));
        varint(&mut body, self.offset_delta);
        varint(&mut body, zigzag(self.key_len));
        body.put_slice(self.key);
        varint(&mut body, zigzag(self.value_len));
        body.put_slice(self.value);
        varint(&mut body, self.headers.len() as u64);
        for (name, value) in self.headers {
            varint(&mut body, name.len() as u64);
            body.put_slice(name);
            varint(&mut body, value.len() as u64);
            body.put_slice(value);
        }
        varint(out, body.len() as u64);
        out.put_slice(&body);
    }
}

fn section(records: &[Rec]) -> Vec<u8> {
    let mut out = BytesMut::new();
    for r in records {
        r.encode(&mut out);
    }
    out.to_vec()
}

/// Header fields a client chooses.
#[derive(Clone, Copy)]
struct Head {
    attributes: u16,
    record_count: u32,
    first_ts: i64,
    max_ts: i64,
    producer_id: i64,
    producer_epoch: i16,
    base_sequence: i32,
}

impl Default for Head {
    fn default() -> Self {
        Head {
            attributes: 0,
            record_count: 1,
            first_ts: 1_000,
            max_ts: 1_000,
            producer_id: -1,
            producer_epoch: -1,
            base_sequence: -1,
        }
    }
}

/// A batch with a correct length and CRC around whatever it is given.
fn batch(h: Head, records_section: &[u8]) -> Bytes {
    let mut b = BytesMut::with_capacity(HEADER_LEN + records_section.len());
    b.put_i64_le(0); // base offset
    b.put_u32_le((HEADER_LEN - 12 + records_section.len()) as u32);
    b.put_i32_le(0); // leader epoch
    b.put_u8(1); // magic
    b.put_u32_le(0); // crc, below
    b.put_u16_le(h.attributes);
    b.put_u32_le(h.record_count);
    b.put_i64_le(h.first_ts);
    b.put_i64_le(h.max_ts);
    b.put_i64_le(h.producer_id);
    b.put_i16_le(h.producer_epoch);
    b.put_i32_le(h.base_sequence);
    b.put_slice(records_section);
    let crc = crc32c_of(&b[21..]);
    b[17..21].copy_from_slice(&crc.to_le_bytes());
    b.freeze()
}

fn crc32c_of(bytes: &[u8]) -> u32 {
    // CRC32C (Castagnoli), reflected, as FORMAT.md names it; bitwise is
    // plenty for test batches.
    let mut crc = !0u32;
    for &byte in bytes {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0x82F6_3B78
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

fn three() -> Vec<u8> {
    section(&[Rec::ok(0, b"a"), Rec::ok(1, b"b"), Rec::ok(2, b"c")])
}

fn lz4_block(claimed: u32, data: &[u8]) -> Vec<u8> {
    let mut out = claimed.to_le_bytes().to_vec();
    out.extend_from_slice(&lz4_flex::block::compress(data));
    out
}

async fn produce(addr: &str, batches: Vec<Bytes>) -> Result<i64, tonic::Status> {
    let mut c = ProducerClient::connect(format!("http://{addr}"))
        .await
        .expect("connect");
    c.produce(ProduceRequest {
        topic: "v".into(),
        partition: 0,
        acks: Acks::All as i32,
        batches,
        request_id: 0,
    })
    .await
    .map(|r| r.into_inner().results[0].base_offset)
}

async fn lookup(addr: &str, spec: offset_spec::Spec) -> Result<(i64, i64), tonic::Status> {
    tidelog_e2e::list_offsets_raw(addr, "v", 0, spec).await
}

async fn log_end(addr: &str) -> i64 {
    lookup(addr, offset_spec::Spec::Latest(true))
        .await
        .expect("list offsets")
        .0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_batches_that_lie_when_produced_should_be_refused_and_append_nothing() {
    let (broker, client) = tidelog_e2e::broker_with_topic("v", 1).await;

    // A control: the forging helpers make batches the broker accepts.
    let good = batch(
        Head {
            record_count: 3,
            ..Head::default()
        },
        &three(),
    );
    assert_eq!(
        produce(&broker.addr, vec![good.clone()]).await.expect("ok"),
        0
    );

    let h = Head::default();
    let many = |n| Head {
        record_count: n,
        ..h
    };
    let zstd_bomb = zstd::bulk::compress(&vec![0u8; 100 << 20], 1).expect("zstd");
    let mut two_frames = zstd::bulk::compress(&three(), 1).expect("zstd");
    two_frames.extend(zstd::bulk::compress(&three(), 1).expect("zstd"));
    let mut lz4_frame = lz4_flex::frame::FrameEncoder::new(Vec::new());
    std::io::Write::write_all(&mut lz4_frame, &three()).expect("lz4 frame");
    let lz4_frame = lz4_frame.finish().expect("lz4 frame");
    let mut trailing = three();
    trailing.push(0);
    let rec = |f: &dyn Fn(&mut Rec)| {
        let mut r = Rec::ok(0, b"v");
        f(&mut r);
        section(&[r])
    };

    let cases: Vec<(&str, Bytes)> = vec![
        ("5 records claimed for 3", batch(many(5), &three())),
        ("2 records claimed for 3", batch(many(2), &three())),
        (
            "u32::MAX records claimed for 1",
            batch(many(u32::MAX), &section(&[Rec::ok(0, b"x")])),
        ),
        ("garbage section", batch(h, &[0xff; 64])),
        ("empty section", batch(h, &[])),
        ("trailing bytes", batch(many(3), &trailing)),
        ("key length -2", batch(h, &rec(&|r| r.key_len = -2))),
        ("value length -3", batch(h, &rec(&|r| r.value_len = -3))),
        (
            "header name not UTF-8",
            batch(h, &rec(&|r| r.headers = &[(&[0xc3, 0x28], b"v")])),
        ),
        (
            "record attributes set",
            batch(h, &rec(&|r| r.attributes = 4)),
        ),
        (
            "offset delta out of place",
            batch(h, &rec(&|r| r.offset_delta = 1)),
        ),
        (
            "reserved batch attribute bits",
            batch(
                Head {
                    attributes: 0x40,
                    record_count: 3,
                    ..h
                },
                &three(),
            ),
        ),
        (
            "lz4 section claiming 1 GiB",
            batch(
                Head {
                    attributes: 1,
                    record_count: 3,
                    ..h
                },
                &lz4_block(1 << 30, &three()),
            ),
        ),
        (
            "lz4 frame instead of block",
            batch(
                Head {
                    attributes: 1,
                    record_count: 3,
                    ..h
                },
                &lz4_frame,
            ),
        ),
        (
            "zstd inflating to 100 MiB",
            batch(
                Head {
                    attributes: 2,
                    record_count: 3,
                    ..h
                },
                &zstd_bomb,
            ),
        ),
        (
            "two zstd frames",
            batch(
                Head {
                    attributes: 2,
                    record_count: 3,
                    ..h
                },
                &two_frames,
            ),
        ),
        (
            "max_timestamp below a record's timestamp",
            batch(Head { max_ts: 1_000, ..h }, &rec(&|r| r.ts_delta = 7_000)),
        ),
        (
            "idempotent producer with a negative sequence",
            batch(
                Head {
                    producer_id: 7,
                    producer_epoch: 0,
                    base_sequence: -1,
                    ..h
                },
                &rec(&|_| ()),
            ),
        ),
    ];
    for (what, bad) in cases {
        // Alone, and behind a good batch in the same request: the whole
        // request is refused.
        for batches in [vec![bad.clone()], vec![good.clone(), bad]] {
            let s = produce(&broker.addr, batches).await.expect_err(what);
            assert_eq!(
                (s.code(), reason(&s).as_str()),
                (Code::InvalidArgument, "CORRUPT_BATCH"),
                "{what}: {}",
                s.message()
            );
            assert!(!s.message().is_empty(), "{what}: no message");
            assert_eq!(
                log_end(&broker.addr).await,
                3,
                "{what}: something was appended"
            );
        }
    }

    // The partition still reads back, and takes new data at the next offset.
    assert_eq!(produce(&broker.addr, vec![good]).await.expect("ok"), 3);
    let mut consumer = client.consumer();
    let tp = TopicPartition::new("v", 0);
    consumer.assign([tp.clone()]);
    consumer.seek(&tp, SeekTo::Beginning).await.expect("seek");
    let mut stream = consumer.stream();
    let mut seen = Vec::new();
    while seen.len() < 6 {
        let r = stream.next().await.expect("record").expect("ok");
        seen.push((r.offset, r.value.expect("value")));
    }
    let values: Vec<_> = seen.iter().map(|(_, v)| v.as_ref().to_vec()).collect();
    assert_eq!(
        values,
        [b"a", b"b", b"c", b"a", b"b", b"c"].map(|v| v.to_vec())
    );
    assert_eq!(
        seen.iter().map(|(o, _)| *o).collect::<Vec<_>>(),
        [0, 1, 2, 3, 4, 5]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_honest_max_timestamps_when_looked_up_by_time_should_find_the_record() {
    let (broker, _client) = tidelog_e2e::broker_with_topic("v", 1).await;
    // Records stamped 1000 and 8000 in one batch; the header says 8000.
    let recs = section(&[
        Rec::ok(0, b"early"),
        Rec {
            ts_delta: 7_000,
            ..Rec::ok(1, b"late")
        },
    ]);
    let honest = batch(
        Head {
            record_count: 2,
            max_ts: 8_000,
            ..Head::default()
        },
        &recs,
    );
    produce(&broker.addr, vec![honest]).await.expect("ok");
    let found = lookup(&broker.addr, offset_spec::Spec::TimestampMs(5_000))
        .await
        .expect("lookup");
    assert_eq!(found, (1, 8_000));
}

/// Data written by an older broker (before records were validated) may
/// hold a batch whose CRC is right but whose records do not decode. A
/// reader gets every record before it, then an error naming its range, and
/// can seek past it; a time lookup that reaches it is DATA_LOSS, not a
/// client error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_an_undecodable_stored_batch_when_read_should_name_it_and_allow_skipping_it() {
    let (mut broker, client) = tidelog_e2e::broker_with_topic("v", 1).await;
    let two = |ts: i64, a: &'static [u8], b: &'static [u8]| {
        batch(
            Head {
                record_count: 2,
                first_ts: ts,
                max_ts: ts,
                ..Head::default()
            },
            &section(&[Rec::ok(0, a), Rec::ok(1, b)]),
        )
    };
    let batches = [
        (1_000, b"a" as &[u8], b"b" as &[u8]),
        (2_000, b"c", b"d"),
        (3_000, b"e", b"f"),
    ];
    for (ts, a, b) in batches {
        produce(&broker.addr, vec![two(ts, a, b)])
            .await
            .expect("produce");
    }
    drop(client);
    assert!(broker.terminate(), "clean stop");

    // As an old broker would have stored it: the second batch's first
    // record claims a key length of -2, with the CRC made to match.
    let seg = broker.data_dir.join("topics/v/0/00000000000000000000.log");
    let mut bytes = std::fs::read(&seg).expect("segment");
    let second = two(1_000, b"a", b"b").len();
    let key_len_at = second + HEADER_LEN + 4; // record length, attributes, ts, offset delta
    assert_eq!(bytes[key_len_at], 1, "the null key's zigzag -1");
    bytes[key_len_at] = 3; // zigzag -2
    let crc = crc32c_of(&bytes[second + 21..2 * second]);
    bytes[second + 17..second + 21].copy_from_slice(&crc.to_le_bytes());
    std::fs::write(&seg, &bytes).expect("write segment");
    broker.start_again();

    let client = broker.client().await;
    let mut consumer = client.consumer();
    let tp = TopicPartition::new("v", 0);
    consumer.assign([tp.clone()]);
    consumer.seek(&tp, SeekTo::Beginning).await.expect("seek");
    let mut got = Vec::new();
    let failure = loop {
        match consumer.next_record().await.expect("assigned") {
            Ok(r) => got.push(r.offset),
            Err(e) => break e,
        }
    };
    assert_eq!(got, [0, 1], "the records before the bad batch arrive");
    match &failure {
        tidelog::Error::UnreadableBatch {
            topic,
            partition,
            first_offset,
            next_offset,
            ..
        } => assert_eq!(
            (topic.as_str(), *partition, *first_offset, *next_offset),
            ("v", 0, 2, 4)
        ),
        other => panic!("{other:?}"),
    }
    assert!(
        failure.to_string().contains("seek to offset 4"),
        "{failure}"
    );
    assert_eq!(consumer.position(&tp), Some(2), "nothing skipped silently");
    // Skipping it, as the message says.
    consumer.seek(&tp, SeekTo::Offset(4)).await.expect("seek");
    let mut rest = Vec::new();
    while rest.len() < 2 {
        rest.push(
            consumer
                .next_record()
                .await
                .expect("assigned")
                .expect("ok")
                .offset,
        );
    }
    assert_eq!(rest, [4, 5]);

    // A time lookup that has to decode it: DATA_LOSS, not CORRUPT_BATCH.
    let s = lookup(&broker.addr, offset_spec::Spec::TimestampMs(1_500))
        .await
        .expect_err("damaged");
    assert_eq!(s.code(), Code::DataLoss, "{}", s.message());
    assert!(s.message().contains("offset"), "{}", s.message());
}
