//! Plain f32 vector kernels of the single-token decode path: RMSNorm, RoPE,
//! grouped-query attention over the KV cache, SiLU gating.
//!
//! They work on preallocated slices (no allocation per token) and are compiled
//! with AVX2 and FMA enabled (eight-lane accumulators that LLVM turns into
//! `vfmadd` on ymm registers). They are only called when the CPU has both
//! features: [`super::q4_1::Q41::new`] refuses to build otherwise, and the
//! decode path needs every layer to be Q4_1.

/// `out = x / sqrt(mean(x²) + eps) * w`, the arithmetic of candle's `rms_norm`.
pub fn rms_norm(x: &[f32], w: &[f32], eps: f32, out: &mut [f32]) {
    // SAFETY: callers run only when AVX2 and FMA are present (module doc).
    unsafe { rms_norm_inner(x, w, eps, out) }
}

#[cfg_attr(target_arch = "x86_64", target_feature(enable = "avx2,fma"))]
unsafe fn rms_norm_inner(x: &[f32], w: &[f32], eps: f32, out: &mut [f32]) {
    let sum2 = dot_inner(x, x);
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
/// Heads are split over candle's thread pool.
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
    let groups = n_head / n_kv_head;
    let scale = 1.0 / (head_dim as f32).sqrt();
    let att_ptr = att.as_mut_ptr() as usize;
    let y_ptr = y.as_mut_ptr() as usize;
    candle_core::utils::barrier_pool().execute_chunked(n_head, |heads| {
        for h in heads {
            let kvh = h / groups;
            let qh = &q[h * head_dim..(h + 1) * head_dim];
            let kc = &k_cache[kvh * ctx * head_dim..(kvh * ctx + kv_len) * head_dim];
            let vc = &v_cache[kvh * ctx * head_dim..(kvh * ctx + kv_len) * head_dim];
            // SAFETY: head h owns att[h*ctx..][..kv_len] and y[h*head_dim..][..head_dim].
            let a = unsafe { std::slice::from_raw_parts_mut((att_ptr as *mut f32).add(h * ctx), kv_len) };
            let yh = unsafe { std::slice::from_raw_parts_mut((y_ptr as *mut f32).add(h * head_dim), head_dim) };
            if head_dim == 64 {
                // SAFETY: see the module doc.
                unsafe { attend_64(qh, kc, vc, scale, a, yh) };
                continue;
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
    });
}

/// One head of attention with head_dim 64, the query and the output held in
/// eight ymm registers each; exponentials by [`exp8`].
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn attend_64(q: &[f32], k: &[f32], v: &[f32], scale: f32, att: &mut [f32], y: &mut [f32]) {
    use std::arch::x86_64::*;
    let n = att.len();
    let qv: [__m256; 8] = std::array::from_fn(|i| _mm256_loadu_ps(q.as_ptr().add(i * 8)));
    let mut max = f32::NEG_INFINITY;
    for j in 0..n {
        let kp = k.as_ptr().add(j * 64);
        let mut a0 = _mm256_mul_ps(qv[0], _mm256_loadu_ps(kp));
        let mut a1 = _mm256_mul_ps(qv[1], _mm256_loadu_ps(kp.add(8)));
        a0 = _mm256_fmadd_ps(qv[2], _mm256_loadu_ps(kp.add(16)), a0);
        a1 = _mm256_fmadd_ps(qv[3], _mm256_loadu_ps(kp.add(24)), a1);
        a0 = _mm256_fmadd_ps(qv[4], _mm256_loadu_ps(kp.add(32)), a0);
        a1 = _mm256_fmadd_ps(qv[5], _mm256_loadu_ps(kp.add(40)), a1);
        a0 = _mm256_fmadd_ps(qv[6], _mm256_loadu_ps(kp.add(48)), a0);
        a1 = _mm256_fmadd_ps(qv[7], _mm256_loadu_ps(kp.add(56)), a1);
        let a = _mm256_add_ps(a0, a1);
        let s = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        let s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 0b01));
        let s = _mm_cvtss_f32(s) * scale;
        *att.get_unchecked_mut(j) = s;
        max = max.max(s);
    }
    // Softmax numerators, eight at a time.
    let mut sum = 0f32;
    let mx = _mm256_set1_ps(max);
    let mut j = 0;
    let mut acc = _mm256_setzero_ps();
    while j + 8 <= n {
        let e = exp8(_mm256_sub_ps(_mm256_loadu_ps(att.as_ptr().add(j)), mx));
        _mm256_storeu_ps(att.as_mut_ptr().add(j), e);
        acc = _mm256_add_ps(acc, e);
        j += 8;
    }
    let mut tmp = [0f32; 8];
    _mm256_storeu_ps(tmp.as_mut_ptr(), acc);
    sum += tmp.iter().sum::<f32>();
    for s in &mut att[j..] {
        *s = (*s - max).exp();
        sum += *s;
    }
    let inv = 1.0 / sum;
    let mut yv = [_mm256_setzero_ps(); 8];
    for j in 0..n {
        let p = _mm256_set1_ps(*att.get_unchecked(j) * inv);
        let vp = v.as_ptr().add(j * 64);
        for (i, y) in yv.iter_mut().enumerate() {
            *y = _mm256_fmadd_ps(p, _mm256_loadu_ps(vp.add(i * 8)), *y);
        }
    }
    for (i, v) in yv.iter().enumerate() {
        _mm256_storeu_ps(y.as_mut_ptr().add(i * 8), *v);
    }
}

#[cfg(not(target_arch = "x86_64"))]
unsafe fn attend_64(_q: &[f32], _k: &[f32], _v: &[f32], _scale: f32, _att: &mut [f32], _y: &mut [f32]) {
    unreachable!("the decode path needs AVX2")
}

/// `exp` of eight lanes (x ≤ 0 here): Cody–Waite range reduction and a
/// degree-6 polynomial, relative error about 2e-7 (a few ulp); inputs below
/// -87 flush to 0.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn exp8(x: std::arch::x86_64::__m256) -> std::arch::x86_64::__m256 {
    use std::arch::x86_64::*;
    let x = _mm256_max_ps(x, _mm256_set1_ps(-87.0));
    let n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(std::f32::consts::LOG2_E)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693_145_75), x);
    let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(1.428_606_8e-6), r);
    let mut p = _mm256_set1_ps(1.0 / 720.0);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0 / 120.0));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0 / 24.0));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0 / 6.0));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0));
    let e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    _mm256_mul_ps(p, _mm256_castsi256_ps(e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp8_is_within_a_few_ulp() {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
            use std::arch::x86_64::*;
            for i in 0..2000 {
                let x = -(i as f32) * 0.05;
                let mut out = [0f32; 8];
                unsafe { _mm256_storeu_ps(out.as_mut_ptr(), exp8(_mm256_set1_ps(x))) };
                let want = x.exp();
                assert!((out[0] - want).abs() <= 1e-6 * want.max(1e-30) + 1e-37, "exp({x}) = {} vs {want}", out[0]);
            }
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
