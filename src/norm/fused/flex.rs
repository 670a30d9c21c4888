//! The fused norm kernels on the flex backend's `f32` buffers (see the parent module for
//! the formulas). Work is split over channels (BatchNorm statistics) or over rows and
//! groups (everything else) with rayon, the thread pool flex itself uses.
//!
//! Sums are accumulated in `f32` lanes over blocks of at most [`BLOCK`] values and in `f64`
//! across blocks, after subtracting a pivot (the set's first value), so the variance
//! `E[(x − p)²] − E[x − p]²` does not cancel catastrophically when the mean is large
//! compared with the spread.

use std::mem::MaybeUninit;

use burn::backend::Flex;
use burn::backend::flex::{FlexTensor, Layout};
use burn::backend::tensor::FloatTensor;
use burn::tensor::{Bytes, DType, Shape};
use rayon::prelude::*;

use super::FusedNormOps;

/// Values summed in `f32` before the partial sums move to `f64`.
const BLOCK: usize = 1024;
/// Independent `f32` accumulators (lets the compiler vectorise the sums).
const LANES: usize = 8;

/// Whether the AVX2 + FMA versions of the row kernels can run (checked once by std).
#[inline]
fn wide() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// `(Σ (v − p), Σ (v − p)²)` of `row`.
#[inline]
fn shifted_sums(row: &[f32], p: f32) -> (f64, f64) {
    #[cfg(target_arch = "x86_64")]
    if wide() {
        // SAFETY: the CPU has AVX2 and FMA.
        return unsafe { avx2::shifted_sums(row, p) };
    }
    let (mut s, mut q) = (0f64, 0f64);
    for block in row.chunks(BLOCK) {
        let mut ls = [0f32; LANES];
        let mut lq = [0f32; LANES];
        let mut chunks = block.chunks_exact(LANES);
        for c in &mut chunks {
            for k in 0..LANES {
                let d = c[k] - p;
                ls[k] += d;
                lq[k] += d * d;
            }
        }
        for &v in chunks.remainder() {
            let d = v - p;
            ls[0] += d;
            lq[0] += d * d;
        }
        s += ls.iter().map(|&v| v as f64).sum::<f64>();
        q += lq.iter().map(|&v| v as f64).sum::<f64>();
    }
    (s, q)
}

/// `(Σ g, Σ g·(x − μ))` of a row pair.
#[inline]
fn grad_sums(g: &[f32], x: &[f32], mean: f32) -> (f64, f64) {
    #[cfg(target_arch = "x86_64")]
    if wide() {
        // SAFETY: the CPU has AVX2 and FMA.
        return unsafe { avx2::grad_sums(g, x, mean) };
    }
    let (mut s, mut t) = (0f64, 0f64);
    for (gb, xb) in g.chunks(BLOCK).zip(x.chunks(BLOCK)) {
        let mut ls = [0f32; LANES];
        let mut lt = [0f32; LANES];
        let mut gc = gb.chunks_exact(LANES);
        let mut xc = xb.chunks_exact(LANES);
        for (gi, xi) in (&mut gc).zip(&mut xc) {
            for k in 0..LANES {
                ls[k] += gi[k];
                lt[k] += gi[k] * (xi[k] - mean);
            }
        }
        for (&gv, &xv) in gc.remainder().iter().zip(xc.remainder()) {
            ls[0] += gv;
            lt[0] += gv * (xv - mean);
        }
        s += ls.iter().map(|&v| v as f64).sum::<f64>();
        t += lt.iter().map(|&v| v as f64).sum::<f64>();
    }
    (s, t)
}

/// `out = x · a + b`.
#[inline]
fn affine_row(x: &[f32], out: &mut [MaybeUninit<f32>], a: f32, b: f32) {
    assert_eq!(x.len(), out.len());
    #[cfg(target_arch = "x86_64")]
    if wide() {
        // SAFETY: the CPU has AVX2 and FMA; the lengths are equal.
        return unsafe { avx2::affine_row(x, out, a, b) };
    }
    for (o, &v) in out.iter_mut().zip(x) {
        o.write(v * a + b);
    }
}

