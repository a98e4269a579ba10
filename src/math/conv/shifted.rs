//! Stride-1 convolution without im2col: the images of a chunk are copied once, padded and
//! channels last ([positions of the padded images, c]), so that the input a kernel offset
//! (di, dj) reads for every output position is one contiguous slice of that copy, shifted by
//! di·(w + 2·padding) + dj rows. The convolution is then k·k products [rows, c] · [c, filters]
//! summed into a "wide" result with a row per padded position (the rows past an image's last
//! output column or row are computed and dropped), and its VJP the same products transposed.
//! Each operand stays in cache, and the only copies are of the images and results (c and
//! filters values per position), where im2col writes and reads c·k·k.

use super::Conv;
use crate::jit::gemm;

impl Conv {
    /// The shifted products apply: stride 1 and filters small enough for the unpacked kernels.
    pub(super) fn shifted(&self) -> bool {
        self.stride == 1 && self.c * self.filters <= gemm::SMALL
    }

    fn padded(&self) -> (usize, usize, usize) {
        let (hp, wp) = (self.h + 2 * self.padding, self.w + 2 * self.padding);
        (hp, wp, hp * wp)
    }

    /// Images per chunk: the padded copy and the wide result take about half a megabyte.
    fn shifted_chunk(&self) -> usize {
        let (_, _, s) = self.padded();
        (65536 / (s * (self.c + self.filters)).max(1)).clamp(1, self.n.max(1))
    }

    /// Rows of the padded copy of `q` images: their positions, and the most any shift reads
    /// past them.
    fn padded_rows(&self, q: usize) -> usize {
        let (_, wp, s) = self.padded();
        q * s + (self.k - 1) * (wp + 1)
    }

    /// The filters by kernel offset: `wr[(di·k + dj)·c·f + ch·f + fi] = W[fi, ch, di, dj]`.
    fn filters_by_offset(&self, wt: &[f64], wr: &mut Vec<f64>) {
        let (k, c, f) = (self.k, self.c, self.filters);
        wr.clear();
        wr.resize(k * k * c * f, 0.0);
        for fi in 0..f {
            for ch in 0..c {
                for di in 0..k {
                    for dj in 0..k {
                        wr[((di * k + dj) * c + ch) * f + fi] = wt[((fi * c + ch) * k + di) * k + dj];
                    }
                }
            }
        }
    }

    /// The padded, channels-last copy of images `imgs` into `xp`.
    fn pad(&self, x: &[f64], imgs: std::ops::Range<usize>, xp: &mut Vec<f64>) {
        let (c, p) = (self.c, self.padding);
        let (_, wp, s) = self.padded();
        let rows = self.padded_rows(imgs.len());
        xp.clear();
        xp.resize(rows * c, 0.0);
        let img_in = c * self.h * self.w;
        for (q, img) in imgs.enumerate() {
            let image = &x[img * img_in..(img + 1) * img_in];
            for ch in 0..c {
                let plane = &image[ch * self.h * self.w..(ch + 1) * self.h * self.w];
                for i in 0..self.h {
                    let base = q * s + (i + p) * wp + p;
                    for (j, v) in plane[i * self.w..(i + 1) * self.w].iter().enumerate() {
                        xp[(base + j) * c + ch] = *v;
                    }
                }
            }
        }
    }

