//! Plain f32 vector kernels of the single-token decode path: RMSNorm, RoPE,
//! grouped-query attention over the KV cache, SiLU gating.
//!
//! They work on preallocated slices (no allocation per token) and are compiled
//! with AVX2 and FMA enabled (eight-lane accumulators that LLVM turns into
//! `vfmadd` on ymm registers). They are only called when the CPU has both
//! features: [`super::q4_1::Q41::new`] refuses to build otherwise, and the
//! decode path needs every layer to be Q4_1.

/// `out = x / sqrt(mean(x²) + eps) * w`, in the same order as candle's
/// `rms_norm` (a sequential sum of squares), so the same bits.
pub fn rms_norm(x: &[f32], w: &[f32], eps: f32, out: &mut [f32]) {
    // SAFETY: callers run only when AVX2 and FMA are present (module doc).
    unsafe { rms_norm_inner(x, w, eps, out) }
}

#[cfg_attr(target_arch = "x86_64", target_feature(enable = "avx2,fma"))]
unsafe fn rms_norm_inner(x: &[f32], w: &[f32], eps: f32, out: &mut [f32]) {
    let sum2 = x.iter().map(|&v| v * v).sum::<f32>();
    let m = (sum2 / x.len() as f32 + eps).sqrt();
    for ((o, &x), &w) in out.iter_mut().zip(x).zip(w) {
        *o = x / m * w;
    }
}

/// Interleaved rotary embedding (candle's `rope_i`) of every head of `x`, in
/// place, at one position (`cos`/`sin`: head_dim / 2 values).
pub fn rope_i(x: &mut [f32], head_dim: usize, cos: &[f32], sin: &[f32]) {
    for head in x.chunks_exact_mut(head_dim) {
        for (pair, (&c, &s)) in head.chunks_exact_mut(2).zip(cos.iter().zip(sin)) {
            let (x0, x1) = (pair[0], pair[1]);
            pair[0] = x0 * c - x1 * s;
            pair[1] = x0 * s + x1 * c;
        }
    }
}

/// Dot product with eight-lane FMA accumulation.
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    // SAFETY: see the module doc.
    unsafe { dot_inner(a, b) }
}

#[cfg_attr(target_arch = "x86_64", target_feature(enable = "avx2,fma"))]
unsafe fn dot_inner(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            acc[i] = x[i].mul_add(y[i], acc[i]);
        }
    }
    let mut s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for (x, y) in ra.iter().zip(rb) {
        s = x.mul_add(*y, s);
    }
    s
}

/// `y += a * x`.
#[cfg_attr(target_arch = "x86_64", target_feature(enable = "avx2,fma"))]
unsafe fn axpy_inner(y: &mut [f32], a: f32, x: &[f32]) {
    for (y, &x) in y.iter_mut().zip(x) {
        *y = x.mul_add(a, *y);
    }
}

/// `x += y`.
pub fn add_assign(x: &mut [f32], y: &[f32]) {
    for (x, &y) in x.iter_mut().zip(y) {
        *x += y;
    }
}

/// `gate = silu(gate) * up`, in place.
pub fn silu_mul(gate: &mut [f32], up: &[f32]) {
    for (g, &u) in gate.iter_mut().zip(up) {
        *g = *g / (1.0 + (-*g).exp()) * u;
    }
}

/// Attention of one query token over the first `kv_len` cached positions.
///
/// `q`: n_head × head_dim; `k_cache`/`v_cache`: `[n_kv_head][ctx][head_dim]`;
/// query head `h` reads KV head `h / (n_head / n_kv_head)` (grouped-query,
/// as `repeat_kv` does); `att`: scratch of n_head × ctx; `y`: n_head × head_dim.
/// Heads are split over candle's thread pool. (The decode step calls
/// [`attention_many`]; this one-sequence form is the tests' reference.)
#[cfg(test)]
#[allow(clippy::too_many_arguments)]
pub fn attention(
    q: &[f32],
    k_cache: &[f32],
    v_cache: &[f32],
    ctx: usize,
    kv_len: usize,
    n_head: usize,
    n_kv_head: usize,
    head_dim: usize,
    att: &mut [f32],
    y: &mut [f32],
) {
    attention_many(&mut [Attend { q, k_cache, v_cache, ctx, kv_len, att, y }], n_head, n_kv_head, head_dim);
}

