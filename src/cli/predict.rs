//! `xbn predict`.

use std::path::PathBuf;

use burn::module::Module;
use burn::tensor::activation::softmax;
use clap::Args;

use super::{model_config, outln};
use crate::checkpoint::{HasFamily, LoadOptions, Naming, load_weights};
use crate::data::{DataError, image_batch};
use crate::models::ModelName;
use crate::norm::NormConfig;

/// Options of `xbn predict`.
#[derive(Debug, Args)]
pub struct PredictArgs {
    /// Model name (see `xbn models`), e.g. resnet50 or resnet50-xbn-p2.
    #[arg(long)]
    pub model: ModelName,
    /// Batch-free norm of the XBN blocks (gn, gn:G, ln, in, none) when the checkpoint was
    /// trained with another one than the model name's default (GroupNorm with the paper's
    /// groups). Only for -xbn / -gn models.
    #[arg(long, value_name = "NORM")]
    pub bfn: Option<NormConfig>,
    /// Weights: a PyTorch .pth/.pt state dict (torchvision's or the authors' names, with or
    /// without `module.` / `state_dict`) or a safetensors file (e.g. a run's
    /// model.safetensors).
    #[arg(long, value_name = "FILE")]
    pub checkpoint: PathBuf,
    /// Number of classes of the checkpoint (default: the model's, 1000 for ImageNet).
    #[arg(long)]
    pub num_classes: Option<usize>,
    /// Class names, one per line, in class-index order.
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
    /// Shorter side after resizing (ImageNet evaluation: 256).
    #[arg(long, default_value_t = 256)]
    pub resize: u32,
    /// Center crop (ImageNet evaluation: 224).
    #[arg(long, default_value_t = 224)]
    pub crop: u32,
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

pub(super) fn run(args: PredictArgs) -> Result<(), crate::Error> {
    let device = burn::tensor::Device::flex();
    let mut config = model_config(args.model, args.bfn.clone())?;
    if let Some(k) = args.num_classes {
        config = config.with_num_classes(k);
    }
    let classes = config.num_classes();
    let labels = args
        .labels
        .as_deref()
        .map(|p| read_labels(p, classes))
        .transpose()?;
    let model = config.init(&device)?;
    let options = LoadOptions {
        family: Some(model.family()),
        naming: args.naming,
        allow_partial: args.allow_partial,
    };
    let (model, report) = load_weights(model, &args.checkpoint, &options)?;
    if !report.missing.is_empty() || !report.unused.is_empty() {
        eprintln!(
            "partial load: {} tensors loaded, {} kept their initial value, {} unused",
            report.loaded,
            report.missing.len(),
            report.unused.len()
        );
    }
    let model = model.valid();
    let k = args.top_k.clamp(1, classes);
    for path in &args.images {
        let x = image_batch(&[path.as_path()], args.resize, args.crop, &device)?;
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
    }
    Ok(())
}
