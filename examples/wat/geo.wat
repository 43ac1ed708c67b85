;; geo.wat: a small hand-written module used by the demo (scripts/demo.sh).
;; Every export uses only scalars, so it fits ABI v1's fast path:
;;   int2/int4/bool <-> i32, int8 <-> i64, float4 <-> f32, float8 <-> f64.
(module
  ;; Euclidean distance between (x1, y1) and (x2, y2).
  (func (export "dist") (param $x1 f64) (param $y1 f64) (param $x2 f64) (param $y2 f64) (result f64)
    (f64.sqrt
      (f64.add
        (f64.mul (f64.sub (local.get $x2) (local.get $x1)) (f64.sub (local.get $x2) (local.get $x1)))
        (f64.mul (f64.sub (local.get $y2) (local.get $y1)) (f64.sub (local.get $y2) (local.get $y1))))))

  ;; Great-circle-free "is this point inside the box" test; returns a bool (i32 0/1).
  (func (export "in_box") (param $x f64) (param $y f64) (param $w f64) (param $h f64) (result i32)
    (i32.and
      (i32.and (f64.ge (local.get $x) (f64.const 0)) (f64.le (local.get $x) (local.get $w)))
      (i32.and (f64.ge (local.get $y) (f64.const 0)) (f64.le (local.get $y) (local.get $h)))))

  ;; Naive recursive Fibonacci: a compute-heavy function to compare with PL/pgSQL.
  (func $fib (export "fib") (param $n i32) (result i64)
    (if (result i64) (i32.lt_s (local.get $n) (i32.const 2))
      (then (i64.extend_i32_s (local.get $n)))
      (else (i64.add (call $fib (i32.sub (local.get $n) (i32.const 1)))
                     (call $fib (i32.sub (local.get $n) (i32.const 2)))))))

  ;; Integer division: traps on a zero divisor, which plwasm reports as SQLSTATE 38000.
  (func (export "ratio") (param $a i32) (param $b i32) (result i32)
    (i32.div_s (local.get $a) (local.get $b))))
