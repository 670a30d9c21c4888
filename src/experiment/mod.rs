//! The estimation-shift experiments of the paper's §4 (`xbn experiment estimation-shift`).
//!
//! An MLP ([`Mlp`]) with plain BatchNorm, with GNBN (GroupNorm in the odd-numbered norm
//! layers) and without normalization is trained on real MNIST / Fashion-MNIST in the
//! paper's two settings, recording train and test error and the ESM of every BatchNorm on
//! the test set after every epoch:
//!
//! - **setting 1** (paper Figs. 2 and 4): the training set *is* the test set (the 10,000
//!   test images), so any gap between train and test error comes from BatchNorm's two modes;
//! - **setting 2** (Figs. 3 and 5): training sets of `|S|` images sampled from the test set
//!   (e.g. 500, 1,000, 5,000, 10,000) — the smaller `|S|`, the larger the shift between the
//!   data the running estimates come from and the test set.
//!
//! After every epoch the training set is scored in training mode (BatchNorm with
//! mini-batch statistics) and the test set in inference mode, with the same weights. An *epoch* is `epoch_samples` (default 10,000)
//! training samples, i.e. several passes over a small `|S|`, so every run gets the same
//! number of SGD steps. Depth 8, width 256, batch 128, SGD lr 0.02 momentum 0.9 for 30
//! epochs are xbn's choices: the paper's values were not retrievable.

mod figures;
mod mlp;

pub use figures::write_figures;
pub use mlp::{Mlp, MlpLayer, MlpNorms};

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::GradientsParams;
use burn::tensor::{Device, Int, Tensor, TensorData};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};

use crate::data::{DataLocator, DatasetKind, ImageDataset, Split};
use crate::device::BackendKind;
use crate::esm::{EsmError, measure};
use crate::train::{EsmEpochRow, TrainError, write_esm_epochs};

/// Configuration of the §4 experiments.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ExperimentConfig {
    /// Datasets (MNIST and/or Fashion-MNIST).
    pub datasets: Vec<DatasetKind>,
    /// MLP variants.
    pub models: Vec<MlpNorms>,
    /// Hidden layers (default 8).
    pub depth: usize,
    /// Units per hidden layer (default 256).
    pub width: usize,
    /// GroupNorm groups of GNBN (default 16).
    pub gn_groups: usize,
    /// Epochs (default 30).
    pub epochs: usize,
    /// Training samples per epoch (default 10,000).
    pub epoch_samples: usize,
    /// Mini-batch size (default 128).
    pub batch_size: usize,
    /// SGD learning rate (default 0.02, constant; with 0.1 the un-normalised MLP diverges).
    pub lr: f64,
    /// SGD momentum (default 0.9, dampening 0).
    pub momentum: f64,
    /// Setting-2 training set sizes (default 500, 1000, 5000, 10000).
    pub sizes: Vec<usize>,
    /// Run setting 1.
    pub setting1: bool,
    /// Seed of the weights, the subsets and the batch order.
    ///
    /// Burn's random generator is process-wide (like `torch.manual_seed`): a run is
    /// reproducible when nothing else in the process draws random numbers while it runs.
    pub seed: u64,
    /// Backend.
    pub backend: BackendKind,
}

impl Default for ExperimentConfig {
    fn default() -> Self {
        Self {
            datasets: vec![DatasetKind::Mnist, DatasetKind::FashionMnist],
            models: MlpNorms::ALL.to_vec(),
            depth: 8,
            width: 256,
            gn_groups: 16,
            epochs: 30,
            epoch_samples: 10_000,
            batch_size: 128,
            lr: 0.02,
            momentum: 0.9,
            sizes: vec![500, 1000, 5000, 10_000],
            setting1: true,
            seed: 0,
            backend: BackendKind::Flex,
        }
    }
}

/// One epoch of one run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpochPoint {
    /// Epoch, from 1.
    pub epoch: usize,
    /// Training error (percent) at the end of the epoch: the training set in training mode
    /// (BatchNorm with the statistics of mini-batches of `batch_size`), without updating
    /// the model — the same weights as `test_error`, so in setting 1 the gap between the two
    /// is BatchNorm's train/inference difference.
    pub train_error: f64,
    /// Training error (percent) accumulated over the epoch's SGD steps, as a training loop
    /// reports it (the weights change during the epoch).
    pub running_train_error: f64,
    /// Test error (percent), inference mode, whole test set.
    pub test_error: f64,
    /// ESM of every BatchNorm on the test set, in forward order.
    pub esm: Vec<EsmEpochRow>,
}

