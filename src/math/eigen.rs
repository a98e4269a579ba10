//! Eigenvalues and eigenvectors of a symmetric matrix by cyclic Jacobi rotations (Golub &
//! Van Loan, §8.5): accurate to working precision, O(k³) per sweep, for the matrices of a
//! Laplace approximation (up to a few thousand rows).

/// The eigenvalues of the symmetric k × k matrix `a` (row-major) and its eigenvectors as the
/// columns of a row-major k × k matrix: `a = V diag(λ) Vᵀ`.
pub fn symmetric(a: &[f64], k: usize) -> (Vec<f64>, Vec<f64>) {
    let mut a = a.to_vec();
    let mut v = vec![0.0; k * k];
    (0..k).for_each(|i| v[i * k + i] = 1.0);
    let norm: f64 = a.iter().map(|x| x * x).sum::<f64>().sqrt();
    for _sweep in 0..100 {
        let off: f64 = (0..k)
            .flat_map(|i| (0..k).filter(move |&j| j != i).map(move |j| (i, j)))
            .map(|(i, j)| a[i * k + j].powi(2))
            .sum();
        if off.sqrt() <= 1e-15 * norm || off == 0.0 {
            break;
        }
        for p in 0..k {
            for q in p + 1..k {
                let apq = a[p * k + q];
                if apq == 0.0 {
                    continue;
                }
                let (app, aqq) = (a[p * k + p], a[q * k + q]);
                let theta = (aqq - app) / (2.0 * apq);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let t = if theta == 0.0 { 1.0 } else { t };
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                // A ← Jᵀ A J, rows and columns p and q.
                for r in 0..k {
                    let (arp, arq) = (a[r * k + p], a[r * k + q]);
                    a[r * k + p] = c * arp - s * arq;
                    a[r * k + q] = s * arp + c * arq;
                }
                for r in 0..k {
                    let (apr, aqr) = (a[p * k + r], a[q * k + r]);
                    a[p * k + r] = c * apr - s * aqr;
                    a[q * k + r] = s * apr + c * aqr;
                }
                for r in 0..k {
                    let (vrp, vrq) = (v[r * k + p], v[r * k + q]);
                    v[r * k + p] = c * vrp - s * vrq;
                    v[r * k + q] = s * vrp + c * vrq;
                }
            }
        }
    }
    ((0..k).map(|i| a[i * k + i]).collect(), v)
}

#[cfg(test)]
mod tests {
    #[test]
    fn reconstructs_the_matrix() {
        let k = 5;
        let mut a = vec![0.0; k * k];
        for i in 0..k {
            for j in 0..=i {
                let x = ((i * 7 + j * 3) % 11) as f64 - 5.0;
                a[i * k + j] = x;
                a[j * k + i] = x;
            }
        }
        let (l, v) = super::symmetric(&a, k);
        for i in 0..k {
            for j in 0..k {
                let r: f64 = (0..k).map(|m| v[i * k + m] * l[m] * v[j * k + m]).sum();
                assert!((r - a[i * k + j]).abs() < 1e-10, "({i},{j}): {r} vs {}", a[i * k + j]);
                let o: f64 = (0..k).map(|m| v[m * k + i] * v[m * k + j]).sum();
                assert!((o - f64::from(u8::from(i == j))).abs() < 1e-12);
            }
        }
    }
}
