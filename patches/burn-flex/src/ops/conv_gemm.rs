//! 2D convolution by im2col + GEMM: the forward pass, the input gradient and the weight gradient.
//!
//! Burn's default `ModuleOps::conv2d_weight_backward` computes the weight gradient as a
//! convolution of the input by the output gradient with the batch and channel axes swapped,
//! whose kernel is a whole output plane. On flex that becomes one GEMM per input channel with
//! an inner dimension of `N·Ho·Wo` and only `kh·kw` output columns, after transposing copies
//! of both tensors: the slowest operation of a CNN training step (3.8× PyTorch's time on the
//! convolutions of a CIFAR ResNet-20). The default input gradient runs `conv_transpose2d`.
//!
//! Both gradients here follow PyTorch's `slow_conv2d_backward`
//! (`aten/src/ATen/native/ConvolutionMM2d.cpp`). Per block of samples and per group `g`, with
//! `col = im2col(x)` of shape `[C_in/G·kh·kw, B·Ho·Wo]` (the samples of the block side by
//! side):
//!
//! - weight: `∂W_g += ∂Y_g · colᵀ`, a GEMM of `[C_out/G, B·Ho·Wo]` by `[B·Ho·Wo, C_in/G·kh·kw]`;
//! - input: `col = W_gᵀ · ∂Y_g`, then `∂X += col2im(col)`;
//! - and the forward pass, as PyTorch's `slow_conv2d_forward`: `Y_g = W_g · col`, used for
//!   ungrouped convolutions with kernels larger than 1×1 (flex's `conv3d_impl` transposes the
//!   input to channels-last, gathers im2col tiles element by element and scatters each tile's
//!   result back, about twice the time on a ResNet's 3×3 convolutions).
//!
//! Each GEMM covers about [`COL_ELEMENTS`] values of `col` (so that `col` is still in the L2
//! cache when the GEMM reads it): bands of output rows of one sample on large feature maps,
//! several samples side by side on small ones (so that the GEMMs stay long). Work is split over sample
//! blocks with rayon; the weight gradient accumulates one buffer per part of the batch (as many
//! parts as threads) and adds them up in a fixed order, so results do not depend on scheduling.
//! Any stride, dilation, group count and (also asymmetric) padding is supported: the output
//! size is read from the gradient's shape and only the begin padding matters for the taps.

use alloc::vec;
use alloc::vec::Vec;
use burn_backend::DType;
use burn_backend::ops::ConvOptions;
use burn_std::{Bytes, Shape, f16};
use core::ops::{Add, Range};

use crate::ops::conv_common::{convert_bf16_to_f32, convert_f32_to_bf16};
use crate::ops::matmul::GemmScalar;
use crate::{FlexTensor, Layout};

/// Values of `col` one GEMM aims at (256 KiB of f32: it stays in a core's L2 cache between
/// im2col and the GEMM).
const COL_ELEMENTS: usize = 64 * 1024;
/// Bounds on the columns (output positions) of one GEMM.
const MIN_COLUMNS: usize = 128;
const MAX_COLUMNS: usize = 1024;

/// Shapes and options of one 2D convolution, all sizes in elements.
#[derive(Clone, Copy, Debug)]
struct Geometry {
    batch: usize,
    c_in: usize,
    h: usize,
    w: usize,
    c_out: usize,
    groups: usize,
    kh: usize,
    kw: usize,
    ho: usize,
    wo: usize,
    stride: [usize; 2],
    pad: [usize; 2],
    dilation: [usize; 2],
}

impl Geometry {
    /// From `x [N, C_in, H, W]`, the weight's shape `[C_out, C_in/G, kh, kw]` and the output
    /// gradient's `[N, C_out, Ho, Wo]`.
    fn new(x: &Shape, weight: &Shape, out: &Shape, options: &ConvOptions<2>) -> Self {
        assert_eq!(x.num_dims(), 4, "conv2d backward: x must be [N, C, H, W]");
        assert_eq!(weight.num_dims(), 4, "conv2d backward: weight must be 4-D");
        assert_eq!(
            out.num_dims(),
            4,
            "conv2d backward: output gradient must be 4-D"
        );
        let geometry = Self {
            batch: x[0],
            c_in: x[1],
            h: x[2],
            w: x[3],
            c_out: weight[0],
            groups: options.groups,
            kh: weight[2],
            kw: weight[3],
            ho: out[2],
            wo: out[3],
            stride: options.stride,
            pad: options.padding_begin(),
            dilation: options.dilation,
        };
        assert_eq!(
            out[0], geometry.batch,
            "conv2d backward: batch sizes differ"
        );
        assert_eq!(
            out[1], geometry.c_out,
            "conv2d backward: output channels differ"
        );
        assert_eq!(
            weight[1] * geometry.groups,
            geometry.c_in,
            "conv2d backward: weight's input channels times groups must equal x's channels"
        );
        geometry
    }

