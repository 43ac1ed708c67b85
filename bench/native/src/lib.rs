//! Native references for `bench/sql.sh`: the benchmarks' kernels compiled from the same source
//! files as the wasm module `bench/kernels` (and the text-udfs example), as plain pgrx functions,
//! so each ratio compares one source compiled two ways. Never installed by anything but the
//! benchmark.

use pgrx::prelude::*;

#[path = "../../kernels/src/compute.rs"]
mod compute;
#[path = "../../../examples/rust/text-udfs/src/kernels.rs"]
mod text;

::pgrx::pg_module_magic!(name, version);

/// The scalar call overhead reference: `a + b`.
#[pg_extern(immutable, strict, parallel_safe)]
fn add_native(a: i32, b: i32) -> i32 {
    a.wrapping_add(b)
}

#[pg_extern(immutable, strict, parallel_safe)]
fn fib_native(n: i32) -> i32 {
    compute::fib(n)
}

#[pg_extern(immutable, strict, parallel_safe)]
fn sha256_native(data: &[u8]) -> String {
    compute::sha256_hex(data)
}

#[pg_extern(immutable, strict, parallel_safe)]
fn levenshtein_native(a: &str, b: &str) -> i32 {
    text::levenshtein(a, b)
}

#[pg_extern(immutable, strict, parallel_safe)]
fn slugify_native(title: &str) -> String {
    text::slugify(title)
}
