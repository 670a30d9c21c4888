//! Per-epoch metrics of a run, as a CSV file written by a burn-train metric logger.

use std::collections::HashMap;
use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::train::logger::MetricLogger;
use burn::train::metric::store::{EpochSummary, MetricsUpdate, Split};
use burn::train::metric::{MetricDefinition, MetricId, NumericEntry};
use serde::{Deserialize, Serialize};

/// One row of `metrics.csv`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpochRow {
    /// Epoch number, from 1.
    pub epoch: usize,
    /// Learning rate of the epoch.
    pub lr: f64,
    /// Mean training loss over the epoch (cross-entropy, training mode): burn-train's mean
    /// of the per-batch mean losses, each batch counting once.
    pub train_loss: f64,
    /// Training accuracy over the epoch, percent (training mode, augmented images).
    pub train_accuracy: f64,
    /// Test loss (inference mode), averaged like `train_loss` (so it can differ slightly
    /// from the per-image mean of [`evaluate`](super::evaluate) when the last batch is
    /// smaller).
    pub test_loss: f64,
    /// Test accuracy, percent (inference mode).
    pub test_accuracy: f64,
    /// Wall-clock seconds of the training part of the epoch.
    pub train_seconds: f64,
    /// Training images per second.
    pub train_images_per_second: f64,
    /// Wall-clock seconds of the test pass.
    pub test_seconds: f64,
}

/// Column names of `metrics.csv`, in order.
pub const CSV_HEADER: &str = "epoch,lr,train_loss,train_accuracy,test_loss,test_accuracy,train_seconds,train_images_per_second,test_seconds";

/// A burn-train [`MetricLogger`] that appends one [`EpochRow`] to a CSV file at the end of
/// every epoch. It reads the epoch averages burn-train computes (`running_entry`) for the
/// `Loss` and `Accuracy` metrics; the learning rate comes from the run's schedule.
pub struct EpochCsvLogger {
    path: PathBuf,
    train_images: usize,
    lr_of_epoch: Box<dyn Fn(usize) -> f64 + Send>,
    names: HashMap<MetricId, String>,
    last: HashMap<(bool, String), f64>,
    epoch_start: Instant,
    train_seconds: f64,
}

impl EpochCsvLogger {
    /// A logger appending to `path` (the header is written when the file is new);
    /// `train_images` is the number of training images per epoch and `lr_of_epoch` maps
    /// an epoch number (from 1) to its learning rate.
    pub fn new(
        path: &Path,
        train_images: usize,
        lr_of_epoch: impl Fn(usize) -> f64 + Send + 'static,
    ) -> Self {
        Self {
            path: path.to_path_buf(),
            train_images,
            lr_of_epoch: Box::new(lr_of_epoch),
            names: HashMap::new(),
            last: HashMap::new(),
            epoch_start: Instant::now(),
            train_seconds: 0.0,
        }
    }

    fn get(&self, valid: bool, name: &str) -> f64 {
        self.last
            .get(&(valid, name.to_string()))
            .copied()
            .unwrap_or(f64::NAN)
    }

    fn append(&self, row: &EpochRow) -> std::io::Result<()> {
        let new = !self.path.exists();
        let mut f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)?;
        if new {
            writeln!(f, "{CSV_HEADER}")?;
        }
        writeln!(
            f,
            "{},{},{},{},{},{},{:.3},{:.1},{:.3}",
            row.epoch,
            row.lr,
            row.train_loss,
            row.train_accuracy,
            row.test_loss,
            row.test_accuracy,
            row.train_seconds,
            row.train_images_per_second,
            row.test_seconds
        )?;
        f.sync_all()
    }
}

impl MetricLogger for EpochCsvLogger {
    fn log(&mut self, update: MetricsUpdate, _epoch: usize, split: &Split) {
        let valid = !matches!(split, Split::Train);
        for u in update.entries_numeric {
            let Some(name) = self.names.get(&u.entry.metric_id) else {
                continue;
            };
            let value = u.running_entry.as_ref().or(u.numeric_entry.as_ref());
            if let Some(v) = value.map(NumericEntry::current) {
                self.last.insert((valid, name.clone()), v);
            }
        }
    }

    fn read_numeric(
        &mut self,
        _name: &str,
        _epoch: usize,
        _split: &Split,
    ) -> Result<Vec<NumericEntry>, String> {
        Err("EpochCsvLogger only writes".to_string())
    }

    fn log_metric_definition(&mut self, definition: MetricDefinition) {
        self.names
            .insert(definition.metric_id.clone(), definition.name.to_string());
    }

    fn log_epoch_summary(&mut self, summary: EpochSummary) {
        let now = Instant::now();
        match summary.split {
            Split::Train => {
                self.train_seconds = now.duration_since(self.epoch_start).as_secs_f64();
                self.epoch_start = now;
            }
            _ => {
                let test_seconds = now.duration_since(self.epoch_start).as_secs_f64();
                let row = EpochRow {
                    epoch: summary.epoch_number,
                    lr: (self.lr_of_epoch)(summary.epoch_number),
                    train_loss: self.get(false, "Loss"),
                    train_accuracy: self.get(false, "Accuracy"),
                    test_loss: self.get(true, "Loss"),
                    test_accuracy: self.get(true, "Accuracy"),
                    train_seconds: self.train_seconds,
                    train_images_per_second: self.train_images as f64
                        / self.train_seconds.max(1e-9),
                    test_seconds,
                };
                if let Err(e) = self.append(&row) {
                    eprintln!("warning: cannot append to {}: {e}", self.path.display());
                }
                self.last.clear();
                self.epoch_start = Instant::now();
            }
        }
    }
}

/// Reads `metrics.csv`.
///
/// # Errors
/// The CSV error, e.g. for a file that is not a metrics file.
pub fn read_metrics(path: &Path) -> Result<Vec<EpochRow>, csv::Error> {
    csv::Reader::from_path(path)?.deserialize().collect()
}

/// Keeps only the rows of epochs `≤ last_epoch` (used when a run resumes from the
/// checkpoint of `last_epoch`, so a row written after that checkpoint is not duplicated).
///
/// # Errors
/// The CSV or I/O error.
pub fn truncate_metrics(path: &Path, last_epoch: usize) -> Result<(), csv::Error> {
    if !path.exists() {
        return Ok(());
    }
    let rows: Vec<EpochRow> = read_metrics(path)?
        .into_iter()
        .filter(|r| r.epoch <= last_epoch)
        .collect();
    let tmp = path.with_extension("csv.tmp");
    {
        let mut w = csv::Writer::from_path(&tmp)?;
        for r in &rows {
            w.serialize(r)?;
        }
        if rows.is_empty() {
            w.write_record(CSV_HEADER.split(','))?;
        }
        w.flush()?;
    }
    std::fs::rename(&tmp, path)?;
    Ok(())
}