    fn in_per_group(&self) -> usize {
        self.c_in / self.groups
    }

    fn out_per_group(&self) -> usize {
        self.c_out / self.groups
    }

    /// Rows of `col`: `C_in/G · kh · kw`.
    fn rows(&self) -> usize {
        self.in_per_group() * self.kh * self.kw
    }

    fn plane_in(&self) -> usize {
        self.h * self.w
    }

    fn plane_out(&self) -> usize {
        self.ho * self.wo
    }

    /// Columns (output positions) of one GEMM: `col` about [`COL_ELEMENTS`] values.
    fn columns(&self) -> usize {
        (COL_ELEMENTS / self.rows().max(1)).clamp(MIN_COLUMNS, MAX_COLUMNS)
    }

    /// Samples per block: enough for [`Self::columns`], but at least one block per thread
    /// when the batch allows it.
    fn block(&self, threads: usize) -> usize {
        let wanted = self.columns().div_ceil(self.plane_out().max(1));
        let fair = self.batch.div_ceil(threads.max(1));
        wanted.min(fair).max(1)
    }

    /// The bands of output rows a block of `count` samples is processed in: the whole plane
    /// for several samples, bands of about [`Self::columns`] positions for one.
    fn bands(&self, count: usize) -> impl Iterator<Item = Range<usize>> {
        let rows = if count > 1 {
            self.ho.max(1)
        } else {
            (self.columns() / self.wo.max(1)).clamp(1, self.ho.max(1))
        };
        let ho = self.ho;
        (0..ho.div_ceil(rows)).map(move |i| i * rows..((i + 1) * rows).min(ho))
    }
}

/// The output positions `o < out` whose tap `o·stride + k·dilation − pad` falls inside
/// `[0, size)`, as a half-open range.
fn valid_range(
    out: usize,
    size: usize,
    k: usize,
    stride: usize,
    dilation: usize,
    pad: usize,
) -> (usize, usize) {
    let offset = k * dilation;
    let lo = if pad > offset {
        (pad - offset).div_ceil(stride)
    } else {
        0
    };
    let hi = if size + pad > offset {
        (size + pad - offset).div_ceil(stride)
    } else {
        0
    };
    let lo = lo.min(out);
    (lo, hi.min(out).max(lo))
}

/// Walks one sample's `col` for the output rows `band` (rows of `col`: `C_in/G·kh·kw`;
/// columns: the band's output positions, from 0) in runs: `visit(row, columns, Some(src))`
/// for a run of positions whose taps are inside the input, the first at plane index `src` of
/// the sample's `C_in/G` planes and the next ones `stride_w` apart, and
/// `visit(row, columns, None)` for a run that falls in the padding.
#[inline]
fn for_each_run(
    g: &Geometry,
    band: &Range<usize>,
    mut visit: impl FnMut(usize, Range<usize>, Option<usize>),
) {
    let end = (band.end - band.start) * g.wo;
    let [sh, sw] = g.stride;
    let [ph, pw] = g.pad;
    let [dh, dw] = g.dilation;
    for ci in 0..g.in_per_group() {
        let plane = ci * g.plane_in();
        for ki in 0..g.kh {
            let (oh0, oh1) = valid_range(g.ho, g.h, ki, sh, dh, ph);
            for kj in 0..g.kw {
                let (ow0, ow1) = valid_range(g.wo, g.w, kj, sw, dw, pw);
                let row = (ci * g.kh + ki) * g.kw + kj;
                let oh0 = oh0.clamp(band.start, band.end);
                let oh1 = oh1.clamp(oh0, band.end);
                if oh0 > band.start {
                    visit(row, 0..(oh0 - band.start) * g.wo, None);
                }
                for oh in oh0..oh1 {
                    let line = (oh - band.start) * g.wo;
                    if ow0 > 0 {
                        visit(row, line..line + ow0, None);
                    }
                    if ow1 > ow0 {
                        let ih = oh * sh + ki * dh - ph;
                        let src = plane + ih * g.w + ow0 * sw + kj * dw - pw;
                        visit(row, line + ow0..line + ow1, Some(src));
                    }
                    if ow1 < g.wo {
                        visit(row, line + ow1.max(ow0)..line + g.wo, None);
                    }
                }
                if oh1 < band.end {
                    visit(row, (oh1 - band.start) * g.wo..end, None);
                }
            }
        }
    }
}

