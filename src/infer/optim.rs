//! Posterior modes by L-BFGS (Nocedal & Wright 2006, Algorithms 7.4–7.5) on the
//! unconstrained space, with a line search satisfying the strong Wolfe conditions.

use crate::density::LogDensity;

#[derive(Clone, Debug)]
pub struct Mode {
    pub theta: Vec<f64>,
    pub logp: f64,
    pub iterations: usize,
    pub grad_norm: f64,
    pub converged: bool,
    /// Why it stopped.
    pub message: String,
    pub grad_evals: usize,
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Maximise the density from `start`.
pub fn lbfgs<D: LogDensity + ?Sized>(d: &mut D, start: &[f64], max_iter: usize) -> Result<Mode, String> {
    let n = start.len();
    let m = 10;
    let mut evals = 0;
    // Minimise f = −log p.
    let mut eval = |x: &[f64], g: &mut [f64], evals: &mut usize| -> Option<f64> {
        *evals += 1;
        match d.logp_grad(x, g) {
            Ok(lp) if lp.is_finite() && g.iter().all(|v| v.is_finite()) => {
                g.iter_mut().for_each(|v| *v = -*v);
                Some(-lp)
            }
            _ => None,
        }
    };
    let mut x = start.to_vec();
    let mut g = vec![0.0; n];
    let mut f = eval(&x, &mut g, &mut evals).ok_or("the log density is not finite at the starting point")?;
    let mut s_hist: Vec<Vec<f64>> = Vec::new();
    let mut y_hist: Vec<Vec<f64>> = Vec::new();
    let mut message = format!("reached {max_iter} iterations");
    let mut converged = false;
    let mut iter = 0;
    while iter < max_iter {
        iter += 1;
        let gnorm = dot(&g, &g).sqrt();
        if gnorm < 1e-8 {
            converged = true;
            message = "gradient below 1e-8".into();
            break;
        }
        // Two-loop recursion for the search direction −H g.
        let mut q = g.clone();
        let k = s_hist.len();
        let mut alpha = vec![0.0; k];
        for i in (0..k).rev() {
            let rho = 1.0 / dot(&y_hist[i], &s_hist[i]);
            alpha[i] = rho * dot(&s_hist[i], &q);
            for j in 0..n {
                q[j] -= alpha[i] * y_hist[i][j];
            }
        }
        let gamma = if k > 0 {
            dot(&s_hist[k - 1], &y_hist[k - 1]) / dot(&y_hist[k - 1], &y_hist[k - 1])
        } else {
            1.0 / gnorm.max(1.0)
        };
        let mut r: Vec<f64> = q.iter().map(|v| gamma * v).collect();
        for i in 0..k {
            let rho = 1.0 / dot(&y_hist[i], &s_hist[i]);
            let beta = rho * dot(&y_hist[i], &r);
            for j in 0..n {
                r[j] += s_hist[i][j] * (alpha[i] - beta);
            }
        }
        let mut p: Vec<f64> = r.iter().map(|v| -v).collect();
        let mut dphi0 = dot(&g, &p);
        if dphi0 >= 0.0 {
            // Not a descent direction (numerical trouble): restart from steepest descent.
            s_hist.clear();
            y_hist.clear();
            p = g.iter().map(|v| -v / gnorm.max(1.0)).collect();
            dphi0 = dot(&g, &p);
        }
        // Line search: backtracking to the strong Wolfe conditions (c1 = 1e-4, c2 = 0.9),
        // expanding while the curvature condition fails and the step keeps descending.
        let (c1, c2) = (1e-4, 0.9);
        let mut step = 1.0;
        let (mut lo, mut hi) = (0.0, f64::INFINITY);
        let mut found = None;
        let mut gn = vec![0.0; n];
        for _ in 0..60 {
            let xn: Vec<f64> = x.iter().zip(&p).map(|(a, b)| a + step * b).collect();
            match eval(&xn, &mut gn, &mut evals) {
                Some(fnew) if fnew <= f + c1 * step * dphi0 => {
                    let dphi = dot(&gn, &p);
                    if dphi.abs() <= c2 * dphi0.abs() {
                        found = Some((xn, fnew));
                        break;
                    }
                    if dphi < 0.0 {
                        lo = step;
                    } else {
                        hi = step;
                    }
                }
                _ => hi = step,
            }
            step = if hi.is_finite() { 0.5 * (lo + hi) } else { 2.0 * step };
        }
        let Some((xn, fnew)) = found else {
            message = "the line search found no acceptable step".into();
            converged = dot(&g, &g).sqrt() < 1e-4;
            break;
        };
        let s: Vec<f64> = xn.iter().zip(&x).map(|(a, b)| a - b).collect();
        let y: Vec<f64> = gn.iter().zip(&g).map(|(a, b)| a - b).collect();
        let rel = (f - fnew).abs() / f.abs().max(fnew.abs()).max(1.0);
        x = xn;
        g.copy_from_slice(&gn);
        let f_old = f;
        f = fnew;
        if dot(&s, &y) > 1e-12 {
            s_hist.push(s);
            y_hist.push(y);
            if s_hist.len() > m {
                s_hist.remove(0);
                y_hist.remove(0);
            }
        }
        if rel < 1e-12 && f <= f_old {
            converged = true;
            message = "relative change in the objective below 1e-12".into();
            break;
        }
    }
    Ok(Mode {
        grad_norm: dot(&g, &g).sqrt(),
        theta: x,
        logp: -f,
        iterations: iter,
        converged,
        message,
        grad_evals: evals,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::density::EvalError;

    /// Rosenbrock's function as a log density (maximum 0 at (1, 1)).
    struct Rosenbrock;

    impl LogDensity for Rosenbrock {
        fn dim(&self) -> usize {
            2
        }
        fn logp_grad(&mut self, q: &[f64], g: &mut [f64]) -> Result<f64, EvalError> {
            let (a, b) = (q[0], q[1]);
            g[0] = -(-2.0 * (1.0 - a) - 400.0 * a * (b - a * a));
            g[1] = -(200.0 * (b - a * a));
            Ok(-((1.0 - a).powi(2) + 100.0 * (b - a * a).powi(2)))
        }
    }

    #[test]
    fn finds_the_rosenbrock_minimum() {
        let m = lbfgs(&mut Rosenbrock, &[-1.2, 1.0], 1000).expect("runs");
        assert!(m.converged, "{}", m.message);
        assert!((m.theta[0] - 1.0).abs() < 1e-5 && (m.theta[1] - 1.0).abs() < 1e-5, "{:?}", m.theta);
    }
}
