//! Typed calls: an export whose wasm parameters all have one wasm type (up to four of them) and
//! whose result is at most one wasm value is called through Wasmer's `TypedFunction`, chosen
//! once per call site. That covers scalar signatures like `(i32, i32) -> i32` and signatures
//! with values in memory like `f(text, text) -> int` (`(i32, i32, i32, i32) -> i32`: two
//! `(ptr, len)` pairs) or `f(text) -> text` (`(i32, i32) -> i64`).
//!
//! Wasmer's dynamic `Function::call` clones the export's signature three times and allocates its
//! argument and result vectors on every call: about a third of a scalar call's time
//! (docs/benchmarks.md). A `TypedFunction` had its signature checked when it was made and passes
//! the values on the stack. Other signatures keep the dynamic call.

use wasmer::{Function, RuntimeError, Store, Type, TypedFunction, Value};

/// A typed export: called with the site's argument values, returns its result value.
pub trait TypedCall {
    fn call(&self, store: &mut Store, args: &[Value]) -> Result<Option<Value>, RuntimeError>;
}

/// A wasm value type that travels natively.
trait Native: wasmer::FromToNativeWasmType + wasmer::NativeWasmTypeInto + Copy + 'static {
    /// This type's payload of `value` (values are made for the export's own parameter types,
    /// so the variant always matches; anything else is passed as zero).
    fn from_value(value: &Value) -> Self;
}

impl Native for i32 {
    fn from_value(value: &Value) -> Self {
        value.i32().unwrap_or(0)
    }
}

impl Native for i64 {
    fn from_value(value: &Value) -> Self {
        value.i64().unwrap_or(0)
    }
}

impl Native for f32 {
    fn from_value(value: &Value) -> Self {
        value.f32().unwrap_or(0.0)
    }
}

impl Native for f64 {
    fn from_value(value: &Value) -> Self {
        value.f64().unwrap_or(0.0)
    }
}

/// A result: one native value or none.
trait NativeResult: wasmer::WasmTypeList + 'static {
    fn into_value(self) -> Option<Value>;
}

impl NativeResult for () {
    fn into_value(self) -> Option<Value> {
        None
    }
}

macro_rules! native_result {
    ($($t:ty => $variant:ident),*) => {$(
        impl NativeResult for $t {
            fn into_value(self) -> Option<Value> {
                Some(Value::$variant(self))
            }
        }
    )*};
}
native_result!(i32 => I32, i64 => I64, f32 => F32, f64 => F64);

struct Call0<R: NativeResult>(TypedFunction<(), R>);
struct Call1<T: Native, R: NativeResult>(TypedFunction<T, R>);
struct Call2<T: Native, R: NativeResult>(TypedFunction<(T, T), R>);
struct Call3<T: Native, R: NativeResult>(TypedFunction<(T, T, T), R>);
struct Call4<T: Native, R: NativeResult>(TypedFunction<(T, T, T, T), R>);

impl<R: NativeResult> TypedCall for Call0<R> {
    fn call(&self, store: &mut Store, _: &[Value]) -> Result<Option<Value>, RuntimeError> {
        self.0.call(store).map(R::into_value)
    }
}

/// The `i`-th argument (zero when missing; sites always pass one value per parameter).
fn arg<T: Native>(args: &[Value], i: usize) -> T {
    args.get(i)
        .map(T::from_value)
        .unwrap_or_else(|| T::from_value(&Value::I32(0)))
}

impl<T: Native, R: NativeResult> TypedCall for Call1<T, R> {
    fn call(&self, store: &mut Store, args: &[Value]) -> Result<Option<Value>, RuntimeError> {
        self.0.call(store, arg(args, 0)).map(R::into_value)
    }
}

impl<T: Native, R: NativeResult> TypedCall for Call2<T, R> {
    fn call(&self, store: &mut Store, args: &[Value]) -> Result<Option<Value>, RuntimeError> {
        self.0
            .call(store, arg(args, 0), arg(args, 1))
            .map(R::into_value)
    }
}

impl<T: Native, R: NativeResult> TypedCall for Call3<T, R> {
    fn call(&self, store: &mut Store, args: &[Value]) -> Result<Option<Value>, RuntimeError> {
        self.0
            .call(store, arg(args, 0), arg(args, 1), arg(args, 2))
            .map(R::into_value)
    }
}

impl<T: Native, R: NativeResult> TypedCall for Call4<T, R> {
    fn call(&self, store: &mut Store, args: &[Value]) -> Result<Option<Value>, RuntimeError> {
        self.0
            .call(
                store,
                arg(args, 0),
                arg(args, 1),
                arg(args, 2),
                arg(args, 3),
            )
            .map(R::into_value)
    }
}