/// Writes one sample's `im2col` of `x` (its `C_in/G` planes) for the output rows `band` into
/// the columns `offset..offset + band·Wo` of `col`, whose rows are `ld` long.
fn im2col<T: Copy>(
    x: &[T],
    g: &Geometry,
    band: &Range<usize>,
    zero: T,
    col: &mut [T],
    (ld, offset): (usize, usize),
) {
    let sw = g.stride[1];
    for_each_run(g, band, |row, run, src| {
        let start = row * ld + offset;
        let dst = &mut col[start + run.start..start + run.end];
        match src {
            None => dst.fill(zero),
            Some(src) if sw == 1 => dst.copy_from_slice(&x[src..src + dst.len()]),
            Some(src) => {
                for (i, d) in dst.iter_mut().enumerate() {
                    *d = x[src + i * sw];
                }
            }
        }
    });
}

/// Adds one sample's columns `offset..offset + band·Wo` of `col` (rows `ld` long) back onto
/// its `C_in/G` planes `dx` (the adjoint of [`im2col`]).
fn col2im_add<T: Copy + Add<Output = T>>(
    col: &[T],
    g: &Geometry,
    band: &Range<usize>,
    (ld, offset): (usize, usize),
    dx: &mut [T],
) {
    let sw = g.stride[1];
    for_each_run(g, band, |row, run, src| {
        let Some(src) = src else { return };
        let start = row * ld + offset;
        let from = &col[start + run.start..start + run.end];
        if sw == 1 {
            for (d, &v) in dx[src..src + from.len()].iter_mut().zip(from) {
                *d = *d + v;
            }
        } else {
            for (i, &v) in from.iter().enumerate() {
                dx[src + i * sw] = dx[src + i * sw] + v;
            }
        }
    });
}

/// The output-gradient rows of group `group` for the output rows `band` of samples
/// `s0..s0 + count`, as a `[C_out/G, count·band·Wo]` matrix: borrowed from `dy` for one
/// sample, copied side by side into `pack` for several (whose band is the whole plane).
/// Returns the matrix and its row stride.
#[allow(clippy::too_many_arguments)]
fn gradient_block<'a, T: Copy>(
    dy: &'a [T],
    g: &Geometry,
    group: usize,
    (s0, count): (usize, usize),
    band: &Range<usize>,
    pack: &'a mut Vec<T>,
    zero: T,
) -> (&'a [T], usize) {
    let l = g.plane_out();
    let opg = g.out_per_group();
    let first = |s: usize| (s * g.c_out + group * opg) * l;
    if count == 1 {
        return (&dy[first(s0) + band.start * g.wo..first(s0) + opg * l], l);
    }
    debug_assert_eq!(band.len(), g.ho);
    let ld = count * l;
    pack.clear();
    pack.resize(opg * ld, zero);
    for j in 0..count {
        let src = first(s0 + j);
        for o in 0..opg {
            pack[o * ld + j * l..o * ld + (j + 1) * l]
                .copy_from_slice(&dy[src + o * l..src + (o + 1) * l]);
        }
    }
    (&pack[..], ld)
}

/// `dst (m×n) = [dst +] lhs (m×k) · rhs (k×n)`, all matrices given by (row stride, column
/// stride).
#[allow(clippy::too_many_arguments)]
fn gemm_into<T: GemmScalar>(
    (m, n, k): (usize, usize, usize),
    dst: &mut [T],
    dst_rs: usize,
    accumulate: bool,
    lhs: &[T],
    (lhs_rs, lhs_cs): (usize, usize),
    rhs: &[T],
    (rhs_rs, rhs_cs): (usize, usize),
    parallelism: gemm::Parallelism,
) {
    debug_assert!(m == 0 || dst.len() >= (m - 1) * dst_rs + n);
    debug_assert!(m == 0 || k == 0 || lhs.len() > (m - 1) * lhs_rs + (k - 1) * lhs_cs);
    debug_assert!(k == 0 || n == 0 || rhs.len() > (k - 1) * rhs_rs + (n - 1) * rhs_cs);
    // SAFETY: every index the GEMM touches is inside the slices (checked above in debug
    // builds; guaranteed by the callers' shapes), and `dst` does not alias `lhs` or `rhs`.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            dst_rs as isize,
            accumulate,
            lhs.as_ptr(),
            lhs_cs as isize,
            lhs_rs as isize,
            rhs.as_ptr(),
            rhs_cs as isize,
            rhs_rs as isize,
            T::one(),
            T::one(),
            false,
            false,
            false,
            parallelism,
        );
    }
}

