//! L2-regularised logistic regression on sparse 0/1 features, fitted by Newton's
//! method with a Cholesky solve, and seeded stratified folds.
//!
//! A row is the list of the feature columns that are 1 for it (binned features are
//! one-hot, so a row has one active column per feature); the intercept is implicit and
//! not penalised. The objective is the log-likelihood minus `lambda / 2 * |beta|^2`.

/// A fitted model: `intercept + sum of coefficients[j]` over a row's active columns.
#[derive(Clone, Debug, PartialEq)]
pub struct Logit {
    /// The intercept (log-odds with no feature active).
    pub intercept: f64,
    /// One coefficient per feature column.
    pub coefficients: Vec<f64>,
    /// Newton iterations used.
    pub iterations: usize,
}

impl Logit {
    /// The log-odds of a row.
    pub fn log_odds(&self, row: &[u32]) -> f64 {
        self.intercept + row.iter().map(|&j| self.coefficients[j as usize]).sum::<f64>()
    }

    /// The log-odds of a row of `(column, value)` pairs.
    pub fn log_odds_valued(&self, row: &[(u32, f64)]) -> f64 {
        self.intercept + row.iter().map(|&(j, x)| x * self.coefficients[j as usize]).sum::<f64>()
    }
}

/// The logistic function.
pub fn sigmoid(x: f64) -> f64 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

/// Fits the model to `rows` (active columns, each below `columns`) and outcomes `y`.
///
/// `lambda` is the L2 penalty (0 is plain maximum likelihood; then separable data has no
/// finite optimum and the iterations stop at the cap). Converges when no coefficient
/// moves by more than 1e-9.
pub fn fit(rows: &[Vec<u32>], y: &[bool], columns: usize, lambda: f64) -> Logit {
    let valued: Vec<Vec<(u32, f64)>> = rows.iter().map(|r| r.iter().map(|&j| (j, 1.0)).collect()).collect();
    fit_valued(&valued, y, columns, lambda)
}

/// [`fit`] for rows of `(column, value)` pairs: numeric features as well as 0/1 ones.
pub fn fit_valued(rows: &[Vec<(u32, f64)>], y: &[bool], columns: usize, lambda: f64) -> Logit {
    let p = columns + 1; // column 0 of the system is the intercept
    let mut beta = vec![0.0; p];
    let rate = (y.iter().filter(|&&v| v).count() as f64 + 0.5) / (y.len() as f64 + 1.0);
    beta[0] = (rate / (1.0 - rate)).ln();
    let mut h = vec![0.0; p * p];
    let mut g = vec![0.0; p];
    let mut iterations = 0;
    let mut prev = objective(rows, y, &beta, lambda);
    for _ in 0..100 {
        iterations += 1;
        h.iter_mut().for_each(|v| *v = 0.0);
        g.iter_mut().for_each(|v| *v = 0.0);
        for (row, &yi) in rows.iter().zip(y) {
            let eta = beta[0] + row.iter().map(|&(j, x)| x * beta[j as usize + 1]).sum::<f64>();
            let pi = sigmoid(eta);
            let r = f64::from(u8::from(yi)) - pi;
            let w = (pi * (1.0 - pi)).max(1e-12);
            g[0] += r;
            h[0] += w;
            for (a, &(ja, xa)) in row.iter().enumerate() {
                let ja = ja as usize + 1;
                g[ja] += r * xa;
                h[ja] += w * xa; // row 0, column ja (upper triangle kept in row-major h[i*p+j], i<=j)
                for &(jb, xb) in &row[a..] {
                    let jb = jb as usize + 1;
                    let (i, j) = if ja <= jb { (ja, jb) } else { (jb, ja) };
                    h[i * p + j] += w * xa * xb;
                }
            }
        }
        for j in 1..p {
            g[j] -= lambda * beta[j];
            h[j * p + j] += lambda;
        }
        // A tiny ridge on the diagonal keeps the solve defined for unused columns.
        for j in 0..p {
            h[j * p + j] += 1e-9;
        }
        let Some(step) = cholesky_solve(&mut h, &g, p) else { break };
        // Step halving: accept the first step that does not lower the objective.
        let mut t = 1.0;
        let mut candidate = beta.clone();
        loop {
            for j in 0..p {
                candidate[j] = beta[j] + t * step[j];
            }
            let obj = objective(rows, y, &candidate, lambda);
            if obj >= prev - 1e-12 || t < 1e-4 {
                prev = obj.max(prev);
                break;
            }
            t /= 2.0;
        }
        let moved = (0..p).map(|j| (candidate[j] - beta[j]).abs()).fold(0.0, f64::max);
        beta = candidate;
        if moved < 1e-9 {
            break;
        }
    }
    Logit { intercept: beta[0], coefficients: beta[1..].to_vec(), iterations }
}