/// `out = g · k + (x − μ) · u + o` (the input gradient of a norm, see the parent module).
#[inline]
#[allow(clippy::too_many_arguments)]
fn grad_row(g: &[f32], x: &[f32], out: &mut [MaybeUninit<f32>], k: f32, mu: f32, u: f32, o: f32) {
    assert!(g.len() == out.len() && x.len() == out.len());
    #[cfg(target_arch = "x86_64")]
    if wide() {
        // SAFETY: the CPU has AVX2 and FMA; the lengths are equal.
        return unsafe { avx2::grad_row(g, x, out, k, mu, u, o) };
    }
    for ((d, &gv), &xv) in out.iter_mut().zip(g).zip(x) {
        d.write(gv * k + (xv - mu) * u + o);
    }
}

/// The row kernels with AVX2 and FMA intrinsics (16 values per step, two accumulators).
#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;
    use std::mem::MaybeUninit;

    use super::BLOCK;

    /// Sum of the 8 lanes, in `f64`.
    #[target_feature(enable = "avx2,fma")]
    fn hsum(v: __m256) -> f64 {
        let mut lanes = [0f32; 8];
        // SAFETY: `lanes` holds 8 f32.
        unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), v) };
        lanes.iter().map(|&x| x as f64).sum()
    }

    #[target_feature(enable = "avx2,fma")]
    pub(super) fn shifted_sums(row: &[f32], p: f32) -> (f64, f64) {
        let pv = _mm256_set1_ps(p);
        let (mut s, mut q) = (0f64, 0f64);
        for block in row.chunks(BLOCK) {
            let (mut s0, mut s1) = (_mm256_setzero_ps(), _mm256_setzero_ps());
            let (mut q0, mut q1) = (_mm256_setzero_ps(), _mm256_setzero_ps());
            let mut chunks = block.chunks_exact(16);
            for c in &mut chunks {
                // SAFETY: `c` holds 16 f32.
                let (a, b) = unsafe {
                    (
                        _mm256_sub_ps(_mm256_loadu_ps(c.as_ptr()), pv),
                        _mm256_sub_ps(_mm256_loadu_ps(c.as_ptr().add(8)), pv),
                    )
                };
                s0 = _mm256_add_ps(s0, a);
                s1 = _mm256_add_ps(s1, b);
                q0 = _mm256_fmadd_ps(a, a, q0);
                q1 = _mm256_fmadd_ps(b, b, q1);
            }
            s += hsum(_mm256_add_ps(s0, s1));
            q += hsum(_mm256_add_ps(q0, q1));
            for &v in chunks.remainder() {
                let d = (v - p) as f64;
                s += d;
                q += d * d;
            }
        }
        (s, q)
    }

    #[target_feature(enable = "avx2,fma")]
    pub(super) fn grad_sums(g: &[f32], x: &[f32], mean: f32) -> (f64, f64) {
        let mv = _mm256_set1_ps(mean);
        let (mut s, mut t) = (0f64, 0f64);
        for (gb, xb) in g.chunks(BLOCK).zip(x.chunks(BLOCK)) {
            let (mut s0, mut s1) = (_mm256_setzero_ps(), _mm256_setzero_ps());
            let (mut t0, mut t1) = (_mm256_setzero_ps(), _mm256_setzero_ps());
            let mut gc = gb.chunks_exact(16);
            let mut xc = xb.chunks_exact(16);
            for (gi, xi) in (&mut gc).zip(&mut xc) {
                // SAFETY: `gi` and `xi` hold 16 f32 each.
                unsafe {
                    let (ga, gb) = (
                        _mm256_loadu_ps(gi.as_ptr()),
                        _mm256_loadu_ps(gi.as_ptr().add(8)),
                    );
                    let xa = _mm256_sub_ps(_mm256_loadu_ps(xi.as_ptr()), mv);
                    let xb = _mm256_sub_ps(_mm256_loadu_ps(xi.as_ptr().add(8)), mv);
                    s0 = _mm256_add_ps(s0, ga);
                    s1 = _mm256_add_ps(s1, gb);
                    t0 = _mm256_fmadd_ps(ga, xa, t0);
                    t1 = _mm256_fmadd_ps(gb, xb, t1);
                }
            }
            s += hsum(_mm256_add_ps(s0, s1));
            t += hsum(_mm256_add_ps(t0, t1));
            for (&gv, &xv) in gc.remainder().iter().zip(xc.remainder()) {
                s += gv as f64;
                t += (gv * (xv - mean)) as f64;
            }
        }
        (s, t)
    }

    /// # Safety
    /// `x.len() == out.len()`.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn affine_row(x: &[f32], out: &mut [MaybeUninit<f32>], a: f32, b: f32) {
        let (av, bv) = (_mm256_set1_ps(a), _mm256_set1_ps(b));
        let n = x.len();
        let (src, dst) = (x.as_ptr(), out.as_mut_ptr() as *mut f32);
        let mut i = 0;
        while i + 8 <= n {
            // SAFETY: `i + 8 <= n` for both slices.
            unsafe {
                let v = _mm256_fmadd_ps(_mm256_loadu_ps(src.add(i)), av, bv);
                _mm256_storeu_ps(dst.add(i), v);
            }
            i += 8;
        }
        for j in i..n {
            out[j].write(x[j] * a + b);
        }
    }

    /// # Safety
    /// `g`, `x` and `out` have the same length.
    #[target_feature(enable = "avx2,fma")]
    #[allow(clippy::too_many_arguments)]
    pub(super) unsafe fn grad_row(
        g: &[f32],
        x: &[f32],
        out: &mut [MaybeUninit<f32>],
        k: f32,
        mu: f32,
        u: f32,
        o: f32,
    ) {
        let (kv, mv, uv, ov) = (
            _mm256_set1_ps(k),
            _mm256_set1_ps(mu),
            _mm256_set1_ps(u),
            _mm256_set1_ps(o),
        );
        let n = out.len();
        let (gp, xp, dst) = (g.as_ptr(), x.as_ptr(), out.as_mut_ptr() as *mut f32);
        let mut i = 0;
        while i + 8 <= n {
            // SAFETY: `i + 8 <= n` for the three slices.
            unsafe {
                let xc = _mm256_sub_ps(_mm256_loadu_ps(xp.add(i)), mv);
                let v =
                    _mm256_fmadd_ps(_mm256_loadu_ps(gp.add(i)), kv, _mm256_fmadd_ps(xc, uv, ov));
                _mm256_storeu_ps(dst.add(i), v);
            }
            i += 8;
        }
        for j in i..n {
            out[j].write(g[j] * k + (x[j] - mu) * u + o);
        }
    }
}

