//! `tidelog bench` runs against a real broker and its `--json` line parses.
//! No timing assertions: the targets live in BENCHMARKS.md, not in tests.

use tidelog_e2e::BrokerProcess;

/// Runs a bench command and returns the parsed last stdout line.
fn bench(broker: &BrokerProcess, args: &[&str]) -> serde_json::Value {
    let mut all = vec!["bench"];
    all.extend_from_slice(args);
    all.push("--json");
    let out = broker.cli(&all);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "bench {args:?} failed:\nstderr: {stderr}\nstdout: {stdout}\nbroker log:\n{}",
        broker.log()
    );
    let last = stdout.trim_end().lines().last().unwrap_or_default();
    let v: serde_json::Value = serde_json::from_str(last)
        .unwrap_or_else(|e| panic!("last line is not JSON ({e}): {last:?}\nstdout: {stdout}"));
    assert!(v.is_object(), "{v}");
    v
}

fn check_common(v: &serde_json::Value, mode: &str, records: u64, record_size: u64) {
    assert_eq!(v["mode"], mode, "{v}");
    assert_eq!(v["records"].as_u64(), Some(records), "{v}");
    assert_eq!(v["bytes"].as_u64(), Some(records * record_size), "{v}");
    for key in ["seconds", "records_per_sec", "mb_per_sec"] {
        let x = v[key]
            .as_f64()
            .unwrap_or_else(|| panic!("{key} missing: {v}"));
        assert!(x >= 0.0 && x.is_finite(), "{key}={x}: {v}");
    }
    let obj = v.as_object().expect("object");
    assert_eq!(obj.len(), 7, "exactly the documented fields: {v}");
    let lat = v["latency_ms"].as_object().expect("latency_ms object");
    for key in ["p50", "p99", "p999", "max"] {
        assert!(lat.contains_key(key), "latency_ms.{key} missing: {v}");
    }
}

fn check_latency(v: &serde_json::Value) {
    let l = &v["latency_ms"];
    let p50 = l["p50"].as_f64().expect("p50");
    let p99 = l["p99"].as_f64().expect("p99");
    let p999 = l["p999"].as_f64().expect("p999");
    let max = l["max"].as_f64().expect("max");
    assert!(p50 > 0.0 && p50 <= p99 && p99 <= p999 && p999 <= max, "{v}");
}

#[test]
fn produce_consume_and_e2e_report_json() {
    let broker = BrokerProcess::start();

    let v = bench(
        &broker,
        &[
            "produce",
            "--topic",
            "bench-p",
            "--records",
            "20000",
            "--record-size",
            "100",
        ],
    );
    check_common(&v, "produce", 20000, 100);
    check_latency(&v);

    // The topic holds 20000 records: consume reads 15000 of them without
    // producing more.
    let v = bench(
        &broker,
        &[
            "consume",
            "--topic",
            "bench-p",
            "--records",
            "15000",
            "--record-size",
            "100",
        ],
    );
    check_common(&v, "consume", 15000, 100);

    // A fresh topic with three partitions and two consumers: consume
    // produces the records first, then reads exactly that many.
    let v = bench(
        &broker,
        &[
            "consume",
            "--topic",
            "bench-c",
            "--partitions",
            "3",
            "--consumers",
            "2",
            "--records",
            "5000",
            "--record-size",
            "64",
            "--compression",
            "lz4",
        ],
    );
    check_common(&v, "consume", 5000, 64);

    let v = bench(
        &broker,
        &[
            "e2e",
            "--topic",
            "bench-e",
            "--partitions",
            "2",
            "--producers",
            "2",
            "--consumers",
            "2",
            "--records",
            "3000",
            "--record-size",
            "256",
            "--rate",
            "20000",
        ],
    );
    check_common(&v, "e2e", 3000, 256);
    check_latency(&v);

    // catchup reads the whole topic from the beginning.
    let v = bench(
        &broker,
        &["catchup", "--topic", "bench-p", "--record-size", "100"],
    );
    check_common(&v, "catchup", 20000, 100);
}

#[test]
fn bad_flags_fail_with_one_line() {
    let broker = BrokerProcess::start();
    let out = broker.cli(&["bench", "produce", "--records", "0"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--records"), "{err}");
    let out = broker.cli(&["bench", "e2e", "--record-size", "4"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--record-size"), "{err}");
}
