//! Training steps of ResNet-20 (batch 128, 3×32×32) to profile: `tools/step_breakdown.py`
//! runs this under `perf` and sorts the time into conv forward, conv backward, norms,
//! element-wise, optimizer, autodiff and allocation, next to PyTorch's `torch.profiler`.
//!
//! `cargo bench --bench step_profile -- [bn|xbn-p2] [STEPS]` (default bn, 20 steps).

use burn::optim::GradientsParams;
use burn::tensor::{Device, Distribution, Int, Tensor, TensorData};
use xbn::blocks::{NormPlan, Placement};
use xbn::models::ResNetConfig;
use xbn::norm::NormConfig;
use xbn::train::{classification_output, sgd};

fn main() {
    xbn::malloc::tune_malloc();
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let placement: Placement = args
        .first()
        .map_or("bn", String::as_str)
        .parse()
        .expect("bn or xbn-p2");
    let steps: usize = args.get(1).map_or(20, |s| s.parse().expect("a step count"));
    let device = Device::flex().autodiff();
    let n = 128;
    let x = Tensor::<4>::random([n, 3, 32, 32], Distribution::Normal(0.0, 1.0), &device);
    let labels: Vec<i64> = (0..n as i64).map(|i| i % 10).collect();
    let y = Tensor::<1, Int>::from_data(TensorData::new(labels, [n]), &device);
    let mut model = ResNetConfig::cifar(20)
        .unwrap()
        .with_norm_plan(NormPlan::new(placement, NormConfig::group(64)))
        .init(&device)
        .unwrap();
    let mut optim = sgd(0.9, 5e-4);
    let start = std::time::Instant::now();
    for _ in 0..steps {
        let out = classification_output(&model, x.clone(), y.clone());
        let grads = GradientsParams::from_grads(out.loss.backward(), &model);
        model = optim.step(0.1, model, grads);
        let _: f32 = out.loss.into_scalar();
    }
    let ms = 1e3 * start.elapsed().as_secs_f64() / steps as f64;
    println!(
        "{placement}: {steps} steps, {ms:.1} ms per step ({:.1} img/s)",
        n as f64 / ms * 1e3
    );
}