/// One sequence's share of a batched attention step ([`attention_many`]):
/// its query, its own KV cache and its own outputs, as in [`attention`].
pub struct Attend<'a> {
    /// Query, n_head × head_dim.
    pub q: &'a [f32],
    /// Keys, `[n_kv_head][ctx][head_dim]`.
    pub k_cache: &'a [f32],
    /// Values, same layout.
    pub v_cache: &'a [f32],
    /// The caches' position stride.
    pub ctx: usize,
    /// Positions to attend to.
    pub kv_len: usize,
    /// Scratch, at least n_head × ctx.
    pub att: &'a mut [f32],
    /// Output, n_head × head_dim.
    pub y: &'a mut [f32],
}

/// [`attention`] for several sequences, each against its own cache, in one
/// dispatch over (sequence, head) pairs: a batched decode step pays one
/// barrier for all its sequences instead of one each. Every head runs the
/// same code as in [`attention`], so the outputs have the same bits.
pub fn attention_many(seqs: &mut [Attend<'_>], n_head: usize, n_kv_head: usize, head_dim: usize) {
    let groups = n_head / n_kv_head;
    let scale = 1.0 / (head_dim as f32).sqrt();
    for s in seqs.iter() {
        assert!(s.att.len() >= (n_head - 1) * s.ctx + s.kv_len && s.y.len() >= n_head * head_dim);
        assert!(s.kv_len <= s.ctx && s.q.len() >= n_head * head_dim);
    }
    let descs: Vec<(&[f32], &[f32], &[f32], usize, usize, usize, usize)> = seqs
        .iter_mut()
        .map(|s| (s.q, s.k_cache, s.v_cache, s.ctx, s.kv_len, s.att.as_mut_ptr() as usize, s.y.as_mut_ptr() as usize))
        .collect();
    candle_core::utils::barrier_pool().execute_chunked(descs.len() * n_head, |items| {
        for item in items {
            let (q, k_cache, v_cache, ctx, kv_len, att_ptr, y_ptr) = descs[item / n_head];
            let h = item % n_head;
            let kvh = h / groups;
            let qh = &q[h * head_dim..(h + 1) * head_dim];
            let kc = &k_cache[kvh * ctx * head_dim..(kvh * ctx + kv_len) * head_dim];
            let vc = &v_cache[kvh * ctx * head_dim..(kvh * ctx + kv_len) * head_dim];
            // SAFETY: (sequence, head) owns att[h*ctx..][..kv_len] and y[h*head_dim..][..head_dim] of its sequence.
            let a = unsafe { std::slice::from_raw_parts_mut((att_ptr as *mut f32).add(h * ctx), kv_len) };
            let yh = unsafe { std::slice::from_raw_parts_mut((y_ptr as *mut f32).add(h * head_dim), head_dim) };
            attend_head(qh, kc, vc, head_dim, scale, a, yh);
        }
    });
}

/// One query head over its KV head's cached positions.
fn attend_head(qh: &[f32], kc: &[f32], vc: &[f32], head_dim: usize, scale: f32, a: &mut [f32], yh: &mut [f32]) {
    if head_dim == 64 {
        // SAFETY: see the module doc.
        unsafe { attend_64(qh, kc, vc, scale, a, yh) };
        return;
    }
    let mut max = f32::NEG_INFINITY;
    for (s, k) in a.iter_mut().zip(kc.chunks_exact(head_dim)) {
        *s = dot(qh, k) * scale;
        max = max.max(*s);
    }
    let mut sum = 0f32;
    for s in a.iter_mut() {
        *s = (*s - max).exp();
        sum += *s;
    }
    let inv = 1.0 / sum;
    yh.fill(0.0);
    for (&p, v) in a.iter().zip(vc.chunks_exact(head_dim)) {
        // SAFETY: see the module doc.
        unsafe { axpy_inner(yh, p * inv, v) };
    }
}

/// One head of attention with head_dim 64, in exactly the reference's
/// arithmetic (candle's decode step: `q @ k^T` through `gemm`, `/ 8`,
/// `softmax_last_dim`, `@ v` through `gemm`), so that decoding does not drift
/// from it: activations are re-quantized to Q8_1 at every matrix, which turns
/// a last-bit difference into a different rounding and, after a few layers,
/// into a different greedy token. The orders reproduced, for AVX2 (`gemm`'s
/// 8-lane V3 kernels; the x86-v4 feature is not enabled):
/// - scores, up to 256 positions (`gemm`'s horizontal kernel): one 8-lane
///   FMA accumulator over the eight chunks of 8, reduced as
///   `(lo + hi)`, `[0]+[2]`, `[1]+[3]`, then the two;
/// - scores, over 256 positions (`gemm`'s row-major gemv): eight products,
///   summed pairwise `((0+1)+(2+3))+((4+5)+(6+7))`, then the lanes in order;
/// - softmax: max, libm `exp`, the sum as candle's AVX `vec_sum` (four 8-lane
///   accumulators over steps of 32, a tree, two `hadd`s, then the tail in
///   order), and a division;
/// - values (`gemm`'s column-major gemv): `y = v_0 · p_0`, then
///   `y = fma(v_j, p_j, y)` in position order; at exactly two positions
///   (`gemm`'s outer-product path) `v_1 · p_1 + v_0 · p_0`, unfused.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn attend_64(q: &[f32], k: &[f32], v: &[f32], scale: f32, att: &mut [f32], y: &mut [f32]) {
    use std::arch::x86_64::*;
    let n = att.len();
    let qv: [__m256; 8] = std::array::from_fn(|i| _mm256_loadu_ps(q.as_ptr().add(i * 8)));
    let zero = _mm256_setzero_ps();
    let mut max = f32::NEG_INFINITY;
    if n <= 256 {
        for j in 0..n {
            let kp = k.as_ptr().add(j * 64);
            let mut acc = zero;
            for (c, qc) in qv.iter().enumerate() {
                acc = _mm256_fmadd_ps(*qc, _mm256_loadu_ps(kp.add(c * 8)), acc);
            }
            let x = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1));
            let r0 = _mm_add_ps(x, _mm_movehl_ps(x, x));
            let r = _mm_add_ss(r0, _mm_shuffle_ps(r0, r0, 0b0001));
            let s = _mm_cvtss_f32(r) * scale;
            *att.get_unchecked_mut(j) = s;
            max = max.max(s);
        }
    } else {
        for j in 0..n {
            let kp = k.as_ptr().add(j * 64);
            let a: [__m256; 8] = std::array::from_fn(|c| _mm256_fmadd_ps(qv[c], _mm256_loadu_ps(kp.add(c * 8)), zero));
            let a0 = _mm256_add_ps(a[0], a[1]);
            let a2 = _mm256_add_ps(a[2], a[3]);
            let a4 = _mm256_add_ps(a[4], a[5]);
            let a6 = _mm256_add_ps(a[6], a[7]);
            let a0 = _mm256_add_ps(a0, a2);
            let a4 = _mm256_add_ps(a4, a6);
            let t = _mm256_add_ps(a0, a4);
            let mut lanes = [0f32; 8];
            _mm256_storeu_ps(lanes.as_mut_ptr(), t);
            let mut s = lanes[0];
            for l in &lanes[1..] {
                s += *l;
            }
            let s = s * scale;
            *att.get_unchecked_mut(j) = s;
            max = max.max(s);
        }
    }
    for s in att.iter_mut() {
        *s = (*s - max).exp();
    }
    let sum = candle_sum(att, n);
    for s in att.iter_mut() {
        *s /= sum;
    }
    let mut yv = [zero; 8];
    if n == 2 {
        // Depth 2 goes through `gemm`'s outer-product path, unfused: v1·p1 + v0·p0.
        let (p0, p1) = (_mm256_set1_ps(att[0]), _mm256_set1_ps(att[1]));
        for (c, yc) in yv.iter_mut().enumerate() {
            let a = _mm256_mul_ps(_mm256_loadu_ps(v.as_ptr().add(64 + c * 8)), p1);
            let b = _mm256_mul_ps(_mm256_loadu_ps(v.as_ptr().add(c * 8)), p0);
            *yc = _mm256_add_ps(a, b);
        }
    }
    for j in 0..if n == 2 { 0 } else { n } {
        let p = _mm256_set1_ps(*att.get_unchecked(j));
        let vp = v.as_ptr().add(j * 64);
        for (c, yc) in yv.iter_mut().enumerate() {
            *yc = if j == 0 {
                _mm256_mul_ps(_mm256_loadu_ps(vp.add(c * 8)), p)
            } else {
                _mm256_fmadd_ps(_mm256_loadu_ps(vp.add(c * 8)), p, *yc)
            };
        }
    }
    for (c, yc) in yv.iter().enumerate() {
        _mm256_storeu_ps(y.as_mut_ptr().add(c * 8), *yc);
    }
}

