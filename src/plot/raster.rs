//! Figures to PNG without a font stack: lines, points and axes drawn into an RGB buffer, text
//! in the public-domain 8×8 bitmap font of `font8x8`, encoded with the `png` crate.

use super::predictive::Figure;
use font8x8::UnicodeFonts;

const W: usize = 800;
const PANEL_H: usize = 320;
const LEFT: usize = 80;
const RIGHT: usize = 20;
const TOP: usize = 30;
const BOTTOM: usize = 40;
const COLORS: [[u8; 3]; 6] = [[31, 119, 180], [214, 39, 40], [44, 160, 44], [148, 103, 189], [255, 127, 14], [0, 0, 0]];

struct Image {
    h: usize,
    px: Vec<u8>,
}

impl Image {
    fn set(&mut self, x: i64, y: i64, c: [u8; 3]) {
        if x >= 0 && y >= 0 && (x as usize) < W && (y as usize) < self.h {
            let i = 3 * (y as usize * W + x as usize);
            self.px[i..i + 3].copy_from_slice(&c);
        }
    }

    fn line(&mut self, (x0, y0): (i64, i64), (x1, y1): (i64, i64), c: [u8; 3]) {
        let steps = (x1 - x0).abs().max((y1 - y0).abs()).max(1);
        for s in 0..=steps {
            let x = x0 + (x1 - x0) * s / steps;
            let y = y0 + (y1 - y0) * s / steps;
            self.set(x, y, c);
        }
    }

    fn text(&mut self, x: i64, y: i64, s: &str, c: [u8; 3]) {
        for (k, ch) in s.chars().enumerate() {
            let glyph = font8x8::BASIC_FONTS.get(ch).or_else(|| font8x8::BASIC_FONTS.get('?')).unwrap_or([0; 8]);
            for (row, bits) in glyph.iter().enumerate() {
                for col in 0..8 {
                    if bits & (1 << col) != 0 {
                        self.set(x + 8 * k as i64 + col, y + row as i64, c);
                    }
                }
            }
        }
    }
}

/// About five round tick values inside [lo, hi], each with its label (as many decimals as
/// the step needs).
fn ticks(lo: f64, hi: f64) -> Vec<(f64, String)> {
    let span = hi - lo;
    if !(span > 0.0) || !span.is_finite() {
        return vec![(lo, super::short(lo))];
    }
    let mag = 10f64.powf((span / 5.0).log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0].iter().map(|m| m * mag).find(|s| span / s <= 6.0).unwrap_or(10.0 * mag);
    let decimals = (-step.log10().floor()).max(0.0) as usize;
    let first = (lo / step - 1e-9).ceil() as i64;
    (0..)
        .map(|k| (first + k) as f64 * step)
        .take_while(|t| *t <= hi + step * 1e-9)
        .map(|t| {
            let label = if step.abs() >= 1e5 || step < 1e-4 { format!("{t:.1e}") } else { format!("{t:.decimals$}") };
            (t, if label.trim_start_matches('-').chars().all(|c| c == '0' || c == '.') { "0".into() } else { label })
        })
        .collect()
}

fn panel(img: &mut Image, f: &Figure, y0: usize) {
    let (x_px, y_px) = (W - LEFT - RIGHT, PANEL_H - TOP - BOTTOM);
    let black = [0, 0, 0];
    let grey = [225, 225, 225];
    let map = |x: f64, y: f64| -> (i64, i64) {
        let fx = (x - f.x.0) / (f.x.1 - f.x.0);
        let fy = (y - f.y.0) / (f.y.1 - f.y.0);
        (
            (LEFT as f64 + fx * x_px as f64).round() as i64,
            (y0 as f64 + (TOP + y_px) as f64 - fy * y_px as f64).round() as i64,
        )
    };
    for (t, label) in ticks(f.x.0, f.x.1) {
        let (x, _) = map(t, f.y.0);
        img.line((x, (y0 + TOP) as i64), (x, (y0 + TOP + y_px) as i64), grey);
        img.text(x - 4 * label.len() as i64, (y0 + TOP + y_px + 6) as i64, &label, black);
    }
    for (t, label) in ticks(f.y.0, f.y.1) {
        let (_, y) = map(f.x.0, t);
        img.line((LEFT as i64, y), ((LEFT + x_px) as i64, y), grey);
        img.text(LEFT as i64 - 6 - 8 * label.len() as i64, y - 4, &label, black);
    }
    let (l, t, r, b) = (LEFT as i64, (y0 + TOP) as i64, (LEFT + x_px) as i64, (y0 + TOP + y_px) as i64);
    for (a, c) in [((l, t), (r, t)), ((r, t), (r, b)), ((r, b), (l, b)), ((l, b), (l, t))] {
        img.line(a, c, black);
    }
    img.text(LEFT as i64, (y0 + 10) as i64, &f.title, black);
    img.text((W - RIGHT) as i64 - 8 * f.x_name.len() as i64, (y0 + PANEL_H - 14) as i64, &f.x_name, black);
    for (a, c) in &f.segments {
        img.line(map(a.0, a.1), map(c.0, c.1), [160, 190, 220]);
    }
    for (x, y) in &f.points {
        let (px, py) = map(*x, *y);
        for dx in -1..=1 {
            for dy in -1..=1 {
                img.set(px + dx, py + dy, COLORS[0]);
            }
        }
    }
    for (k, (label, c)) in f.curves.iter().enumerate() {
        let color = COLORS[k % COLORS.len()];
        for w in c.windows(2) {
            img.line(map(w[0].0, w[0].1), map(w[1].0, w[1].1), color);
        }
        if f.curves.len() > 1 {
            let (lx, ly) = ((W - RIGHT - 150) as i64, (y0 + TOP + 8 + 12 * k) as i64);
            img.line((lx, ly + 4), (lx + 16, ly + 4), color);
            img.text(lx + 22, ly, label, black);
        }
    }
}

/// The figures stacked top to bottom, as a PNG at `path`.
pub fn png(figures: &[Figure], path: &std::path::Path) -> Result<(), String> {
    let h = PANEL_H * figures.len().max(1);
    let mut img = Image { h, px: vec![255; 3 * W * h] };
    for (k, f) in figures.iter().enumerate() {
        panel(&mut img, f, k * PANEL_H);
    }
    let file = std::fs::File::create(path).map_err(|e| format!("cannot write `{}`: {e}", path.display()))?;
    let mut enc = png::Encoder::new(std::io::BufWriter::new(file), W as u32, h as u32);
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    let mut w = enc.write_header().map_err(|e| format!("cannot write `{}`: {e}", path.display()))?;
    w.write_image_data(&img.px).map_err(|e| format!("cannot write `{}`: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::ticks;

    #[test]
    fn round_ticks() {
        let labels = |lo, hi| ticks(lo, hi).into_iter().map(|(_, l)| l).collect::<Vec<_>>();
        assert_eq!(labels(0.0, 1.0), ["0", "0.2", "0.4", "0.6", "0.8", "1.0"]);
        assert_eq!(labels(-3.0, 17.0), ["0", "5", "10", "15"]);
        assert_eq!(labels(-0.05, 0.05), ["-0.04", "-0.02", "0", "0.02", "0.04"]);
        assert_eq!(ticks(2.0, 2.0).len(), 1);
    }
}