fn threads() -> usize {
    #[cfg(feature = "rayon")]
    {
        rayon::current_num_threads()
    }
    #[cfg(not(feature = "rayon"))]
    {
        1
    }
}

/// Runs `f(item)` for every item, in parallel where rayon is enabled, and returns the results
/// in item order.
fn map_items<I: Send, R: Send>(items: Vec<I>, f: impl Fn(I) -> R + Sync + Send) -> Vec<R> {
    #[cfg(feature = "rayon")]
    {
        use rayon::prelude::*;
        items.into_par_iter().map(f).collect()
    }
    #[cfg(not(feature = "rayon"))]
    {
        items.into_iter().map(f).collect()
    }
}

/// The GEMMs' own threading: used only when the batch gives a single part.
fn inner_parallelism(parts: usize) -> gemm::Parallelism {
    #[cfg(feature = "rayon")]
    if parts == 1 && threads() > 1 {
        return gemm::Parallelism::Rayon(0);
    }
    let _ = parts;
    gemm::Parallelism::None
}

/// `∂W [C_out, C_in/G, kh, kw]` from `x [N, C_in, H, W]` and `∂Y [N, C_out, Ho, Wo]`.
fn weight_backward_typed<T: GemmScalar + Add<Output = T> + Send + Sync>(
    x: &[T],
    dy: &[T],
    g: &Geometry,
) -> Vec<T> {
    let zero = T::zero();
    let (rows, opg, l) = (g.rows(), g.out_per_group(), g.plane_out());
    let size = g.c_out * rows;
    let block = g.block(threads());
    let blocks = g.batch.div_ceil(block);
    let parts = threads().min(blocks).max(1);
    let parallelism = inner_parallelism(parts);
    let partials = map_items((0..parts).collect(), |part| {
        let mut acc = vec![zero; size];
        let mut col = vec![zero; rows * block * l];
        let mut pack = Vec::new();
        for b in part * blocks / parts..(part + 1) * blocks / parts {
            let s0 = b * block;
            let count = block.min(g.batch - s0);
            for band in g.bands(count) {
                let span = band.len() * g.wo;
                let ld = count * span;
                for group in 0..g.groups {
                    for j in 0..count {
                        let first = ((s0 + j) * g.c_in + group * g.in_per_group()) * g.plane_in();
                        im2col(&x[first..], g, &band, zero, &mut col, (ld, j * span));
                    }
                    let (lhs, lhs_rs) =
                        gradient_block(dy, g, group, (s0, count), &band, &mut pack, zero);
                    gemm_into(
                        (opg, rows, ld),
                        &mut acc[group * opg * rows..(group + 1) * opg * rows],
                        rows,
                        true,
                        lhs,
                        (lhs_rs, 1),
                        &col,
                        (1, ld),
                        parallelism,
                    );
                }
            }
        }
        acc
    });
    let mut partials = partials.into_iter();
    let mut total = partials.next().unwrap_or_else(|| vec![zero; size]);
    for partial in partials {
        for (t, p) in total.iter_mut().zip(partial) {
            *t = *t + p;
        }
    }
    total
}