/// One training run of the experiment.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunResult {
    /// Dataset.
    pub dataset: DatasetKind,
    /// 1 or 2.
    pub setting: u8,
    /// Training set size.
    pub train_size: usize,
    /// MLP variant.
    pub model: MlpNorms,
    /// Every epoch.
    pub epochs: Vec<EpochPoint>,
}

impl RunResult {
    /// Folder name of the run (`s1-bn`, `s2-n500-gnbn`).
    pub fn name(&self) -> String {
        match self.setting {
            1 => format!("s1-{}", self.model),
            _ => format!("s2-n{}-{}", self.train_size, self.model),
        }
    }
}

/// Flattened, normalised images `[n, C·H·W]` and labels of a dataset split.
struct Table {
    features: Vec<f32>,
    labels: Vec<i64>,
    dim: usize,
}

impl Table {
    fn new(dataset: &ImageDataset, kind: DatasetKind) -> Result<Self, TrainError> {
        use burn::data::dataset::Dataset;
        let [c, h, w] = dataset.image_shape();
        let dim = c * h * w;
        let (mean, std) = (kind.mean(), kind.std());
        let mut features = Vec::with_capacity(dataset.len() * dim);
        let mut labels = Vec::with_capacity(dataset.len());
        for i in 0..dataset.len() {
            let item = dataset
                .get(i)
                .map_err(|e| TrainError::Batch(e.to_string()))?;
            for (j, &p) in item.pixels.iter().enumerate() {
                let ch = j / (h * w);
                features.push((p as f32 / 255.0 - mean[ch]) / std[ch]);
            }
            labels.push(item.label as i64);
        }
        Ok(Self {
            features,
            labels,
            dim,
        })
    }

    fn len(&self) -> usize {
        self.labels.len()
    }

    fn batch(&self, idx: &[usize], device: &Device) -> (Tensor<2>, Tensor<1, Int>) {
        let mut x = Vec::with_capacity(idx.len() * self.dim);
        for &i in idx {
            x.extend_from_slice(&self.features[i * self.dim..(i + 1) * self.dim]);
        }
        let y: Vec<i64> = idx.iter().map(|&i| self.labels[i]).collect();
        (
            Tensor::from_data(TensorData::new(x, [idx.len(), self.dim]), device),
            Tensor::from_data(TensorData::new(y, [idx.len()]), device),
        )
    }
}

fn errors(logits: Tensor<2>, targets: Tensor<1, Int>) -> usize {
    let n = targets.dims()[0];
    let correct: i64 = logits
        .argmax(1)
        .squeeze_dim::<1>(1)
        .equal(targets)
        .int()
        .sum()
        .into_scalar();
    n - correct as usize
}

