//! A Q4_1 matmul with the same results as candle's, only faster.
//!
//! candle 0.11's CPU kernel for Q4_1 weights is its scalar fallback
//! (`BlockQ4_1::vec_dot_unopt`, a function call per block to convert f16),
//! which was over 80% of our forward pass. This kernel computes the very same
//! numbers: the activations are quantized to Q8_1 by candle's own
//! `BlockQ8_1::from_float`, each block's integer dot product (exact in any
//! order) is done with AVX2, and the floating-point accumulation over blocks
//! is done in the same order and with the same operations as candle's, so
//! outputs are bit-identical (and greedy decoding unchanged). Work is split
//! over output columns on candle's own thread pool.

use candle_core::quantized::k_quants::{BlockQ8_1, GgmlType};
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{CpuStorage, Device, Storage, Tensor};

const QK: usize = 32;

/// One weight block, f16 scales widened once at load (exact).
#[derive(Clone, Copy)]
#[repr(C, align(8))]
struct WBlock {
    qs: [u8; 16],
    d: f32,
    m: f32,
}

/// One activation block (Q8_1), scales widened (exact).
#[derive(Clone, Copy)]
#[repr(C, align(8))]
struct ABlock {
    qs: [i8; 32],
    d: f32,
    s: f32,
}

/// Exact f16 → f32.
pub(crate) fn f16_to_f32(h: u16) -> f32 {
    let sign = ((h >> 15) as u32) << 31;
    let exp = ((h >> 10) & 0x1f) as u32;
    let man = (h & 0x3ff) as u32;
    let bits = match (exp, man) {
        (0, 0) => sign,
        (0, _) => {
            // Subnormal: normalise.
            let mut e = 127 - 15 + 1;
            let mut m = man;
            while m & 0x400 == 0 {
                m <<= 1;
                e -= 1;
            }
            sign | (e << 23) | ((m & 0x3ff) << 13)
        }
        (0x1f, _) => sign | 0x7f80_0000 | (man << 13),
        _ => sign | ((exp + 127 - 15) << 23) | (man << 13),
    };
    f32::from_bits(bits)
}

/// A Q4_1 weight matrix (n rows of k) ready for [`Q41::forward`].
pub struct Q41 {
    n: usize,
    k: usize,
    w: Vec<WBlock>,
}

impl Q41 {
    /// Takes a Q4_1 tensor of shape (n, k) when the CPU has AVX2; `None` otherwise.
    pub fn new(t: &QTensor) -> Option<Q41> {
        if t.dtype() != GgmlDType::Q4_1 || !avx2() {
            return None;
        }
        let (n, k) = t.shape().dims2().ok()?;
        if k % QK != 0 {
            return None;
        }
        let data = t.data().ok()?;
        if data.len() != n * k / QK * 20 {
            return None;
        }
        let w = data
            .chunks_exact(20)
            .map(|b| {
                let mut qs = [0u8; 16];
                qs.copy_from_slice(&b[4..20]);
                WBlock {
                    qs,
                    d: f16_to_f32(u16::from_le_bytes([b[0], b[1]])),
                    m: f16_to_f32(u16::from_le_bytes([b[2], b[3]])),
                }
            })
            .collect();
        Some(Q41 { n, k, w })
    }

