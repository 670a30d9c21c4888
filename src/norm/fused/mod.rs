//! Fused normalization kernels: BatchNorm (training statistics, inference) and GroupNorm,
//! forward and closed-form backward, each in one or two passes over the data.
//!
//! Burn 0.22 composes BatchNorm training and GroupNorm from a dozen elementwise and
//! reduction ops on the flex backend (every op a pass over the activation, plus its
//! backward); these kernels do the statistics and the normalisation in single passes, with
//! `f64` accumulation, on the flex backend's raw buffers, and are wired into Burn's
//! autodiff graph with a hand-written backward (a [backend extension], Burn's mechanism for
//! custom ops). The formulas are PyTorch's (`aten/src/ATen/native/cpu/batch_norm_kernel.cpp`,
//! `group_norm_kernel.cpp`):
//!
//! - forward, per normalisation set (a channel for BatchNorm, a sample's group for
//!   GroupNorm) of `M` values: `μ = Σx / M`, `σ² = Σx² / M − μ²` (biased), `r = 1 / sqrt(σ² +
//!   eps)`, `y = (x − μ) · r · γ_c + β_c`;
//! - backward, with `x̂ = (x − μ) · r` and `g = ∂L/∂y`: `∂L/∂β_c = Σ g`, `∂L/∂γ_c = Σ g·x̂`,
//!   and `∂L/∂x = r · (γ_c·g − mean(γ·g) − x̂ · mean(γ·g·x̂))`, the means over the set (for
//!   BatchNorm `γ_c` is constant over the set, which gives the familiar
//!   `γ·r/M · (M·g − Σg − x̂·Σg·x̂)`).
//!
//! Other backends (and other float types than `f32`) keep Burn's composed ops, so the
//! results are the same everywhere within float rounding; the golden tests check both.
//!
//! [backend extension]: burn::backend::backend_extension

#[cfg(feature = "flex")]
mod flex;
mod grad;

use burn::backend::tensor::FloatTensor;
use burn::backend::{Backend, backend_extension};
use burn::tensor::{DType, Tensor};

/// The fused kernels, for backends that implement them (see the module documentation).
///
/// Tensors are `[N, C, S]` (`S` = the product of the dimensions after `C`, 1 for `[N, C]`
/// inputs), `γ` and `β` are `[C]`.
#[backend_extension(Flex: cfg(feature = "flex"), Autodiff)]
pub trait FusedNormOps: Backend {
    /// BatchNorm with batch statistics: `(y [N, C, S], mean [C], biased variance [C])`.
    fn xbn_batch_norm_train(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        eps: f64,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>);

    /// Gradients of [`FusedNormOps::xbn_batch_norm_train`]: `(∂x, ∂γ, ∂β)`.
    fn xbn_batch_norm_train_backward(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        mean: FloatTensor<Self>,
        var: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        eps: f64,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>);

    /// GroupNorm with `groups` groups: `(y [N, C, S], mean [N·G], biased variance [N·G])`.
    fn xbn_group_norm(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        groups: usize,
        eps: f64,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>);

    /// Gradients of [`FusedNormOps::xbn_group_norm`]: `(∂x, ∂γ, ∂β)`.
    #[allow(clippy::too_many_arguments)]
    fn xbn_group_norm_backward(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        mean: FloatTensor<Self>,
        var: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        groups: usize,
        eps: f64,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>);

    /// `y = x · a_c + b_c` per channel (BatchNorm in inference: `a = γ·r`, `b = β − μ·a`).
    /// Not differentiable: used only for inputs outside an autodiff graph.
    fn xbn_channel_affine(
        x: FloatTensor<Self>,
        scale: FloatTensor<Self>,
        shift: FloatTensor<Self>,
    ) -> FloatTensor<Self>;
}

/// Whether the fused kernels run `x` (an `f32` tensor of the flex backend, with or without
/// autodiff); otherwise Burn's composed ops do.
fn fused<const D: usize>(x: &Tensor<D>) -> bool {
    #[cfg(feature = "flex")]
    {
        let device = x.device().inner();
        x.dtype() == DType::F32
            && matches!(device.as_dispatch(), burn::backend::DispatchDevice::Flex(_))
    }
    #[cfg(not(feature = "flex"))]
    {
        let _ = x;
        false
    }
}