/// candle's AVX `vec_sum` (softmax's sum) of a row of `n` floats whose first
/// `x.len()` values are `x` and the rest zeros (masked positions): four
/// 8-lane accumulators over steps of 32 up to `n & !31`, a tree, two
/// `hadd`s, then the tail in order. Zeros leave every partial sum as it is,
/// so only where `x` ends relative to `n & !31` matters, and they are not read.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn candle_sum(x: &[f32], n: usize) -> f32 {
    use std::arch::x86_64::*;
    let np = n & !31;
    let lanes = x.len().min(np);
    let mut sum4 = [_mm256_setzero_ps(); 4];
    let mut last = [0f32; 32];
    let mut i = 0;
    while i < lanes {
        let chunk = if i + 32 <= x.len() {
            &x[i..i + 32]
        } else {
            last[..x.len() - i].copy_from_slice(&x[i..]);
            &last[..]
        };
        for (jj, acc) in sum4.iter_mut().enumerate() {
            *acc = _mm256_add_ps(*acc, _mm256_loadu_ps(chunk.as_ptr().add(jj * 8)));
        }
        i += 32;
    }
    let x0 = _mm256_add_ps(sum4[0], sum4[1]);
    let x2 = _mm256_add_ps(sum4[2], sum4[3]);
    let x0 = _mm256_add_ps(x0, x2);
    let t0 = _mm_add_ps(_mm256_castps256_ps128(x0), _mm256_extractf128_ps(x0, 1));
    let t1 = _mm_hadd_ps(t0, t0);
    let mut sum = _mm_cvtss_f32(_mm_hadd_ps(t1, t1));
    if x.len() > np {
        for s in &x[np..] {
            sum += *s;
        }
    }
    sum
}

