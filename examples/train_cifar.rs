//! Train a CIFAR ResNet with or without XBNBlocks through xbn's library API (no CLI), then
//! score it in inference mode and measure the estimation shift of its BatchNorms.
//!
//! ```sh
//! # CIFAR-10 (binary version) in DATA/cifar-10-batches-bin, the paper's XBN-P2 placement:
//! cargo run --release --example train_cifar -- --dataset cifar10 --data-dir DATA --norm-plan xbn-p2
//! # No CIFAR at hand: the same on Fashion-MNIST (Debian package dataset-fashion-mnist)
//! cargo run --release --example train_cifar -- --dataset fashion-mnist --epochs 1 --train-limit 10000
//! ```
//!
//! Every option of `xbn train` is a field of [`xbn::train::TrainConfig`]; this example sets
//! the few a CIFAR recipe needs (He et al. §4.2: SGD momentum 0.9, weight decay 1e-4,
//! batch 128; cosine schedule here).

use std::path::PathBuf;

use clap::Parser;
use xbn::blocks::Placement;
use xbn::data::{DataLocator, DatasetKind, Split};
use xbn::esm::measure_dataset;
use xbn::models::{Arch, ModelName};
use xbn::train::{RunOptions, RunSummary, TrainConfig, load_run_weights, load_split, train};

/// Options of the example.
#[derive(Debug, Parser)]
struct Args {
    /// cifar10, cifar100, mnist or fashion-mnist.
    #[arg(long, default_value = "cifar10")]
    dataset: DatasetKind,
    /// Folder holding the dataset (default: xbn's usual places, see the README).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// CIFAR ResNet depth (6n + 2: 20, 32, 44, 56, 110).
    #[arg(long, default_value_t = 20)]
    depth: usize,
    /// bn, xbn-p1, xbn-p2, xbn-p3 or all.
    #[arg(long, default_value = "xbn-p2")]
    norm_plan: Placement,
    #[arg(long, default_value_t = 2)]
    epochs: usize,
    #[arg(long, default_value_t = 128)]
    batch_size: usize,
    #[arg(long, default_value_t = 0.1)]
    lr: f64,
    /// Train on the first N training images only.
    #[arg(long)]
    train_limit: Option<usize>,
    /// Test on the first N test images only.
    #[arg(long)]
    test_limit: Option<usize>,
    /// Run directory (must not hold a run yet).
    #[arg(long, default_value = "runs/example-train-cifar")]
    output: PathBuf,
}

/// Trains, then measures the estimation shift of the trained model on the test set.
fn run(args: Args) -> Result<(RunSummary, Option<f64>), xbn::Error> {
    let model = ModelName::new(Arch::CifarResNet(args.depth), args.norm_plan);
    let mut config = TrainConfig::new(args.dataset, model);
    config.epochs = args.epochs;
    config.batch_size = args.batch_size;
    config.lr = args.lr;
    config.train_limit = args.train_limit;
    config.test_limit = args.test_limit;
    config.data_dir = args.data_dir.clone();
    let locator = DataLocator::new(args.data_dir);
    let options = RunOptions {
        run_dir: args.output.clone(),
        locator: locator.clone(),
    };
    let summary = train(&config, &options)?;
    println!(
        "{model} on {}: test accuracy {:.2} % after {} epoch(s) ({})",
        args.dataset,
        summary.test.accuracy,
        args.epochs,
        summary.model_path.display()
    );

    // The estimation shift of the trained model's BatchNorms on the test set.
    let device = config.backend.device()?;
    let network = config.network()?.init(&device)?;
    let trained = load_run_weights(network, &args.output, &summary.model_path)?;
    let test = load_split(&config, Split::Test, &locator)?;
    let esm = match measure_dataset(&trained, test, args.dataset, 256, &device) {
        Ok(report) => {
            println!("{}", report.table());
            let mean =
                report.layers.iter().map(|l| l.esm_mean).sum::<f64>() / report.layers.len() as f64;
            Some(mean)
        }
        // The all-GN plan has no BatchNorm, hence no estimation shift.
        Err(xbn::esm::EsmError::NoBatchNorm) => None,
        Err(e) => return Err(e.into()),
    };
    Ok((summary, esm))
}

fn main() {
    xbn::malloc::tune_malloc();
    xbn::progress::enable(true);
    if let Err(e) = run(Args::parse()) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixtures() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
    }

    #[test]
    fn trains_on_the_cifar_fixtures() {
        let tmp = tempfile::tempdir().unwrap();
        for (dataset, plan) in [
            (DatasetKind::Cifar10, Placement::XbnP2),
            (DatasetKind::Cifar100, Placement::Bn),
        ] {
            let output = tmp.path().join(dataset.name());
            let args = Args::parse_from([
                "train_cifar",
                "--dataset",
                dataset.name(),
                "--data-dir",
                fixtures().to_str().unwrap(),
                "--norm-plan",
                plan.name(),
                "--epochs",
                "1",
                "--batch-size",
                "2",
                "--output",
                output.to_str().unwrap(),
            ]);
            let (summary, esm) = run(args).unwrap();
            assert_eq!(summary.epochs.len(), 1);
            assert!((0.0..=100.0).contains(&summary.test.accuracy));
            assert!(output.join("model.safetensors").is_file());
            assert!(esm.is_some_and(f64::is_finite), "{esm:?}");
        }
    }
}