/// A buffer several threads write disjoint parts of.
#[derive(Clone, Copy)]
struct Shared(*mut MaybeUninit<f32>);
// SAFETY: the kernels hand each row of the buffer to exactly one task.
unsafe impl Send for Shared {}
unsafe impl Sync for Shared {}

impl Shared {
    /// Row `[at, at + len)`.
    ///
    /// # Safety
    /// No other live reference may cover that range; it must lie within the buffer.
    #[allow(clippy::mut_from_ref)]
    unsafe fn row(&self, at: usize, len: usize) -> &mut [MaybeUninit<f32>] {
        // SAFETY: guaranteed by the caller.
        unsafe { std::slice::from_raw_parts_mut(self.0.add(at), len) }
    }
}

/// The output rows of one channel, `i·c + ch` for the samples `i`.
struct ChannelRows {
    buffer: Shared,
    n: usize,
    c: usize,
    s: usize,
    ch: usize,
}

impl ChannelRows {
    /// The row of sample `i` (one at a time: the borrow ends before the next).
    fn row(&mut self, i: usize) -> &mut [MaybeUninit<f32>] {
        assert!(i < self.n);
        // SAFETY: row `i·c + ch` belongs to this channel's task alone (one `ChannelRows`
        // per channel), `i < n` keeps it inside the buffer, and `&mut self` keeps one
        // row borrowed at a time.
        unsafe { self.buffer.row((i * self.c + self.ch) * self.s, self.s) }
    }
}

