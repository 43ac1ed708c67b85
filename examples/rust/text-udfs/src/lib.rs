//! Text functions for plwasm, written with the Rust SDK.

use plwasm_udf::{notice, udf};

// Plain Rust, no SDK: bench/native compiles the same file into a native PostgreSQL extension.
mod kernels;

/// A URL slug: lower-case ASCII letters and digits, words joined by '-'.
#[udf(immutable)]
fn slugify(title: &str) -> String {
    kernels::slugify(title)
}

/// Levenshtein edit distance between two strings (by characters).
#[udf(immutable)]
fn levenshtein(a: &str, b: &str) -> i32 {
    kernels::levenshtein(a, b)
}

/// The first `n` characters of `s`, or NULL when `s` is NULL; n < 0 is an error.
#[udf(immutable)]
fn left_chars(s: Option<&str>, n: i32) -> Result<Option<String>, String> {
    if n < 0 {
        return Err(format!("n must not be negative, got {n}"));
    }
    Ok(s.map(|s| s.chars().take(n as usize).collect()))
}

/// Split text into lower-case word tokens: a set-returning function (one row per token).
#[udf(immutable)]
fn tokens(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
}

/// Word lengths, as a set of integers (a `Vec` with `setof`).
#[udf(immutable, setof)]
fn word_lengths(text: &str) -> Vec<i32> {
    text.split_whitespace()
        .map(|w| w.chars().count() as i32)
        .collect()
}

/// Says hello through the plwasm host API (a NOTICE after the call).
#[udf]
fn greet(name: &str) -> i32 {
    notice!("hello, {name}!");
    name.chars().count() as i32
}

/// Panics: the panic message becomes the SQL ERROR.
#[udf]
fn boom(message: &str) -> i32 {
    panic!("{message}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs() {
        assert_eq!(slugify("Hello, World! 2024"), "hello-world-2024");
        assert_eq!(slugify("  "), "");
    }

    #[test]
    fn tokenizes() {
        assert_eq!(
            tokens("Hello, wasm-World!").collect::<Vec<_>>(),
            ["hello", "wasm", "world"]
        );
        assert_eq!(word_lengths("ab  c"), vec![2, 1]);
    }

    #[test]
    fn distances() {
        assert_eq!(levenshtein("kitten", "sitting"), 3);
        assert_eq!(levenshtein("", "abc"), 3);
        assert_eq!(levenshtein("héllo", "hello"), 1);
    }
}
