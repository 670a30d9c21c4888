//! `xbn train`.

use std::path::PathBuf;

use clap::{Args, ValueEnum};

use super::{DataArgs, outln};
use crate::blocks::{Placement, ShortcutKind};
use crate::data::DatasetKind;
use crate::device::BackendKind;
use crate::models::{ModelError, ModelName};
use crate::norm::NormConfig;
use crate::train::{RunOptions, Schedule, TrainConfig, resume, train};

/// Learning-rate schedule names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ScheduleKind {
    /// Constant rate.
    Constant,
    /// Multiply by --gamma every --step-size epochs (StepLR).
    Step,
    /// Multiply by --gamma at each of --milestones (MultiStepLR).
    Multistep,
    /// Cosine annealing from --lr to --eta-min over the epochs (CosineAnnealingLR).
    Cosine,
}

/// Options of `xbn train`.
#[derive(Debug, Args)]
pub struct TrainArgs {
    /// Dataset.
    #[arg(long, value_enum, default_value = "fashion-mnist")]
    pub dataset: DatasetKind,
    #[command(flatten)]
    pub data: DataArgs,
    /// Model name, with an optional norm-plan suffix: e.g. resnet20, resnet20-xbn-p2,
    /// resnet18-cifar, resnet50-xbn, resnext50-32x4d-gn, mobilenet-v2-xbn,
    /// shufflenet-v2-1.0x-xbn (`xbn models` lists them all).
    #[arg(long, default_value = "resnet20")]
    pub model: ModelName,
    /// Norm placement, instead of a suffix of --model: bn (baseline), xbn-p1, xbn-p2 (the
    /// paper's XBNBlock), xbn-p3, all (batch-free norm everywhere).
    #[arg(long, value_enum)]
    pub norm_plan: Option<Placement>,
    /// The batch-free norm of the XBN placements: gn[:GROUPS], ln, in or none. Groups are
    /// clamped to the channel count (the authors' rule). Default: the authors' choice for
    /// the architecture (GN 64 for ResNets, 16 for MobileNetV2, 8 or 29 for ShuffleNetV2,
    /// 32 for the all-GN plan). Refused with the bn plan, which has no batch-free norm.
    #[arg(long)]
    pub bfn: Option<NormConfig>,
    /// Shortcut of the blocks that change shape: a (zero-padding, CIFAR ResNets' default)
    /// or b (1×1 conv + BN). Default: the architecture's own.
    #[arg(long, value_enum)]
    pub shortcut: Option<ShortcutKind>,
    /// Number of epochs.
    #[arg(long, default_value_t = 3)]
    pub epochs: usize,
    /// Mini-batch size.
    #[arg(long, default_value_t = 128)]
    pub batch_size: usize,
    /// Base learning rate.
    #[arg(long, default_value_t = 0.1)]
    pub lr: f64,
    /// SGD momentum (dampening 0, as PyTorch).
    #[arg(long, default_value_t = 0.9)]
    pub momentum: f64,
    /// L2 weight decay.
    #[arg(long, default_value_t = 1e-4)]
    pub weight_decay: f64,
    /// Learning-rate schedule.
    #[arg(long, value_enum, default_value = "cosine")]
    pub schedule: ScheduleKind,
    /// Epochs between decays (step schedule).
    #[arg(long, default_value_t = 30)]
    pub step_size: usize,
    /// Epochs at which the rate decays (multistep; default: 50% and 75% of the epochs,
    /// He et al.'s CIFAR recipe).
    #[arg(long, value_delimiter = ',')]
    pub milestones: Vec<usize>,
    /// Decay factor (step and multistep).
    #[arg(long, default_value_t = 0.1)]
    pub gamma: f64,
    /// Final learning rate (cosine).
    #[arg(long, default_value_t = 0.0)]
    pub eta_min: f64,
    /// Seed of the weights, the data order and the augmentation.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Train without augmentation.
    #[arg(long)]
    pub no_augment: bool,
    /// Train on the first N training images only.
    #[arg(long, value_name = "N")]
    pub train_limit: Option<usize>,
    /// Test on the first N test images only.
    #[arg(long, value_name = "N")]
    pub test_limit: Option<usize>,
    /// Backend.
    #[arg(long, value_enum, default_value = "flex")]
    pub backend: BackendKind,
    /// Measure the estimation shift of every BatchNorm on the test set after each epoch
    /// (esm_epochs.csv, esm/epoch-N.json, esm_*_over_epochs.png/svg, error_over_epochs).
    #[arg(long)]
    pub track_esm: bool,
    /// Run directory (default: runs/<dataset>-<model>-<plan>-seed<seed>).
    #[arg(long, short, value_name = "DIR")]
    pub output: Option<PathBuf>,
    /// Continue the run in --output from its last checkpoint, with the options saved in its
    /// config.json (training options given with --resume are ignored).
    #[arg(long)]
    pub resume: bool,
}

