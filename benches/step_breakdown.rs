//! One ResNet-20 training step (batch 128, 3×32×32, option-A shortcuts, SGD) taken apart on
//! flex (or tch), by timing each kind of operation on the step's own shapes:
//!
//! - conv forward: `conv2d` of the 19 convolutions;
//! - conv backward, data: the input gradient of the 18 convolutions whose input needs one
//!   (the backend's `conv2d_x_backward`, timed as an autodiff forward + backward with only
//!   the input tracked, minus the forward);
//! - conv backward, weight: `conv2d_weight_backward` of the 19 convolutions;
//! - norms: forward and backward of the 19 norm layers (xbn's fused kernels);
//! - element-wise: ReLU (19), residual additions (9), the two option-A shortcuts and the
//!   head (average pool, linear, cross-entropy), forward and backward;
//! - optimizer: `optimizer.step`, timed within each whole step;
//! - autodiff and the rest: the step's forward and backward minus all the parts above (it
//!   is negative where the isolated timings, each with cold caches and its own
//!   allocations, add up to more than the same operations inside the step).
//!
//! `tools/step_breakdown.py` runs it next to the same breakdown of PyTorch.
//! `cargo bench --bench step_breakdown -- [bn|xbn-p2] [REPEATS] [flex|tch]` (default bn, 10,
//! flex; tch when built with `--features tch`): prints one JSON object, milliseconds per
//! step. On tch the norms are Burn's composed ops (xbn's fused kernels are flex's).

use std::time::Instant;

use burn::optim::GradientsParams;
use burn::tensor::activation::relu;
use burn::tensor::module::{avg_pool2d, conv2d, conv2d_weight_backward};
use burn::tensor::ops::{AvgPoolOptions, ConvOptions, PadMode};
use burn::tensor::{Device, Distribution, Int, Tensor, TensorData};
use xbn::blocks::{NormPlan, Placement};
use xbn::models::ResNetConfig;
use xbn::norm::NormConfig;
use xbn::train::{classification_output, sgd};

const N: usize = 128;

/// A convolution of ResNet-20: (in channels, out channels, input size, stride).
type ConvShape = (usize, usize, usize, usize);

fn resnet20_convs() -> Vec<ConvShape> {
    let mut convs = vec![(3, 16, 32, 1)];
    convs.extend([(16, 16, 32, 1); 6]);
    convs.push((16, 32, 32, 2));
    convs.extend([(32, 32, 16, 1); 5]);
    convs.push((32, 64, 16, 2));
    convs.extend([(64, 64, 8, 1); 5]);
    convs
}

