//! Scores of predictions against observed values, and of uncertainty against
//! out-of-distribution labels.

/// The `q` quantile of sorted values (linear interpolation between order statistics, as
/// NumPy's default and the summary's).
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let h = (sorted.len() - 1) as f64 * q;
    let (lo, hi) = (h.floor() as usize, h.ceil() as usize);
    sorted[lo] + (h - lo as f64) * (sorted[hi] - sorted[lo])
}

/// The continuous ranked probability score of the empirical distribution of `sorted`
/// draws at `y`: E|X − y| − ½ E|X − X'|, computed from the order statistics in O(m).
pub fn crps(sorted: &[f64], y: f64) -> f64 {
    let m = sorted.len() as f64;
    if sorted.is_empty() {
        return f64::NAN;
    }
    let e_abs = sorted.iter().map(|x| (x - y).abs()).sum::<f64>() / m;
    // Σ_{i<j} (x_j − x_i) = Σ_i (2i − m + 1) x_i (0-based, sorted).
    let pair: f64 = sorted.iter().enumerate().map(|(i, x)| (2.0 * i as f64 - m + 1.0) * x).sum();
    e_abs - pair / (m * m)
}

/// Expected calibration error over `bins` equal-width bins of the top probability:
/// Σ_b (n_b / n) |accuracy_b − confidence_b|.
pub fn ece(confidence: &[f64], correct: &[bool], bins: usize) -> f64 {
    let n = confidence.len();
    if n == 0 {
        return f64::NAN;
    }
    let mut count = vec![0usize; bins];
    let mut conf = vec![0.0; bins];
    let mut acc = vec![0.0; bins];
    for (c, ok) in confidence.iter().zip(correct) {
        let b = ((c * bins as f64) as usize).min(bins - 1);
        count[b] += 1;
        conf[b] += c;
        acc[b] += *ok as u8 as f64;
    }
    (0..bins).filter(|b| count[*b] > 0).map(|b| (acc[b] - conf[b]).abs()).sum::<f64>() / n as f64
}

/// Area under the ROC curve of `scores` for telling `positive` from the rest (the
/// Mann–Whitney statistic; ties count one half). NaN without both classes, and where a score
/// is undefined (NaN at some row, or no finite score at all: a variance that does not exist).
pub fn auroc(scores: &[f64], positive: &[bool]) -> f64 {
    if undefined(scores) {
        return f64::NAN;
    }
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    idx.sort_by(|a, b| scores[*a].total_cmp(&scores[*b]));
    let (mut rank_sum, mut i) = (0.0, 0);
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && scores[idx[j + 1]] == scores[idx[i]] {
            j += 1;
        }
        let avg = (i + j) as f64 / 2.0 + 1.0;
        rank_sum += (i..=j).filter(|k| positive[idx[*k]]).count() as f64 * avg;
        i = j + 1;
    }
    let np = positive.iter().filter(|p| **p).count() as f64;
    let nn = positive.len() as f64 - np;
    if np == 0.0 || nn == 0.0 {
        return f64::NAN;
    }
    (rank_sum - np * (np + 1.0) / 2.0) / (np * nn)
}

/// Area under the precision–recall curve of `scores` for finding `positive` (average
/// precision: the precision at each positive, highest scores first, ties taken together).
pub fn aupr(scores: &[f64], positive: &[bool]) -> f64 {
    if undefined(scores) {
        return f64::NAN;
    }
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    idx.sort_by(|a, b| scores[*b].total_cmp(&scores[*a]));
    let np = positive.iter().filter(|p| **p).count();
    if np == 0 {
        return f64::NAN;
    }
    let (mut tp, mut seen, mut ap, mut i) = (0usize, 0usize, 0.0, 0);
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && scores[idx[j + 1]] == scores[idx[i]] {
            j += 1;
        }
        let new_tp = (i..=j).filter(|k| positive[idx[*k]]).count();
        tp += new_tp;
        seen += j - i + 1;
        ap += new_tp as f64 / np as f64 * (tp as f64 / seen as f64);
        i = j + 1;
    }
    // A sum of fractions that add to 1 can round a little above it.
    ap.min(1.0)
}

/// Scores that cannot rank rows: one is NaN, or none is finite.
fn undefined(scores: &[f64]) -> bool {
    scores.iter().any(|s| s.is_nan()) || !scores.iter().any(|s| s.is_finite())
}

/// log((1/S) Σ exp(l_s)) without overflow.
pub fn log_mean_exp(l: &[f64]) -> f64 {
    let m = l.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if !m.is_finite() {
        return m;
    }
    m + (l.iter().map(|x| (x - m).exp()).sum::<f64>() / l.len() as f64).ln()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crps_of_a_point_mass_is_the_absolute_error() {
        assert!((crps(&[2.0], 5.0) - 3.0).abs() < 1e-15);
        // Two equally likely values 0 and 1 at y = 0: E|X| = 0.5, E|X − X'| = 0.5.
        assert!((crps(&[0.0, 1.0], 0.0) - 0.25).abs() < 1e-15);
    }

    #[test]
    fn crps_of_many_normal_draws_matches_the_closed_form() {
        use rand::SeedableRng;
        use rand_distr::{Distribution, StandardNormal};
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let mut xs: Vec<f64> = (0..100_000).map(|_| StandardNormal.sample(&mut rng)).collect();
        xs.sort_by(f64::total_cmp);
        // CRPS(N(0,1), y) = y(2Φ(y) − 1) + 2φ(y) − 1/√π.
        let y: f64 = 0.7;
        let phi = (-y * y / 2.0).exp() / (2.0 * std::f64::consts::PI).sqrt();
        let cdf = 0.5 * (1.0 + statrs::function::erf::erf(y / std::f64::consts::SQRT_2));
        let exact = y * (2.0 * cdf - 1.0) + 2.0 * phi - 1.0 / std::f64::consts::PI.sqrt();
        assert!((crps(&xs, y) - exact).abs() < 5e-3, "{} vs {exact}", crps(&xs, y));
    }

    #[test]
    fn ranking_scores() {
        let pos = [false, false, true, true];
        assert_eq!(auroc(&[0.1, 0.2, 0.8, 0.9], &pos), 1.0);
        assert_eq!(auroc(&[0.9, 0.8, 0.2, 0.1], &pos), 0.0);
        assert_eq!(auroc(&[0.5; 4], &pos), 0.5);
        assert!(auroc(&[0.1, f64::NAN, 0.8, 0.9], &pos).is_nan());
        assert!(auroc(&[f64::INFINITY; 4], &pos).is_nan() && aupr(&[f64::NAN; 4], &pos).is_nan());
        assert_eq!(aupr(&[0.1, 0.2, 0.8, 0.9], &pos), 1.0);
        // Positives ranked 1st and 3rd: (1/1 + 2/3) / 2.
        assert!((aupr(&[0.9, 0.8, 0.7, 0.1], &[true, false, true, false]) - (1.0 + 2.0 / 3.0) / 2.0).abs() < 1e-15);
    }

    #[test]
    fn calibration_error() {
        // Confident and right: no error; 0.9 confident and right half the time: 0.4.
        assert_eq!(ece(&[1.0, 1.0], &[true, true], 15), 0.0);
        assert!((ece(&[0.9, 0.9], &[true, false], 15) - 0.4).abs() < 1e-12);
        assert!((quantile(&[1.0, 2.0, 3.0, 4.0], 0.5) - 2.5).abs() < 1e-15);
        assert!((log_mean_exp(&[0.0, (3.0f64).ln()]) - 2.0f64.ln()).abs() < 1e-15);
    }
}
