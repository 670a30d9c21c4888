//! ESM over training: the estimation shift of every BatchNorm on the test set after each
//! epoch (`xbn train --track-esm`).
//!
//! burn-train checkpoints the model after every epoch; [`EsmTracker`] is that checkpointer,
//! wrapping burn-train's file checkpointer. After saving, it loads the checkpoint record
//! into a model built before training started (on the plain device) and measures it in
//! inference mode. The pass runs on the checkpointer's own thread with a copy of the
//! weights and draws no random number, so the training result is unchanged (it only shares
//! the CPU).

use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::store::ModuleRecord;
use burn::tensor::Device;
use burn::train::checkpoint::{Checkpointer, CheckpointerError, FileCheckpointer};
use serde::{Deserialize, Serialize};

use super::metrics_csv::read_metrics;
use super::run::files;
use crate::data::{DatasetKind, ImageDataset};
use crate::esm::{EsmError, EsmReport, line_plot, measure_dataset};
use crate::models::Network;

/// Header of `esm_epochs.csv`.
pub const ESM_CSV_HEADER: &str =
    "epoch,depth,path,channels,esm_mean,esm_var,esm_mean_per_sqrt_c,esm_var_per_sqrt_c";

/// One row of `esm_epochs.csv`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EsmEpochRow {
    /// Epoch, from 1.
    pub epoch: usize,
    /// BatchNorm depth, from 1.
    pub depth: usize,
    /// Module path.
    pub path: String,
    /// Channels.
    pub channels: usize,
    /// ξ_μ.
    pub esm_mean: f64,
    /// ξ_σ².
    pub esm_var: f64,
    /// ξ_μ / sqrt(C).
    pub esm_mean_per_sqrt_c: f64,
    /// ξ_σ² / sqrt(C).
    pub esm_var_per_sqrt_c: f64,
}

impl EsmEpochRow {
    /// The row of `layer` measured after `epoch`.
    pub fn new(epoch: usize, layer: &crate::esm::EsmLayer) -> Self {
        Self {
            epoch,
            depth: layer.depth,
            path: layer.path.clone(),
            channels: layer.channels,
            esm_mean: layer.esm_mean,
            esm_var: layer.esm_var,
            esm_mean_per_sqrt_c: layer.esm_mean_per_sqrt_c,
            esm_var_per_sqrt_c: layer.esm_var_per_sqrt_c,
        }
    }
}

/// A model checkpointer that also measures the ESM of each saved epoch on the test set.
pub struct EsmTracker {
    inner: FileCheckpointer,
    template: Network,
    test_set: ImageDataset,
    kind: DatasetKind,
    batch_size: usize,
    device: Device,
    run_dir: PathBuf,
}

impl EsmTracker {
    /// A tracker saving model checkpoints to `run_dir/checkpoint` and ESM results to
    /// `run_dir`. `template` is a model of the trained architecture (its weights are
    /// replaced by each checkpoint's): build it *before* seeding and building the model to
    /// train, so that its random initial values are not drawn from the training's random
    /// stream.
    pub fn new(
        template: Network,
        test_set: ImageDataset,
        kind: DatasetKind,
        batch_size: usize,
        device: &Device,
        run_dir: &Path,
    ) -> Self {
        let device = if device.is_autodiff() {
            device.clone().inner()
        } else {
            device.clone()
        };
        Self {
            inner: FileCheckpointer::new(run_dir.join(files::CHECKPOINTS), "model"),
            template,
            test_set,
            kind,
            batch_size,
            device,
            run_dir: run_dir.to_path_buf(),
        }
    }

    fn track(&self, epoch: usize, record: ModuleRecord) -> Result<(), EsmError> {
        // No random draw here: training may be drawing from the same generator right now.
        let model = self.template.clone().load_record(record);
        let report = measure_dataset(
            &model,
            self.test_set.clone(),
            self.kind,
            self.batch_size,
            &self.device,
        )?;
        let dir = self.run_dir.join("esm");
        std::fs::create_dir_all(&dir).map_err(|e| EsmError::Io {
            path: dir.clone(),
            reason: e.to_string(),
        })?;
        report.write_json(&dir.join(format!("epoch-{epoch}.json")))?;
        append_rows(&self.run_dir.join(files::ESM_EPOCHS), epoch, &report)?;
        plot_over_epochs(&self.run_dir)
    }
}

/// Adds the rows of `epoch` to `esm_epochs.csv`, replacing any rows of this or later epochs
/// (left by a run that was killed after measuring and is now redoing the epoch).
fn append_rows(path: &Path, epoch: usize, report: &EsmReport) -> Result<(), EsmError> {
    let mut rows = read_rows_or_set_aside(path)?;
    rows.retain(|r| r.epoch < epoch);
    rows.extend(report.layers.iter().map(|l| EsmEpochRow::new(epoch, l)));
    write_esm_epochs(path, &rows)
}

