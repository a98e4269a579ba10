//! Two-dimensional convolution and pooling on NCHW tensors (row-major `[n, c, h, w]`), with
//! their vector-Jacobian products: the arithmetic behind the `conv2d`, `max_pool2d` and
//! `avg_pool2d` primitives, shared by the interpreter and compiled code.
//!
//! A convolution lowers a chunk of images to columns (im2col: one row per output position,
//! one column per input channel and kernel offset) and multiplies them by the filters' transpose
//! (the filters are a `[filters, c·k·k]` matrix): one product per chunk, with the long operand
//! streaming past the small one as in a dense layer, then written into the images'
//! `[filters, h'·w']` blocks of the result. The buffers are the caller's scratch, grown once.

use crate::jit::gemm;

mod shifted;

/// The output size of a window of `k` moved by `stride` over `size` positions padded by
/// `padding` on both sides: (size + 2·padding − k) / stride + 1, which must divide exactly.
pub fn out_size(size: usize, k: usize, stride: usize, padding: usize) -> Result<usize, String> {
    if k == 0 || stride == 0 {
        return Err("the kernel size and the stride must be at least 1".into());
    }
    let span = size + 2 * padding;
    if k > span {
        return Err(format!("a kernel of {k} does not fit in {size} positions padded by {padding}"));
    }
    if (span - k) % stride != 0 {
        return Err(format!(
            "(size + 2·padding − kernel) / stride = ({size} + 2·{padding} − {k}) / {stride} does not divide: choose a stride or padding that tiles the input"
        ));
    }
    Ok((span - k) / stride + 1)
}

/// The sizes of one convolution.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conv {
    pub n: usize,
    pub c: usize,
    pub h: usize,
    pub w: usize,
    pub filters: usize,
    pub k: usize,
    pub stride: usize,
    pub padding: usize,
    pub oh: usize,
    pub ow: usize,
}

impl Conv {
    /// From the input's shape `[n, c, h, w]` and the filters' `[filters, c, k, k]`.
    pub fn new(x: &[usize], wt: &[usize], stride: usize, padding: usize) -> Result<Conv, String> {
        let [n, c, h, w] = *x else {
            return Err(format!("conv2d takes a tensor[n, c, h, w], got shape {x:?}"));
        };
        let [filters, wc, k, k2] = *wt else {
            return Err(format!("conv2d's filters are a tensor[filters, c, k, k], got shape {wt:?}"));
        };
        if wc != c {
            return Err(format!("the filters take {wc} channels but the input has {c}"));
        }
        if k != k2 {
            return Err(format!("the kernel must be square, got {k} × {k2}"));
        }
        let oh = out_size(h, k, stride, padding)?;
        let ow = out_size(w, k, stride, padding)?;
        Ok(Conv { n, c, h, w, filters, k, stride, padding, oh, ow })
    }

    pub fn out_shape(&self) -> Vec<usize> {
        vec![self.n, self.filters, self.oh, self.ow]
    }

    /// Rows of the column matrix: c·k·k.
    fn rows(&self) -> usize {
        self.c * self.k * self.k
    }

    /// Output positions per image: h'·w'.
    fn positions(&self) -> usize {
        self.oh * self.ow
    }

    /// Images per chunk: their columns take about half a megabyte.
    fn chunk(&self) -> usize {
        (65536 / (self.positions() * self.rows()).max(1)).clamp(1, self.n.max(1))
    }