/// A typed call for `function` when its signature is one this module covers.
pub fn make(function: &Function, store: &Store) -> Option<Box<dyn TypedCall>> {
    let ty = function.ty(store);
    let (params, results) = (ty.params(), ty.results());
    if params.len() > 4 || results.len() > 1 {
        return None;
    }
    let param = params.first().copied();
    if params.iter().any(|p| Some(*p) != param) {
        return None;
    }
    match results.first() {
        None => with_result::<()>(function, store, param, params.len()),
        Some(Type::I32) => with_result::<i32>(function, store, param, params.len()),
        Some(Type::I64) => with_result::<i64>(function, store, param, params.len()),
        Some(Type::F32) => with_result::<f32>(function, store, param, params.len()),
        Some(Type::F64) => with_result::<f64>(function, store, param, params.len()),
        Some(_) => None,
    }
}

fn with_result<R: NativeResult>(
    function: &Function,
    store: &Store,
    param: Option<Type>,
    arity: usize,
) -> Option<Box<dyn TypedCall>> {
    match param {
        // No parameters: the parameter type does not matter.
        None | Some(Type::I32) => with_params::<i32, R>(function, store, arity),
        Some(Type::I64) => with_params::<i64, R>(function, store, arity),
        Some(Type::F32) => with_params::<f32, R>(function, store, arity),
        Some(Type::F64) => with_params::<f64, R>(function, store, arity),
        Some(_) => None,
    }
}

fn with_params<T: Native, R: NativeResult>(
    function: &Function,
    store: &Store,
    arity: usize,
) -> Option<Box<dyn TypedCall>> {
    Some(match arity {
        0 => Box::new(Call0::<R>(function.typed(store).ok()?)),
        1 => Box::new(Call1::<T, R>(function.typed(store).ok()?)),
        2 => Box::new(Call2::<T, R>(function.typed(store).ok()?)),
        3 => Box::new(Call3::<T, R>(function.typed(store).ok()?)),
        4 => Box::new(Call4::<T, R>(function.typed(store).ok()?)),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmer::{imports, Instance, Module};

    /// An instance of `wat` in a fresh store (plain Wasmer: the calls here need no limits).
    fn instance(wat: &str) -> (Store, Instance) {
        let mut store = Store::default();
        let module = Module::new(&store, wat).expect("test module compiles");
        let instance = Instance::new(&mut store, &module, &imports! {}).expect("instantiates");
        (store, instance)
    }

    #[test]
    fn typed_calls_give_the_dynamic_calls_results() {
        let (mut store, instance) = instance(
            r#"(module
                (func (export "none"))
                (func (export "k") (result i32) i32.const 7)
                (func (export "neg") (param i64) (result i64) (i64.sub (i64.const 0) (local.get 0)))
                (func (export "add") (param i32 i32) (result i32) (i32.add (local.get 0) (local.get 1)))
                (func (export "mix") (param f32 f32 f32) (result f64)
                    (f64.promote_f32 (f32.add (local.get 0) (f32.mul (local.get 1) (local.get 2)))))
                (func (export "sum4") (param f64 f64 f64 f64) (result f64)
                    (f64.add (f64.add (local.get 0) (local.get 1)) (f64.add (local.get 2) (local.get 3))))
                (func (export "mixed") (param i32 i64) (result i32) local.get 0)
                (func (export "five") (param i32 i32 i32 i32 i32))
                (func (export "two") (result i32 i32) i32.const 1 i32.const 2))"#,
        );
        let cases: Vec<(&str, Vec<Value>)> = vec![
            ("none", vec![]),
            ("k", vec![]),
            ("neg", vec![Value::I64(5)]),
            ("add", vec![Value::I32(-2), Value::I32(9)]),
            (
                "mix",
                vec![Value::F32(0.5), Value::F32(2.0), Value::F32(4.0)],
            ),
            (
                "sum4",
                vec![
                    Value::F64(1.0),
                    Value::F64(2.0),
                    Value::F64(3.0),
                    Value::F64(4.5),
                ],
            ),
        ];
        for (name, args) in cases {
            let function = instance.exports.get_function(name).expect("export");
            let typed = make(function, &store).unwrap_or_else(|| panic!("{name} has a typed call"));
            let dynamic = function.call(&mut store, &args).expect("dynamic call");
            let result = typed.call(&mut store, &args).expect("typed call");
            assert_eq!(result, dynamic.first().cloned(), "{name}");
        }
        // Mixed parameter types, more than four parameters, several results: the dynamic call.
        for name in ["mixed", "five", "two"] {
            let function = instance.exports.get_function(name).expect("export");
            assert!(make(function, &store).is_none(), "{name}");
        }
    }

    #[test]
    fn a_trap_is_an_error() {
        let (mut store, instance) =
            instance(r#"(module (func (export "t") (param i32) (result i32) unreachable))"#);
        let function = instance.exports.get_function("t").expect("export");
        let typed = make(function, &store).expect("typed");
        assert!(typed.call(&mut store, &[Value::I32(1)]).is_err());
    }
}