    /// `x @ W^T` for x of shape (…, k), f32.
    pub fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let x = x.contiguous()?;
        let mut dims = x.dims().to_vec();
        let k = dims.pop().unwrap_or(0);
        if k != self.k {
            candle_core::bail!("q4_1 matmul: input {:?} does not match k = {}", x.shape(), self.k);
        }
        let m = dims.iter().product::<usize>();
        let kb = k / QK;
        // Quantize the activations with candle's own Q8_1 code (same rounding).
        let mut acts: Vec<ABlock> = Vec::with_capacity(m * kb);
        {
            let (st, layout) = x.storage_and_layout();
            let xs = match &*st {
                Storage::Cpu(CpuStorage::F32(v)) => &v[layout.start_offset()..layout.start_offset() + m * k],
                _ => candle_core::bail!("q4_1 matmul: expected f32 on CPU"),
            };
            let mut q8: Vec<BlockQ8_1> = (0..kb).map(|_| BlockQ8_1::zeros()).collect();
            for row in xs.chunks_exact(k) {
                BlockQ8_1::from_float(row, &mut q8);
                // SAFETY: BlockQ8_1 is repr(C) {d: f16, s: f16, qs: [i8; 32]}, 36 bytes.
                let bytes = unsafe { std::slice::from_raw_parts(q8.as_ptr() as *const u8, kb * 36) };
                for b in bytes.chunks_exact(36) {
                    let mut qs = [0i8; 32];
                    for (q, &v) in qs.iter_mut().zip(&b[4..36]) {
                        *q = v as i8;
                    }
                    acts.push(ABlock {
                        qs,
                        d: f16_to_f32(u16::from_le_bytes([b[0], b[1]])),
                        s: f16_to_f32(u16::from_le_bytes([b[2], b[3]])),
                    });
                }
            }
        }
        let n = self.n;
        let mut dst = vec![0f32; m * n];
        let dst_ptr = dst.as_mut_ptr() as usize;
        let w = &self.w;
        let acts = &acts;
        const ROW_TILE: usize = 16;
        // SAFETY (raw writes): each (r, c) is written by exactly one work item.
        let put = |r: usize, c: usize, v: f32| unsafe { *(dst_ptr as *mut f32).add(r * n + c) = v };
        let wcol = |c: usize| &w[c * kb..(c + 1) * kb];
        let arow = |r: usize| &acts[r * kb..(r + 1) * kb];
        candle_core::utils::barrier_pool().execute_chunked(n, |cols| {
            if m == 1 {
                // Decode: four columns at a time (four independent sums).
                let mut c = cols.start;
                while c + 4 <= cols.end {
                    let v = unsafe { dot_4cols(kb, [wcol(c), wcol(c + 1), wcol(c + 2), wcol(c + 3)], arow(0)) };
                    for (j, v) in v.into_iter().enumerate() {
                        put(0, c + j, v);
                    }
                    c += 4;
                }
                for c in c..cols.end {
                    put(0, c, unsafe { dot_avx2(wcol(c), arow(0)) });
                }
                return;
            }
            for r0 in (0..m).step_by(ROW_TILE) {
                let r1 = (r0 + ROW_TILE).min(m);
                for c in cols.clone() {
                    let wc = wcol(c);
                    let mut r = r0;
                    // Prefill: four rows against one column, sharing the weight unpacking.
                    while r + 4 <= r1 {
                        let v = unsafe { dot_4rows(kb, wc, [arow(r), arow(r + 1), arow(r + 2), arow(r + 3)]) };
                        for (j, v) in v.into_iter().enumerate() {
                            put(r + j, c, v);
                        }
                        r += 4;
                    }
                    for r in r..r1 {
                        put(r, c, unsafe { dot_avx2(wc, arow(r)) });
                    }
                }
            }
        });
        dims.push(n);
        Tensor::from_vec(dst, dims, &Device::Cpu)
    }
}

/// Activations of one row quantized to Q8_1 (candle's own rounding), reusable
/// across matrix-vector products: the decode path quantizes each normalised
/// hidden state once and multiplies it by several weight matrices.
pub struct Acts {
    q8: Vec<BlockQ8_1>,
    blocks: Vec<ABlock>,
}

impl Acts {
    /// Room for a row of `k` values (a multiple of 32).
    pub fn new(k: usize) -> Acts {
        let kb = k / QK;
        Acts { q8: (0..kb).map(|_| BlockQ8_1::zeros()).collect(), blocks: vec![ABlock { qs: [0; 32], d: 0.0, s: 0.0 }; kb] }
    }

    /// Quantizes `x` (length a multiple of 32, at most the capacity); no allocation.
    pub fn quantize(&mut self, x: &[f32]) {
        let kb = x.len() / QK;
        let q8 = &mut self.q8[..kb];
        BlockQ8_1::from_float(x, q8);
        // SAFETY: BlockQ8_1 is repr(C) {d: f16, s: f16, qs: [i8; 32]}, 36 bytes.
        let bytes = unsafe { std::slice::from_raw_parts(q8.as_ptr() as *const u8, kb * 36) };
        for (dst, b) in self.blocks.iter_mut().zip(bytes.chunks_exact(36)) {
            for (q, &v) in dst.qs.iter_mut().zip(&b[4..36]) {
                *q = v as i8;
            }
            dst.d = f16_to_f32(u16::from_le_bytes([b[0], b[1]]));
            dst.s = f16_to_f32(u16::from_le_bytes([b[2], b[3]]));
        }
    }
}