/// `∂X [N, C_in, H, W]` from the weight `[C_out, C_in/G, kh, kw]` and `∂Y [N, C_out, Ho, Wo]`.
fn x_backward_typed<T: GemmScalar + Add<Output = T> + Send + Sync>(
    weight: &[T],
    dy: &[T],
    g: &Geometry,
) -> Vec<T> {
    let zero = T::zero();
    let (rows, opg, l) = (g.rows(), g.out_per_group(), g.plane_out());
    let sample = g.c_in * g.plane_in();
    let block = g.block(threads());
    let blocks = g.batch.div_ceil(block);
    let parts = threads().min(blocks).max(1);
    let parallelism = inner_parallelism(parts);
    // Part p owns the samples of blocks p·blocks/parts .. (p+1)·blocks/parts of ∂X.
    let mut dx = vec![zero; g.batch * sample];
    let mut items = Vec::with_capacity(parts);
    let mut rest: &mut [T] = &mut dx;
    for part in 0..parts {
        let (b0, b1) = (part * blocks / parts, (part + 1) * blocks / parts);
        let samples = (b1 * block).min(g.batch) - b0 * block;
        let (mine, tail) = rest.split_at_mut(samples * sample);
        items.push((b0, b1, mine));
        rest = tail;
    }
    map_items(items, |(b0, b1, dx)| {
        let mut col = vec![zero; rows * block * l];
        let mut pack = Vec::new();
        for b in b0..b1 {
            let s0 = b * block;
            let count = block.min(g.batch - s0);
            for band in g.bands(count) {
                let span = band.len() * g.wo;
                let ld = count * span;
                for group in 0..g.groups {
                    let (rhs, rhs_rs) =
                        gradient_block(dy, g, group, (s0, count), &band, &mut pack, zero);
                    // W_gᵀ: element (i, k) of the [rows, opg] matrix is
                    // weight[(group·opg + k)·rows + i].
                    gemm_into(
                        (rows, ld, opg),
                        &mut col,
                        ld,
                        false,
                        &weight[group * opg * rows..(group + 1) * opg * rows],
                        (1, rows),
                        rhs,
                        (rhs_rs, 1),
                        parallelism,
                    );
                    for j in 0..count {
                        let first = (s0 + j - b0 * block) * sample
                            + group * g.in_per_group() * g.plane_in();
                        col2im_add(&col, g, &band, (ld, j * span), &mut dx[first..]);
                    }
                }
            }
        }
    });
    dx
}

/// `Y [N, C_out, Ho, Wo]` from `x [N, C_in, H, W]` and the weight `[C_out, C_in/G, kh, kw]`
/// (without bias).
fn forward_typed<T: GemmScalar + Add<Output = T> + Send + Sync>(
    x: &[T],
    weight: &[T],
    g: &Geometry,
) -> Vec<T> {
    let zero = T::zero();
    let (rows, opg, l) = (g.rows(), g.out_per_group(), g.plane_out());
    let sample = g.c_out * l;
    let block = g.block(threads());
    let blocks = g.batch.div_ceil(block);
    let parts = threads().min(blocks).max(1);
    let parallelism = inner_parallelism(parts);
    let mut y = vec![zero; g.batch * sample];
    let mut items = Vec::with_capacity(parts);
    let mut rest: &mut [T] = &mut y;
    for part in 0..parts {
        let (b0, b1) = (part * blocks / parts, (part + 1) * blocks / parts);
        let samples = (b1 * block).min(g.batch) - b0 * block;
        let (mine, tail) = rest.split_at_mut(samples * sample);
        items.push((b0, b1, mine));
        rest = tail;
    }
    map_items(items, |(b0, b1, y)| {
        let mut col = vec![zero; rows * block * l];
        let mut out = if block > 1 {
            vec![zero; opg * block * l]
        } else {
            Vec::new()
        };
        for b in b0..b1 {
            let s0 = b * block;
            let count = block.min(g.batch - s0);
            for band in g.bands(count) {
                let span = band.len() * g.wo;
                let ld = count * span;
                for group in 0..g.groups {
                    for j in 0..count {
                        let first = ((s0 + j) * g.c_in + group * g.in_per_group()) * g.plane_in();
                        im2col(&x[first..], g, &band, zero, &mut col, (ld, j * span));
                    }
                    let lhs = &weight[group * opg * rows..(group + 1) * opg * rows];
                    let first = |j: usize| (s0 + j - b0 * block) * sample + group * opg * l;
                    if count == 1 {
                        // Straight into the band of the sample's output planes.
                        let start = first(0) + band.start * g.wo;
                        let dst = &mut y[start..first(0) + opg * l];
                        let (dims, rhs) = ((opg, span, rows), (ld, 1));
                        gemm_into(dims, dst, l, false, lhs, (rows, 1), &col, rhs, parallelism);
                    } else {
                        let dims = (opg, ld, rows);
                        let (lhs_strides, rhs) = ((rows, 1), (ld, 1));
                        gemm_into(
                            dims,
                            &mut out,
                            ld,
                            false,
                            lhs,
                            lhs_strides,
                            &col,
                            rhs,
                            parallelism,
                        );
                        for j in 0..count {
                            for o in 0..opg {
                                y[first(j) + o * l..first(j) + (o + 1) * l]
                                    .copy_from_slice(&out[o * ld + j * l..o * ld + (j + 1) * l]);
                            }
                        }
                    }
                }
            }
        }
    });
    y
}

fn float_tensor<T: bytemuck::Pod + burn_backend::Element>(
    data: Vec<T>,
    shape: Shape,
    dtype: DType,
) -> FlexTensor {
    FlexTensor::new(Bytes::from_elems(data), Layout::contiguous(shape), dtype)
}

