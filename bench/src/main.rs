//! Cost of plwasm's compile-time instrumentation (fuel counter + interrupt flag checks at function
//! entries and loop iterations), measured outside PostgreSQL so nothing else is in the way.
//!
//! Each workload is compiled twice with Cranelift: plain, and with `extension/src/instrument.rs`
//! (the very file the extension uses). Native Rust is shown for reference.
//!
//!     cargo run --release -p plwasm-bench
//!
//! Prints the median of several runs per workload and the instrumented/plain ratio.

#[path = "../../extension/src/runtime/instrument.rs"]
#[allow(dead_code)]
mod instrument;

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmer::sys::{CompilerConfig, Cranelift, EngineBuilder};
use wasmer::{imports, Engine, Instance, Module, Store, Value};

const RUNS: usize = 7;

const WORKLOADS: &str = r#"(module
  (func $fib (export "fib") (param i32) (result i64)
    (if (result i64) (i32.lt_s (local.get 0) (i32.const 2))
      (then (i64.extend_i32_s (local.get 0)))
      (else (i64.add (call $fib (i32.sub (local.get 0) (i32.const 1)))
                     (call $fib (i32.sub (local.get 0) (i32.const 2)))))))
  (func (export "count") (param i64) (result i64) (local $i i64)
    (loop $l
      local.get $i i64.const 1 i64.add local.tee $i
      local.get 0 i64.lt_s br_if $l)
    local.get $i)
  (func (export "collatz") (param i64) (result i64) (local $n i64) (local $steps i64) (local $total i64)
    (loop $outer
      local.get 0 local.set $n
      (block $done
        (loop $inner
          local.get $n i64.const 1 i64.le_u br_if $done
          (if (i64.eqz (i64.and (local.get $n) (i64.const 1)))
            (then (local.set $n (i64.shr_u (local.get $n) (i64.const 1))))
            (else (local.set $n (i64.add (i64.mul (local.get $n) (i64.const 3)) (i64.const 1)))))
          local.get $steps i64.const 1 i64.add local.set $steps
          br $inner))
      local.get $total local.get $steps i64.add local.set $total
      i64.const 0 local.set $steps
      local.get 0 i64.const 1 i64.sub local.tee 0
      i64.const 0 i64.gt_s br_if $outer)
    local.get $total))"#;

fn engine(instrumented: bool) -> Engine {
    let mut compiler = Cranelift::default();
    if instrumented {
        compiler.push_middleware(Arc::new(instrument::Instrument::default()));
    }
    EngineBuilder::new(compiler).engine().into()
}

fn native_fib(n: i32) -> i64 {
    if n < 2 {
        n as i64
    } else {
        native_fib(n - 1) + native_fib(n - 2)
    }
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

fn time_wasm(instrumented: bool, export: &str, arg: Value) -> (Duration, Value) {
    let engine = engine(instrumented);
    let wasm = wasmer::wat2wasm(WORKLOADS.as_bytes()).expect("valid WAT");
    let module = Module::new(&engine, &wasm).expect("compiles");
    let mut store = Store::new(engine);
    let instance = Instance::new(&mut store, &module, &imports! {}).expect("instantiates");
    let function = instance
        .exports
        .get_function(export)
        .expect("export")
        .clone();
    let fuel = instance
        .exports
        .get_global(instrument::FUEL_EXPORT)
        .ok()
        .cloned();
    let mut result = Value::I64(0);
    let times = (0..RUNS)
        .map(|_| {
            if let Some(fuel) = &fuel {
                fuel.set(&mut store, Value::I64(i64::MAX / 2))
                    .expect("mutable");
            }
            let start = Instant::now();
            result = function
                .call(&mut store, std::slice::from_ref(&arg))
                .expect("runs")[0]
                .clone();
            start.elapsed()
        })
        .collect();
    (median(times), result)
}

fn main() {
    let workloads = [
        ("fib(32), recursive calls", "fib", Value::I32(32)),
        (
            "count to 300M, tight loop",
            "count",
            Value::I64(300_000_000),
        ),
        (
            "collatz steps 1..300k, nested loops",
            "collatz",
            Value::I64(300_000),
        ),
    ];
    println!("plwasm instrumentation cost (median of {RUNS} runs, Cranelift, this machine)");
    println!();
    println!("| workload | plain wasm | instrumented | instrumented / plain |");
    println!("|---|---:|---:|---:|");
    for (name, export, arg) in workloads {
        let (plain, plain_result) = time_wasm(false, export, arg.clone());
        let (instrumented, instrumented_result) = time_wasm(true, export, arg);
        assert_eq!(plain_result, instrumented_result, "{name}: results differ");
        println!(
            "| {name} | {:.1} ms | {:.1} ms | {:.3} |",
            plain.as_secs_f64() * 1e3,
            instrumented.as_secs_f64() * 1e3,
            instrumented.as_secs_f64() / plain.as_secs_f64()
        );
    }
    let native = median(
        (0..RUNS)
            .map(|_| {
                let start = Instant::now();
                black_box(native_fib(black_box(32)));
                start.elapsed()
            })
            .collect(),
    );
    println!();
    println!("native Rust fib(32): {:.1} ms", native.as_secs_f64() * 1e3);
}
