//! Inference throughput of ImageNet-size zoo models, to compare with the PyTorch reference
//! benchmark `pytorch_anchor.py` (its sections c and d: batch 8, 3×224×224, eval mode).
//!
//! Run: `cargo bench --bench zoo`.

use std::time::Duration;

use burn::module::Module;
use burn::tensor::{Device, Distribution, Tensor};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use xbn::models::ModelName;

fn infer_b8(c: &mut Criterion) {
    // Like the PyTorch reference: glibc keeps freed buffers (see xbn::malloc).
    xbn::malloc::tune_malloc();
    let device = Device::flex();
    let x = Tensor::<4>::random([8, 3, 224, 224], Distribution::Normal(0.0, 1.0), &device);
    let mut group = c.benchmark_group("infer_b8_224");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(20));
    group.throughput(Throughput::Elements(8));
    for name in [
        "resnet50",
        "resnet50-xbn-p2",
        "mobilenet-v2",
        "mobilenet-v2-xbn",
        "shufflenet-v2-1.0x",
        "shufflenet-v2-1.0x-xbn",
    ] {
        let name: ModelName = name.parse().unwrap();
        let model = name.config().unwrap().init(&device).unwrap().valid();
        group.bench_function(BenchmarkId::from_parameter(name), |b| {
            b.iter(|| {
                let _: f32 = model.forward(x.clone()).sum().into_scalar();
            })
        });
    }
    group.finish();
}

criterion_group!(benches, infer_b8);
criterion_main!(benches);