/// Whether [`conv2d`] is the faster forward path for this convolution: ungrouped with a kernel
/// larger than 1×1. Flex's own kernels stay in charge of 1×1 convolutions (a GEMM on the input
/// as it is, without im2col), depthwise and grouped ones.
pub fn is_general_conv2d(weight: &FlexTensor, options: &ConvOptions<2>) -> bool {
    let shape = weight.layout().shape();
    options.groups == 1 && shape.num_dims() == 4 && shape[2] * shape[3] > 1
}

/// `conv2d` by im2col + GEMM: `x [N, C_in, H, W]`, `weight [C_out, C_in/G, kh, kw]`, `bias
/// [C_out]`; returns `[N, C_out, Ho, Wo]` (bf16 is computed in f32).
pub fn conv2d(
    x: FlexTensor,
    weight: FlexTensor,
    bias: Option<FlexTensor>,
    options: &ConvOptions<2>,
) -> FlexTensor {
    let (xs, ws) = (x.layout().shape(), weight.layout().shape());
    let size = |i: usize, k: usize| {
        let span = options.dilation[i] * (k - 1) + 1;
        let padded = xs[2 + i] + options.padding[i].0 + options.padding[i].1;
        assert!(
            padded >= span,
            "conv2d: kernel larger than the padded input"
        );
        (padded - span) / options.stride[i] + 1
    };
    let out_shape = Shape::from(vec![xs[0], ws[0], size(0, ws[2]), size(1, ws[3])]);
    let g = Geometry::new(xs, ws, &out_shape, options);
    let x = x.to_contiguous();
    let weight = weight.to_contiguous();
    let bias = bias.map(|b| b.to_contiguous());
    fn run<T: GemmScalar + Add<Output = T> + Send + Sync>(
        x: &FlexTensor,
        weight: &FlexTensor,
        bias: Option<&FlexTensor>,
        g: &Geometry,
    ) -> Vec<T> {
        let mut y = forward_typed::<T>(x.storage(), weight.storage(), g);
        if let (Some(bias), true) = (bias, g.plane_out() > 0) {
            let bias: &[T] = bias.storage();
            for (plane, &b) in y.chunks_mut(g.plane_out()).zip(bias.iter().cycle()) {
                plane.iter_mut().for_each(|v| *v = *v + b);
            }
        }
        y
    }
    match x.dtype() {
        DType::F32 => float_tensor(
            run::<f32>(&x, &weight, bias.as_ref(), &g),
            out_shape,
            DType::F32,
        ),
        DType::F64 => float_tensor(
            run::<f64>(&x, &weight, bias.as_ref(), &g),
            out_shape,
            DType::F64,
        ),
        DType::F16 => float_tensor(
            run::<f16>(&x, &weight, bias.as_ref(), &g),
            out_shape,
            DType::F16,
        ),
        DType::BF16 => {
            let (x, weight) = (convert_bf16_to_f32(&x), convert_bf16_to_f32(&weight));
            let bias = bias.map(|b| convert_bf16_to_f32(&b));
            let y = run::<f32>(&x, &weight, bias.as_ref(), &g);
            convert_f32_to_bf16(&float_tensor(y, out_shape, DType::F32))
        }
        dtype => panic!("conv2d: unsupported dtype {dtype:?}"),
    }
}

/// Gradient of `conv2d` with respect to its weight, by im2col + GEMM (see the module docs).
///
/// `x` is `[N, C_in, H, W]`, `output_grad` `[N, C_out, Ho, Wo]`; returns `[C_out, C_in/G, kh,
/// kw]` in the dtype of `x` (bf16 is computed in f32).
pub fn conv2d_weight_backward(
    x: FlexTensor,
    weight_shape: Shape,
    output_grad: FlexTensor,
    options: &ConvOptions<2>,
) -> FlexTensor {
    let g = Geometry::new(
        x.layout().shape(),
        &weight_shape,
        output_grad.layout().shape(),
        options,
    );
    let x = x.to_contiguous();
    let dy = output_grad.to_contiguous();
    match x.dtype() {
        DType::F32 => float_tensor(
            weight_backward_typed::<f32>(x.storage(), dy.storage(), &g),
            weight_shape,
            DType::F32,
        ),
        DType::F64 => float_tensor(
            weight_backward_typed::<f64>(x.storage(), dy.storage(), &g),
            weight_shape,
            DType::F64,
        ),
        DType::F16 => float_tensor(
            weight_backward_typed::<f16>(x.storage(), dy.storage(), &g),
            weight_shape,
            DType::F16,
        ),
        DType::BF16 => {
            let (x, dy) = (convert_bf16_to_f32(&x), convert_bf16_to_f32(&dy));
            let grad = weight_backward_typed::<f32>(x.storage(), dy.storage(), &g);
            convert_f32_to_bf16(&float_tensor(grad, weight_shape, DType::F32))
        }
        dtype => panic!("conv2d_weight_backward: unsupported dtype {dtype:?}"),
    }
}

