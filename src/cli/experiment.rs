//! `xbn experiment`.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::{DataArgs, outln};
use crate::data::DatasetKind;
use crate::device::BackendKind;
use crate::experiment::{ExperimentConfig, MlpNorms, default_output, estimation_shift};

/// Reproducible experiments.
#[derive(Debug, Subcommand)]
pub enum ExperimentCommand {
    /// The paper's §4: estimation shift of an MLP with BN, GNBN and no normalization, in
    /// setting 1 (train = test set) and setting 2 (training sets sampled from the test set).
    EstimationShift(ShiftArgs),
}

/// Options of `xbn experiment estimation-shift`.
#[derive(Debug, Args)]
pub struct ShiftArgs {
    /// Datasets (comma separated): mnist, fashion-mnist. The default is the one the quick
    /// start installs; the paper's figures use both (`--datasets mnist,fashion-mnist`;
    /// MNIST is downloaded on first use, or read from --data-dir).
    #[arg(long, value_delimiter = ',', default_value = "fashion-mnist")]
    pub datasets: Vec<DatasetKind>,
    #[command(flatten)]
    pub data: DataArgs,
    /// MLP variants (comma separated): bn, gnbn, none.
    #[arg(long, value_delimiter = ',', default_value = "bn,gnbn,none")]
    pub models: Vec<MlpNorms>,
    /// Hidden layers.
    #[arg(long, default_value_t = 8)]
    pub depth: usize,
    /// Units per hidden layer.
    #[arg(long, default_value_t = 256)]
    pub width: usize,
    /// GroupNorm groups of GNBN.
    #[arg(long, default_value_t = 16)]
    pub gn_groups: usize,
    /// Epochs.
    #[arg(long, default_value_t = 30)]
    pub epochs: usize,
    /// Training samples per epoch (several passes over a small |S|).
    #[arg(long, default_value_t = 10_000)]
    pub epoch_samples: usize,
    /// Mini-batch size.
    #[arg(long, default_value_t = 128)]
    pub batch_size: usize,
    /// SGD learning rate (constant).
    #[arg(long, default_value_t = 0.02)]
    pub lr: f64,
    /// SGD momentum.
    #[arg(long, default_value_t = 0.9)]
    pub momentum: f64,
    /// Setting-2 training set sizes |S| (comma separated; empty: none).
    #[arg(long, value_delimiter = ',', default_value = "500,1000,5000,10000")]
    pub sizes: Vec<usize>,
    /// Skip setting 1.
    #[arg(long)]
    pub no_setting1: bool,
    /// Seed.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Backend.
    #[arg(long, value_enum, default_value = "flex")]
    pub backend: BackendKind,
    /// Output folder (default runs/estimation-shift).
    #[arg(long, short, value_name = "DIR")]
    pub output: Option<PathBuf>,
}

pub(super) fn run(command: ExperimentCommand) -> Result<(), crate::Error> {
    let ExperimentCommand::EstimationShift(args) = command;
    let config = ExperimentConfig {
        datasets: args.datasets,
        models: args.models,
        depth: args.depth,
        width: args.width,
        gn_groups: args.gn_groups,
        epochs: args.epochs,
        epoch_samples: args.epoch_samples,
        batch_size: args.batch_size,
        lr: args.lr,
        momentum: args.momentum,
        sizes: args.sizes,
        setting1: !args.no_setting1,
        seed: args.seed,
        backend: args.backend,
    };
    let out = args.output.unwrap_or_else(default_output);
    estimation_shift(&config, &args.data.locator(), &out, |line| outln!("{line}"))?;
    outln!(
        "{}",
        std::fs::read_to_string(out.join("summary.md")).unwrap_or_default()
    );
    outln!("results, figures and summary.md in {}", out.display());
    Ok(())
}
