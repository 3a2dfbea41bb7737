//! A Q8_0 matrix-vector kernel (AVX2 + FMA) for the LM head.
//!
//! SmolLM2's GGUF ties the LM head to the token embeddings and stores them as
//! Q8_0 (49152 × 576: a third of the model's bytes), so the head is a large
//! share of every decoded token. candle's kernel handles one output row per
//! call; this one runs four rows together (more independent work per loop),
//! each row in candle's own AVX order (eight-lane FMA sum over blocks, the
//! same horizontal sum), split over candle's thread pool. Activations are
//! quantized to Q8_0 by candle's own `BlockQ8_0::from_float`, so the logits
//! have the same bits as candle's.

use candle_core::quantized::k_quants::{BlockQ8_0, GgmlType};
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{CpuStorage, Device, Storage, Tensor};

const QK: usize = 32;

/// An activation block (32 signed bytes), scale widened to f32 (exact).
#[derive(Clone, Copy)]
#[repr(C)]
struct ABlock {
    qs: [i8; 32],
    d: f32,
}

/// 32 weight bytes of one row, 32-byte aligned.
#[derive(Clone, Copy)]
#[repr(C, align(32))]
struct Q32([i8; 32]);

/// Weight rows per group: a group's blocks are interleaved, so the kernel
/// reads one aligned stream (four rows' bytes, then the next block).
const GR: usize = 4;

/// Activations of one row quantized to Q8_0, reusable across products.
pub struct Acts8 {
    q8: Vec<BlockQ8_0>,
    blocks: Vec<ABlock>,
}

impl Acts8 {
    /// Room for a row of `k` values (a multiple of 32).
    pub fn new(k: usize) -> Acts8 {
        let kb = k / QK;
        Acts8 { q8: (0..kb).map(|_| BlockQ8_0::zeros()).collect(), blocks: vec![ABlock { qs: [0; 32], d: 0.0 }; kb] }
    }

    /// Quantizes `x` (length a multiple of 32, at most the capacity).
    pub fn quantize(&mut self, x: &[f32]) {
        let kb = x.len() / QK;
        let q8 = &mut self.q8[..kb];
        BlockQ8_0::from_float(x, q8);
        // SAFETY: BlockQ8_0 is repr(C) {d: f16, qs: [i8; 32]}, 34 bytes.
        let bytes = unsafe { std::slice::from_raw_parts(q8.as_ptr() as *const u8, kb * 34) };
        for (dst, b) in self.blocks.iter_mut().zip(bytes.chunks_exact(34)) {
            for (q, &v) in dst.qs.iter_mut().zip(&b[2..34]) {
                *q = v as i8;
            }
            dst.d = super::q4_1::f16_to_f32(u16::from_le_bytes([b[0], b[1]]));
        }
    }
}

/// A Q8_0 weight matrix (n rows of k), in groups of [`GR`] rows: `qs[(g ·
/// kb + i) · 4 + j]` is block `i` of row `4 g + j` (aligned, one stream per
/// group), `d[g · kb + i]` their four scales as f16 bits (the GGUF's bytes:
/// 34 per block; widened in the kernel with `vcvtph2ps`, exact). Rows past
/// `n` in the last group are zeros.
pub struct Q80 {
    n: usize,
    k: usize,
    qs: Vec<Q32>,
    d: Vec<[u16; GR]>,
}

impl Q80 {
    /// Takes a Q8_0 tensor of shape (n, k) when the CPU has AVX2 and FMA.
    pub fn new(t: &QTensor) -> Option<Q80> {
        if t.dtype() != GgmlDType::Q8_0 || !super::q4_1::avx2() {
            return None;
        }
        let (n, k) = t.shape().dims2().ok()?;
        if k % QK != 0 {
            return None;
        }
        let data = t.data().ok()?;
        if data.len() != n * k / QK * 34 {
            return None;
        }
        let kb = k / QK;
        let groups = n.div_ceil(GR);
        let mut qs = vec![Q32([0; 32]); groups * kb * GR];
        let mut d = vec![[0u16; GR]; groups * kb];
        for (bi, b) in data.chunks_exact(34).enumerate() {
            let (row, i) = (bi / kb, bi % kb);
            let (g, j) = (row / GR, row % GR);
            d[g * kb + i][j] = u16::from_le_bytes([b[0], b[1]]);
            for (q, &v) in qs[(g * kb + i) * GR + j].0.iter_mut().zip(&b[2..34]) {
                *q = v as i8;
            }
        }
        Some(Q80 { n, k, qs, d })
    }