/// The penalised log-likelihood.
fn objective(rows: &[Vec<(u32, f64)>], y: &[bool], beta: &[f64], lambda: f64) -> f64 {
    let ll: f64 = rows
        .iter()
        .zip(y)
        .map(|(row, &yi)| {
            let eta = beta[0] + row.iter().map(|&(j, x)| x * beta[j as usize + 1]).sum::<f64>();
            // log sigmoid(eta) or log(1 - sigmoid(eta)), computed stably
            let z = if yi { eta } else { -eta };
            -(if z > 0.0 { (-z).exp().ln_1p() } else { -z + z.exp().ln_1p() })
        })
        .sum();
    ll - 0.5 * lambda * beta[1..].iter().map(|b| b * b).sum::<f64>()
}

/// Solves `H x = g` for a symmetric positive-definite `H` whose upper triangle is in
/// row-major `h` (overwritten by its Cholesky factor). `None` if not positive definite.
fn cholesky_solve(h: &mut [f64], g: &[f64], p: usize) -> Option<Vec<f64>> {
    // Mirror the upper triangle into the lower one, then factor in place: H = L L^T.
    for i in 0..p {
        for j in 0..i {
            h[i * p + j] = h[j * p + i];
        }
    }
    for j in 0..p {
        let mut d = h[j * p + j];
        for k in 0..j {
            d -= h[j * p + k] * h[j * p + k];
        }
        if d <= 0.0 || !d.is_finite() {
            return None;
        }
        let d = d.sqrt();
        h[j * p + j] = d;
        for i in j + 1..p {
            let mut s = h[i * p + j];
            for k in 0..j {
                s -= h[i * p + k] * h[j * p + k];
            }
            h[i * p + j] = s / d;
        }
    }
    let mut z = g.to_vec();
    for i in 0..p {
        for k in 0..i {
            z[i] -= h[i * p + k] * z[k];
        }
        z[i] /= h[i * p + i];
    }
    for i in (0..p).rev() {
        for k in i + 1..p {
            z[i] -= h[k * p + i] * z[k];
        }
        z[i] /= h[i * p + i];
    }
    Some(z)
}

/// A small, fast, seeded generator (SplitMix64): the same seed gives the same folds on
/// every machine.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A uniform index below `n` (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// Shuffles in place (Fisher-Yates).
    pub fn shuffle<T>(&mut self, xs: &mut [T]) {
        for i in (1..xs.len()).rev() {
            let j = self.below(i + 1);
            xs.swap(i, j);
        }
    }
}

/// Stratified k-fold assignment: `fold[i]` in `0..k`, each fold with the same share of
/// positives (to within one row), shuffled by `seed`.
pub fn stratified_folds(labels: &[bool], k: usize, seed: u64) -> Vec<usize> {
    let k = k.max(2);
    let mut rng = Rng::new(seed);
    let mut fold = vec![0; labels.len()];
    for class in [true, false] {
        let mut idx: Vec<usize> = (0..labels.len()).filter(|&i| labels[i] == class).collect();
        rng.shuffle(&mut idx);
        for (n, i) in idx.into_iter().enumerate() {
            fold[i] = n % k;
        }
    }
    fold
}