    pub(super) fn forward_shifted(&self, x: &[f64], wt: &[f64], b: &[f64], out: &mut [f64], bufs: &mut [Vec<f64>; 4]) {
        let (k, c, f) = (self.k, self.c, self.filters);
        let (_, wp, s) = self.padded();
        let [xp, wide, wr, _] = bufs;
        self.filters_by_offset(wt, wr);
        let chunk = self.shifted_chunk();
        let p = self.oh * self.ow;
        let mut img = 0;
        while img < self.n {
            let imgs = img..(img + chunk).min(self.n);
            let q = imgs.len();
            self.pad(x, imgs.clone(), xp);
            let rows = q * s;
            // The first offset's product writes every row; the others add to it.
            if wide.len() < rows * f {
                wide.resize(rows * f, 0.0);
            }
            let wide = &mut wide[..rows * f];
            for di in 0..k {
                for dj in 0..k {
                    let shift = di * wp + dj;
                    let o = di * k + dj;
                    gemm::nn(
                        rows,
                        c,
                        f,
                        &xp[shift * c..(shift + rows) * c],
                        &wr[o * c * f..(o + 1) * c * f],
                        wide,
                        if o > 0 { gemm::Plus::Out } else { gemm::Plus::Nothing },
                    );
                }
            }
            for (qi, im) in imgs.enumerate() {
                let dst = &mut out[im * f * p..(im + 1) * f * p];
                for i in 0..self.oh {
                    for j in 0..self.ow {
                        let r = qi * s + i * wp + j;
                        for fi in 0..f {
                            dst[fi * p + i * self.ow + j] = wide[r * f + fi] + b[fi];
                        }
                    }
                }
            }
            img += chunk;
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn vjp_shifted(
        &self,
        x: &[f64],
        wt: &[f64],
        adj: &[f64],
        mut gx: Option<&mut [f64]>,
        gw: Option<&mut [f64]>,
        bufs: &mut [Vec<f64>; 4],
    ) {
        let (k, c, f, pad) = (self.k, self.c, self.filters, self.padding);
        let (_, wp, s) = self.padded();
        let [xp, wide, gp, wr] = bufs;
        // wr holds the filters by offset, then their adjoints.
        self.filters_by_offset(wt, wr);
        let kcf = k * k * c * f;
        wr.resize(2 * kcf, 0.0);
        let (wr, dwr) = wr.split_at_mut(kcf);
        dwr.fill(0.0);
        let chunk = self.shifted_chunk();
        let p = self.oh * self.ow;
        let img_in = c * self.h * self.w;
        let mut img = 0;
        while img < self.n {
            let imgs = img..(img + chunk).min(self.n);
            let q = imgs.len();
            let rows = q * s;
            // The result's adjoint on the wide rows (zero on the dropped ones).
            wide.clear();
            wide.resize(rows * f, 0.0);
            for (qi, im) in imgs.clone().enumerate() {
                let a = &adj[im * f * p..(im + 1) * f * p];
                for i in 0..self.oh {
                    for j in 0..self.ow {
                        let r = qi * s + i * wp + j;
                        for fi in 0..f {
                            wide[r * f + fi] = a[fi * p + i * self.ow + j];
                        }
                    }
                }
            }
            if gw.is_some() {
                self.pad(x, imgs.clone(), xp);
                for o in 0..k * k {
                    let shift = (o / k) * wp + o % k;
                    gemm::tn(
                        rows,
                        c,
                        f,
                        &xp[shift * c..(shift + rows) * c],
                        wide,
                        &mut dwr[o * c * f..(o + 1) * c * f],
                    );
                }
            }
            if let Some(gx) = gx.as_deref_mut() {
                gp.clear();
                gp.resize(self.padded_rows(q) * c, 0.0);
                for o in 0..k * k {
                    let shift = (o / k) * wp + o % k;
                    gemm::nt(rows, c, f, wide, &wr[o * c * f..(o + 1) * c * f], &mut gp[shift * c..(shift + rows) * c]);
                }
                for (qi, im) in imgs.enumerate() {
                    let g = &mut gx[im * img_in..(im + 1) * img_in];
                    for ch in 0..c {
                        for i in 0..self.h {
                            let base = qi * s + (i + pad) * wp + pad;
                            for j in 0..self.w {
                                g[(ch * self.h + i) * self.w + j] += gp[(base + j) * c + ch];
                            }
                        }
                    }
                }
            }
            img += chunk;
        }
        if let Some(gw) = gw {
            for fi in 0..f {
                for ch in 0..c {
                    for o in 0..k * k {
                        gw[(fi * c + ch) * k * k + o] += dwr[(o * c + ch) * f + fi];
                    }
                }
            }
        }
    }
}
