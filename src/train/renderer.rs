//! A line-oriented progress display for burn-train, used when the output is not a terminal
//! (a log file, CI). In a terminal, burn-train's own dashboard is used.

use std::collections::HashMap;
use std::io::Write;
use std::time::Instant;

use burn::train::logger::{EvaluationProgressLogger, TrainingProgressLogger};
use burn::train::metric::{MetricDefinition, MetricId, NumericEntry};
use burn::train::renderer::{
    EvaluationName, MetricState, MetricsRenderer, MetricsRendererEvaluation,
    MetricsRendererTraining,
};

/// Prints one line every 10 % of an epoch's training split and one at the end of each split,
/// with the split's mean loss and accuracy so far and the throughput, e.g.
/// `epoch 1/2 train  40% 24064/60000 loss 0.6931 acc 74.5200% 243 img/s`.
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
}

impl Default for LineRenderer {
    fn default() -> Self {
        Self::new()
    }
}

impl LineRenderer {
    /// A renderer writing to standard output.
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

    fn line(&self, done: usize) {
        let fmt = |name: &str, label: &str, unit: &str| {
            self.sums
                .get(name)
                .filter(|(_, w)| *w > 0.0)
                .map(|(s, w)| format!(" {label} {:.4}{unit}", s / w))
                .unwrap_or_default()
        };
        let secs = self.split_start.elapsed().as_secs_f64().max(1e-9);
        let pct = 100 * done / self.split_total.max(1);
        let mut out = std::io::stdout().lock();
        // A closed pipe must not stop the training: write errors are ignored.
        let _ = writeln!(
            out,
            "epoch {}/{} {:<5} {pct:>3}% {done}/{}{}{} {:.0} img/s",
            self.epoch,
            self.total_epochs,
            self.split,
            self.split_total,
            fmt("Loss", "loss", ""),
            fmt("Accuracy", "acc", "%"),
            done as f64 / secs
        );
        let _ = out.flush();
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
        let _ = writeln!(
            std::io::stdout(),
            "training for {total_epochs} epochs, starting at epoch {}",
            self.epoch
        );
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
    }

    fn update_split(&mut self, items_processed: usize) {
        if self.split == "train"
            && items_processed >= self.next_report
            && items_processed < self.split_total
        {
            self.line(items_processed);
            self.next_report = items_processed + self.split_total / 10;
        }
    }

    fn end_split(&mut self) {
        self.line(self.split_total);
    }

    fn end(&mut self) {}

    fn log_event_training(&mut self, _event: String) {}
}

impl EvaluationProgressLogger for LineRenderer {
    fn start_global_progress(&mut self, _total_tests: usize) {}

    fn start_test(&mut self, name: &str, total_items: usize) {
        self.start_split(name, total_items);
    }

    fn update_test_progress(&mut self, _items_processed: usize) {}

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