/// Trains one run and records every epoch.
fn run_one(
    config: &ExperimentConfig,
    table: &Table,
    kind: DatasetKind,
    setting: u8,
    train_idx: &[usize],
    model_kind: MlpNorms,
    device: &Device,
) -> Result<RunResult, crate::Error> {
    let ad = device.clone().autodiff();
    ad.seed(config.seed);
    let mut model = Mlp::new(
        table.dim,
        config.depth,
        config.width,
        kind.num_classes(),
        model_kind,
        config.gn_groups,
        &ad,
    )?;
    let mut optim = crate::train::sgd(config.momentum, 0.0);
    let loss_fn = CrossEntropyLossConfig::new().init(&ad);
    let mut rng = StdRng::seed_from_u64(config.seed ^ (train_idx.len() as u64) << 8);
    let mut order: Vec<usize> = train_idx.to_vec();
    let mut cursor = order.len();
    let test_idx: Vec<usize> = (0..table.len()).collect();
    let test_batches: Vec<Tensor<2>> = test_idx
        .chunks(1000)
        .map(|c| table.batch(c, device).0)
        .collect();
    let test_targets: Vec<Tensor<1, Int>> = test_idx
        .chunks(1000)
        .map(|c| table.batch(c, device).1)
        .collect();
    let mut epochs = Vec::new();
    let progress = crate::progress::Progress::new(
        config.epochs as u64,
        "epochs",
        format!(
            "{kind} setting {setting} |S| = {} {}",
            train_idx.len(),
            model_kind.name()
        ),
    );
    for epoch in 1..=config.epochs {
        let (mut seen, mut wrong) = (0usize, 0usize);
        while seen < config.epoch_samples {
            if cursor >= order.len() {
                order.shuffle(&mut rng);
                cursor = 0;
            }
            let end = (cursor + config.batch_size).min(order.len());
            let idx = &order[cursor..end];
            cursor = end;
            if idx.len() < 2 {
                continue; // BatchNorm needs two values per feature.
            }
            let (x, y) = table.batch(idx, &ad);
            let logits = model.forward(x);
            wrong += errors(logits.clone().detach(), y.clone());
            let loss = loss_fn.forward(logits, y);
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            model = optim.step(config.lr, model, grads);
            seen += idx.len();
        }
        // Training mode on a copy with its own running statistics (`valid().train()`), so
        // this pass changes nothing.
        let batch_stats = model.valid().train();
        let train_wrong: usize = train_idx
            .chunks(config.batch_size)
            .filter(|c| c.len() >= 2)
            .map(|c| {
                let (x, y) = table.batch(c, &ad);
                errors(batch_stats.forward(x).detach(), y)
            })
            .sum();
        let train_counted: usize = train_idx
            .chunks(config.batch_size)
            .filter(|c| c.len() >= 2)
            .map(<[usize]>::len)
            .sum();
        // Test error and ESM in one inference pass over the test set.
        let mut test_wrong = 0;
        let pairs = test_batches
            .iter()
            .cloned()
            .zip(test_targets.iter().cloned());
        let esm = match measure(&model, pairs, |m, (x, y)| {
            test_wrong += errors(m.forward(x), y)
        }) {
            Ok(report) => report
                .layers
                .iter()
                .map(|l| EsmEpochRow::new(epoch, l))
                .collect(),
            Err(EsmError::NoBatchNorm) => {
                let eval = model.valid();
                test_wrong = test_batches
                    .iter()
                    .zip(&test_targets)
                    .map(|(x, y)| errors(eval.forward(x.clone()), y.clone()))
                    .sum();
                Vec::new()
            }
            Err(e) => return Err(e.into()),
        };
        progress.inc(1);
        epochs.push(EpochPoint {
            epoch,
            train_error: 100.0 * train_wrong as f64 / train_counted.max(1) as f64,
            running_train_error: 100.0 * wrong as f64 / seen as f64,
            test_error: 100.0 * test_wrong as f64 / table.len() as f64,
            esm,
        });
    }
    Ok(RunResult {
        dataset: kind,
        setting,
        train_size: train_idx.len(),
        model: model_kind,
        epochs,
    })
}

fn write_run(dir: &Path, run: &RunResult) -> Result<(), crate::Error> {
    std::fs::create_dir_all(dir).map_err(|e| TrainError::Io {
        path: dir.to_path_buf(),
        source: e,
    })?;
    let mut metrics = String::from("epoch,train_error,running_train_error,test_error\n");
    for p in &run.epochs {
        let _ = writeln!(
            metrics,
            "{},{},{},{}",
            p.epoch, p.train_error, p.running_train_error, p.test_error
        );
    }
    let path = dir.join("metrics.csv");
    crate::fsutil::write_atomic(&path, metrics.as_bytes())
        .map_err(|e| TrainError::Io { path, source: e })?;
    let rows: Vec<EsmEpochRow> = run
        .epochs
        .iter()
        .flat_map(|p| p.esm.iter().cloned())
        .collect();
    write_esm_epochs(&dir.join("esm.csv"), &rows)?;
    Ok(())
}

