//! `xbn models`.

use clap::Args;

use super::outln;
use crate::models::{ModelName, count_parameters};

/// Options of `xbn models`.
#[derive(Debug, Args)]
pub struct ModelsArgs {
    /// Input size (square) for the MAC count; default: each model's native size (224, or
    /// 32 for the CIFAR networks).
    #[arg(long, value_name = "PIXELS")]
    pub input_size: Option<usize>,
    /// Number of classes; default: 1000 for ImageNet networks, 10 for CIFAR networks.
    #[arg(long)]
    pub num_classes: Option<usize>,
    /// Print the names only (no model is built).
    #[arg(long)]
    pub names: bool,
}

pub(super) fn run(args: ModelsArgs) -> Result<(), crate::Error> {
    let device = burn::tensor::Device::flex();
    if !args.names {
        outln!(
            "{:<26} {:>12} {:>16} {:>5} {:>5}  {}",
            "model",
            "params",
            "MACs",
            "BN",
            "GN",
            "input"
        );
    }
    for name in ModelName::registered() {
        if args.names {
            outln!("{name}");
            continue;
        }
        let mut config = name.config()?;
        if let Some(k) = args.num_classes {
            config = config.with_num_classes(k);
        }
        // Lazily: counting needs the shapes, not the 600 million random initial weights.
        let model = config.init_lazy(&device)?;
        let [h, w] = args
            .input_size
            .map(|s| [s, s])
            .unwrap_or_else(|| name.arch.input_size());
        let norms = model.norm_layers();
        let gn = norms.iter().filter(|n| n.is_batch_free()).count();
        outln!(
            "{:<26} {:>12} {:>16} {:>5} {:>5}  {h}x{w}",
            name.to_string(),
            count_parameters(&model),
            model.macs([h, w]),
            norms.len() - gn,
            gn
        );
    }
    Ok(())
}
