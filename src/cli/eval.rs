//! `xbn eval`.

use std::path::PathBuf;

use clap::Args;

use super::{DataArgs, outln};
use crate::train::evaluate_run;

/// Options of `xbn eval`.
#[derive(Debug, Args)]
pub struct EvalArgs {
    /// Run directory of `xbn train` (holds config.json and model.safetensors).
    #[arg(long, value_name = "DIR")]
    pub run: PathBuf,
    /// Weights to score instead of the run's model.safetensors: safetensors, a PyTorch
    /// .pth/.pt, or a burn-train checkpoint of the run (DIR/checkpoint/model-N.bpk, epoch N).
    #[arg(long, value_name = "FILE")]
    pub checkpoint: Option<PathBuf>,
    #[command(flatten)]
    pub data: DataArgs,
    /// Batch size of the evaluation.
    #[arg(long, default_value_t = 256, value_parser = super::at_least_one())]
    pub batch_size: usize,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

pub(super) fn run(args: EvalArgs) -> Result<(), crate::Error> {
    let result = evaluate_run(
        &args.run,
        args.checkpoint.as_deref(),
        &args.data.locator(),
        args.batch_size,
    )?;
    if args.json {
        outln!(
            "{}",
            serde_json::to_string_pretty(&result).expect("serialises")
        );
    } else {
        outln!(
            "test accuracy (inference mode): {:.2} % ({} / {}), loss {:.4}",
            result.accuracy,
            result.correct,
            result.num_images,
            result.loss
        );
    }
    Ok(())
}
