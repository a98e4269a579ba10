//! Eigenvalues and eigenvectors of a symmetric matrix: Householder reduction to tridiagonal
//! form, then the QL algorithm with implicit shifts on it (Golub & Van Loan, §8.3; the
//! EISPACK routines tred2 and tql2). About 4k³ flops with the vectors, for the matrices of a
//! Laplace approximation (up to a few thousand rows).

/// The eigenvalues of the symmetric k × k matrix `a` (row-major) and its eigenvectors as the
/// columns of a row-major k × k matrix: `a = V diag(λ) Vᵀ`.
pub fn symmetric(a: &[f64], k: usize) -> (Vec<f64>, Vec<f64>) {
    let mut z = a.to_vec();
    let (mut d, mut e) = (vec![0.0; k], vec![0.0; k]);
    tridiagonalise(&mut z, k, &mut d, &mut e);
    ql_implicit(&mut z, k, &mut d, &mut e);
    (d, z)
}

/// Householder reduction of the symmetric `z` to tridiagonal form: on return `d` holds the
/// diagonal, `e[i]` the element below it left of row i (`e[0]` = 0), and `z` the orthogonal
/// matrix of the reduction.
fn tridiagonalise(z: &mut [f64], n: usize, d: &mut [f64], e: &mut [f64]) {
    let at = |i: usize, j: usize| i * n + j;
    for i in (1..n).rev() {
        let l = i - 1;
        let mut h = 0.0;
        let scale: f64 = (0..=l).map(|k| z[at(i, k)].abs()).sum();
        if l == 0 || scale == 0.0 {
            e[i] = z[at(i, l)];
        } else {
            for k in 0..=l {
                z[at(i, k)] /= scale;
                h += z[at(i, k)] * z[at(i, k)];
            }
            let f = z[at(i, l)];
            let g = if f >= 0.0 { -h.sqrt() } else { h.sqrt() };
            e[i] = scale * g;
            h -= f * g;
            z[at(i, l)] = f - g;
            let mut f = 0.0;
            for j in 0..=l {
                // u / h in column i, p = A u / h in e.
                z[at(j, i)] = z[at(i, j)] / h;
                let mut g = 0.0;
                for k in 0..=j {
                    g += z[at(j, k)] * z[at(i, k)];
                }
                for k in j + 1..=l {
                    g += z[at(k, j)] * z[at(i, k)];
                }
                e[j] = g / h;
                f += e[j] * z[at(i, j)];
            }
            let hh = f / (h + h);
            for j in 0..=l {
                let f = z[at(i, j)];
                let g = e[j] - hh * f;
                e[j] = g;
                for k in 0..=j {
                    z[at(j, k)] -= f * e[k] + g * z[at(i, k)];
                }
            }
        }
        d[i] = h;
    }
    d[0] = 0.0;
    e[0] = 0.0;
    // Accumulate the transformations.
    for i in 0..n {
        if d[i] != 0.0 {
            for j in 0..i {
                let g: f64 = (0..i).map(|k| z[at(i, k)] * z[at(k, j)]).sum();
                for k in 0..i {
                    z[at(k, j)] -= g * z[at(k, i)];
                }
            }
        }
        d[i] = z[at(i, i)];
        z[at(i, i)] = 1.0;
        for j in 0..i {
            z[at(j, i)] = 0.0;
            z[at(i, j)] = 0.0;
        }
    }
}

/// The QL algorithm with implicit shifts on the tridiagonal (`d`, `e`), the rotations applied
/// to `z`'s columns: on return `d` holds the eigenvalues and `z` the eigenvectors.
fn ql_implicit(z: &mut [f64], n: usize, d: &mut [f64], e: &mut [f64]) {
    if n == 0 {
        return;
    }
    for i in 1..n {
        e[i - 1] = e[i];
    }
    e[n - 1] = 0.0;
    for l in 0..n {
        for _iteration in 0..100 {
            // The first negligible off-diagonal element at or after l.
            let mut m = l;
            while m + 1 < n {
                let dd = d[m].abs() + d[m + 1].abs();
                if e[m].abs() <= f64::EPSILON * dd {
                    break;
                }
                m += 1;
            }
            if m == l {
                break;
            }
            let mut g = (d[l + 1] - d[l]) / (2.0 * e[l]);
            let mut r = g.hypot(1.0);
            g = d[m] - d[l] + e[l] / (g + if g >= 0.0 { r.abs() } else { -r.abs() });
            let (mut s, mut c, mut p) = (1.0, 1.0, 0.0);
            let mut deflated = false;
            for i in (l..m).rev() {
                let f = s * e[i];
                let b = c * e[i];
                r = f.hypot(g);
                e[i + 1] = r;
                if r == 0.0 {
                    d[i + 1] -= p;
                    e[m] = 0.0;
                    deflated = true;
                    break;
                }
                s = f / r;
                c = g / r;
                g = d[i + 1] - p;
                r = (d[i] - g) * s + 2.0 * c * b;
                p = s * r;
                d[i + 1] = g + p;
                g = c * r - b;
                for k in 0..n {
                    let f = z[k * n + i + 1];
                    z[k * n + i + 1] = s * z[k * n + i] + c * f;
                    z[k * n + i] = c * z[k * n + i] - s * f;
                }
            }
            if deflated {
                continue;
            }
            d[l] -= p;
            e[l] = g;
            e[m] = 0.0;
        }
    }
}

#[cfg(test)]
mod tests {
    fn check(a: &[f64], k: usize) {
        let (l, v) = super::symmetric(a, k);
        for i in 0..k {
            for j in 0..k {
                let r: f64 = (0..k).map(|m| v[i * k + m] * l[m] * v[j * k + m]).sum();
                assert!((r - a[i * k + j]).abs() < 1e-9, "({i},{j}): {r} vs {}", a[i * k + j]);
                let o: f64 = (0..k).map(|m| v[m * k + i] * v[m * k + j]).sum();
                assert!((o - f64::from(u8::from(i == j))).abs() < 1e-10);
            }
        }
    }

    #[test]
    fn reconstructs_symmetric_matrices() {
        for k in [1, 2, 3, 5, 17, 40] {
            let mut a = vec![0.0; k * k];
            for i in 0..k {
                for j in 0..=i {
                    let x = ((i * 7 + j * 3 + k) % 11) as f64 - 5.0 + if i == j { 0.5 } else { 0.0 };
                    a[i * k + j] = x;
                    a[j * k + i] = x;
                }
            }
            check(&a, k);
        }
        // Repeated eigenvalues, a diagonal and a zero matrix.
        check(&[2.0, 0.0, 0.0, 0.0, 2.0, 0.0, 0.0, 0.0, 2.0], 3);
        check(&[0.0; 16], 4);
        check(&[1.0, 1.0, 1.0, 1.0], 2);
    }
}
