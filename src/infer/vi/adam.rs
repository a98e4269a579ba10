//! Adam (Kingma & Ba 2015), as ascent on an objective: m and v are the running means of the
//! gradient and of its square, corrected for their start at zero.

pub struct Adam {
    pub lr: f64,
    beta1: f64,
    beta2: f64,
    eps: f64,
    t: i32,
    m: Vec<f64>,
    v: Vec<f64>,
}

impl Adam {
    pub fn new(n: usize, lr: f64) -> Adam {
        Adam { lr, beta1: 0.9, beta2: 0.999, eps: 1e-8, t: 0, m: vec![0.0; n], v: vec![0.0; n] }
    }

    /// Move `x` up the gradient `g`.
    pub fn ascend(&mut self, x: &mut [f64], g: &[f64]) {
        self.t += 1;
        let c1 = 1.0 - self.beta1.powi(self.t);
        let c2 = 1.0 - self.beta2.powi(self.t);
        let step = self.lr * c2.sqrt() / c1;
        for i in 0..x.len() {
            self.m[i] = self.beta1 * self.m[i] + (1.0 - self.beta1) * g[i];
            self.v[i] = self.beta2 * self.v[i] + (1.0 - self.beta2) * g[i] * g[i];
            x[i] += step * self.m[i] / (self.v[i].sqrt() + self.eps * c2.sqrt());
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn climbs_a_quadratic_to_its_top() {
        let mut x = vec![5.0, -3.0];
        let mut a = super::Adam::new(2, 0.1);
        for _ in 0..2000 {
            let g: Vec<f64> = x.iter().zip([1.0, 2.0]).map(|(x, c)| -(x - c)).collect();
            a.ascend(&mut x, &g);
        }
        assert!((x[0] - 1.0).abs() < 1e-3 && (x[1] - 2.0).abs() < 1e-3, "{x:?}");
    }
}