/// Runs every configured dataset, setting, training-set size and MLP variant, writing
/// each run to `out/<dataset>/<run>/{metrics,esm}.csv`, the figures (PNG and SVG) and
/// `out/summary.md`, `out/results.json`. `progress` is called with a line per finished run.
///
/// # Errors
/// Data, model, ESM and I/O errors.
pub fn estimation_shift(
    config: &ExperimentConfig,
    locator: &DataLocator,
    out: &Path,
    mut progress: impl FnMut(&str),
) -> Result<Vec<RunResult>, crate::Error> {
    if config.epochs == 0
        || config.batch_size < 2
        || config.depth == 0
        || config.width == 0
        || config.gn_groups == 0
        || config.epoch_samples < 2
        || config.sizes.iter().any(|&s| s < 2)
        || !(config.lr.is_finite() && config.lr > 0.0)
        || !(0.0..1.0).contains(&config.momentum)
    {
        return Err(TrainError::InvalidConfig(
            "epochs, depth, width and GN groups must be >= 1, the batch size, epoch samples and \
             every |S| >= 2 (BatchNorm needs two samples), lr > 0 and momentum in [0, 1)"
                .into(),
        )
        .into());
    }
    let device = config.backend.device()?;
    let mut results = Vec::new();
    for &kind in &config.datasets {
        let dir = locator.locate_splits(kind, &[Split::Test])?;
        let test = ImageDataset::load(kind, Split::Test, &dir)?;
        let table = Table::new(&test, kind)?;
        let mut plans: Vec<(u8, Vec<usize>)> = Vec::new();
        if config.setting1 {
            plans.push((1, (0..table.len()).collect()));
        }
        for &size in &config.sizes {
            let mut idx: Vec<usize> = (0..table.len()).collect();
            idx.shuffle(&mut StdRng::seed_from_u64(
                config.seed.wrapping_add(size as u64),
            ));
            idx.truncate(size.min(table.len()));
            plans.push((2, idx));
        }
        for (setting, idx) in &plans {
            for &model in &config.models {
                let start = std::time::Instant::now();
                let run = run_one(config, &table, kind, *setting, idx, model, &device)?;
                write_run(&out.join(kind.name()).join(run.name()), &run)?;
                let last = run.epochs.last().expect("epochs >= 1");
                progress(&format!(
                    "{kind} {}: train error {:.2} %, test error {:.2} % ({:.0} s)",
                    run.name(),
                    last.train_error,
                    last.test_error,
                    start.elapsed().as_secs_f64()
                ));
                results.push(run);
            }
        }
    }
    let json = serde_json::to_string_pretty(&results).expect("results serialise");
    let path = out.join("results.json");
    crate::fsutil::write_atomic(&path, json.as_bytes())
        .map_err(|e| TrainError::Io { path, source: e })?;
    write_figures(&results, out)?;
    let summary = summary(config, &results);
    let path = out.join("summary.md");
    crate::fsutil::write_atomic(&path, summary.as_bytes())
        .map_err(|e| TrainError::Io { path, source: e })?;
    Ok(results)
}

fn mean_esm(p: &EpochPoint) -> f64 {
    if p.esm.is_empty() {
        return f64::NAN;
    }
    p.esm.iter().map(|e| e.esm_mean).sum::<f64>() / p.esm.len() as f64
}

/// The markdown summary: per dataset, setting, size and model, the final errors, the mean
/// ξ_μ over the BatchNorms with its first and last layer, and for setting 1 the largest
/// test−train error gap.
pub fn summary(config: &ExperimentConfig, results: &[RunResult]) -> String {
    let mut s = String::from("# Estimation shift experiments (paper §4)\n\n");
    let _ = writeln!(
        s,
        "MLP depth {}, width {}, GNBN groups {}, {} epoch{} of {} samples, batch {}, SGD lr {} momentum {}, seed {}.\n\
         Train error: the training set in training mode (mini-batch statistics) at the end of \
         the epoch; test error: the whole test set in inference mode; same weights. \
         ξ_μ = ‖running_mean − E[x]‖₂ on the test set at the end of training.\n",
        config.depth,
        config.width,
        config.gn_groups,
        config.epochs,
        if config.epochs == 1 { "" } else { "s" },
        config.epoch_samples,
        config.batch_size,
        config.lr,
        config.momentum,
        config.seed
    );
    s += "| dataset | setting | \\|S\\| | model | train error % (training mode) | test error % (inference mode) | max test−train gap % (setting 1) | mean ξ_μ | ξ_μ first BN | ξ_μ last BN |\n";
    s += "|---|---|---|---|---|---|---|---|---|---|\n";
    for r in results {
        let last = r.epochs.last().expect("epochs >= 1");
        let gap = if r.setting == 1 {
            // Same weights: training mode (batch statistics) against inference mode.
            let g = r
                .epochs
                .iter()
                .map(|p| p.test_error - p.train_error)
                .fold(f64::MIN, f64::max);
            format!("{g:.2}")
        } else {
            "–".into()
        };
        let (first, lastl) = match (last.esm.first(), last.esm.last()) {
            (Some(f), Some(l)) => (format!("{:.4}", f.esm_mean), format!("{:.4}", l.esm_mean)),
            _ => ("–".into(), "–".into()),
        };
        let mean = mean_esm(last);
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {:.2} | {:.2} | {gap} | {} | {first} | {lastl} |",
            r.dataset,
            r.setting,
            r.train_size,
            r.model,
            last.train_error,
            last.test_error,
            if mean.is_nan() {
                "–".to_string()
            } else {
                format!("{mean:.4}")
            }
        );
    }
    s += "\nFigures (PNG and SVG) per dataset: fig2_setting1_bn_*, fig3_setting2_bn_*, fig4_setting1_gnbn_*, fig5_setting2_*.\n";
    s
}

/// Folder where the experiment writes by default.
pub fn default_output() -> PathBuf {
    PathBuf::from("runs").join("estimation-shift")
}
