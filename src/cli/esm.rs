//! `xbn esm`.

use std::path::PathBuf;

use burn::data::dataset::Dataset;
use burn::module::Module;
use clap::{ArgGroup, Args};

use super::{DataArgs, model_config, outln};
use crate::checkpoint::{HasFamily, LoadOptions, Naming, load_weights};
use crate::data::{DatasetKind, ImageDataset, Split};
use crate::device::BackendKind;
use crate::esm::measure_dataset;
use crate::models::ModelName;
use crate::norm::NormConfig;
use crate::train::{
    TrainError, files, inference_batch_size, load_run_config, load_run_weights, load_split,
};

/// Options of `xbn esm`.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("source").required(true).args(["run", "model"])))]
pub struct EsmArgs {
    /// Run directory of `xbn train`: its config.json gives the model and dataset (with the
    /// run's --test-limit / --train-limit), its model.safetensors the weights (unless
    /// --checkpoint is given).
    #[arg(long, value_name = "DIR")]
    pub run: Option<PathBuf>,
    /// Model name (with --checkpoint and --dataset), e.g. resnet20-xbn-p2.
    #[arg(long, requires_all = ["checkpoint", "dataset"])]
    pub model: Option<ModelName>,
    /// Batch-free norm of the XBN blocks (with --model; gn, gn:G, ln, in, none) when it is
    /// not the model name's default. Only for -xbn / -gn models.
    #[arg(long, value_name = "NORM", requires = "model")]
    pub bfn: Option<NormConfig>,
    /// Weights (PyTorch .pth/.pt, safetensors, or a run's checkpoint/model-N.bpk).
    #[arg(long, value_name = "FILE")]
    pub checkpoint: Option<PathBuf>,
    /// Dataset whose test split is measured (with --model).
    #[arg(long, value_enum, conflicts_with = "run")]
    pub dataset: Option<DatasetKind>,
    #[command(flatten)]
    pub data: DataArgs,
    /// Measure on the training split instead of the test split.
    #[arg(long)]
    pub train_split: bool,
    /// Batch size of the measuring pass (the result does not depend on it).
    #[arg(long, default_value_t = 256, value_parser = super::at_least_one())]
    pub batch_size: usize,
    /// Folder for esm.json, esm.csv, esm.png and esm.svg (default: the run directory, or
    /// the current folder).
    #[arg(long, short, value_name = "DIR")]
    pub output: Option<PathBuf>,
}

pub(super) fn run(args: EsmArgs) -> Result<(), crate::Error> {
    let device = burn::tensor::Device::flex();
    let (network, dataset, weights, default_out, run_config) = match (&args.run, &args.model) {
        (Some(run), _) => {
            let config = load_run_config(run)?;
            let weights = args
                .checkpoint
                .clone()
                .unwrap_or_else(|| run.join(files::MODEL));
            (
                config.network()?,
                config.dataset,
                weights,
                run.clone(),
                Some(config),
            )
        }
        (None, Some(model)) => {
            let dataset = args.dataset.expect("clap requires --dataset with --model");
            let [c, _, _] = dataset.image_shape();
            let network = model_config(*model, args.bfn.clone())?
                .with_in_channels(c)
                .with_num_classes(dataset.num_classes());
            let weights = args.checkpoint.clone().expect("clap requires --checkpoint");
            (network, dataset, weights, PathBuf::from("."), None)
        }
        (None, None) => unreachable!("clap requires --run or --model"),
    };
    let model = network.init(&device)?;
    let model = match &args.run {
        Some(run) => load_run_weights(model, run, &weights)?,
        None => {
            let options = LoadOptions {
                family: Some(model.family()),
                naming: Naming::Auto,
                allow_partial: false,
            };
            load_weights(model, &weights, &options)?.0
        }
    };
    let split = if args.train_split {
        Split::Train
    } else {
        Split::Test
    };
    let locator = args.data.locator();
    let data = match &run_config {
        // The run's own test (or train) set, with its --test-limit / --train-limit.
        Some(config) => load_split(config, split, &locator)?,
        None => {
            let dir = locator.locate_splits(dataset, &[split])?;
            ImageDataset::load(dataset, split, &dir)?
        }
    };
    let batch_size = inference_batch_size(
        &model,
        BackendKind::Flex,
        data.image_shape(),
        args.batch_size,
        data.len(),
    )?;
    let report = measure_dataset(&model.valid(), data, dataset, batch_size, &device)?;
    let out = args.output.unwrap_or(default_out);
    std::fs::create_dir_all(&out).map_err(|e| TrainError::Io {
        path: out.clone(),
        source: e,
    })?;
    report.write_json(&out.join("esm.json"))?;
    report.write_csv(&out.join("esm.csv"))?;
    let split_name = match split {
        Split::Train => "training",
        Split::Test => "test",
    };
    let title = format!("Estimation shift on {dataset} ({split_name} split)");
    report.plot(&out.join("esm.png"), &title)?;
    report.plot(&out.join("esm.svg"), &title)?;
    outln!("{}", report.table());
    outln!(
        "ESM mean = ||running_mean - E[x]||_2 and ESM var = ||running_var - Var[x]||_2 per layer (the paper's definition); /sqrtC columns divide by sqrt(channels)."
    );
    outln!("wrote {}/esm.{{json,csv,png,svg}}", out.display());
    Ok(())
}