/// `[N, C, S]` view of `[N, C, ...]`.
fn as_ncs<const D: usize>(x: Tensor<D>) -> Tensor<3> {
    let [n, c] = [x.dims()[0], x.dims()[1]];
    x.reshape([n as i64, c as i64, -1])
}

/// A tensor of the extension's outputs, on the dispatch side.
fn wrap<const D: usize>(t: burn::backend::DispatchTensor) -> Tensor<D> {
    Tensor::from_dispatch(t)
}

/// BatchNorm in training mode (batch statistics): `(y, mean [C], biased variance [C])`, as
/// [`burn::tensor::module::batch_norm_train`], with the fused kernels where they apply.
///
/// # Shapes
/// `input` `[N, C, ...]`, `weight` and `bias` `[C]`.
pub fn batch_norm_train<const D: usize>(
    input: Tensor<D>,
    weight: Tensor<1>,
    bias: Tensor<1>,
    eps: f64,
) -> (Tensor<D>, Tensor<1>, Tensor<1>) {
    if !fused(&input) {
        let out = burn::tensor::module::batch_norm_train(input, weight, bias, eps);
        return (out.output, out.mean, out.variance);
    }
    let dims = input.dims();
    let (y, mean, var) = <burn::backend::Dispatch as FusedNormOps>::xbn_batch_norm_train(
        as_ncs(input).into_dispatch(),
        weight.into_dispatch(),
        bias.into_dispatch(),
        eps,
    );
    (wrap::<3>(y).reshape(dims), wrap(mean), wrap(var))
}

/// BatchNorm in inference mode with the given statistics, as
/// [`burn::tensor::module::batch_norm`]; one fused pass where it applies (inputs outside
/// an autodiff graph on flex).
///
/// # Shapes
/// `input` `[N, C, ...]`, the others `[C]`.
pub fn batch_norm_inference<const D: usize>(
    input: Tensor<D>,
    weight: Tensor<1>,
    bias: Tensor<1>,
    mean: Tensor<1>,
    var: Tensor<1>,
    eps: f64,
) -> Tensor<D> {
    if !fused(&input) || input.device().is_autodiff() {
        return burn::tensor::module::batch_norm(input, weight, bias, mean, var, eps);
    }
    let scale = weight.mul(var.add_scalar(eps).sqrt().recip());
    let shift = bias.sub(mean.mul(scale.clone()));
    let dims = input.dims();
    let y = <burn::backend::Dispatch as FusedNormOps>::xbn_channel_affine(
        as_ncs(input).into_dispatch(),
        scale.into_dispatch(),
        shift.into_dispatch(),
    );
    wrap::<3>(y).reshape(dims)
}

