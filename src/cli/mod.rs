//! The `xbn` command line: `xbn train`, `xbn eval`, `xbn esm`, `xbn models`, `xbn predict`.

mod esm;
mod eval;
mod experiment;
mod models;
mod predict;
mod train;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::data::DataLocator;
use crate::models::{ModelError, ModelName, NetworkConfig};
use crate::norm::NormConfig;

/// xbn: estimation shift of batch normalization — XBNBlock networks on Burn.
#[derive(Debug, Parser)]
#[command(name = "xbn", version, about, long_about = None, args_override_self = true)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Train a network (ResNet with or without XBNBlocks) and score it on the test set.
    Train(train::TrainArgs),
    /// Score the weights of a finished run on its test set, in inference mode.
    Eval(eval::EvalArgs),
    /// Measure the estimation shift magnitude of every BatchNorm of a trained model.
    Esm(esm::EsmArgs),
    /// Reproducible experiments (`estimation-shift`: the paper's §4).
    #[command(subcommand)]
    Experiment(experiment::ExperimentCommand),
    /// List the registered models with their parameters and multiply-accumulates.
    Models(models::ModelsArgs),
    /// Classify image files with a trained run (--run) or a zoo model and a checkpoint.
    Predict(predict::PredictArgs),
}

/// Where datasets are read from.
#[derive(Debug, Clone, Args)]
pub struct DataArgs {
    /// Folder holding the dataset files (or a sub-folder named after the dataset); the data
    /// must be there. Without it, xbn tries a run's own --data-dir (resume, eval, esm --run),
    /// then searches $XBN_DATA, /usr/share/datasets/fashion-mnist (Debian package
    /// dataset-fashion-mnist) and the download cache (~/.cache/xbn), and downloads into
    /// the cache.
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Never download: fail if the data is not found locally.
    #[arg(long)]
    pub no_download: bool,
}

impl DataArgs {
    /// The locator these options describe.
    pub fn locator(&self) -> DataLocator {
        DataLocator::new(self.data_dir.clone()).with_download(!self.no_download)
    }
}

/// The configuration of `model`, with `bfn` as the batch-free norm of its XBN blocks when
/// given (`--bfn` of `xbn esm` and `xbn predict`).
///
/// # Errors
/// See [`ModelName::check_bfn`] and [`ModelName::config_with_bfn`].
pub(crate) fn model_config(
    model: ModelName,
    bfn: Option<NormConfig>,
) -> Result<NetworkConfig, ModelError> {
    match bfn {
        None => model.config(),
        Some(bfn) => {
            model.check_bfn(&bfn)?;
            model.config_with_bfn(bfn)
        }
    }
}

/// Parser of a count that must be at least 1 (`--batch-size` of `xbn eval` and `xbn esm`):
/// 0 is a usage error before anything is loaded.
fn at_least_one() -> clap::builder::RangedU64ValueParser<usize> {
    clap::builder::RangedU64ValueParser::new().range(1..)
}

/// `println!` that ignores a closed standard output (`xbn ... | head`) instead of panicking.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}
pub(crate) use outln;

/// Runs the command line; returns the process exit code (0 success, 1 failure).
pub fn main() -> i32 {
    let cli = Cli::parse();
    crate::progress::enable(true);
    let result = match cli.command {
        Command::Train(args) => train::run(args),
        Command::Eval(args) => eval::run(args),
        Command::Esm(args) => esm::run(args),
        Command::Experiment(command) => experiment::run(command),
        Command::Models(args) => models::run(args),
        Command::Predict(args) => predict::run(args),
    };
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: {e}");
            1
        }
    }
}
