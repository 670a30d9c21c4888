//! The progress display of a training run, for burn-train: on a terminal a bar per split
//! (with the running loss and accuracy, throughput and ETA), in a pipe a line every 10 % of
//! an epoch's training split (with its ETA), and in both one line per finished epoch that
//! stays:
//!
//! ```text
//! epoch 1/2: train loss 0.5213 acc 81.52 % | test loss 0.4401 acc 84.10 % | 312 img/s | 192.3 s + 9.1 s test
//! ```
//!
//! It prints only when progress is turned on ([`crate::progress::enable`], as the `xbn`
//! command line does); a library user's run is silent.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use burn::train::logger::{EvaluationProgressLogger, TrainingProgressLogger};
use burn::train::metric::{MetricDefinition, MetricId, NumericEntry};
use burn::train::renderer::{
    EvaluationName, MetricState, MetricsRenderer, MetricsRendererEvaluation,
    MetricsRendererTraining,
};

use crate::progress::{self, Progress};

/// Mean loss and accuracy of a finished split, its duration and size.
#[derive(Clone, Copy, Debug, Default)]
struct SplitSummary {
    loss: f64,
    accuracy: f64,
    seconds: f64,
    items: usize,
}

/// The display (see the module documentation).
pub struct LineRenderer {
    names: HashMap<MetricId, String>,
    /// Per metric name: (weighted sum, weight) of the batch values of the current split.
    sums: HashMap<String, (f64, f64)>,
    epoch: usize,
    total_epochs: usize,
    split: String,
    split_total: usize,
    next_report: usize,
    split_start: Instant,
    train: Option<SplitSummary>,
    /// Draw bars (standard error is a terminal) instead of 10 % lines.
    bars: bool,
    bar: Option<Progress>,
}

impl Default for LineRenderer {
    fn default() -> Self {
        Self::new()
    }
}

/// `1m32s`, `45s`, `2h05m`.
pub(crate) fn human_duration(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
    }
}

impl LineRenderer {
    /// A display writing lines to standard output and bars to standard error.
    pub fn new() -> Self {
        Self {
            names: HashMap::new(),
            sums: HashMap::new(),
            epoch: 1,
            total_epochs: 0,
            split: String::new(),
            split_total: 0,
            next_report: 0,
            split_start: Instant::now(),
            train: None,
            bars: std::io::stderr().is_terminal(),
            bar: None,
        }
    }

    fn record(&mut self, state: MetricState) {
        if let MetricState::Numeric(entry, Some(value)) = state
            && let Some(name) = self.names.get(&entry.metric_id)
        {
            let (v, w) = match value {
                NumericEntry::Aggregated {
                    aggregated_value,
                    count,
                } => (aggregated_value, count as f64),
                other => (other.current(), 1.0),
            };
            let sum = self.sums.entry(name.clone()).or_default();
            sum.0 += v * w;
            sum.1 += w;
        }
    }

    fn mean(&self, name: &str) -> Option<f64> {
        self.sums
            .get(name)
            .filter(|(_, w)| *w > 0.0)
            .map(|(s, w)| s / w)
    }

    fn metrics(&self) -> String {
        let mut out = String::new();
        if let Some(loss) = self.mean("Loss") {
            out.push_str(&format!(" loss {loss:.4}"));
        }
        if let Some(acc) = self.mean("Accuracy") {
            out.push_str(&format!(" acc {acc:.2} %"));
        }
        out
    }

    /// Prints a line to standard output (above the bar, if one is drawn). A closed pipe
    /// must not stop the training: write errors are ignored.
    fn print(&self, line: &str) {
        if !progress::enabled() {
            return;
        }
        let write = || {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{line}");
            let _ = out.flush();
        };
        match &self.bar {
            Some(bar) => bar.suspend(write),
            None => write(),
        }
    }

    /// The 10 % line of a pipe.
    fn progress_line(&self, done: usize) {
        let secs = self.split_start.elapsed().as_secs_f64().max(1e-9);
        let pct = 100 * done / self.split_total.max(1);
        let rate = done as f64 / secs;
        let left = self.split_total.saturating_sub(done) as f64 / rate.max(1e-9);
        self.print(&format!(
            "epoch {}/{} {:<5} {pct:>3}% {done}/{}{} {rate:.0} img/s, ETA {}",
            self.epoch,
            self.total_epochs,
            self.split,
            self.split_total,
            self.metrics(),
            human_duration(Duration::from_secs_f64(left))
        ));
    }