    /// Output rows.
    pub fn rows(&self) -> usize {
        self.n
    }

    /// `out = W · a`; `out.len()` must be [`Q80::rows`].
    pub fn matvec(&self, a: &Acts8, out: &mut [f32]) {
        let n = self.n.min(out.len());
        self.matmul_rows(&[a], &mut out[..n], n);
    }

    /// `out[b] = W · acts[b]` for several activation rows in one dispatch,
    /// `out` row-major with row stride `n` (at most [`Q80::rows`]): each
    /// group of four weight rows is loaded once and used for every
    /// activation row while it is in L1, so the head's weights (a third of
    /// the model's bytes) are streamed from memory once per decode step
    /// however many sequences share it. Each (weight row, activation row)
    /// dot product is computed exactly as by [`Q80::matvec`].
    pub fn matmul_rows(&self, acts: &[&Acts8], out: &mut [f32], n: usize) {
        let kb = self.k / QK;
        let n = n.min(self.n);
        assert!(out.len() >= acts.len() * n, "q8_0 matmul: output shorter than rows × n");
        let rows: Vec<&[ABlock]> = acts.iter().map(|a| &a.blocks[..kb]).collect();
        let out_ptr = out.as_mut_ptr() as usize;
        let groups = n.div_ceil(GR);
        candle_core::utils::barrier_pool().execute_chunked(groups, |gs| {
            for g in gs {
                let qs = &self.qs[g * kb * GR..(g + 1) * kb * GR];
                let d = &self.d[g * kb..(g + 1) * kb];
                let valid = GR.min(n - g * GR);
                for (b, a) in rows.iter().enumerate() {
                    // SAFETY: Q80 exists only on CPUs with AVX2, FMA and F16C.
                    let v = unsafe { dot_group(kb, qs, d, a) };
                    // SAFETY: group g owns columns [4g, 4g + valid) of every output row.
                    unsafe { std::slice::from_raw_parts_mut((out_ptr as *mut f32).add(b * n + g * GR), valid) }.copy_from_slice(&v[..valid]);
                }
            }
        });
    }

    /// `x @ W^T` for x of shape (…, k), f32, row by row.
    pub fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let x = x.contiguous()?;
        let mut dims = x.dims().to_vec();
        let k = dims.pop().unwrap_or(0);
        if k != self.k {
            candle_core::bail!("q8_0 matmul: input {:?} does not match k = {}", x.shape(), self.k);
        }
        let m = dims.iter().product::<usize>();
        let (st, layout) = x.storage_and_layout();
        let xs = match &*st {
            Storage::Cpu(CpuStorage::F32(v)) => &v[layout.start_offset()..layout.start_offset() + m * k],
            _ => candle_core::bail!("q8_0 matmul: expected f32 on CPU"),
        };
        let mut acts = Acts8::new(k);
        let mut dst = vec![0f32; m * self.n];
        for (row, out) in xs.chunks_exact(k).zip(dst.chunks_exact_mut(self.n)) {
            acts.quantize(row);
            self.matvec(&acts, out);
        }
        dims.push(self.n);
        Tensor::from_vec(dst, dims, &Device::Cpu)
    }
}