/// A vector of `len` values whose rows of `s` values, row `i·c + ch` for each channel
/// `ch` and sample `i`, are written by `f(ch, rows)` in parallel over channels (a channel's
/// rows stay in the core's cache between its reductions and its writes). Returns the
/// vector and `f`'s results in channel order.
fn per_channel<T: Send>(
    [n, c, s]: [usize; 3],
    f: impl Fn(usize, &mut ChannelRows) -> T + Sync,
) -> (Vec<f32>, Vec<T>) {
    let len = n * c * s;
    let mut out: Vec<f32> = Vec::with_capacity(len);
    let buffer = Shared(out.spare_capacity_mut().as_mut_ptr());
    let results = (0..c)
        .into_par_iter()
        .map(|ch| {
            let mut rows = ChannelRows {
                buffer,
                n,
                c,
                s,
                ch,
            };
            f(ch, &mut rows)
        })
        .collect();
    // SAFETY: every channel wrote its `n` rows of `s` values.
    unsafe { out.set_len(len) };
    (out, results)
}

/// Mean and biased variance from pivot-shifted sums of `m` values.
#[inline]
fn moments(p: f32, s: f64, q: f64, m: usize) -> (f64, f64) {
    let m = m as f64;
    let d = s / m;
    (p as f64 + d, (q / m - d * d).max(0.0))
}

/// A contiguous `f32` view of a tensor and its shape.
fn f32_data(t: FlexTensor) -> FlexTensor {
    assert_eq!(t.dtype(), DType::F32, "xbn fused norms run on f32 tensors");
    t.to_contiguous()
}

fn dims3(t: &FlexTensor) -> [usize; 3] {
    let shape = t.layout().shape();
    assert_eq!(
        shape.num_dims(),
        3,
        "xbn fused norms take [N, C, S] tensors"
    );
    [shape[0], shape[1], shape[2]]
}

fn tensor(values: Vec<f32>, shape: impl Into<Shape>) -> FlexTensor {
    FlexTensor::new(
        Bytes::from_elems(values),
        Layout::contiguous(shape.into()),
        DType::F32,
    )
}

/// A vector of `len` values written by `f(row index, row)` over rows of `row` values, in
/// parallel, each value written exactly once (no zero-filling pass).
fn fill_rows(
    len: usize,
    row: usize,
    f: impl Fn(usize, &mut [MaybeUninit<f32>]) + Sync,
) -> Vec<f32> {
    let mut out: Vec<f32> = Vec::with_capacity(len);
    out.spare_capacity_mut()[..len]
        .par_chunks_mut(row.max(1))
        .enumerate()
        .for_each(|(i, r)| f(i, r));
    // SAFETY: `f` wrote every element of every row (the callers write whole rows).
    unsafe { out.set_len(len) };
    out
}

/// `y = x · scale_c + shift_c`, rows of `[N, C, S]`.
fn affine_rows(x: &[f32], [n, c, s]: [usize; 3], scale: &[f32], shift: &[f32]) -> Vec<f32> {
    fill_rows(n * c * s, s, |row, out| {
        let ch = row % c;
        affine_row(&x[row * s..][..s], out, scale[ch], shift[ch]);
    })
}

impl FusedNormOps for Flex {
    fn xbn_batch_norm_train(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        eps: f64,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        let x = f32_data(x);
        let (w, b) = (f32_data(weight), f32_data(bias));
        let dims = dims3(&x);
        let xs: &[f32] = x.storage();
        let (ws, bs): (&[f32], &[f32]) = (w.storage(), b.storage());
        let [n, c, s] = dims;
        let (y, stats) = per_channel(dims, |ch, row| {
            let p = if n * s > 0 { xs[ch * s] } else { 0.0 };
            let (mut sum, mut sq) = (0f64, 0f64);
            for i in 0..n {
                let (a, b) = shifted_sums(&xs[(i * c + ch) * s..][..s], p);
                sum += a;
                sq += b;
            }
            let (mean, var) = moments(p, sum, sq, n * s);
            let a = ws[ch] as f64 / (var + eps).sqrt();
            let (a, b) = (a as f32, (bs[ch] as f64 - mean * a) as f32);
            for i in 0..n {
                affine_row(&xs[(i * c + ch) * s..][..s], row.row(i), a, b);
            }
            (mean, var)
        });
        let mean: Vec<f32> = stats.iter().map(|s| s.0 as f32).collect();
        let var: Vec<f32> = stats.iter().map(|s| s.1 as f32).collect();
        (
            tensor(y, dims),
            tensor(mean, [dims[1]]),
            tensor(var, [dims[1]]),
        )
    }

