//! Two-dimensional convolution and pooling on NCHW tensors (row-major `[n, c, h, w]`), with
//! their vector-Jacobian products: the arithmetic behind the `conv2d`, `max_pool2d` and
//! `avg_pool2d` primitives, shared by the interpreter and compiled code.
//!
//! A convolution lowers each image to columns (im2col: one row per input channel and kernel
//! offset, one column per output position) and multiplies the filters, a
//! `[filters, c·k·k]` matrix, by them: one matrix product per image, written straight into the
//! image's `[filters, h'·w']` block of the result. The column buffer is the caller's and is
//! reused from call to call.

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

    /// The input position (row, column) that output position (i, j) reads at kernel offset
    /// (di, dj), if inside the unpadded image.
    #[inline]
    fn at(&self, i: usize, j: usize, di: usize, dj: usize) -> Option<(usize, usize)> {
        let r = (i * self.stride + di).checked_sub(self.padding)?;
        let c = (j * self.stride + dj).checked_sub(self.padding)?;
        (r < self.h && c < self.w).then_some((r, c))
    }

    /// im2col of one image (`img`, c·h·w values) into `cols` ([c·k·k, h'·w']).
    fn im2col(&self, img: &[f64], cols: &mut [f64]) {
        let (k, p) = (self.k, self.positions());
        for ch in 0..self.c {
            let plane = &img[ch * self.h * self.w..(ch + 1) * self.h * self.w];
            for di in 0..k {
                for dj in 0..k {
                    let row = &mut cols[((ch * k + di) * k + dj) * p..][..p];
                    for i in 0..self.oh {
                        for j in 0..self.ow {
                            row[i * self.ow + j] = match self.at(i, j, di, dj) {
                                Some((r, c)) => plane[r * self.w + c],
                                None => 0.0,
                            };
                        }
                    }
                }
            }
        }
    }

    /// The adjoint of [`Self::im2col`]: adds the columns' adjoints into the image's.
    fn col2im(&self, cols: &[f64], img: &mut [f64]) {
        let (k, p) = (self.k, self.positions());
        for ch in 0..self.c {
            let plane = &mut img[ch * self.h * self.w..(ch + 1) * self.h * self.w];
            for di in 0..k {
                for dj in 0..k {
                    let row = &cols[((ch * k + di) * k + dj) * p..][..p];
                    for i in 0..self.oh {
                        for j in 0..self.ow {
                            if let Some((r, c)) = self.at(i, j, di, dj) {
                                plane[r * self.w + c] += row[i * self.ow + j];
                            }
                        }
                    }
                }
            }
        }
    }

    /// out = conv(x, wt) + b, `out` of shape [n, filters, h', w']; `cols` is scratch.
    pub fn forward(&self, x: &[f64], wt: &[f64], b: &[f64], out: &mut [f64], cols: &mut Vec<f64>) {
        let (m, kk, p) = (self.filters, self.rows(), self.positions());
        cols.resize(kk * p, 0.0);
        let img_in = self.c * self.h * self.w;
        for img in 0..self.n {
            self.im2col(&x[img * img_in..(img + 1) * img_in], cols);
            let o = &mut out[img * m * p..(img + 1) * m * p];
            for (f, row) in o.chunks_exact_mut(p).enumerate() {
                row.fill(b[f]);
            }
            gemm(m, kk, p, wt, false, cols, false, o);
        }
    }

    /// Adds the adjoints of x, wt and b given the result's adjoint `adj` (each `None` when
    /// that argument takes none); `cols` and `dcols` are scratch.
    #[allow(clippy::too_many_arguments)]
    pub fn vjp(
        &self,
        x: &[f64],
        wt: &[f64],
        adj: &[f64],
        gx: Option<&mut [f64]>,
        gw: Option<&mut [f64]>,
        gb: Option<&mut [f64]>,
        cols: &mut Vec<f64>,
        dcols: &mut Vec<f64>,
    ) {
        let (m, kk, p) = (self.filters, self.rows(), self.positions());
        let img_in = self.c * self.h * self.w;
        if let Some(gb) = gb {
            for img in 0..self.n {
                for (f, row) in adj[img * m * p..(img + 1) * m * p].chunks_exact(p).enumerate() {
                    gb[f] += row.iter().sum::<f64>();
                }
            }
        }
        if let Some(gw) = gw {
            cols.resize(kk * p, 0.0);
            for img in 0..self.n {
                self.im2col(&x[img * img_in..(img + 1) * img_in], cols);
                // dW [m, kk] += dY_img [m, p] · colsᵀ [p, kk]
                gemm(m, p, kk, &adj[img * m * p..(img + 1) * m * p], false, cols, true, gw);
            }
        }
        if let Some(gx) = gx {
            dcols.clear();
            dcols.resize(kk * p, 0.0);
            for img in 0..self.n {
                // dcols [kk, p] = Wᵀ [kk, m] · dY_img [m, p]
                dcols.fill(0.0);
                gemm(kk, m, p, wt, true, &adj[img * m * p..(img + 1) * m * p], false, dcols);
                self.col2im(dcols, &mut gx[img * img_in..(img + 1) * img_in]);
            }
        }
    }
}

/// c [m, n] += a [m, k] · b [k, n], with a (or b) read transposed when `ta` (`tb`): then it
/// is stored as [k, m] ([n, k]).
#[allow(clippy::too_many_arguments)]
fn gemm(m: usize, k: usize, n: usize, a: &[f64], ta: bool, b: &[f64], tb: bool, c: &mut [f64]) {
    if m == 0 || n == 0 || k == 0 {
        return;
    }
    debug_assert!(a.len() >= m * k && b.len() >= k * n && c.len() >= m * n);
    let (rsa, csa) = if ta { (1, m as isize) } else { (k as isize, 1) };
    let (rsb, csb) = if tb { (1, k as isize) } else { (n as isize, 1) };
    // SAFETY: a holds m·k values, b k·n and c m·n (checked above), read and written with
    // the strides of their row-major layouts (transposed where asked).
    unsafe {
        matrixmultiply::dgemm(
            m,
            k,
            n,
            1.0,
            a.as_ptr(),
            rsa,
            csa,
            b.as_ptr(),
            rsb,
            csb,
            1.0,
            c.as_mut_ptr(),
            n as isize,
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
        cv.forward(&x, &wt, &b, &mut out, &mut Vec::new());
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
