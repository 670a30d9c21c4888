//! Throughput of the CIFAR ResNet-20 (BN and XBN-P2) and of the norm layers, to compare
//! side by side with the PyTorch reference benchmark `pytorch_anchor.py` (its section b:
//! ResNet-20, option-A shortcuts, XBN-P2 with GN(min(64, C)); a training step is forward,
//! cross-entropy, backward and an SGD update with momentum 0.9 and weight decay 5e-4 at
//! batch 128; inference is batch 256 in eval mode; inputs 3×32×32. Norms: forward +
//! backward from a gradient of ones on [64, 64, 32, 32], and forward alone).
//!
//! The PyTorch side of every benchmark here is `tools/bench_pytorch.py` (same names);
//! `python3 tools/side_by_side.py` runs both interleaved and prints the ratios.
//!
//! Run alone: `cargo bench --bench resnet` (criterion prints time per iteration and images/s).

use std::time::Duration;

use burn::module::Module;
use burn::optim::GradientsParams;
use burn::tensor::{Device, Distribution, Int, Tensor, TensorData};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use xbn::blocks::{NormPlan, Placement};
use xbn::models::{ResNet, ResNetConfig};
use xbn::norm::NormConfig;
use xbn::train::{classification_output, sgd};

fn resnet20(placement: Placement, device: &Device) -> ResNet {
    ResNetConfig::cifar(20)
        .unwrap()
        .with_norm_plan(NormPlan::new(placement, NormConfig::group(64)))
        .init(device)
        .unwrap()
}

fn train_step(c: &mut Criterion) {
    // Like the PyTorch reference: glibc keeps freed buffers (see xbn::malloc).
    xbn::malloc::tune_malloc();
    let device = Device::flex().autodiff();
    let n = 128;
    let x = Tensor::<4>::random([n, 3, 32, 32], Distribution::Normal(0.0, 1.0), &device);
    let labels: Vec<i64> = (0..n as i64).map(|i| i % 10).collect();
    let y = Tensor::<1, Int>::from_data(TensorData::new(labels, [n]), &device);
    let mut group = c.benchmark_group("resnet20_train_b128");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(15));
    group.throughput(Throughput::Elements(n as u64));
    for placement in [Placement::Bn, Placement::XbnP2] {
        let mut optim = sgd(0.9, 5e-4);
        let mut model = Some(resnet20(placement, &device));
        group.bench_function(BenchmarkId::from_parameter(placement), |b| {
            b.iter(|| {
                let m = model.take().unwrap();
                let out = classification_output(&m, x.clone(), y.clone());
                let grads = GradientsParams::from_grads(out.loss.backward(), &m);
                model = Some(optim.step(0.1, m, grads));
                let _: f32 = out.loss.into_scalar();
            })
        });
    }
    group.finish();
}

fn inference(c: &mut Criterion) {
    // Like the PyTorch reference: glibc keeps freed buffers (see xbn::malloc).
    xbn::malloc::tune_malloc();
    let device = Device::flex();
    let n = 256;
    let x = Tensor::<4>::random([n, 3, 32, 32], Distribution::Normal(0.0, 1.0), &device);
    let mut group = c.benchmark_group("resnet20_infer_b256");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(10));
    group.throughput(Throughput::Elements(n as u64));
    for placement in [Placement::Bn, Placement::XbnP2] {
        // As `xbn eval` runs it: BatchNorm folded into the convolutions.
        let (model, _) = resnet20(placement, &device).valid().fold_batch_norms();
        group.bench_function(BenchmarkId::from_parameter(placement), |b| {
            b.iter(|| {
                let _: f32 = model.forward(x.clone()).sum().into_scalar();
            })
        });
    }
    group.finish();
}

fn norms(c: &mut Criterion) {
    // Like the PyTorch reference: glibc keeps freed buffers (see xbn::malloc).
    xbn::malloc::tune_malloc();
    let device = Device::flex().autodiff();
    let x = Tensor::<4>::random([64, 64, 32, 32], Distribution::Normal(0.0, 1.0), &device)
        .require_grad();
    let mut group = c.benchmark_group("norm_fwd_bwd_64x64x32x32");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(5));
    for (name, cfg) in [
        ("batchnorm_train", NormConfig::batch()),
        ("groupnorm_g32", NormConfig::group(32)),
        ("groupnorm_g64", NormConfig::group(64)),
    ] {
        let norm = cfg.init(64, &device).unwrap();
        // Backward from a gradient of ones (`y.backward()`), as tools/bench_pytorch.py
        // does with `y.backward(torch.ones_like(y))`.
        group.bench_function(name, |b| {
            b.iter(|| {
                let grads = norm.forward(x.clone()).backward();
                std::hint::black_box(x.grad(&grads).unwrap());
            })
        });
    }
    group.finish();
}

fn norms_forward(c: &mut Criterion) {
    xbn::malloc::tune_malloc();
    let device = Device::flex();
    let x = Tensor::<4>::random([64, 64, 32, 32], Distribution::Normal(0.0, 1.0), &device);
    let mut group = c.benchmark_group("norm_fwd_64x64x32x32");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(4));
    // Inference: BatchNorm with its running statistics, GroupNorm as in training.
    for (name, cfg) in [
        ("batchnorm_eval", NormConfig::batch()),
        ("groupnorm_g32", NormConfig::group(32)),
    ] {
        let norm = cfg.init(64, &device).unwrap().valid();
        group.bench_function(name, |b| {
            b.iter(|| std::hint::black_box(norm.forward(x.clone())))
        });
    }
    group.finish();
}

criterion_group!(benches, train_step, inference, norms, norms_forward);
criterion_main!(benches);