impl Q41 {
    /// Output rows (columns of `x @ W^T`).
    pub fn rows(&self) -> usize {
        self.n
    }

    /// The decode kernel: `out = W · a` for one quantized row, with the same
    /// bits as candle (four rows at a time, candle's order per row).
    /// `out.len()` must be [`Q41::rows`].
    pub fn matvec(&self, a: &Acts, out: &mut [f32]) {
        matvec_many(&mut [(self, a, out)]);
    }

    /// Rows `start..end` of `W · a` into `out` (indexed from `start`).
    fn rows_into(&self, a: &[ABlock], start: usize, end: usize, out: &mut [f32]) {
        let kb = self.k / QK;
        let w = &self.w;
        let mut c = start;
        while c + 4 <= end {
            // SAFETY: Q41 exists only on CPUs with AVX2 and FMA.
            let v = unsafe { dot_4cols(kb, [&w[c * kb..(c + 1) * kb], &w[(c + 1) * kb..(c + 2) * kb], &w[(c + 2) * kb..(c + 3) * kb], &w[(c + 3) * kb..(c + 4) * kb]], a) };
            out[c - start..c - start + 4].copy_from_slice(&v);
            c += 4;
        }
        for c in c..end {
            out[c - start] = unsafe { dot_avx2(&w[c * kb..(c + 1) * kb], a) };
        }
    }
}

/// Several matrix-vector products in one dispatch on candle's thread pool
/// (e.g. the query, key and value projections of one input): one barrier
/// instead of one per matrix. Each output slice must have the matrix's rows.
pub fn matvec_many(jobs: &mut [(&Q41, &Acts, &mut [f32])]) {
    const GROUP: usize = 8;
    let mut bounds = [0usize; 8];
    assert!(jobs.len() < bounds.len(), "matvec_many: at most 7 products at once");
    for (i, (w, _, out)) in jobs.iter().enumerate() {
        assert!(out.len() >= w.n, "matvec_many: output shorter than the matrix");
        bounds[i + 1] = bounds[i] + w.n.div_ceil(GROUP);
    }
    let total = bounds[jobs.len()];
    let ptrs: Vec<(usize, &Q41, &[ABlock])> =
        jobs.iter_mut().map(|(w, a, out)| (out.as_mut_ptr() as usize, *w, &a.blocks[..w.k / QK])).collect();
    candle_core::utils::barrier_pool().execute_chunked(total, |range| {
        for g in range {
            let j = bounds[1..=ptrs.len()].iter().position(|&b| g < b).unwrap_or(0);
            let (ptr, w, a) = ptrs[j];
            let start = (g - bounds[j]) * GROUP;
            let end = (start + GROUP).min(w.n);
            // SAFETY: each group of output rows is written by one work item only.
            let out = unsafe { std::slice::from_raw_parts_mut((ptr as *mut f32).add(start), end - start) };
            w.rows_into(a, start, end, out);
        }
    });
}

pub(crate) fn avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Same arithmetic as candle's `BlockQ4_1::vec_dot_unopt`, integer part in AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn dot_avx2(w: &[WBlock], a: &[ABlock]) -> f32 {
    use std::arch::x86_64::*;
    let mask = _mm_set1_epi8(0x0f);
    let ones = _mm256_set1_epi16(1);
    let mut sumf = 0f32;
    for (x, y) in w.iter().zip(a) {
        let q = _mm_loadu_si128(x.qs.as_ptr() as *const __m128i);
        let lo = _mm_and_si128(q, mask);
        let hi = _mm_and_si128(_mm_srli_epi16(q, 4), mask);
        let wv = _mm256_set_m128i(hi, lo);
        let av = _mm256_loadu_si256(y.qs.as_ptr() as *const __m256i);
        // u8 (0..15) × i8 pairs: |sum| ≤ 2·15·128, no saturation.
        let p = _mm256_madd_epi16(_mm256_maddubs_epi16(wv, av), ones);
        let s = _mm_add_epi32(_mm256_castsi256_si128(p), _mm256_extracti128_si256(p, 1));
        let s = _mm_add_epi32(s, _mm_unpackhi_epi64(s, s));
        let s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0b01));
        let sumi = _mm_cvtsi128_si32(s);
        sumf += sumi as f32 * x.d * y.d + x.m * y.s;
    }
    sumf
}


