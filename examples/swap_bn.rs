//! Swap the BatchNorms of your own network for an XBN placement, train both a few steps,
//! and compare their estimation shift.
//!
//! The network below is written as a user would write it, with Burn layers and norms from
//! xbn's factory ([`NormConfig`]). Which norm each slot gets comes from a [`NormPlan`]: the
//! BatchNorm baseline, or the paper's XBNBlock-P2 placement (the first norm of each
//! residual block and the stem norm batch-free, GroupNorm here). Both are trained the same
//! few SGD steps; then the estimation shift magnitude (ESM, paper §4.1) of every remaining
//! BatchNorm is measured on the test set.
//!
//! ```sh
//! cargo run --release --example swap_bn -- --data-dir /usr/share/datasets/fashion-mnist --steps 200
//! ```

use std::path::PathBuf;

use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::loss::CrossEntropyLossConfig;
use burn::nn::{Linear, LinearConfig, PaddingConfig2d};
use burn::optim::GradientsParams;
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor};
use clap::Parser;
use xbn::blocks::{NormPlan, Placement};
use xbn::data::{DataLocator, DatasetKind, ImageDataset, Split, train_loader};
use xbn::esm::measure_dataset;
use xbn::models::ModelError;
use xbn::norm::{Norm, NormConfig};
use xbn::train::{ImageClassifier, evaluate, sgd};

/// A residual block of the user's: two 3×3 convolutions, each followed by a norm.
#[derive(Module, Debug)]
struct MyBlock {
    conv1: Conv2d,
    norm1: Norm,
    conv2: Conv2d,
    norm2: Norm,
}

/// The user's network: a stem, three residual blocks, global pooling, a classifier.
#[derive(Module, Debug)]
struct MyNet {
    stem: Conv2d,
    stem_norm: Norm,
    blocks: Vec<MyBlock>,
    head: Linear,
}

fn conv3x3(i: usize, o: usize, device: &Device) -> Conv2d {
    Conv2dConfig::new([i, o], [3, 3])
        .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
        .with_bias(false)
        .init(device)
}

impl MyNet {
    /// Every norm comes from `plan`: the stem's from `plan.stem`, a block's two from
    /// `plan.basic` (the slots of a two-convolution residual block).
    fn new(plan: &NormPlan, channels: usize, classes: usize, device: &Device) -> Self {
        let width = 16;
        let norm = |c: &NormConfig| c.init(width, device).expect("16 channels fit the norms");
        Self {
            stem: conv3x3(channels, width, device),
            stem_norm: norm(&plan.stem),
            blocks: (0..3)
                .map(|_| MyBlock {
                    conv1: conv3x3(width, width, device),
                    norm1: norm(&plan.basic[0]),
                    conv2: conv3x3(width, width, device),
                    norm2: norm(&plan.basic[1]),
                })
                .collect(),
            head: LinearConfig::new(width, classes).init(device),
        }
    }

    /// `[N, C, H, W]` → `[N, classes]`
    fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let mut x = relu(self.stem_norm.forward(self.stem.forward(x)));
        for b in &self.blocks {
            let y = relu(b.norm1.forward(b.conv1.forward(x.clone())));
            x = relu(b.norm2.forward(b.conv2.forward(y)) + x);
        }
        let x = x.mean_dim(3).mean_dim(2).flatten::<2>(1, 3);
        self.head.forward(x)
    }
}

/// What xbn's evaluation and ESM measurement need of a model.
impl ImageClassifier for MyNet {
    fn logits(&self, images: Tensor<4>) -> Result<Tensor<2>, ModelError> {
        Ok(self.forward(images))
    }
}

#[derive(Debug, Parser)]
struct Args {
    /// Folder holding Fashion-MNIST (default: xbn's usual places).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// SGD steps per model.
    #[arg(long, default_value_t = 100)]
    steps: usize,
    #[arg(long, default_value_t = 64)]
    batch_size: usize,
    /// Test images used for the accuracy and the ESM.
    #[arg(long, default_value_t = 2000)]
    test_images: usize,
}

/// For each plan: test accuracy (%), BatchNorm layers left, mean ESM of their means.
fn run(args: &Args) -> Result<Vec<(Placement, f64, usize, f64)>, xbn::Error> {
    let kind = DatasetKind::FashionMnist;
    let locator = DataLocator::new(args.data_dir.clone());
    let dir = locator.locate_splits(kind, &[Split::Train, Split::Test])?;
    let train_set = ImageDataset::load(kind, Split::Train, &dir)?;
    let test_set = ImageDataset::load(kind, Split::Test, &dir)?;
    let n = args
        .test_images
        .min(burn::data::dataset::Dataset::len(&test_set));
    let test_set = test_set.subset((0..n).collect())?;
    let device = Device::flex();
    let ad = device.clone().autodiff();
    let mut results = Vec::new();
    for placement in [Placement::Bn, Placement::XbnP2] {
        let plan = NormPlan::new(placement, NormConfig::group(8));
        ad.seed(0);
        let mut model = MyNet::new(&plan, 1, 10, &ad);
        let mut optim = sgd(0.9, 1e-4);
        // Batches on the autodiff device: that is what makes a BatchNorm train.
        let loader = train_loader(train_set.clone(), kind, None, args.batch_size, 0, None, &ad);
        let mut steps = 0;
        while steps < args.steps {
            let before = steps;
            for batch in loader.iter() {
                let batch = batch.map_err(|e| xbn::train::TrainError::Batch(e.to_string()))?;
                let loss = CrossEntropyLossConfig::new()
                    .init(&ad)
                    .forward(model.forward(batch.images), batch.targets);
                let grads = GradientsParams::from_grads(loss.backward(), &model);
                model = optim.step(0.05, model, grads);
                steps += 1;
                if steps == args.steps {
                    break;
                }
            }
            if steps == before {
                return Err(xbn::train::TrainError::InvalidConfig(
                    "the training set gave no batch".into(),
                )
                .into());
            }
        }
        let score = evaluate(&model, test_set.clone(), kind, 256, &device)?;
        let report = measure_dataset(&model.valid(), test_set.clone(), kind, 256, &device)?;
        let layers = report.layers.len();
        let mean = report.layers.iter().map(|l| l.esm_mean).sum::<f64>() / layers as f64;
        println!(
            "{placement:>6}: test accuracy {:.2} %, {layers} BatchNorms, mean ESM of the means {mean:.4}",
            score.accuracy
        );
        println!("{}", report.table());
        results.push((placement, score.accuracy, layers, mean));
    }
    Ok(results)
}

fn main() {
    xbn::malloc::tune_malloc();
    xbn::progress::enable(true);
    if let Err(e) = run(&Args::parse()) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn swapping_keeps_the_batch_norms_of_the_second_slots() {
        let fixtures = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
        let args = Args {
            data_dir: Some(fixtures),
            steps: 3,
            batch_size: 4,
            test_images: 100,
        };
        let results = run(&args).unwrap();
        // BN: the stem and both norms of 3 blocks; XBN-P2: only each block's second norm.
        let layers: Vec<usize> = results.iter().map(|r| r.2).collect();
        assert_eq!(layers, [7, 3]);
        for (placement, accuracy, _, esm) in results {
            assert!((0.0..=100.0).contains(&accuracy), "{placement}");
            assert!(esm.is_finite() && esm > 0.0, "{placement}: {esm}");
        }
    }
}