    fn xbn_batch_norm_train_backward(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        mean: FloatTensor<Self>,
        var: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        eps: f64,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        let (x, g) = (f32_data(x), f32_data(grad));
        let (w, mean, var) = (f32_data(weight), f32_data(mean), f32_data(var));
        let [n, c, s] = dims3(&x);
        let (xs, gs): (&[f32], &[f32]) = (x.storage(), g.storage());
        let (ws, ms, vs): (&[f32], &[f32], &[f32]) = (w.storage(), mean.storage(), var.storage());
        let m = (n * s) as f64;
        // Per channel: Σ g and Σ g·(x − μ), then
        // ∂x = k·(g − Σg/M − (x − μ)·r²·Σg(x−μ)/M) = g·k + (x − μ)·u + o, k = γ·r.
        let (dx, sums) = per_channel([n, c, s], |ch, row| {
            let (mut sg, mut sgx) = (0f64, 0f64);
            for i in 0..n {
                let at = (i * c + ch) * s;
                let (a, b) = grad_sums(&gs[at..][..s], &xs[at..][..s], ms[ch]);
                sg += a;
                sgx += b;
            }
            let r = 1.0 / (vs[ch] as f64 + eps).sqrt();
            let k = ws[ch] as f64 * r;
            let (u, o) = (-k * r * r * sgx / m, -k * sg / m);
            for i in 0..n {
                let at = (i * c + ch) * s;
                let (gr, xr) = (&gs[at..][..s], &xs[at..][..s]);
                grad_row(gr, xr, row.row(i), k as f32, ms[ch], u as f32, o as f32);
            }
            (sg, sgx * r)
        });
        let dgamma: Vec<f32> = sums.iter().map(|s| s.1 as f32).collect();
        let dbeta: Vec<f32> = sums.iter().map(|s| s.0 as f32).collect();
        (
            tensor(dx, [n, c, s]),
            tensor(dgamma, [c]),
            tensor(dbeta, [c]),
        )
    }

    fn xbn_group_norm(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        groups: usize,
        eps: f64,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        let x = f32_data(x);
        let (w, b) = (f32_data(weight), f32_data(bias));
        let [n, c, s] = dims3(&x);
        assert!(
            groups > 0 && c % groups == 0,
            "GroupNorm: C not divisible by G"
        );
        let cg = c / groups;
        let chunk = cg * s;
        let xs: &[f32] = x.storage();
        let (ws, bs): (&[f32], &[f32]) = (w.storage(), b.storage());
        let len = n * c * s;
        let mut out: Vec<f32> = Vec::with_capacity(len);
        let stats: Vec<(f32, f32)> = out.spare_capacity_mut()[..len]
            .par_chunks_mut(chunk.max(1))
            .zip(xs.par_chunks(chunk.max(1)))
            .enumerate()
            .map(|(set, (o, xi))| {
                let p = xi.first().copied().unwrap_or(0.0);
                let (sum, sq) = shifted_sums(xi, p);
                let (mean, var) = moments(p, sum, sq, chunk);
                let r = 1.0 / (var + eps).sqrt();
                let g0 = (set % groups) * cg;
                for j in 0..cg {
                    let a = (ws[g0 + j] as f64 * r) as f32;
                    let b = (bs[g0 + j] as f64 - mean * ws[g0 + j] as f64 * r) as f32;
                    affine_row(&xi[j * s..][..s], &mut o[j * s..][..s], a, b);
                }
                (mean as f32, var as f32)
            })
            .collect();
        // SAFETY: every chunk wrote all of its `cg · S` values.
        unsafe { out.set_len(len) };
        let (mean, var): (Vec<f32>, Vec<f32>) = stats.into_iter().unzip();
        (
            tensor(out, [n, c, s]),
            tensor(mean, [n * groups]),
            tensor(var, [n * groups]),
        )
    }

