//! A canvas of Unicode braille characters: each character holds 2 × 4 dots.

pub struct Canvas {
    /// Characters across and down.
    w: usize,
    h: usize,
    dots: Vec<u8>,
    x: (f64, f64),
    y: (f64, f64),
}

/// The bit of dot (column, row) within a braille character.
const BIT: [[u8; 4]; 2] = [[0x01, 0x02, 0x04, 0x40], [0x08, 0x10, 0x20, 0x80]];

impl Canvas {
    pub fn new(w: usize, h: usize) -> Canvas {
        Canvas { w, h, dots: vec![0; w * h], x: (0.0, 1.0), y: (0.0, 1.0) }
    }

    pub fn set_ranges(&mut self, x: (f64, f64), y: (f64, f64)) {
        self.x = x;
        self.y = y;
    }

    /// The dot at data coordinates, if inside.
    fn dot(&self, x: f64, y: f64) -> Option<(usize, usize)> {
        let (dw, dh) = (2 * self.w, 4 * self.h);
        let fx = (x - self.x.0) / (self.x.1 - self.x.0);
        let fy = (y - self.y.0) / (self.y.1 - self.y.0);
        if !(0.0..=1.0).contains(&fx) || !(0.0..=1.0).contains(&fy) {
            return None;
        }
        let px = ((fx * (dw - 1) as f64).round() as usize).min(dw - 1);
        let py = (((1.0 - fy) * (dh - 1) as f64).round() as usize).min(dh - 1);
        Some((px, py))
    }

    fn set(&mut self, px: usize, py: usize) {
        self.dots[(py / 4) * self.w + px / 2] |= BIT[px % 2][py % 4];
    }

    pub fn point(&mut self, x: f64, y: f64) {
        if let Some((px, py)) = self.dot(x, y) {
            self.set(px, py);
        }
    }

    /// A polyline through the points, in order.
    pub fn line(&mut self, pts: impl Iterator<Item = (f64, f64)>) {
        let mut last: Option<(usize, usize)> = None;
        for (x, y) in pts {
            let Some(p) = self.dot(x, y) else {
                last = None;
                continue;
            };
            if let Some(q) = last {
                let steps = (p.0.abs_diff(q.0)).max(p.1.abs_diff(q.1)).max(1);
                for s in 0..=steps {
                    let t = s as f64 / steps as f64;
                    let px = (q.0 as f64 + t * (p.0 as f64 - q.0 as f64)).round() as usize;
                    let py = (q.1 as f64 + t * (p.1 as f64 - q.1 as f64)).round() as usize;
                    self.set(px, py);
                }
            } else {
                self.set(p.0, p.1);
            }
            last = Some(p);
        }
    }

    /// The canvas with the y axis's top and bottom values at the left.
    pub fn render(&self, top: &str, bottom: &str) -> String {
        let mut out = String::new();
        for r in 0..self.h {
            let label = if r == 0 {
                top
            } else if r == self.h - 1 {
                bottom
            } else {
                ""
            };
            out.push_str(&format!("{label:>10} │"));
            for c in 0..self.w {
                out.push(char::from_u32(0x2800 + self.dots[r * self.w + c] as u32).unwrap_or(' '));
            }
            out.push('\n');
        }
        out
    }
}
