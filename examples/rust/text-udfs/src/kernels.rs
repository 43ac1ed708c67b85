//! The text kernels of this crate as plain Rust (no SDK): `lib.rs` exposes them as SQL
//! functions, and `bench/native` compiles this same file into a native extension, so the
//! benchmarks compare one source compiled two ways.

/// A URL slug: lower-case ASCII letters and digits, words joined by '-'.
pub fn slugify(title: &str) -> String {
    let mut slug = String::with_capacity(title.len());
    for word in title
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
    {
        if !slug.is_empty() {
            slug.push('-');
        }
        slug.push_str(&word.to_ascii_lowercase());
    }
    slug
}

/// Levenshtein edit distance between two strings (by characters).
pub fn levenshtein(a: &str, b: &str) -> i32 {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            current[j + 1] = (previous[j] + cost)
                .min(previous[j + 1] + 1)
                .min(current[j] + 1);
        }
        previous = current;
    }
    previous[b.len()] as i32
}