    fn summary(&self) -> SplitSummary {
        SplitSummary {
            loss: self.mean("Loss").unwrap_or(f64::NAN),
            accuracy: self.mean("Accuracy").unwrap_or(f64::NAN),
            seconds: self.split_start.elapsed().as_secs_f64(),
            items: self.split_total,
        }
    }
}

impl MetricsRendererTraining for LineRenderer {
    fn update_train(&mut self, state: MetricState) {
        self.record(state);
    }

    fn update_valid(&mut self, state: MetricState) {
        self.record(state);
    }
}

impl MetricsRendererEvaluation for LineRenderer {
    fn update_test(&mut self, _name: EvaluationName, state: MetricState) {
        self.record(state);
    }
}

impl TrainingProgressLogger for LineRenderer {
    fn start(
        &mut self,
        total_epochs: usize,
        starting_epoch: usize,
        _: Option<usize>,
        _: Option<&str>,
    ) {
        self.total_epochs = total_epochs;
        self.epoch = starting_epoch.max(1);
        let plural = if total_epochs == 1 { "" } else { "s" };
        let start = match self.epoch {
            1 => String::new(),
            e => format!(", starting at epoch {e}"),
        };
        self.print(&format!("training for {total_epochs} epoch{plural}{start}"));
    }

    fn update_epoch(&mut self, epoch: usize) {
        self.epoch = epoch + 1;
    }

    fn start_split(&mut self, split: &str, total_items: usize) {
        self.split = if split.eq_ignore_ascii_case("valid") {
            "test".into()
        } else {
            split.to_lowercase()
        };
        self.split_total = total_items;
        self.sums.clear();
        self.next_report = total_items / 10;
        self.split_start = Instant::now();
        self.bar = self.bars.then(|| {
            Progress::new(
                total_items as u64,
                "img",
                format!("epoch {}/{} {}", self.epoch, self.total_epochs, self.split),
            )
        });
    }

    fn update_split(&mut self, items_processed: usize) {
        if let Some(bar) = &self.bar {
            bar.set_position(items_processed as u64);
            bar.set_message(format!(
                "epoch {}/{} {}{}",
                self.epoch,
                self.total_epochs,
                self.split,
                self.metrics()
            ));
        } else if self.split == "train"
            && items_processed >= self.next_report
            && items_processed < self.split_total
        {
            self.progress_line(items_processed);
            self.next_report = items_processed + self.split_total / 10;
        }
    }

    fn end_split(&mut self) {
        let summary = self.summary();
        self.bar = None;
        if self.split == "train" {
            self.train = Some(summary);
            return;
        }
        let train = self.train.take().unwrap_or_default();
        self.print(&format!(
            "epoch {}/{}: train loss {:.4} acc {:.2} % | test loss {:.4} acc {:.2} % | {:.0} img/s | {:.1} s + {:.1} s test",
            self.epoch,
            self.total_epochs,
            train.loss,
            train.accuracy,
            summary.loss,
            summary.accuracy,
            train.items as f64 / train.seconds.max(1e-9),
            train.seconds,
            summary.seconds
        ));
    }

    fn end(&mut self) {
        self.bar = None;
    }

    fn log_event_training(&mut self, _event: String) {}
}

impl EvaluationProgressLogger for LineRenderer {
    fn start_global_progress(&mut self, _total_tests: usize) {}

    fn start_test(&mut self, name: &str, total_items: usize) {
        self.start_split(name, total_items);
    }

    fn update_test_progress(&mut self, items_processed: usize) {
        self.update_split(items_processed);
    }

    fn end_test(&mut self) {
        self.end_split();
    }

    fn end_global_progress(&mut self) {}

    fn log_event_evaluation(&mut self, _event: String) {}
}

impl MetricsRenderer for LineRenderer {
    fn manual_close(&mut self) {}

    fn register_metric(&mut self, definition: MetricDefinition) {
        self.names
            .insert(definition.metric_id.clone(), definition.name.to_string());
    }
}
