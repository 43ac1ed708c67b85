//! A WASI module in Rust (wasm32-wasip1) exercising what plwasm's WASI grants and denies.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;

/// Prints to stdout and stderr; returns `n * 2`.
#[no_mangle]
pub extern "C" fn shout(n: i32) -> i32 {
    println!("hello from Rust, n = {n}");
    println!("second line");
    eprintln!("Rust writes to stderr");
    n * 2
}

/// Seconds since the epoch, from `SystemTime`.
#[no_mangle]
pub extern "C" fn now_seconds() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(-1)
}

/// 1 if two randomly seeded hashers disagree on the same value (they always should).
#[no_mangle]
pub extern "C" fn random_differs() -> i32 {
    (RandomState::new().hash_one(1) != RandomState::new().hash_one(1)) as i32
}

/// 1 if reading a host file succeeded (it must not), 0 otherwise.
#[no_mangle]
pub extern "C" fn read_passwd() -> i32 {
    std::fs::read("/etc/passwd").is_ok() as i32
}

/// 1 if any environment variable is visible (none must be).
#[no_mangle]
pub extern "C" fn env_count() -> i32 {
    std::env::vars().count() as i32
}