/// The rows of `esm_epochs.csv` (none if there is no such file).
///
/// A file that cannot be parsed (edited by hand, say) is moved aside to the first free
/// name of `esm_epochs.csv.bad`, `esm_epochs.csv.bad.2`, … rather than overwritten, and no
/// rows are returned, so a new file is started.
///
/// # Errors
/// [`EsmError::Io`] naming the file when it cannot be read or moved.
fn read_rows_or_set_aside(path: &Path) -> Result<Vec<EsmEpochRow>, EsmError> {
    let io = |reason: String| EsmError::Io {
        path: path.to_path_buf(),
        reason,
    };
    if !path.exists() {
        return Ok(Vec::new());
    }
    match read_esm_epochs(path) {
        Ok(rows) => Ok(rows),
        Err(e) if matches!(e.kind(), csv::ErrorKind::Io(_)) => Err(io(e.to_string())),
        Err(e) => {
            let kept = (1..)
                .map(|n| match n {
                    1 => path.with_extension("csv.bad"),
                    n => path.with_extension(format!("csv.bad.{n}")),
                })
                .find(|p| !p.exists())
                .expect("a free name");
            eprintln!(
                "warning: {} cannot be parsed ({e}); kept as {} and started anew",
                path.display(),
                kept.display()
            );
            std::fs::rename(path, &kept).map_err(|e| io(e.to_string()))?;
            Ok(Vec::new())
        }
    }
}

/// Writes rows as an `esm_epochs.csv` file (header [`ESM_CSV_HEADER`]).
///
/// # Errors
/// [`EsmError::Io`] naming the file.
pub fn write_esm_epochs(path: &Path, rows: &[EsmEpochRow]) -> Result<(), EsmError> {
    let err = |e: String| EsmError::Io {
        path: path.to_path_buf(),
        reason: e,
    };
    let mut w = csv::Writer::from_writer(Vec::new());
    if rows.is_empty() {
        w.write_record(ESM_CSV_HEADER.split(','))
            .map_err(|e| err(e.to_string()))?;
    }
    for r in rows {
        w.serialize(r).map_err(|e| err(e.to_string()))?;
    }
    let bytes = w.into_inner().map_err(|e| err(e.to_string()))?;
    crate::fsutil::write_atomic(path, &bytes).map_err(|e| err(e.to_string()))
}

/// Reads `esm_epochs.csv`.
///
/// # Errors
/// The CSV error.
pub fn read_esm_epochs(path: &Path) -> Result<Vec<EsmEpochRow>, csv::Error> {
    csv::Reader::from_path(path)?.deserialize().collect()
}

/// Keeps the rows of epochs `≤ last_epoch` (a resumed run redoes the later ones). An
/// unparsable file is set aside as in [`append_rows`].
///
/// # Errors
/// [`EsmError::Io`] naming the file.
pub(crate) fn truncate_esm_epochs(path: &Path, last_epoch: usize) -> Result<(), EsmError> {
    if !path.exists() {
        return Ok(());
    }
    let mut rows = read_rows_or_set_aside(path)?;
    rows.retain(|r| r.epoch <= last_epoch);
    write_esm_epochs(path, &rows)
}

/// Draws, from `esm_epochs.csv` and `metrics.csv` of a run: `esm_mean_over_epochs` and
/// `esm_var_over_epochs` (one curve per BatchNorm) and `error_over_epochs` (train and test
/// error, percent), each as PNG and SVG.
///
/// # Errors
/// [`EsmError::Io`] when a file cannot be read or written.
pub fn plot_over_epochs(run_dir: &Path) -> Result<(), EsmError> {
    let path = run_dir.join(files::ESM_EPOCHS);
    let rows = read_esm_epochs(&path).map_err(|e| EsmError::Io {
        path: path.clone(),
        reason: e.to_string(),
    })?;
    let mut layers: Vec<(usize, String)> = rows.iter().map(|r| (r.depth, r.path.clone())).collect();
    layers.sort();
    layers.dedup();
    for (stat, file) in [
        ("mean", "esm_mean_over_epochs"),
        ("var", "esm_var_over_epochs"),
    ] {
        let series: Vec<(String, Vec<(f64, f64)>)> = layers
            .iter()
            .map(|(depth, name)| {
                let points = rows
                    .iter()
                    .filter(|r| r.depth == *depth)
                    .map(|r| {
                        (
                            r.epoch as f64,
                            if stat == "mean" {
                                r.esm_mean
                            } else {
                                r.esm_var
                            },
                        )
                    })
                    .collect();
                (format!("{depth}: {name}"), points)
            })
            .collect();
        let title = format!("ESM of the {stat} per BatchNorm on the test set");
        for ext in ["png", "svg"] {
            line_plot(
                &run_dir.join(format!("{file}.{ext}")),
                &title,
                "epoch",
                "ESM",
                &series,
            )?;
        }
    }
    if let Ok(metrics) = read_metrics(&run_dir.join(files::METRICS)) {
        let series = vec![
            (
                "train error".to_string(),
                metrics
                    .iter()
                    .map(|m| (m.epoch as f64, 100.0 - m.train_accuracy))
                    .collect(),
            ),
            (
                "test error (inference mode)".to_string(),
                metrics
                    .iter()
                    .map(|m| (m.epoch as f64, 100.0 - m.test_accuracy))
                    .collect(),
            ),
        ];
        for ext in ["png", "svg"] {
            line_plot(
                &run_dir.join(format!("error_over_epochs.{ext}")),
                "Train and test error",
                "epoch",
                "error (%)",
                &series,
            )?;
        }
    }
    Ok(())
}