/// Four horizontal i32 sums of four vectors, as one vector (exact).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn hsum4(p: [std::arch::x86_64::__m256i; 4]) -> std::arch::x86_64::__m128i {
    use std::arch::x86_64::*;
    let a = _mm256_hadd_epi32(p[0], p[1]); // p0 pairs, p1 pairs (per 128-bit lane)
    let b = _mm256_hadd_epi32(p[2], p[3]);
    let c = _mm256_hadd_epi32(a, b); // [s0 s1 s2 s3] per lane
    _mm_add_epi32(_mm256_castsi256_si128(c), _mm256_extracti128_si256(c, 1))
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn unpack(x: &WBlock) -> std::arch::x86_64::__m256i {
    use std::arch::x86_64::*;
    let mask = _mm_set1_epi8(0x0f);
    let q = _mm_loadu_si128(x.qs.as_ptr() as *const __m128i);
    let lo = _mm_and_si128(q, mask);
    let hi = _mm_and_si128(_mm_srli_epi16(q, 4), mask);
    _mm256_set_m128i(hi, lo)
}

/// One activation row against four weight columns; per column the same
/// operations in the same order as [`dot_avx2`] (no FMA), so the same bits.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn dot_4cols(kb: usize, w: [&[WBlock]; 4], a: &[ABlock]) -> [f32; 4] {
    use std::arch::x86_64::*;
    let ones = _mm256_set1_epi16(1);
    let mut sumf = _mm_setzero_ps();
    for i in 0..kb {
        let y = &a[i];
        let av = _mm256_loadu_si256(y.qs.as_ptr() as *const __m256i);
        let x = [&w[0][i], &w[1][i], &w[2][i], &w[3][i]];
        let p = [0, 1, 2, 3].map(|j| _mm256_madd_epi16(_mm256_maddubs_epi16(unpack(x[j]), av), ones));
        let sumi = _mm_cvtepi32_ps(hsum4(p));
        let xd = _mm_set_ps(x[3].d, x[2].d, x[1].d, x[0].d);
        let xm = _mm_set_ps(x[3].m, x[2].m, x[1].m, x[0].m);
        let t = _mm_add_ps(_mm_mul_ps(_mm_mul_ps(sumi, xd), _mm_set1_ps(y.d)), _mm_mul_ps(xm, _mm_set1_ps(y.s)));
        sumf = _mm_add_ps(sumf, t);
    }
    let mut out = [0f32; 4];
    _mm_storeu_ps(out.as_mut_ptr(), sumf);
    out
}

/// Four activation rows against one weight column (same bits as [`dot_avx2`]).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn dot_4rows(kb: usize, w: &[WBlock], a: [&[ABlock]; 4]) -> [f32; 4] {
    use std::arch::x86_64::*;
    let ones = _mm256_set1_epi16(1);
    let mut sumf = _mm_setzero_ps();
    for i in 0..kb {
        let x = &w[i];
        let wv = unpack(x);
        let y = [&a[0][i], &a[1][i], &a[2][i], &a[3][i]];
        let p = [0, 1, 2, 3].map(|j| {
            let av = _mm256_loadu_si256(y[j].qs.as_ptr() as *const __m256i);
            _mm256_madd_epi16(_mm256_maddubs_epi16(wv, av), ones)
        });
        let sumi = _mm_cvtepi32_ps(hsum4(p));
        let yd = _mm_set_ps(y[3].d, y[2].d, y[1].d, y[0].d);
        let ys = _mm_set_ps(y[3].s, y[2].s, y[1].s, y[0].s);
        let t = _mm_add_ps(_mm_mul_ps(_mm_mul_ps(sumi, _mm_set1_ps(x.d)), yd), _mm_mul_ps(_mm_set1_ps(x.m), ys));
        sumf = _mm_add_ps(sumf, t);
    }
    let mut out = [0f32; 4];
    _mm_storeu_ps(out.as_mut_ptr(), sumf);
    out
}