impl TrainArgs {
    /// The model with the placement of --norm-plan, if given.
    ///
    /// # Errors
    /// [`ModelError::InvalidConfig`] when --model has a norm-plan suffix that --norm-plan
    /// contradicts.
    pub fn model(&self) -> Result<ModelName, ModelError> {
        match self.norm_plan {
            None => Ok(self.model),
            Some(p) if self.model.placement == Placement::Bn || self.model.placement == p => {
                Ok(ModelName::new(self.model.arch, p))
            }
            Some(p) => Err(ModelError::InvalidConfig(format!(
                "--model {} and --norm-plan {p} disagree; give the placement once",
                self.model
            ))),
        }
    }

    /// The run configuration these options describe.
    ///
    /// # Errors
    /// See [`TrainArgs::model`]; [`ModelName::check_bfn`] when --bfn is given.
    pub fn config(&self) -> Result<TrainConfig, ModelError> {
        let model = self.model()?;
        let mut config = TrainConfig::new(self.dataset, model);
        if let Some(bfn) = &self.bfn {
            model.check_bfn(bfn)?;
            config = config.with_bfn(bfn.clone());
        }
        if let Some(shortcut) = self.shortcut {
            config = config.with_shortcut(shortcut);
        }
        config.epochs = self.epochs;
        config.batch_size = self.batch_size;
        config.lr = self.lr;
        config.momentum = self.momentum;
        config.weight_decay = self.weight_decay;
        config.schedule = match self.schedule {
            ScheduleKind::Constant => Schedule::Constant,
            ScheduleKind::Step => Schedule::Step {
                step_size: self.step_size,
                gamma: self.gamma,
            },
            ScheduleKind::Multistep => Schedule::MultiStep {
                milestones: if self.milestones.is_empty() {
                    let mut m = vec![self.epochs / 2, self.epochs * 3 / 4];
                    m.retain(|&e| e > 0);
                    m.dedup();
                    m
                } else {
                    self.milestones.clone()
                },
                gamma: self.gamma,
            },
            ScheduleKind::Cosine => Schedule::Cosine {
                t_max: None,
                eta_min: self.eta_min,
            },
        };
        config.seed = self.seed;
        if self.no_augment {
            config.augmentation = None;
        }
        config.train_limit = self.train_limit;
        config.test_limit = self.test_limit;
        config.backend = self.backend;
        // Absolute, so `xbn eval --run` and `--resume` find it from any folder.
        config.data_dir = self
            .data
            .data_dir
            .clone()
            .map(|d| std::path::absolute(&d).unwrap_or(d));
        config.track_esm = self.track_esm;
        Ok(config)
    }

    /// The run directory (default `runs/<dataset>-<model>-seed<seed>`).
    pub fn run_dir(&self) -> PathBuf {
        self.output.clone().unwrap_or_else(|| {
            let model = self
                .model()
                .map_or_else(|_| self.model.to_string(), |m| m.to_string());
            PathBuf::from("runs").join(format!("{}-{model}-seed{}", self.dataset, self.seed))
        })
    }
}

pub(super) fn run(args: TrainArgs) -> Result<(), crate::Error> {
    let options = RunOptions {
        run_dir: args.run_dir(),
        locator: args.data.locator(),
    };
    let summary = if args.resume {
        resume(&options)?
    } else {
        train(&args.config()?, &options)?
    };
    if let Some(last) = summary.epochs.last() {
        outln!(
            "last epoch: {:.1} s training ({:.0} images/s), test accuracy {:.2} %",
            last.train_seconds,
            last.train_images_per_second,
            last.test_accuracy
        );
    }
    outln!(
        "final test accuracy (inference mode): {:.2} % ({} / {}), loss {:.4}",
        summary.test.accuracy,
        summary.test.correct,
        summary.test.num_images,
        summary.test.loss
    );
    outln!("run directory: {}", summary.run_dir.display());
    Ok(())
}