/// GroupNorm (`weight`/`bias` `None`: no affine), as PyTorch's `group_norm`, with the
/// fused kernels where they apply.
///
/// # Shapes
/// `input` `[N, C, ...]` with `C` divisible by `groups`; `weight` and `bias` `[C]`.
pub fn group_norm<const D: usize>(
    input: Tensor<D>,
    weight: Option<Tensor<1>>,
    bias: Option<Tensor<1>>,
    groups: usize,
    eps: f64,
) -> Tensor<D> {
    let dims = input.dims();
    let (n, c) = (dims[0], dims[1]);
    if !fused(&input) {
        let grouped = input.reshape([n as i64, groups as i64, -1]);
        let mean = grouped.clone().mean_dim(2);
        let centered = grouped.sub(mean);
        let var = centered.clone().square().mean_dim(2);
        let normalized = centered.div(var.add_scalar(eps).sqrt()).reshape(dims);
        return match (weight, bias) {
            (Some(w), Some(b)) => {
                let mut shape = [1usize; D];
                shape[1] = c;
                normalized.mul(w.reshape(shape)).add(b.reshape(shape))
            }
            _ => normalized,
        };
    }
    let device = input.device();
    let weight = weight.unwrap_or_else(|| Tensor::ones([c], &device));
    let bias = bias.unwrap_or_else(|| Tensor::zeros([c], &device));
    let (y, _, _) = <burn::backend::Dispatch as FusedNormOps>::xbn_group_norm(
        as_ncs(input).into_dispatch(),
        weight.into_dispatch(),
        bias.into_dispatch(),
        groups,
        eps,
    );
    wrap::<3>(y).reshape(dims)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, Distribution};

    fn max_rel(a: Tensor<1>, b: Tensor<1>) -> f32 {
        let scale = b.clone().abs().max().into_scalar::<f32>().max(1e-12);
        a.sub(b).abs().max().into_scalar::<f32>() / scale
    }

    fn flat<const D: usize>(t: Tensor<D>) -> Tensor<1> {
        t.flatten::<1>(0, D - 1)
    }

    /// The fused kernels against Burn's composed ops, forward and backward, on flex.
    #[test]
    fn fused_kernels_match_the_composed_ops() {
        let device = Device::flex().autodiff();
        let shape = [4, 6, 5, 3];
        let x = Tensor::<4>::random(shape, Distribution::Normal(0.5, 2.0), &device);
        let g = Tensor::<4>::random(shape, Distribution::Default, &device);
        let w = Tensor::<1>::random([6], Distribution::Normal(1.0, 0.3), &device);
        let b = Tensor::<1>::random([6], Distribution::Default, &device);
        let leaves = || {
            (
                x.clone().detach().require_grad(),
                w.clone().detach().require_grad(),
                b.clone().detach().require_grad(),
            )
        };
        // BatchNorm, training.
        let (xf, wf, bf) = leaves();
        let (yf, mf, vf) = batch_norm_train(xf.clone(), wf.clone(), bf.clone(), 1e-5);
        let gf = (yf.clone() * g.clone()).sum().backward();
        let (xc, wc, bc) = leaves();
        let out = burn::tensor::module::batch_norm_train(xc.clone(), wc.clone(), bc.clone(), 1e-5);
        let gc = (out.output.clone() * g.clone()).sum().backward();
        assert!(max_rel(flat(yf), flat(out.output)) < 1e-5);
        assert!(max_rel(mf, out.mean) < 1e-5);
        assert!(max_rel(vf, out.variance) < 1e-5);
        for (a, c) in [
            (flat(xf.grad(&gf).unwrap()), flat(xc.grad(&gc).unwrap())),
            (wf.grad(&gf).unwrap(), wc.grad(&gc).unwrap()),
            (bf.grad(&gf).unwrap(), bc.grad(&gc).unwrap()),
        ] {
            let e = max_rel(a, c);
            assert!(e < 1e-4, "batch norm gradient error {e}");
        }
        // GroupNorm (3 groups of 2 channels), with and without affine.
        for affine in [true, false] {
            let (xf, wf, bf) = leaves();
            let (wo, bo) = match affine {
                true => (Some(wf.clone()), Some(bf.clone())),
                false => (None, None),
            };
            let yf = group_norm(xf.clone(), wo, bo, 3, 1e-5);
            let gf = (yf.clone() * g.clone()).sum().backward();
            let (xc, wc, bc) = leaves();
            // The composed ops (what other backends run).
            let grouped = xc.clone().reshape([4i64, 3, -1]);
            let mean = grouped.clone().mean_dim(2);
            let centered = grouped.sub(mean);
            let var = centered.clone().square().mean_dim(2);
            let mut yc = centered.div(var.add_scalar(1e-5).sqrt()).reshape(shape);
            if affine {
                yc = yc
                    .mul(wc.clone().reshape([1, 6, 1, 1]))
                    .add(bc.clone().reshape([1, 6, 1, 1]));
            }
            let gc = (yc.clone() * g.clone()).sum().backward();
            assert!(max_rel(flat(yf), flat(yc)) < 1e-5);
            let e = max_rel(flat(xf.grad(&gf).unwrap()), flat(xc.grad(&gc).unwrap()));
            assert!(e < 1e-4, "group norm input gradient error {e}");
            if affine {
                assert!(max_rel(wf.grad(&gf).unwrap(), wc.grad(&gc).unwrap()) < 1e-4);
                assert!(max_rel(bf.grad(&gf).unwrap(), bc.grad(&gc).unwrap()) < 1e-4);
            }
        }
        // BatchNorm inference.
        let plain = Device::flex();
        let xi = x.clone().inner();
        let (m, v) = (
            Tensor::<1>::random([6], Distribution::Default, &plain),
            Tensor::<1>::random([6], Distribution::Uniform(0.5, 2.0), &plain),
        );
        let (wi, bi) = (w.clone().inner(), b.clone().inner());
        let fused_y = batch_norm_inference(
            xi.clone(),
            wi.clone(),
            bi.clone(),
            m.clone(),
            v.clone(),
            1e-5,
        );
        let composed = burn::tensor::module::batch_norm(xi, wi, bi, m, v, 1e-5);
        assert!(max_rel(flat(fused_y), flat(composed)) < 1e-5);
    }
}