    fn xbn_group_norm_backward(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        mean: FloatTensor<Self>,
        var: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        groups: usize,
        eps: f64,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        let (x, g) = (f32_data(x), f32_data(grad));
        let (w, mean, var) = (f32_data(weight), f32_data(mean), f32_data(var));
        let [n, c, s] = dims3(&x);
        let cg = c / groups;
        let chunk = cg * s;
        let (xs, gs): (&[f32], &[f32]) = (x.storage(), g.storage());
        let (ws, ms, vs): (&[f32], &[f32], &[f32]) = (w.storage(), mean.storage(), var.storage());
        let len = n * c * s;
        let mut dx: Vec<f32> = Vec::with_capacity(len);
        // Per (sample, channel): Σ g and Σ g·x̂, for ∂β and ∂γ.
        let partials: Vec<Vec<(f64, f64)>> = dx.spare_capacity_mut()[..len]
            .par_chunks_mut(chunk.max(1))
            .zip(gs.par_chunks(chunk.max(1)).zip(xs.par_chunks(chunk.max(1))))
            .enumerate()
            .map(|(set, (d, (gi, xi)))| {
                let mu = ms[set];
                let r = 1.0 / (vs[set] as f64 + eps).sqrt();
                let g0 = (set % groups) * cg;
                let per_channel: Vec<(f64, f64)> = (0..cg)
                    .map(|j| grad_sums(&gi[j * s..][..s], &xi[j * s..][..s], mu))
                    .collect();
                // mean(γ·g) and mean(γ·g·x̂) over the set.
                let m = chunk as f64;
                let (mut m1, mut m2) = (0f64, 0f64);
                for (j, &(sg, sgx)) in per_channel.iter().enumerate() {
                    m1 += ws[g0 + j] as f64 * sg;
                    m2 += ws[g0 + j] as f64 * sgx * r;
                }
                let (m1, m2) = (m1 / m, m2 / m);
                let (u, o) = ((-r * r * m2) as f32, (-r * m1) as f32);
                for j in 0..cg {
                    let k = (ws[g0 + j] as f64 * r) as f32;
                    let (gr, xr) = (&gi[j * s..][..s], &xi[j * s..][..s]);
                    grad_row(gr, xr, &mut d[j * s..][..s], k, mu, u, o);
                }
                per_channel
                    .into_iter()
                    .map(|(sg, sgx)| (sg, sgx * r))
                    .collect()
            })
            .collect();
        // SAFETY: every chunk wrote all of its `cg · S` values.
        unsafe { dx.set_len(len) };
        let mut dgamma = vec![0f64; c];
        let mut dbeta = vec![0f64; c];
        for (set, channels) in partials.iter().enumerate() {
            let g0 = (set % groups) * cg;
            for (j, &(sg, sgxhat)) in channels.iter().enumerate() {
                dbeta[g0 + j] += sg;
                dgamma[g0 + j] += sgxhat;
            }
        }
        let f32s = |v: Vec<f64>| v.into_iter().map(|x| x as f32).collect::<Vec<_>>();
        (
            tensor(dx, [n, c, s]),
            tensor(f32s(dgamma), [c]),
            tensor(f32s(dbeta), [c]),
        )
    }

    fn xbn_channel_affine(
        x: FloatTensor<Self>,
        scale: FloatTensor<Self>,
        shift: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        let x = f32_data(x);
        let (a, b) = (f32_data(scale), f32_data(shift));
        let dims = dims3(&x);
        tensor(
            affine_rows(x.storage(), dims, a.storage(), b.storage()),
            dims,
        )
    }
}