#[cfg(not(target_arch = "x86_64"))]
unsafe fn dot_4cols(_kb: usize, _w: [&[WBlock]; 4], _a: &[ABlock]) -> [f32; 4] {
    unreachable!("Q41::new returns None without AVX2")
}

#[cfg(not(target_arch = "x86_64"))]
unsafe fn dot_4rows(_kb: usize, _w: &[WBlock], _a: [&[ABlock]; 4]) -> [f32; 4] {
    unreachable!("Q41::new returns None without AVX2")
}

#[cfg(not(target_arch = "x86_64"))]
unsafe fn dot_avx2(_w: &[WBlock], _a: &[ABlock]) -> f32 {
    unreachable!("Q41::new returns None without AVX2")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f16_conversion_is_exact() {
        for h in 0u16..=0xffff {
            let a = f16_to_f32(h);
            let b = half_ref(h);
            assert!(a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan()), "{h:#x}: {a} vs {b}");
        }
    }

    /// Reference: widen through candle's own f16 → f32 (via a Q8_1 dequantize would be
    /// indirect); compute from the definition instead.
    fn half_ref(h: u16) -> f32 {
        let s = if h >> 15 == 1 { -1.0f64 } else { 1.0 };
        let e = ((h >> 10) & 0x1f) as i32;
        let m = (h & 0x3ff) as f64;
        let v = match e {
            0 => s * m * 2f64.powi(-24),
            0x1f => {
                if m == 0.0 {
                    s * f64::INFINITY
                } else {
                    f64::NAN
                }
            }
            _ => s * (1.0 + m / 1024.0) * 2f64.powi(e - 15),
        };
        v as f32
    }

    #[test]
    fn matches_candle_bit_for_bit() {
        for (n, k, m) in [(22, 96, 1), (22, 96, 9), (20, 64, 5)] {
            check(n, k, m);
        }
    }

    fn check(n: usize, k: usize, m: usize) {
        let dev = Device::Cpu;
        let wf: Vec<f32> = (0..n * k).map(|i| ((i * 7919 % 1000) as f32 / 500.0 - 1.0) * 0.3).collect();
        let xf: Vec<f32> = (0..m * k).map(|i| ((i * 104729 % 977) as f32 / 488.0 - 1.0) * 2.0).collect();
        let wt = Tensor::from_vec(wf, (n, k), &dev).unwrap();
        let q = QTensor::quantize(&wt, GgmlDType::Q4_1).unwrap();
        let x = Tensor::from_vec(xf, (1, m, k), &dev).unwrap();
        let Some(fast) = Q41::new(&q) else { return };
        let ours: Vec<f32> = fast.forward(&x).unwrap().flatten_all().unwrap().to_vec1().unwrap();
        let qm = candle_core::quantized::QMatMul::from_qtensor(q).unwrap();
        let theirs: Vec<f32> =
            candle_core::Module::forward(&qm, &x).unwrap().flatten_all().unwrap().to_vec1().unwrap();
        assert_eq!(ours.len(), theirs.len());
        for (a, b) in ours.iter().zip(&theirs) {
            assert_eq!(a.to_bits(), b.to_bits(), "{a} vs {b}");
        }
    }

    #[test]
    fn decode_matvec_is_bit_identical_to_the_exact_kernel() {
        let dev = Device::Cpu;
        let (n, k) = (45, 576);
        let wf: Vec<f32> = (0..n * k).map(|i| ((i * 7919 % 1000) as f32 / 500.0 - 1.0) * 0.3).collect();
        let xf: Vec<f32> = (0..k).map(|i| ((i * 104729 % 977) as f32 / 488.0 - 1.0) * 2.0).collect();
        let q = QTensor::quantize(&Tensor::from_vec(wf, (n, k), &dev).unwrap(), GgmlDType::Q4_1).unwrap();
        let Some(fast) = Q41::new(&q) else { return };
        let exact: Vec<f32> =
            fast.forward(&Tensor::from_slice(&xf, (1, k), &dev).unwrap()).unwrap().flatten_all().unwrap().to_vec1().unwrap();
        let mut acts = Acts::new(k);
        acts.quantize(&xf);
        let mut out = vec![0f32; n];
        fast.matvec(&acts, &mut out);
        for (a, b) in out.iter().zip(&exact) {
            assert_eq!(a.to_bits(), b.to_bits(), "{a} vs {b}");
        }
    }
}