    /// im2col of images `imgs` of x into `cols`, one row per output position ([chunk·h'·w',
    /// c·k·k], the long operand of the products) and zeros where the window reads padding.
    fn im2col(&self, x: &[f64], imgs: std::ops::Range<usize>, cols: &mut [f64]) {
        let (k, kk, hw) = (self.k, self.rows(), self.h * self.w);
        for (q, img) in imgs.enumerate() {
            let image = &x[img * self.c * hw..(img + 1) * self.c * hw];
            for i in 0..self.oh {
                let r0 = (i * self.stride) as isize - self.padding as isize;
                for j in 0..self.ow {
                    let c0 = (j * self.stride) as isize - self.padding as isize;
                    let row = &mut cols[((q * self.oh + i) * self.ow + j) * kk..][..kk];
                    let inside = c0 >= 0 && c0 as usize + k <= self.w;
                    for ch in 0..self.c {
                        let plane = &image[ch * hw..(ch + 1) * hw];
                        for di in 0..k {
                            let dst = &mut row[(ch * k + di) * k..][..k];
                            let r = r0 + di as isize;
                            if r < 0 || r as usize >= self.h {
                                dst.fill(0.0);
                                continue;
                            }
                            let line = &plane[r as usize * self.w..][..self.w];
                            if inside {
                                // A loop, not a copy: k is a handful of elements.
                                for (d, v) in dst.iter_mut().zip(&line[c0 as usize..c0 as usize + k]) {
                                    *d = *v;
                                }
                            } else {
                                for (dj, d) in dst.iter_mut().enumerate() {
                                    let c = c0 + dj as isize;
                                    *d = if c >= 0 && (c as usize) < self.w { line[c as usize] } else { 0.0 };
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// The adjoint of [`Self::im2col`]: adds the columns' adjoints into the images'.
    fn col2im(&self, cols: &[f64], imgs: std::ops::Range<usize>, gx: &mut [f64]) {
        let (k, kk, hw) = (self.k, self.rows(), self.h * self.w);
        for (q, img) in imgs.enumerate() {
            let image = &mut gx[img * self.c * hw..(img + 1) * self.c * hw];
            for i in 0..self.oh {
                let r0 = (i * self.stride) as isize - self.padding as isize;
                for j in 0..self.ow {
                    let c0 = (j * self.stride) as isize - self.padding as isize;
                    let row = &cols[((q * self.oh + i) * self.ow + j) * kk..][..kk];
                    let inside = c0 >= 0 && c0 as usize + k <= self.w;
                    for ch in 0..self.c {
                        let plane = &mut image[ch * hw..(ch + 1) * hw];
                        for di in 0..k {
                            let src = &row[(ch * k + di) * k..][..k];
                            let r = r0 + di as isize;
                            if r < 0 || r as usize >= self.h {
                                continue;
                            }
                            let line = &mut plane[r as usize * self.w..][..self.w];
                            if inside {
                                for (d, v) in line[c0 as usize..c0 as usize + k].iter_mut().zip(src) {
                                    *d += v;
                                }
                            } else {
                                for (dj, v) in src.iter().enumerate() {
                                    let c = c0 + dj as isize;
                                    if c >= 0 && (c as usize) < self.w {
                                        line[c as usize] += v;
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// out = conv(x, wt) + b, `out` of shape [n, filters, h', w']; `cols` and `tmp` are
    /// scratch, grown once to a chunk's size.
    pub fn forward(&self, x: &[f64], wt: &[f64], b: &[f64], out: &mut [f64], bufs: &mut [Vec<f64>; 4]) {
        if self.shifted() {
            return self.forward_shifted(x, wt, b, out, bufs);
        }
        let [cols, tmp, ..] = bufs;
        let (m, kk, p) = (self.filters, self.rows(), self.positions());
        let chunk = self.chunk();
        grow(cols, chunk * p * kk);
        grow(tmp, chunk * p * m);
        let mut img = 0;
        while img < self.n {
            let imgs = img..(img + chunk).min(self.n);
            let rows = imgs.len() * p;
            self.im2col(x, imgs.clone(), cols);
            // tmp [rows, m] = cols [rows, kk] · Wᵀ (W is [m, kk])
            let t = &mut tmp[..rows * m];
            t.fill(0.0);
            product_nt(rows, m, kk, &cols[..rows * kk], wt, t);
            // Into NCHW, with the bias.
            for (q, im) in imgs.enumerate() {
                let o = &mut out[im * m * p..(im + 1) * m * p];
                for (f, orow) in o.chunks_exact_mut(p).enumerate() {
                    for (pos, ov) in orow.iter_mut().enumerate() {
                        *ov = t[(q * p + pos) * m + f] + b[f];
                    }
                }
            }
            img += chunk;
        }
    }

    /// Adds the adjoints of x, wt and b given the result's adjoint `adj` (each `None` when
    /// that argument takes none); `cols`, `adj_t` and `dcols` are scratch.
    #[allow(clippy::too_many_arguments)]
    pub fn vjp(
        &self,
        x: &[f64],
        wt: &[f64],
        adj: &[f64],
        mut gx: Option<&mut [f64]>,
        mut gw: Option<&mut [f64]>,
        gb: Option<&mut [f64]>,
        bufs: &mut [Vec<f64>; 4],
    ) {
        let (m, kk, p) = (self.filters, self.rows(), self.positions());
        if let Some(gb) = gb {
            for img in 0..self.n {
                for (f, row) in adj[img * m * p..(img + 1) * m * p].chunks_exact(p).enumerate() {
                    gb[f] += row.iter().sum::<f64>();
                }
            }
        }
        if gx.is_none() && gw.is_none() {
            return;
        }
        if self.shifted() {
            return self.vjp_shifted(x, wt, adj, gx, gw, bufs);
        }
        let [cols, adj_t, dcols, _] = bufs;
        let chunk = self.chunk();
        grow(cols, chunk * p * kk);
        grow(adj_t, chunk * p * m);
        grow(dcols, chunk * p * kk);
        let mut img = 0;
        while img < self.n {
            let imgs = img..(img + chunk).min(self.n);
            let rows = imgs.len() * p;
            // adj_t [rows, m]: the result's adjoint with positions as rows.
            for (q, im) in imgs.clone().enumerate() {
                let a = &adj[im * m * p..(im + 1) * m * p];
                for (f, arow) in a.chunks_exact(p).enumerate() {
                    for (pos, av) in arow.iter().enumerate() {
                        adj_t[(q * p + pos) * m + f] = *av;
                    }
                }
            }
            if let Some(gw) = gw.as_deref_mut() {
                // dW [m, kk] += adj_tᵀ [m, rows] · cols [rows, kk]
                self.im2col(x, imgs.clone(), cols);
                product_tn(rows, m, kk, &adj_t[..rows * m], &cols[..rows * kk], gw);
            }
            if let Some(gx) = gx.as_deref_mut() {
                // dcols [rows, kk] = adj_t [rows, m] · W [m, kk]
                let d = &mut dcols[..rows * kk];
                product_nn(rows, m, kk, &adj_t[..rows * m], wt, d);
                self.col2im(d, imgs, gx);
            }
            img += chunk;
        }
    }
}

fn grow(v: &mut Vec<f64>, n: usize) {
    if v.len() < n {
        v.resize(n, 0.0);
    }
}

/// The products, on the crate's unpacked kernels when the small operand (the filters) fits
/// in cache, which neither pack nor allocate; matrixmultiply otherwise.
/// c [r, m] += a [r, kk] · wᵀ (w is [m, kk]).
fn product_nt(r: usize, m: usize, kk: usize, a: &[f64], w: &[f64], c: &mut [f64]) {
    if m * kk <= gemm::SMALL {
        gemm::nt(r, m, kk, a, w, c);
    } else {
        dgemm(r, kk, m, a, (kk as isize, 1), w, (1, kk as isize), c);
    }
}

/// c [m, kk] += aᵀ · x (a is [r, m], x is [r, kk]).
fn product_tn(r: usize, m: usize, kk: usize, a: &[f64], x: &[f64], c: &mut [f64]) {
    if m * kk <= gemm::SMALL {
        gemm::tn(r, m, kk, a, x, c);
    } else {
        dgemm(m, r, kk, a, (1, m as isize), x, (kk as isize, 1), c);
    }
}

/// c [r, kk] = a [r, m] · w [m, kk].
fn product_nn(r: usize, m: usize, kk: usize, a: &[f64], w: &[f64], c: &mut [f64]) {
    if m * kk <= gemm::SMALL {
        gemm::nn(r, m, kk, a, w, c, gemm::Plus::Nothing);
    } else {
        c.fill(0.0);
        dgemm(r, m, kk, a, (m as isize, 1), w, (kk as isize, 1), c);
    }
}

/// c [rows, cols] += a · b with the given (row, column) strides (matrixmultiply, which
/// allocates its packing buffers).
#[allow(clippy::too_many_arguments)]
fn dgemm(
    rows: usize,
    k: usize,
    cols: usize,
    a: &[f64],
    sa: (isize, isize),
    b: &[f64],
    sb: (isize, isize),
    c: &mut [f64],
) {
    if rows == 0 || cols == 0 || k == 0 {
        return;
    }
    assert!(a.len() >= rows * k && b.len() >= k * cols && c.len() >= rows * cols);
    // SAFETY: a holds rows·k values, b k·cols and c rows·cols (asserted), read through the
    // strides of their row-major layouts.
    unsafe {
        matrixmultiply::dgemm(
            rows,
            k,
            cols,
            1.0,
            a.as_ptr(),
            sa.0,
            sa.1,
            b.as_ptr(),
            sb.0,
            sb.1,
            1.0,
            c.as_mut_ptr(),
            cols as isize,
            1,
        );
    }
}

/// Pooling over k × k windows moved by k (windows that do not fit are dropped, as in
/// PyTorch's default).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Pool {
    Max,
    Avg,
}

/// The sizes of one pooling: input [n, c, h, w], output [n, c, h / k, w / k].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pooling {
    pub planes: usize,
    pub h: usize,
    pub w: usize,
    pub k: usize,
    pub oh: usize,
    pub ow: usize,
}

impl Pooling {
    pub fn new(x: &[usize], k: usize) -> Result<Pooling, String> {
        let [n, c, h, w] = *x else {
            return Err(format!("pooling takes a tensor[n, c, h, w], got shape {x:?}"));
        };
        if k == 0 || k > h || k > w {
            return Err(format!("a pooling window of {k} does not fit in a {h} × {w} image"));
        }
        Ok(Pooling { planes: n * c, h, w, k, oh: h / k, ow: w / k })
    }

    pub fn out_shape(&self, x: &[usize]) -> Vec<usize> {
        vec![x[0], x[1], self.oh, self.ow]
    }

    /// The input offsets (within a plane) of output (i, j)'s window, row by row.
    fn window(&self, i: usize, j: usize) -> impl Iterator<Item = usize> + '_ {
        (0..self.k).flat_map(move |di| (0..self.k).map(move |dj| (i * self.k + di) * self.w + j * self.k + dj))
    }

    pub fn forward(&self, kind: Pool, x: &[f64], out: &mut [f64]) {
        let scale = 1.0 / (self.k * self.k) as f64;
        for q in 0..self.planes {
            let plane = &x[q * self.h * self.w..(q + 1) * self.h * self.w];
            for i in 0..self.oh {
                for j in 0..self.ow {
                    let vals = self.window(i, j).map(|at| plane[at]);
                    out[(q * self.oh + i) * self.ow + j] = match kind {
                        // The first of the largest; NaN if any is NaN.
                        Pool::Max => vals.fold(f64::NEG_INFINITY, |m, v| if v > m || v.is_nan() { v } else { m }),
                        Pool::Avg => vals.sum::<f64>() * scale,
                    };
                }
            }
        }
    }

    /// Adds x's adjoint: a window's maximum takes the whole adjoint (the first of equal
    /// maxima), an average spreads it evenly.
    pub fn vjp(&self, kind: Pool, x: &[f64], out: &[f64], adj: &[f64], gx: &mut [f64]) {
        let scale = 1.0 / (self.k * self.k) as f64;
        for q in 0..self.planes {
            let base = q * self.h * self.w;
            for i in 0..self.oh {
                for j in 0..self.ow {
                    let o = (q * self.oh + i) * self.ow + j;
                    match kind {
                        Pool::Max => {
                            let winner = self.window(i, j).find(|at| x[base + at].to_bits() == out[o].to_bits());
                            if let Some(at) = winner {
                                gx[base + at] += adj[o];
                            }
                        }
                        Pool::Avg => {
                            for at in self.window(i, j) {
                                gx[base + at] += adj[o] * scale;
                            }
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_sizes_follow_the_rule_and_refuse_what_does_not_divide() {
        assert_eq!(out_size(8, 3, 1, 1), Ok(8));
        assert_eq!(out_size(8, 3, 1, 0), Ok(6));
        assert_eq!(out_size(8, 2, 2, 0), Ok(4));
        assert!(out_size(8, 3, 2, 0).is_err());
        assert!(out_size(2, 5, 1, 0).is_err());
        assert!(out_size(8, 3, 0, 0).is_err());
    }

    /// A direct six-loop convolution agrees with im2col + GEMM.
    #[test]
    fn convolution_matches_the_definition() {
        let cv = Conv::new(&[2, 3, 5, 4], &[4, 3, 3, 3], 1, 1).unwrap();
        let val = |i: usize, s: f64| ((i as f64 * 0.37 + s).sin() * 10.0).round() / 10.0;
        let x: Vec<f64> = (0..2 * 3 * 5 * 4).map(|i| val(i, 0.0)).collect();
        let wt: Vec<f64> = (0..4 * 3 * 9).map(|i| val(i, 1.0)).collect();
        let b = [0.5, -1.0, 0.25, 2.0];
        let mut out = vec![0.0; 2 * 4 * 5 * 4];
        cv.forward(&x, &wt, &b, &mut out, &mut Default::default());
        for n in 0..2 {
            for f in 0..4 {
                for i in 0..5 {
                    for j in 0..4 {
                        let mut s = b[f];
                        for c in 0..3 {
                            for di in 0..3 {
                                for dj in 0..3 {
                                    let (r, q) = (i as isize + di as isize - 1, j as isize + dj as isize - 1);
                                    if (0..5).contains(&r) && (0..4).contains(&q) {
                                        s += wt[((f * 3 + c) * 3 + di) * 3 + dj]
                                            * x[((n * 3 + c) * 5 + r as usize) * 4 + q as usize];
                                    }
                                }
                            }
                        }
                        let got = out[((n * 4 + f) * 5 + i) * 4 + j];
                        assert!((got - s).abs() < 1e-12, "({n},{f},{i},{j}): {got} vs {s}");
                    }
                }
            }
        }
    }

    /// Many images go in several chunks: each image's result and adjoints are those of the
    /// image convolved alone, and the filters' adjoints add up over the images.
    #[test]
    fn chunks_give_each_image_its_own_result() {
        let (n, c, f) = (20, 16, 5);
        let cv = Conv::new(&[n, c, 8, 8], &[f, c, 3, 3], 1, 1).unwrap();
        assert!(cv.chunk() < n);
        let val = |i: usize, s: f64| (i as f64 * 0.731 + s).sin();
        let x: Vec<f64> = (0..n * c * 64).map(|i| val(i, 0.0)).collect();
        let wt: Vec<f64> = (0..f * c * 9).map(|i| val(i, 2.0)).collect();
        let b: Vec<f64> = (0..f).map(|i| val(i, 3.0)).collect();
        let adj: Vec<f64> = (0..n * f * 64).map(|i| val(i, 5.0)).collect();
        let mut bufs: [Vec<f64>; 4] = Default::default();
        let mut out = vec![0.0; n * f * 64];
        cv.forward(&x, &wt, &b, &mut out, &mut bufs);
        let (mut gx, mut gw, mut gb) = (vec![0.0; x.len()], vec![0.0; wt.len()], vec![0.0; f]);
        cv.vjp(&x, &wt, &adj, Some(&mut gx), Some(&mut gw), Some(&mut gb), &mut bufs);
        let one = Conv::new(&[1, c, 8, 8], &[f, c, 3, 3], 1, 1).unwrap();
        let (mut gw1, mut gb1) = (vec![0.0; wt.len()], vec![0.0; f]);
        for img in 0..n {
            let xi = &x[img * c * 64..(img + 1) * c * 64];
            let ai = &adj[img * f * 64..(img + 1) * f * 64];
            let mut o = vec![0.0; f * 64];
            one.forward(xi, &wt, &b, &mut o, &mut bufs);
            let mut gxi = vec![0.0; c * 64];
            one.vjp(xi, &wt, ai, Some(&mut gxi), Some(&mut gw1), Some(&mut gb1), &mut bufs);
            for (a, e) in out[img * f * 64..(img + 1) * f * 64].iter().zip(&o) {
                assert!((a - e).abs() < 1e-12);
            }
            for (a, e) in gx[img * c * 64..(img + 1) * c * 64].iter().zip(&gxi) {
                assert!((a - e).abs() < 1e-12);
            }
        }
        for (a, e) in gw.iter().zip(&gw1).chain(gb.iter().zip(&gb1)) {
            assert!((a - e).abs() < 1e-9 * e.abs().max(1.0), "{a} vs {e}");
        }
    }

    #[test]
    fn pooling_takes_the_first_maximum_and_the_mean() {
        let p = Pooling::new(&[1, 1, 4, 4], 2).unwrap();
        let x: Vec<f64> = vec![1., 3., 0., 0., 3., 2., 0., 1., 5., 5., 4., 4., 5., 5., 4., 4.];
        let mut out = vec![0.0; 4];
        p.forward(Pool::Max, &x, &mut out);
        assert_eq!(out, [3., 1., 5., 4.]);
        let mut g = vec![0.0; 16];
        p.vjp(Pool::Max, &x, &out, &[1., 2., 3., 4.], &mut g);
        assert_eq!(g[1], 1.0);
        assert_eq!(g[4], 0.0);
        assert_eq!(g[7], 2.0);
        assert_eq!(g[8], 3.0);
        assert_eq!(g[9], 0.0);
        p.forward(Pool::Avg, &x, &mut out);
        assert_eq!(out, [2.25, 0.25, 5., 4.]);
    }
}
