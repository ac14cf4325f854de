//! The once-a-second progress line on stderr, and the counters it reads.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::Mode;

/// Counters shared with the progress reporter.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub sent: AtomicU64,
    pub acked: AtomicU64,
    pub delivered: AtomicU64,
}

/// A running progress reporter; [`Progress::stop`] ends it.
pub(crate) struct Progress {
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Progress {
    /// Prints a progress line on stderr every second until stopped.
    pub(crate) fn start(mode: Mode, counters: Arc<Counters>, record_size: usize) -> Self {
        let stop = CancellationToken::new();
        let task = tokio::spawn(report(mode, counters, record_size, stop.clone()));
        Progress { stop, task }
    }

    /// Stops the reporter and waits until its last line is out.
    pub(crate) async fn stop(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }
}

async fn report(mode: Mode, counters: Arc<Counters>, record_size: usize, stop: CancellationToken) {
    let tty = std::io::stderr().is_terminal();
    let started = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.tick().await;
    let mut last = 0u64;
    let mut printed = false;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.cancelled() => break,
        }
        let (sent, acked, delivered) = (
            counters.sent.load(Ordering::Relaxed),
            counters.acked.load(Ordering::Relaxed),
            counters.delivered.load(Ordering::Relaxed),
        );
        let main = match mode {
            Mode::Produce => acked,
            _ => delivered,
        };
        let rate = main.saturating_sub(last);
        last = main;
        let line = format!(
            "[{:>5.0}s] {}: {:>9} rec/s {:>8.1} MB/s | sent {} acked {} delivered {}",
            started.elapsed().as_secs_f64(),
            mode.name(),
            rate,
            rate as f64 * record_size as f64 / 1e6,
            sent,
            acked,
            delivered
        );
        // On a terminal the line rewrites itself; in a log, one per second.
        if tty {
            eprint!("\r{line}\x1b[K");
        } else {
            eprintln!("{line}");
        }
        printed = true;
    }
    if tty && printed {
        eprintln!();
    }
}
