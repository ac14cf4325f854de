//! The result of a run, its two output formats (the human summary and the
//! `--json` line), and the latency histograms behind it.

use std::time::Duration;

use hdrhistogram::Histogram;

use crate::Mode;

/// Largest latency the histograms hold, in microseconds (10 minutes).
const MAX_LATENCY_US: u64 = 600_000_000;

/// An empty latency histogram in microseconds.
pub(crate) fn histogram() -> Histogram<u64> {
    // 1 µs .. 10 min at 3 significant digits; these bounds are valid.
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).expect("constant histogram bounds are valid")
}

/// Records `d` in `h`, clamped to the histogram's range.
pub(crate) fn record_us(h: &mut Histogram<u64>, d: Duration) {
    h.saturating_record((d.as_micros() as u64).clamp(1, MAX_LATENCY_US));
}

/// Latency percentiles in ms.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Latency {
    p50: f64,
    p99: f64,
    p999: f64,
    max: f64,
}

impl Latency {
    pub(crate) fn from_histogram(h: &Histogram<u64>) -> Option<Self> {
        if h.is_empty() {
            return None;
        }
        let ms = |us: u64| us as f64 / 1000.0;
        Some(Latency {
            p50: ms(h.value_at_quantile(0.5)),
            p99: ms(h.value_at_quantile(0.99)),
            p999: ms(h.value_at_quantile(0.999)),
            max: ms(h.max()),
        })
    }
}

/// The result of a run.
#[derive(Debug, Clone)]
pub(crate) struct Summary {
    pub mode: Mode,
    pub records: u64,
    pub bytes: u64,
    pub seconds: f64,
    pub latency: Option<Latency>,
    /// Send→ack latency during an e2e run (printed, not in the JSON).
    pub ack_latency: Option<Latency>,
}

impl Summary {
    fn records_per_sec(&self) -> f64 {
        if self.seconds > 0.0 {
            self.records as f64 / self.seconds
        } else {
            0.0
        }
    }

    fn mb_per_sec(&self) -> f64 {
        if self.seconds > 0.0 {
            self.bytes as f64 / 1e6 / self.seconds
        } else {
            0.0
        }
    }

    /// The `--json` line; its fields are documented in BENCHMARKS.md and
    /// checked by tests/tests/bench.rs.
    pub(crate) fn to_json(&self) -> serde_json::Value {
        let round = |v: f64| (v * 1000.0).round() / 1000.0;
        let latency = match self.latency {
            Some(l) => serde_json::json!({
                "p50": round(l.p50),
                "p99": round(l.p99),
                "p999": round(l.p999),
                "max": round(l.max),
            }),
            None => serde_json::json!({"p50": null, "p99": null, "p999": null, "max": null}),
        };
        serde_json::json!({
            "mode": self.mode.name(),
            "records": self.records,
            "bytes": self.bytes,
            "seconds": round(self.seconds),
            "records_per_sec": round(self.records_per_sec()),
            "mb_per_sec": round(self.mb_per_sec()),
            "latency_ms": latency,
        })
    }

    /// The summary lines for a person.
    pub(crate) fn human(&self) -> String {
        let mut s = format!(
            "{}: {} records, {:.1} MB in {:.3} s: {:.0} records/s, {:.1} MB/s",
            self.mode.name(),
            self.records,
            self.bytes as f64 / 1e6,
            self.seconds,
            self.records_per_sec(),
            self.mb_per_sec()
        );
        let what = match self.mode {
            Mode::E2e => "send→delivered",
            _ => "send→ack",
        };
        if let Some(l) = self.latency {
            s.push_str(&format!(
                "\n  latency {what} ms: p50 {:.3}  p99 {:.3}  p99.9 {:.3}  max {:.3}",
                l.p50, l.p99, l.p999, l.max
            ));
        }
        if let Some(l) = self.ack_latency {
            s.push_str(&format!(
                "\n  latency send→ack ms:       p50 {:.3}  p99 {:.3}  p99.9 {:.3}  max {:.3}",
                l.p50, l.p99, l.p999, l.max
            ));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_has_the_documented_fields() {
        let s = Summary {
            mode: Mode::Produce,
            records: 10,
            bytes: 10_000,
            seconds: 2.0,
            latency: Some(Latency {
                p50: 1.0,
                p99: 2.0,
                p999: 3.0,
                max: 4.0,
            }),
            ack_latency: None,
        };
        let v = s.to_json();
        assert_eq!(v["mode"], "produce");
        assert_eq!(v["records_per_sec"], 5.0);
        assert_eq!(v["mb_per_sec"], 0.005);
        assert_eq!(v["latency_ms"]["p999"], 3.0);
    }

    #[test]
    fn histogram_records_microseconds() {
        let mut h = histogram();
        record_us(&mut h, Duration::from_millis(2));
        let l = Latency::from_histogram(&h).map(|l| l.p50);
        assert!(l.is_some_and(|ms| (ms - 2.0).abs() < 0.01));
    }
}
