//! Vector maths for plwasm over float8[] and float4[], written with the Rust SDK.

use plwasm_udf::{aggregate, udf};

fn check_lengths(a: usize, b: usize) -> Result<(), String> {
    if a == b {
        Ok(())
    } else {
        Err(format!("vectors have different lengths: {a} and {b}"))
    }
}

/// Cosine similarity of two float8 vectors; NULL if either has zero length or magnitude.
#[udf(immutable)]
fn cosine_similarity(a: Vec<f64>, b: Vec<f64>) -> Result<Option<f64>, String> {
    check_lengths(a.len(), b.len())?;
    let (mut dot, mut na, mut nb) = (0.0, 0.0, 0.0);
    for (x, y) in a.iter().zip(&b) {
        dot += x * y;
        na += x * x;
        nb += y * y;
    }
    Ok((na > 0.0 && nb > 0.0).then(|| dot / (na.sqrt() * nb.sqrt())))
}

/// Cosine similarity of two float4 vectors (as float8).
#[udf(name = "cosine_similarity_f4", immutable)]
fn cosine_similarity_f32(a: Vec<f32>, b: Vec<f32>) -> Result<Option<f64>, String> {
    cosine_similarity(
        a.into_iter().map(f64::from).collect(),
        b.into_iter().map(f64::from).collect(),
    )
}

/// Element-wise sum of two float8 vectors.
#[udf(immutable)]
fn vector_add(a: Vec<f64>, b: Vec<f64>) -> Result<Vec<f64>, String> {
    check_lengths(a.len(), b.len())?;
    Ok(a.iter().zip(&b).map(|(x, y)| x + y).collect())
}

/// Aggregate state transition for a sample standard deviation (Welford's method).
/// The state is `[count, mean, m2]`; use with `initcond = '{0,0,0}'`.
#[udf(immutable)]
fn stddev_accum(state: Vec<f64>, x: f64) -> Result<Vec<f64>, String> {
    let [count, mean, m2]: [f64; 3] = state
        .try_into()
        .map_err(|_| "the state must have 3 elements".to_string())?;
    let count = count + 1.0;
    let delta = x - mean;
    let mean = mean + delta / count;
    Ok(vec![count, mean, m2 + delta * (x - mean)])
}

/// Aggregate final function: the sample standard deviation, NULL below two values.
#[udf(immutable)]
fn stddev_final(state: Vec<f64>) -> Option<f64> {
    match state.as_slice() {
        [count, _, m2] if *count >= 2.0 => Some((m2 / (count - 1.0)).sqrt()),
        _ => None,
    }
}

/// Every value a median aggregate has seen (its state, kept inside the module between rows, so a
/// row costs one call whatever the state's size).
#[derive(Default)]
pub struct Median(Vec<f64>);

/// The median of the non-NULL values (NULL for none).
#[aggregate]
impl Median {
    fn step(&mut self, value: f64) {
        self.0.push(value);
    }

    fn finish(&mut self) -> Option<f64> {
        if self.0.is_empty() {
            return None;
        }
        self.0.sort_unstable_by(f64::total_cmp);
        let mid = self.0.len() / 2;
        Some(if self.0.len() % 2 == 1 {
            self.0[mid]
        } else {
            (self.0[mid - 1] + self.0[mid]) / 2.0
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median() {
        let mut m = Median::default();
        for v in [5.0, 1.0, 3.0, 2.0] {
            m.step(v);
        }
        assert_eq!(m.finish(), Some(2.5));
        assert_eq!(Median::default().finish(), None);
    }

    #[test]
    fn cosine() {
        assert_eq!(
            cosine_similarity(vec![1.0, 0.0], vec![2.0, 0.0]),
            Ok(Some(1.0))
        );
        assert_eq!(
            cosine_similarity(vec![1.0, 0.0], vec![0.0, 3.0]),
            Ok(Some(0.0))
        );
        assert_eq!(cosine_similarity(vec![], vec![]), Ok(None));
        assert!(cosine_similarity(vec![1.0], vec![]).is_err());
    }

    #[test]
    fn stddev() {
        let state = [2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0]
            .into_iter()
            .fold(vec![0.0, 0.0, 0.0], |s, x| stddev_accum(s, x).unwrap());
        let sd = stddev_final(state).unwrap();
        assert!((sd - 2.138089935299395).abs() < 1e-12);
        assert_eq!(stddev_final(vec![1.0, 3.0, 0.0]), None);
    }
}