#[cfg(not(target_arch = "x86_64"))]
unsafe fn attend_64(_q: &[f32], _k: &[f32], _v: &[f32], _scale: f32, _att: &mut [f32], _y: &mut [f32]) {
    unreachable!("the decode path needs AVX2")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The decode attention is bit-identical to the reference's candle ops
    /// (`repeat_kv`, `matmul`, `/ sqrt(d)`, `softmax_last_dim`, `matmul`),
    /// below and above `gemm`'s 256-element switch of kernels.
    #[test]
    fn attention_64_is_bit_identical_to_candle_ops() {
        use candle_core::{Device, Tensor};
        #[cfg(target_arch = "x86_64")]
        if !(std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")) {
            return;
        }
        let (n_head, n_kv, hd, ctx) = (9, 3, 64, 700);
        for kv_len in [1, 2, 7, 31, 32, 33, 100, 255, 256, 257, 300, 513, 700] {
            let q: Vec<f32> = (0..n_head * hd).map(|i| ((i * 37 + kv_len) as f32 * 0.013).sin() * 2.0).collect();
            let k: Vec<f32> = (0..n_kv * ctx * hd).map(|i| (i as f32 * 0.0071).cos() * 1.5).collect();
            let v: Vec<f32> = (0..n_kv * ctx * hd).map(|i| (i as f32 * 0.0113).sin()).collect();
            let mut att = vec![0f32; n_head * ctx];
            let mut y = vec![0f32; n_head * hd];
            attention(&q, &k, &v, ctx, kv_len, n_head, n_kv, hd, &mut att, &mut y);

            let dev = Device::Cpu;
            let cut = |c: &[f32]| -> Tensor {
                let mut all = Vec::new();
                for h in 0..n_kv {
                    all.extend_from_slice(&c[h * ctx * hd..(h * ctx + kv_len) * hd]);
                }
                Tensor::from_vec(all, (1, n_kv, kv_len, hd), &dev).unwrap()
            };
            let qt = Tensor::from_slice(&q, (1, n_head, 1, hd), &dev).unwrap();
            let k_rep = candle_transformers::utils::repeat_kv(cut(&k), n_head / n_kv).unwrap();
            let v_rep = candle_transformers::utils::repeat_kv(cut(&v), n_head / n_kv).unwrap();
            let a = (qt.matmul(&k_rep.t().unwrap()).unwrap() / (hd as f64).sqrt()).unwrap();
            let a = candle_nn::ops::softmax_last_dim(&a).unwrap();
            let want: Vec<f32> = a.matmul(&v_rep).unwrap().flatten_all().unwrap().to_vec1().unwrap();
            for (i, (got, want)) in y.iter().zip(&want).enumerate() {
                assert_eq!(got.to_bits(), want.to_bits(), "kv_len {kv_len}, element {i}: {got} vs {want}");
            }
        }
    }

    /// Several sequences in one dispatch, each with its own cache, stride and
    /// depth, give each the bits of `attention` on it alone.
    #[test]
    fn attention_many_is_bit_identical_to_one_sequence_at_a_time() {
        #[cfg(target_arch = "x86_64")]
        if !(std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")) {
            return;
        }
        let (n_head, n_kv, hd) = (9, 3, 64);
        let shapes = [(40usize, 2usize), (300, 257), (64, 31)];
        let data: Vec<(Vec<f32>, Vec<f32>, Vec<f32>)> = shapes
            .iter()
            .enumerate()
            .map(|(s, &(ctx, _))| {
                let q = (0..n_head * hd).map(|i| ((i * 37 + s) as f32 * 0.013).sin()).collect();
                let k = (0..n_kv * ctx * hd).map(|i| ((i + s) as f32 * 0.0071).cos()).collect();
                let v = (0..n_kv * ctx * hd).map(|i| ((i * 3 + s) as f32 * 0.0113).sin()).collect();
                (q, k, v)
            })
            .collect();
        let mut atts: Vec<Vec<f32>> = shapes.iter().map(|&(ctx, _)| vec![0f32; n_head * ctx]).collect();
        let mut ys: Vec<Vec<f32>> = shapes.iter().map(|_| vec![0f32; n_head * hd]).collect();
        let mut seqs: Vec<Attend<'_>> = data
            .iter()
            .zip(&shapes)
            .zip(atts.iter_mut().zip(ys.iter_mut()))
            .map(|(((q, k, v), &(ctx, kv_len)), (att, y))| Attend { q, k_cache: k, v_cache: v, ctx, kv_len, att, y })
            .collect();
        attention_many(&mut seqs, n_head, n_kv, hd);
        drop(seqs);
        for (s, ((q, k, v), &(ctx, kv_len))) in data.iter().zip(&shapes).enumerate() {
            let mut att = vec![0f32; n_head * ctx];
            let mut y = vec![0f32; n_head * hd];
            attention(q, k, v, ctx, kv_len, n_head, n_kv, hd, &mut att, &mut y);
            assert!(y.iter().zip(&ys[s]).all(|(a, b)| a.to_bits() == b.to_bits()), "sequence {s}");
        }
    }

    #[test]
    fn attention_64_agrees_with_the_generic_loop() {
        let (n_head, n_kv, hd, ctx, kv_len) = (6, 2, 64, 40, 37);
        let q: Vec<f32> = (0..n_head * hd).map(|i| (i as f32 * 0.13).sin()).collect();
        let k: Vec<f32> = (0..n_kv * ctx * hd).map(|i| (i as f32 * 0.07).cos()).collect();
        let v: Vec<f32> = (0..n_kv * ctx * hd).map(|i| (i as f32 * 0.011).sin()).collect();
        let mut att = vec![0f32; n_head * ctx];
        let mut y = vec![0f32; n_head * hd];
        attention(&q, &k, &v, ctx, kv_len, n_head, n_kv, hd, &mut att, &mut y);
        for h in 0..n_head {
            let kvh = h / 3;
            let s: Vec<f32> = (0..kv_len)
                .map(|j| (0..hd).map(|d| q[h * hd + d] * k[(kvh * ctx + j) * hd + d]).sum::<f32>() / 8.0)
                .collect();
            let m = s.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
            let e: Vec<f32> = s.iter().map(|x| (x - m).exp()).collect();
            let z: f32 = e.iter().sum();
            for d in 0..hd {
                let want: f32 = (0..kv_len).map(|j| e[j] / z * v[(kvh * ctx + j) * hd + d]).sum();
                assert!((y[h * hd + d] - want).abs() < 1e-5, "head {h} dim {d}: {} vs {want}", y[h * hd + d]);
            }
        }
    }

    #[test]
    fn dot_matches_a_plain_sum() {
        let a: Vec<f32> = (0..67).map(|i| (i as f32 * 0.37).sin()).collect();
        let b: Vec<f32> = (0..67).map(|i| (i as f32 * 0.11).cos()).collect();
        let plain: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
        assert!((dot(&a, &b) - plain).abs() < 1e-4);
    }

    #[test]
    fn attention_over_one_position_returns_its_value() {
        // One KV position: softmax weight 1, output = that value row for every head.
        let (n_head, n_kv, hd, ctx) = (4, 2, 8, 3);
        let q: Vec<f32> = (0..n_head * hd).map(|i| i as f32 * 0.1).collect();
        let mut k = vec![0f32; n_kv * ctx * hd];
        let mut v = vec![0f32; n_kv * ctx * hd];
        for h in 0..n_kv {
            for d in 0..hd {
                k[h * ctx * hd + d] = 1.0;
                v[h * ctx * hd + d] = (h * 10 + d) as f32;
            }
        }
        let mut att = vec![0f32; n_head * ctx];
        let mut y = vec![0f32; n_head * hd];
        attention(&q, &k, &v, ctx, 1, n_head, n_kv, hd, &mut att, &mut y);
        for h in 0..n_head {
            let kvh = h / 2;
            for d in 0..hd {
                assert!((y[h * hd + d] - (kvh * 10 + d) as f32).abs() < 1e-5);
            }
        }
    }
}
