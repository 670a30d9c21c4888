//! The convolution kernels every model trains through, on every compiled backend: `conv2d`'s
//! output and its input, weight and bias gradients through Burn's autodiff, against the definition
//! `y[n, o, p, q] = Σ_{c, i, j} w[o, c, i, j] · x[n, g·C/G + c, p·s + i·d − pad, q·s + j·d − pad]`
//! computed here in f64.
//!
//! On flex these run xbn's patched burn-flex (`patches/burn-flex`: im2col + GEMM for the
//! forward pass and both gradients); on the other backends Burn's own kernels. Shapes cover
//! what the zoo uses (3×3 same padding, stride 2, 1×1, groups as in ResNeXt, depthwise as in
//! MobileNetV2/ShuffleNetV2) and the edge cases of the im2col geometry (dilation, asymmetric
//! padding, padding wider than the kernel's reach, single samples, planes small enough that
//! several samples share one GEMM).

mod common;

use burn::tensor::module::conv2d;
use burn::tensor::ops::ConvOptions;
use burn::tensor::{Device, Tensor, TensorData};

/// `(batch, c_in, h, w, c_out, groups, kernel, stride, (pad_begin, pad_end), dilation)`.
type Case = (
    usize,
    usize,
    usize,
    usize,
    usize,
    usize,
    usize,
    usize,
    (usize, usize),
    usize,
);

const CASES: [Case; 12] = [
    (3, 4, 8, 8, 5, 1, 3, 1, (1, 1), 1),      // 3×3 same padding
    (2, 4, 9, 7, 6, 1, 3, 2, (1, 1), 1),      // stride 2, odd sizes
    (2, 8, 10, 10, 4, 2, 3, 1, (2, 2), 2),    // groups and dilation
    (2, 6, 6, 6, 6, 6, 3, 1, (1, 1), 1),      // depthwise
    (5, 3, 5, 5, 2, 1, 1, 1, (0, 0), 1),      // 1×1
    (4, 2, 4, 4, 3, 1, 2, 2, (0, 1), 1),      // asymmetric padding
    (1, 3, 12, 12, 2, 1, 5, 3, (2, 2), 1),    // one sample, 5×5, stride 3
    (9, 2, 3, 3, 2, 1, 3, 1, (1, 1), 1),      // tiny planes: samples share a GEMM
    (2, 2, 4, 4, 2, 1, 3, 1, (4, 4), 1),      // padding beyond the kernel's reach
    (16, 16, 32, 32, 32, 1, 3, 2, (1, 1), 1), // ResNet-20's first downsampling conv
    (2, 4, 40, 40, 3, 1, 3, 1, (1, 1), 1),    // large planes: bands of output rows
    (1, 32, 40, 40, 3, 1, 3, 1, (2, 2), 2),   // bands with dilation and padding
];

/// A deterministic sequence in [-1, 1).
fn values(len: usize, seed: u64) -> Vec<f64> {
    let mut state = seed;
    (0..len)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
        })
        .collect()
}

/// `(y, ∂L/∂x, ∂L/∂w, ∂L/∂b)` of `L = Σ y · dy` by the definition (with a bias `b`), in f64.
fn reference(case: Case, x: &[f64], w: &[f64], bias: &[f64], dy: &[f64]) -> [Vec<f64>; 4] {
    let (n, c_in, h, wd, c_out, groups, k, s, (pad, _), d) = case;
    let (ho, wo) = output_size(case);
    let (cpg, opg) = (c_in / groups, c_out / groups);
    let (mut y, mut dx, mut dw) = (vec![0.0; dy.len()], vec![0.0; x.len()], vec![0.0; w.len()]);
    let mut db = vec![0.0; c_out];
    for b in 0..n {
        for o in 0..c_out {
            for p in 0..ho {
                for q in 0..wo {
                    let yi = ((b * c_out + o) * ho + p) * wo + q;
                    y[yi] += bias[o];
                    db[o] += dy[yi];
                    for c in 0..cpg {
                        for i in 0..k {
                            for j in 0..k {
                                let (r, t) = (p * s + i * d, q * s + j * d);
                                if r < pad || t < pad || r - pad >= h || t - pad >= wd {
                                    continue;
                                }
                                let xi =
                                    ((b * c_in + o / opg * cpg + c) * h + r - pad) * wd + t - pad;
                                let wi = ((o * cpg + c) * k + i) * k + j;
                                y[yi] += w[wi] * x[xi];
                                dx[xi] += w[wi] * dy[yi];
                                dw[wi] += x[xi] * dy[yi];
                            }
                        }
                    }
                }
            }
        }
    }
    [y, dx, dw, db]
}

fn output_size(case: Case) -> (usize, usize) {
    let (_, _, h, w, _, _, k, s, (pb, pe), d) = case;
    let out = |size: usize| (size + pb + pe - d * (k - 1) - 1) / s + 1;
    (out(h), out(w))
}

fn tensor<const D: usize>(values: &[f64], shape: [usize; D], device: &Device) -> Tensor<D> {
    let values: Vec<f32> = values.iter().map(|&v| v as f32).collect();
    Tensor::from_data(TensorData::new(values, shape), device)
}

fn assert_close<const D: usize>(
    case: Case,
    device: &str,
    name: &str,
    got: Tensor<D>,
    want: &[f64],
) {
    let got = got.into_data().try_to_vec::<f32>().expect("f32 values");
    assert_eq!(got.len(), want.len(), "{device} {case:?}: {name} size");
    for (i, (&a, &b)) in got.iter().zip(want).enumerate() {
        assert!(
            (a as f64 - b).abs() <= 1e-4 * (1.0 + b.abs()),
            "{device} {case:?}: {name}[{i}] = {a}, expected {b}"
        );
    }
}

#[test]
fn conv2d_output_and_gradients_match_the_definition() {
    for (name, device) in common::devices() {
        let device = device.autodiff();
        for case in CASES {
            let (n, c_in, h, w, c_out, groups, k, s, padding, d) = case;
            let (ho, wo) = output_size(case);
            let x = values(n * c_in * h * w, 1);
            let wt = values(c_out * c_in / groups * k * k, 2);
            let bias = values(c_out, 4);
            let dy = values(n * c_out * ho * wo, 3);
            let [y_ref, dx_ref, dw_ref, db_ref] = reference(case, &x, &wt, &bias, &dy);

            let xt = tensor(&x, [n, c_in, h, w], &device).require_grad();
            let wtt = tensor(&wt, [c_out, c_in / groups, k, k], &device).require_grad();
            let bt = tensor(&bias, [c_out], &device).require_grad();
            let options = ConvOptions::new_with_padding([s, s], [padding, padding], [d, d], groups);
            let y = conv2d(xt.clone(), wtt.clone(), Some(bt.clone()), options);
            let loss = (y.clone() * tensor(&dy, [n, c_out, ho, wo], &device)).sum();
            let grads = loss.backward();
            assert_close(case, name, "output", y, &y_ref);
            assert_close(
                case,
                name,
                "input gradient",
                xt.grad(&grads).unwrap(),
                &dx_ref,
            );
            assert_close(
                case,
                name,
                "weight gradient",
                wtt.grad(&grads).unwrap(),
                &dw_ref,
            );
            assert_close(
                case,
                name,
                "bias gradient",
                bt.grad(&grads).unwrap(),
                &db_ref,
            );
        }
    }
}
