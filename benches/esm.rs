//! Cost of an ESM pass (measuring every BatchNorm input) relative to a plain inference pass
//! over the same data. Issue target: at most 1.2×.
//!
//! Run: `cargo bench --bench esm`.

use std::time::Duration;

use burn::module::Module;
use burn::tensor::{Device, Distribution, Tensor};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use xbn::esm::measure;
use xbn::models::{ModelName, Network};

fn data(device: &Device) -> Vec<Tensor<4>> {
    (0..4)
        .map(|_| Tensor::random([256, 3, 32, 32], Distribution::Normal(0.0, 1.0), device))
        .collect()
}

fn model(name: &str, device: &Device) -> Network {
    let name: ModelName = name.parse().unwrap();
    name.config().unwrap().init(device).unwrap().valid()
}

fn esm_vs_inference(c: &mut Criterion) {
    // Like the PyTorch reference: glibc keeps freed buffers (see xbn::malloc).
    xbn::malloc::tune_malloc();
    let device = Device::flex();
    let batches = data(&device);
    let mut group = c.benchmark_group("esm_pass_1024_images");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(15));
    group.throughput(Throughput::Elements(1024));
    for name in ["resnet20", "resnet20-xbn-p2"] {
        let model = model(name, &device);
        group.bench_function(format!("{name}/inference"), |b| {
            b.iter(|| {
                for x in &batches {
                    let _: f32 = model.forward(x.clone()).sum().into_scalar();
                }
            })
        });
        group.bench_function(format!("{name}/esm"), |b| {
            b.iter(|| {
                let report = measure(&model, batches.iter().cloned(), |m, x| {
                    let _: f32 = m.forward(x).sum().into_scalar();
                })
                .unwrap();
                assert!(!report.layers.is_empty());
            })
        });
    }
    group.finish();
}

criterion_group!(benches, esm_vs_inference);
criterion_main!(benches);
