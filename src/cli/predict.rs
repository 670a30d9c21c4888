//! `xbn predict`.

use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::tensor::Device;
use burn::tensor::activation::softmax;
use clap::{ArgGroup, Args};

use super::{model_config, outln};
use crate::checkpoint::{HasFamily, LoadOptions, Naming, load_weights};
use crate::data::{DataError, Preprocessing};
use crate::models::{ModelName, Network};
use crate::norm::NormConfig;
use crate::progress::Progress;
use crate::train::{files, load_run_config, load_run_weights};

/// Options of `xbn predict`.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("source").required(true).args(["run", "model"])))]
pub struct PredictArgs {
    /// Run directory of `xbn train`: its config.json gives the model (channels, classes,
    /// norm plan), the preprocessing (grey or RGB, image size, the dataset's mean/std) and
    /// the class names; its model.safetensors the weights (unless --checkpoint is given).
    #[arg(long, value_name = "DIR", conflicts_with_all = ["model", "bfn", "num_classes", "naming", "allow_partial"])]
    pub run: Option<PathBuf>,
    /// Model name (see `xbn models`), e.g. resnet50 or resnet50-xbn-p2, with --checkpoint;
    /// images get the ImageNet evaluation transform (--resize, --crop).
    #[arg(long, requires = "checkpoint")]
    pub model: Option<ModelName>,
    /// Batch-free norm of the XBN blocks (gn, gn:G, ln, in, none) when the checkpoint was
    /// trained with another one than the model name's default (GroupNorm with the paper's
    /// groups). Only for -xbn / -gn models.
    #[arg(long, value_name = "NORM")]
    pub bfn: Option<NormConfig>,
    /// Weights: a PyTorch .pth/.pt state dict (torchvision's or the authors' names, with or
    /// without `module.` / `state_dict`), a safetensors file (e.g. a run's
    /// model.safetensors), or a run's checkpoint/model-N.bpk.
    #[arg(long, value_name = "FILE")]
    pub checkpoint: Option<PathBuf>,
    /// Number of classes of the checkpoint (default: the model's, 1000 for ImageNet).
    #[arg(long)]
    pub num_classes: Option<usize>,
    /// Class names, one per line, in class-index order (default with --run: the dataset's).
    #[arg(long, value_name = "FILE")]
    pub labels: Option<PathBuf>,
    /// How many classes to print per image.
    #[arg(long, default_value_t = 5)]
    pub top_k: usize,
    /// Whose names the checkpoint uses.
    #[arg(long, value_enum, default_value = "auto")]
    pub naming: Naming,
    /// Load the tensors that match and ignore the rest (reports what was skipped).
    #[arg(long)]
    pub allow_partial: bool,
    /// Shorter side after resizing (ImageNet evaluation: 256; with --run: the dataset's
    /// image size).
    #[arg(long, conflicts_with = "run")]
    pub resize: Option<u32>,
    /// Center crop (ImageNet evaluation: 224; with --run: the dataset's image size).
    #[arg(long, conflicts_with = "run")]
    pub crop: Option<u32>,
    /// Images (JPEG or PNG).
    #[arg(required = true, value_name = "IMAGE")]
    pub images: Vec<PathBuf>,
}

fn read_labels(path: &std::path::Path, classes: usize) -> Result<Vec<String>, DataError> {
    let text = std::fs::read_to_string(path).map_err(|e| DataError::Io {
        path: path.to_path_buf(),
        source: e,
    })?;
    let labels: Vec<String> = text.lines().map(|l| l.trim().to_string()).collect();
    if labels.len() != classes {
        return Err(DataError::Malformed {
            path: path.to_path_buf(),
            reason: format!(
                "{} class names for a model of {classes} classes (one name per line)",
                labels.len()
            ),
        });
    }
    Ok(labels)
}

/// The model, its preprocessing and the dataset's class names of a run directory.
fn from_run(
    run: &Path,
    checkpoint: Option<&Path>,
    device: &Device,
) -> Result<(Network, Preprocessing, Vec<String>), crate::Error> {
    let config = load_run_config(run)?;
    let weights = checkpoint
        .map(Path::to_path_buf)
        .unwrap_or_else(|| run.join(files::MODEL));
    let model = load_run_weights(config.network()?.init(device)?, run, &weights)?;
    let names = config.dataset.class_names().iter().map(|n| n.to_string());
    Ok((
        model,
        Preprocessing::for_dataset(config.dataset),
        names.collect(),
    ))
}

/// A zoo model with a checkpoint and the ImageNet transform.
fn from_model(
    args: &PredictArgs,
    model: ModelName,
    device: &Device,
) -> Result<(Network, Preprocessing), crate::Error> {
    let mut config = model_config(model, args.bfn.clone())?;
    if let Some(k) = args.num_classes {
        config = config.with_num_classes(k);
    }
    let model = config.init(device)?;
    let options = LoadOptions {
        family: Some(model.family()),
        naming: args.naming,
        allow_partial: args.allow_partial,
    };
    let checkpoint = args
        .checkpoint
        .as_deref()
        .expect("clap requires --checkpoint");
    let (model, report) = load_weights(model, checkpoint, &options)?;
    if !report.missing.is_empty() || !report.unused.is_empty() {
        eprintln!(
            "partial load: {} tensors loaded, {} kept their initial value, {} unused",
            report.loaded,
            report.missing.len(),
            report.unused.len()
        );
    }
    let resize = args.resize.unwrap_or(256);
    Ok((
        model,
        Preprocessing::imagenet(resize, args.crop.unwrap_or(224)),
    ))
}

pub(super) fn run(args: PredictArgs) -> Result<(), crate::Error> {
    let device = Device::flex();
    let (model, preprocessing, mut labels) = match (&args.run, args.model) {
        (Some(run), _) => {
            let (model, preprocessing, names) = from_run(run, args.checkpoint.as_deref(), &device)?;
            (model, preprocessing, Some(names))
        }
        (None, Some(name)) => {
            let (model, preprocessing) = from_model(&args, name, &device)?;
            (model, preprocessing, None)
        }
        (None, None) => unreachable!("clap requires --run or --model"),
    };
    let classes = model.num_classes();
    if let Some(path) = &args.labels {
        labels = Some(read_labels(path, classes)?);
    }
    // Inference only: BatchNorm folded into the convolutions (the same outputs).
    let (model, _) = model.valid().fold_batch_norms();
    let k = args.top_k.clamp(1, classes);
    let progress = Progress::new(args.images.len() as u64, "images", "classifying");
    for path in &args.images {
        progress.inc(1);
        let x = preprocessing.batch(&[path.as_path()], &device)?;
        let probs = softmax(model.try_forward(x)?, 1);
        let probs: Vec<f32> = probs
            .into_data()
            .convert::<f32>()
            .try_to_vec()
            .map_err(|e| DataError::Malformed {
                path: path.clone(),
                reason: format!("{e:?}"),
            })?;
        let mut order: Vec<usize> = (0..probs.len()).collect();
        order.sort_by(|&a, &b| probs[b].total_cmp(&probs[a]));
        progress.suspend(|| {
            outln!("{}", path.display());
            for (rank, &class) in order.iter().take(k).enumerate() {
                let name = labels.as_ref().map(|l| l[class].as_str()).unwrap_or("");
                outln!(
                    "  {:>2}. class {:>4}  p = {:.4}  {name}",
                    rank + 1,
                    class,
                    probs[class]
                );
            }
        });
    }
    Ok(())
}
