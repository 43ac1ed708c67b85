//! Compute kernels as plain Rust (no SDK), shared by the wasm module (`lib.rs`) and the native
//! extension (`bench/native`).

use sha2::Digest as _;

/// The n-th Fibonacci number, computed the slow (doubly recursive) way.
pub fn fib(n: i32) -> i32 {
    if n < 2 {
        n
    } else {
        fib(n - 1) + fib(n - 2)
    }
}

/// The SHA-256 of `data`, in lower-case hex.
pub fn sha256_hex(data: &[u8]) -> String {
    sha2::Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