impl Checkpointer<ModuleRecord> for EsmTracker {
    fn save(&self, epoch: usize, record: ModuleRecord) -> Result<(), CheckpointerError> {
        self.inner.save(epoch, record.clone())?;
        // The checkpoint is saved: a failed measurement must not stop the training.
        if let Err(e) = self.track(epoch, record) {
            eprintln!("warning: ESM tracking of epoch {epoch} failed: {e}");
        }
        Ok(())
    }

    fn delete(&self, epoch: usize) -> Result<(), CheckpointerError> {
        <FileCheckpointer as Checkpointer<ModuleRecord>>::delete(&self.inner, epoch)
    }

    fn restore(&self, epoch: usize) -> Result<ModuleRecord, CheckpointerError> {
        self.inner.restore(epoch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::esm::EsmLayer;

    fn report(value: f64) -> EsmReport {
        let layer = |depth: usize| EsmLayer {
            depth,
            path: format!("layer{depth}.bn1"),
            channels: 4,
            esm_mean: value,
            esm_var: value * 2.0,
            esm_mean_per_sqrt_c: value / 2.0,
            esm_var_per_sqrt_c: value,
            expected_mean: vec![0.0; 4],
            expected_var: vec![1.0; 4],
            running_mean: vec![0.0; 4],
            running_var: vec![1.0; 4],
        };
        EsmReport {
            layers: vec![layer(1), layer(2)],
            values_per_channel: 10.0,
            untrained: vec![],
        }
    }

    #[test]
    fn a_redone_epoch_replaces_its_rows_and_drops_later_ones() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(files::ESM_EPOCHS);
        for epoch in 1..=3 {
            append_rows(&path, epoch, &report(epoch as f64)).unwrap();
        }
        assert_eq!(read_esm_epochs(&path).unwrap().len(), 6);
        // A resumed run redoes epoch 2: epochs 1 and 2 remain, epoch 2 with the new values.
        append_rows(&path, 2, &report(20.0)).unwrap();
        let rows = read_esm_epochs(&path).unwrap();
        let epochs: Vec<usize> = rows.iter().map(|r| r.epoch).collect();
        assert_eq!(epochs, [1, 1, 2, 2]);
        assert_eq!(rows[2].esm_mean, 20.0);
        assert_eq!(rows[0].esm_mean, 1.0);
        assert_eq!(rows[3], EsmEpochRow::new(2, &report(20.0).layers[1]));
    }

    #[test]
    fn an_unreadable_file_is_kept_aside() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(files::ESM_EPOCHS);
        std::fs::write(&path, "epoch,depth\nnot,a,row\n").unwrap();
        append_rows(&path, 1, &report(1.0)).unwrap();
        assert_eq!(read_esm_epochs(&path).unwrap().len(), 2);
        assert_eq!(
            std::fs::read_to_string(dir.path().join("esm_epochs.csv.bad")).unwrap(),
            "epoch,depth\nnot,a,row\n"
        );
        // A resumed run meets a second bad file: it is kept too, beside the first.
        std::fs::write(&path, "second\n1,2\n").unwrap();
        truncate_esm_epochs(&path, 0).unwrap();
        assert_eq!(read_esm_epochs(&path).unwrap().len(), 0);
        assert_eq!(
            std::fs::read_to_string(dir.path().join("esm_epochs.csv.bad.2")).unwrap(),
            "second\n1,2\n"
        );
        assert_eq!(
            std::fs::read_to_string(dir.path().join("esm_epochs.csv.bad")).unwrap(),
            "epoch,depth\nnot,a,row\n"
        );
    }

    #[test]
    fn a_file_that_cannot_be_read_is_an_error_and_stays() {
        let dir = tempfile::tempdir().unwrap();
        // A directory where the file should be: an I/O error, not a parse error.
        let path = dir.path().join(files::ESM_EPOCHS);
        std::fs::create_dir(&path).unwrap();
        let e = append_rows(&path, 1, &report(1.0)).unwrap_err();
        assert!(matches!(e, EsmError::Io { .. }), "{e}");
        assert!(path.is_dir());
        assert!(!dir.path().join("esm_epochs.csv.bad").exists());
    }
}