/// One group of four weight rows against one activation row: |x|·sign(y, x)
/// with `maddubs`, eight-lane FMA sums over blocks with the scale product
/// `d_x · d_y` (f32, as candle's), one horizontal sum at the end — candle's
/// AVX order for each row.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn dot_group(kb: usize, qs: &[Q32], d: &[[u16; GR]], a: &[ABlock]) -> [f32; GR] {
    use std::arch::x86_64::*;
    let ones = _mm256_set1_epi16(1);
    let mut acc = [_mm256_setzero_ps(); GR];
    for i in 0..kb {
        let y = a.get_unchecked(i);
        let yv = _mm256_loadu_si256(y.qs.as_ptr() as *const __m256i);
        let dx = _mm_cvtph_ps(_mm_loadl_epi64(d.get_unchecked(i).as_ptr() as *const __m128i));
        let mut dd = [0f32; GR];
        _mm_storeu_ps(dd.as_mut_ptr(), _mm_mul_ps(dx, _mm_set1_ps(y.d)));
        for j in 0..GR {
            let xv = _mm256_load_si256(qs.get_unchecked(i * GR + j).0.as_ptr() as *const __m256i);
            // |x| (unsigned) × y·sign(x): exact, |pair sum| ≤ 2·128·127 < 2^15.
            let p = _mm256_maddubs_epi16(_mm256_sign_epi8(xv, xv), _mm256_sign_epi8(yv, xv));
            let p = _mm256_cvtepi32_ps(_mm256_madd_epi16(p, ones));
            acc[j] = _mm256_fmadd_ps(p, _mm256_set1_ps(dd[j]), acc[j]);
        }
    }
    let mut out = [0f32; GR];
    for j in 0..GR {
        let v = acc[j];
        let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        let s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 0b01));
        out[j] = _mm_cvtss_f32(s);
    }
    out
}

#[cfg(not(target_arch = "x86_64"))]
unsafe fn dot_group(_kb: usize, _qs: &[Q32], _d: &[[u16; GR]], _a: &[ABlock]) -> [f32; GR] {
    unreachable!("Q80::new returns None without AVX2")
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Module;

    /// The batched LM head gives each row the bits of `matvec` on it alone.
    #[test]
    fn batched_rows_are_bit_identical_to_matvec() {
        let (n, k) = (39, 96);
        let w: Vec<f32> = (0..n * k).map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0).collect();
        let q = QTensor::quantize(&Tensor::from_vec(w, (n, k), &Device::Cpu).unwrap(), GgmlDType::Q8_0).unwrap();
        let Some(w) = Q80::new(&q) else { return };
        let acts: Vec<Acts8> = (0..5)
            .map(|r| {
                let x: Vec<f32> = (0..k).map(|i| ((i + 31 * r) as f32 * 0.37).sin()).collect();
                let mut a = Acts8::new(k);
                a.quantize(&x);
                a
            })
            .collect();
        let refs: Vec<&Acts8> = acts.iter().collect();
        let mut out = vec![0f32; 5 * n];
        w.matmul_rows(&refs, &mut out, n);
        for (r, a) in acts.iter().enumerate() {
            let mut one = vec![0f32; n];
            w.matvec(a, &mut one);
            for (x, y) in out[r * n..(r + 1) * n].iter().zip(&one) {
                assert_eq!(x.to_bits(), y.to_bits(), "row {r}: {x} vs {y}");
            }
        }
    }

    #[test]
    fn agrees_with_candle_q8_0() {
        let (n, k) = (37, 96);
        let w: Vec<f32> = (0..n * k).map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0).collect();
        let w = Tensor::from_vec(w, (n, k), &Device::Cpu).unwrap();
        let q = QTensor::quantize(&w, GgmlDType::Q8_0).unwrap();
        let x: Vec<f32> = (0..2 * k).map(|i| (i as f32 * 0.37).sin()).collect();
        let x = Tensor::from_vec(x, (2, k), &Device::Cpu).unwrap();
        let ours = Q80::new(&q).expect("AVX2 machine").forward(&x).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let reference = candle_core::quantized::QMatMul::from_qtensor(q).unwrap().forward(&x).unwrap();
        let reference = reference.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        for (a, b) in ours.iter().zip(&reference) {
            assert_eq!(a.to_bits(), b.to_bits(), "{a} vs {b}");
        }
    }
}