/// Gradient of `conv2d` with respect to its input, by GEMM + col2im (see the module docs).
///
/// `x` (only its shape is read) is `[N, C_in, H, W]`, `weight` `[C_out, C_in/G, kh, kw]`,
/// `output_grad` `[N, C_out, Ho, Wo]`; returns `[N, C_in, H, W]` (bf16 is computed in f32).
pub fn conv2d_x_backward(
    x: &FlexTensor,
    weight: FlexTensor,
    output_grad: FlexTensor,
    options: &ConvOptions<2>,
) -> FlexTensor {
    let x_shape = x.layout().shape().clone();
    let g = Geometry::new(
        &x_shape,
        weight.layout().shape(),
        output_grad.layout().shape(),
        options,
    );
    let weight = weight.to_contiguous();
    let dy = output_grad.to_contiguous();
    match weight.dtype() {
        DType::F32 => float_tensor(
            x_backward_typed::<f32>(weight.storage(), dy.storage(), &g),
            x_shape,
            DType::F32,
        ),
        DType::F64 => float_tensor(
            x_backward_typed::<f64>(weight.storage(), dy.storage(), &g),
            x_shape,
            DType::F64,
        ),
        DType::F16 => float_tensor(
            x_backward_typed::<f16>(weight.storage(), dy.storage(), &g),
            x_shape,
            DType::F16,
        ),
        DType::BF16 => {
            let (weight, dy) = (convert_bf16_to_f32(&weight), convert_bf16_to_f32(&dy));
            let grad = x_backward_typed::<f32>(weight.storage(), dy.storage(), &g);
            convert_f32_to_bf16(&float_tensor(grad, x_shape, DType::F32))
        }
        dtype => panic!("conv2d_x_backward: unsupported dtype {dtype:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deterministic pseudo-random sequence in [-1, 1).
    fn values(len: usize, seed: u64) -> Vec<f64> {
        let mut state = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (0..len)
            .map(|_| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((state >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
            })
            .collect()
    }

    /// Both gradients by the definition `y[n, o, oh, ow] = Σ w[o, c, i, j] · x[n, g·Cpg + c,
    /// oh·s + i·d − p, ow·s + j·d − p]`, in f64.
    fn reference(x: &[f64], w: &[f64], dy: &[f64], g: &Geometry) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
        let mut y = vec![0.0; dy.len()];
        let mut dx = vec![0.0; x.len()];
        let mut dw = vec![0.0; w.len()];
        let (cpg, opg) = (g.in_per_group(), g.out_per_group());
        for n in 0..g.batch {
            for o in 0..g.c_out {
                let group = o / opg;
                for oh in 0..g.ho {
                    for ow in 0..g.wo {
                        let gy = dy[((n * g.c_out + o) * g.ho + oh) * g.wo + ow];
                        for c in 0..cpg {
                            for i in 0..g.kh {
                                for j in 0..g.kw {
                                    let ih = (oh * g.stride[0] + i * g.dilation[0]) as isize
                                        - g.pad[0] as isize;
                                    let iw = (ow * g.stride[1] + j * g.dilation[1]) as isize
                                        - g.pad[1] as isize;
                                    if ih < 0 || iw < 0 || ih >= g.h as isize || iw >= g.w as isize
                                    {
                                        continue;
                                    }
                                    let xi = ((n * g.c_in + group * cpg + c) * g.h + ih as usize)
                                        * g.w
                                        + iw as usize;
                                    let wi = ((o * cpg + c) * g.kh + i) * g.kw + j;
                                    y[((n * g.c_out + o) * g.ho + oh) * g.wo + ow] += w[wi] * x[xi];
                                    dx[xi] += w[wi] * gy;
                                    dw[wi] += x[xi] * gy;
                                }
                            }
                        }
                    }
                }
            }
        }
        (y, dx, dw)
    }

    /// `(batch, c_in, h, w, c_out, groups, k, stride, pad (begin, end), dilation)`.
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

    fn check(case: Case) {
        let (batch, c_in, h, w, c_out, groups, k, stride, (pb, pe), dilation) = case;
        let options =
            ConvOptions::new_with_padding([stride; 2], [(pb, pe); 2], [dilation; 2], groups);
        let out = |size: usize| (size + pb + pe - dilation * (k - 1) - 1) / stride + 1;
        let (ho, wo) = (out(h), out(w));
        let x_shape = Shape::from(vec![batch, c_in, h, w]);
        let w_shape = Shape::from(vec![c_out, c_in / groups, k, k]);
        let y_shape = Shape::from(vec![batch, c_out, ho, wo]);
        let g = Geometry::new(&x_shape, &w_shape, &y_shape, &options);
        let x = values(x_shape.num_elements(), 1);
        let wt = values(w_shape.num_elements(), 2);
        let dy = values(y_shape.num_elements(), 3);
        let (y_ref, dx_ref, dw_ref) = reference(&x, &wt, &dy, &g);
        let tensor = |v: &[f64], shape: &Shape| {
            let v: Vec<f32> = v.iter().map(|&v| v as f32).collect();
            float_tensor(v, shape.clone(), DType::F32)
        };
        let dw = conv2d_weight_backward(
            tensor(&x, &x_shape),
            w_shape.clone(),
            tensor(&dy, &y_shape),
            &options,
        );
        let dx = conv2d_x_backward(
            &tensor(&x, &x_shape),
            tensor(&wt, &w_shape),
            tensor(&dy, &y_shape),
            &options,
        );
        let y = conv2d(tensor(&x, &x_shape), tensor(&wt, &w_shape), None, &options);
        assert_eq!(y.layout().shape(), &y_shape, "{case:?}: output shape");
        for (name, got, want) in [
            ("output", y, y_ref),
            ("weight", dw, dw_ref),
            ("input", dx, dx_ref),
        ] {
            let got: &[f32] = got.storage();
            assert_eq!(got.len(), want.len(), "{case:?}: {name} gradient size");
            for (i, (&a, &b)) in got.iter().zip(&want).enumerate() {
                assert!(
                    (a as f64 - b).abs() <= 1e-4 * (1.0 + b.abs()),
                    "{case:?}: {name} gradient [{i}] = {a}, expected {b}"
                );
            }
        }
    }

    #[test]
    fn gradients_match_the_definition() {
        let cases: [Case; 12] = [
            (3, 4, 8, 8, 5, 1, 3, 1, (1, 1), 1),    // 3×3 same padding
            (2, 4, 9, 7, 6, 1, 3, 2, (1, 1), 1),    // stride 2, odd sizes
            (2, 4, 10, 10, 4, 2, 3, 1, (2, 2), 2),  // groups and dilation
            (2, 6, 6, 6, 6, 6, 3, 1, (1, 1), 1),    // depthwise
            (5, 3, 5, 5, 2, 1, 1, 1, (0, 0), 1),    // 1×1
            (4, 2, 4, 4, 3, 1, 2, 2, (0, 1), 1),    // asymmetric padding
            (1, 3, 12, 12, 2, 1, 5, 3, (2, 2), 1),  // one sample, large kernel, stride 3
            (9, 2, 3, 3, 2, 1, 3, 1, (1, 1), 1),    // small planes: several samples per block
            (2, 2, 4, 4, 2, 1, 3, 1, (4, 4), 1),    // padding larger than the kernel reach
            (2, 4, 40, 40, 3, 1, 3, 1, (1, 1), 1),  // two bands of rows, the second shorter
            (2, 64, 64, 64, 4, 1, 3, 2, (1, 1), 1), // bands with stride 2
            (1, 32, 40, 40, 3, 1, 3, 1, (2, 2), 2), // bands with dilation and padding
        ];
        for case in cases {
            check(case);
        }
    }

    #[test]
    fn valid_range_covers_exactly_the_taps_inside() {
        for size in 1..8 {
            for out in 1..10 {
                for k in 0..4 {
                    for stride in 1..4 {
                        for dilation in 1..3 {
                            for pad in 0..5 {
                                let (lo, hi) = valid_range(out, size, k, stride, dilation, pad);
                                for o in 0..out {
                                    let tap = (o * stride + k * dilation) as isize - pad as isize;
                                    let inside = tap >= 0 && tap < size as isize;
                                    assert_eq!(
                                        inside,
                                        (lo..hi).contains(&o),
                                        "size {size} out {out} k {k} s {stride} d {dilation} p {pad} o {o}"
                                    );
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}