/// Median milliseconds of `f` over `repeats` runs after one warm-up.
fn time_ms(repeats: usize, mut f: impl FnMut()) -> f64 {
    f();
    let mut times: Vec<f64> = (0..repeats)
        .map(|_| {
            let start = Instant::now();
            f();
            1e3 * start.elapsed().as_secs_f64()
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

/// Forces the computation of `t` (flex is eager; reading one value also waits for it).
fn sync<const D: usize>(t: Tensor<D>) {
    let _: f32 = t.flatten::<1>(0, D - 1).narrow(0, 0, 1).into_scalar();
}

fn random<const D: usize>(shape: [usize; D], device: &Device) -> Tensor<D> {
    Tensor::random(shape, Distribution::Normal(0.0, 1.0), device)
}

/// The inner (non-autodiff) device of a backend name.
fn backend(name: &str) -> Device {
    match name {
        "flex" => Device::flex(),
        #[cfg(feature = "tch")]
        #[allow(deprecated)]
        "tch" => Device::libtorch(),
        other => panic!("backend {other}: flex, or tch when built with --features tch"),
    }
}

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
    let repeats: usize = args.get(1).map_or(10, |s| s.parse().expect("a count"));
    let inner = backend(args.get(2).map_or("flex", String::as_str));
    let device = inner.clone().autodiff();
    let convs = resnet20_convs();

    // Convolutions, on the inner backend (no autodiff bookkeeping).
    let (mut conv_fwd, mut conv_bwd_data, mut conv_bwd_weight) = (0.0, 0.0, 0.0);
    for (i, &(cin, cout, size, stride)) in convs.iter().enumerate() {
        let out = size / stride;
        let x = random([N, cin, size, size], &inner);
        let w = random([cout, cin, 3, 3], &inner);
        let g = random([N, cout, out, out], &inner);
        let options = ConvOptions::new([stride, stride], [1, 1], [1, 1], 1);
        conv_fwd += time_ms(repeats, || {
            sync(conv2d(x.clone(), w.clone(), None, options.clone()))
        });
        conv_bwd_weight += time_ms(repeats, || {
            sync(conv2d_weight_backward(
                x.clone(),
                w.clone(),
                g.clone(),
                options.clone(),
            ))
        });
        if i > 0 {
            // The input gradient as autodiff computes it (the backend's
            // `conv2d_x_backward`): a forward and backward with only `x` tracked, minus the
            // forward on the inner device.
            let xa = x.clone().autodiff();
            let wa = w.clone().autodiff();
            let forward_backward = time_ms(repeats, || {
                let xa = xa.clone().require_grad();
                let grads = conv2d(xa.clone(), wa.clone(), None, options.clone()).backward();
                sync(xa.grad(&grads).expect("a gradient"));
            });
            let forward = time_ms(repeats, || {
                sync(conv2d(x.clone(), w.clone(), None, options.clone()))
            });
            conv_bwd_data += (forward_backward - forward).max(0.0);
        }
    }

    // Norms: the layers of the plan, forward and backward on the autodiff device.
    let plan = NormPlan::new(placement, NormConfig::group(64));
    let mut norms = 0.0;
    for (i, &(_, cout, size, stride)) in convs.iter().enumerate() {
        let out = size / stride;
        // The stem's norm, then a BasicBlock's bn1 (odd conv index) and bn2.
        let config = match i {
            0 => &plan.stem,
            i => &plan.basic[(i + 1) % 2],
        };
        let norm = config.init(cout, &device).expect("a valid norm");
        let x = random([N, cout, out, out], &device);
        norms += time_ms(repeats, || {
            let x = x.clone().require_grad();
            let y = norm.forward(x.clone());
            let grads = y.backward();
            sync(x.grad(&grads).expect("a gradient"));
        });
    }

    // Element-wise: ReLU after every norm but the second of each block and after every
    // addition (19), the 9 additions, the two shortcuts and the head.
    let mut elementwise = 0.0;
    for &(_, cout, size, stride) in &convs {
        let out = size / stride;
        let x = random([N, cout, out, out], &device);
        elementwise += time_ms(repeats, || {
            let x = x.clone().require_grad();
            let grads = relu(x.clone()).backward();
            sync(x.grad(&grads).expect("a gradient"));
        });
    }
    for (c, size) in [(16, 32), (32, 16), (64, 8)] {
        let a = random([N, c, size, size], &device);
        let b = random([N, c, size, size], &device);
        elementwise += 3.0
            * time_ms(repeats, || {
                let (a, b) = (a.clone().require_grad(), b.clone().require_grad());
                let grads = (a.clone() + b.clone()).backward();
                sync(a.grad(&grads).expect("a gradient"));
            });
    }
    for (c, size) in [(16, 32), (32, 16)] {
        let x = random([N, c, size, size], &device);
        elementwise += time_ms(repeats, || {
            let x = x.clone().require_grad();
            let y = avg_pool2d(x.clone(), AvgPoolOptions::new([1, 1]).with_stride([2, 2])).pad(
                [(0, 0), (c / 2, c / 2), (0, 0), (0, 0)],
                PadMode::Constant(0.0),
            );
            let grads = y.backward();
            sync(x.grad(&grads).expect("a gradient"));
        });
    }
    let labels: Vec<i64> = (0..N as i64).map(|i| i % 10).collect();
    let y = Tensor::<1, Int>::from_data(TensorData::new(labels, [N]), &device);
    {
        let x = random([N, 64, 8, 8], &device);
        let fc = burn::nn::LinearConfig::new(64, 10).init(&device);
        let cross_entropy = burn::nn::loss::CrossEntropyLossConfig::new().init(&device);
        elementwise += time_ms(repeats, || {
            let x = x.clone().require_grad();
            let pooled = x.clone().mean_dims(&[2, 3]).flatten::<2>(1, 3);
            let logits = fc.forward(pooled);
            let loss = cross_entropy.forward(logits, y.clone());
            let grads = loss.backward();
            sync(x.grad(&grads).expect("a gradient"));
        });
    }

    // The whole step, with and without the optimizer.
    let images = random([N, 3, 32, 32], &device);
    let mut model = ResNetConfig::cifar(20)
        .unwrap()
        .with_norm_plan(plan.clone())
        .init(&device)
        .unwrap();
    let mut optim = sgd(0.9, 5e-4);
    // Forward + backward and the optimizer step timed apart within each step.
    let (mut fwd_bwd, mut optimizer, mut steps) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..=repeats {
        let start = Instant::now();
        let out = classification_output(&model, images.clone(), y.clone());
        let grads = GradientsParams::from_grads(out.loss.backward(), &model);
        let _: f32 = out.loss.into_scalar();
        let backward_done = Instant::now();
        model = optim.step(0.1, model, grads);
        sync(model.fc.weight.val());
        let end = Instant::now();
        if i > 0 {
            fwd_bwd.push(1e3 * (backward_done - start).as_secs_f64());
            optimizer.push(1e3 * (end - backward_done).as_secs_f64());
            steps.push(1e3 * (end - start).as_secs_f64());
        }
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (without_optimizer, optimizer, step) = (median(fwd_bwd), median(optimizer), median(steps));
    let parts = conv_fwd + conv_bwd_data + conv_bwd_weight + norms + elementwise;
    println!(
        "{{\"plan\": \"{placement}\", \"step\": {step:.2}, \"conv forward\": {conv_fwd:.2}, \
         \"conv backward (data)\": {conv_bwd_data:.2}, \"conv backward (weight)\": \
         {conv_bwd_weight:.2}, \"norms\": {norms:.2}, \"element-wise\": {elementwise:.2}, \
         \"optimizer\": {:.2}, \"autodiff and the rest\": {:.2}}}",
        optimizer,
        without_optimizer - parts,
    );
}
