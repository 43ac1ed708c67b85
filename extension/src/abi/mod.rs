//! ABI v1, scalar fast path: how SQL types map to WebAssembly value types.
//!
//! | SQL            | wasm | in                      | out                                  |
//! |----------------|------|-------------------------|--------------------------------------|
//! | int2           | i32  | sign-extended           | ERROR 22003 if outside int2's range  |
//! | int4           | i32  | as is                   | as is                                |
//! | bool           | i32  | 0 or 1                  | non-zero is true                     |
//! | int8           | i64  | as is                   | as is                                |
//! | float4         | f32  | as is                   | as is                                |
//! | float8         | f64  | as is                   | as is                                |
//! | void (result)  | —    |                         | the export returns nothing           |
//!
//! Variable-length values (see `docs/abi.md`): text, varchar, bpchar, name (UTF-8), bytea (raw),
//! json, jsonb (JSON text), one-dimensional arrays without NULLs of int2, int4, int8, float4,
//! float8, bool (packed little-endian elements) and every other type (its JSON form) travel
//! through the module's memory: an argument as two i32 parameters `(ptr, len)`, a result as one
//! i64 `(ptr << 32) | len`. Their conversions are in `values.rs` and `json_form.rs`.
//!
//! This module owns the mapping, the expected wasm signature of a SQL signature, and the
//! conversions between `Datum` and `wasmer::Value`. It knows nothing about catalogs or caches.

pub mod json_form;
pub mod values;

use std::fmt;

use pgrx::pg_sys;
use pgrx::{FromDatum, IntoDatum};
use wasmer::{Type, Value};

/// A SQL type LANGUAGE wasm can pass through the scalar fast path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SqlScalar {
    Int2,
    Int4,
    Int8,
    Float4,
    Float8,
    Bool,
}

impl SqlScalar {
    /// The scalar for a SQL type OID, if it has one.
    pub fn from_oid(oid: pg_sys::Oid) -> Option<Self> {
        Some(match oid {
            pg_sys::INT2OID => Self::Int2,
            pg_sys::INT4OID => Self::Int4,
            pg_sys::INT8OID => Self::Int8,
            pg_sys::FLOAT4OID => Self::Float4,
            pg_sys::FLOAT8OID => Self::Float8,
            pg_sys::BOOLOID => Self::Bool,
            _ => return None,
        })
    }

    /// The WebAssembly value type this SQL type travels as.
    pub fn wasm_type(self) -> WasmType {
        match self {
            Self::Int2 | Self::Int4 | Self::Bool => WasmType::I32,
            Self::Int8 => WasmType::I64,
            Self::Float4 => WasmType::F32,
            Self::Float8 => WasmType::F64,
        }
    }

    pub fn sql_name(self) -> &'static str {
        match self {
            Self::Int2 => "smallint",
            Self::Int4 => "integer",
            Self::Int8 => "bigint",
            Self::Float4 => "real",
            Self::Float8 => "double precision",
            Self::Bool => "boolean",
        }
    }

    /// The zero value of this type's wasm representation (what a NULL argument carries).
    pub fn zero(self) -> Value {
        match self.wasm_type() {
            WasmType::I64 => Value::I64(0),
            WasmType::F32 => Value::F32(0.0),
            WasmType::F64 => Value::F64(0.0),
            _ => Value::I32(0),
        }
    }

    /// Convert a non-NULL argument datum of this type to a wasm value.
    ///
    /// # Safety
    /// `datum` must be a non-NULL datum of the SQL type `self`.
    #[inline]
    pub unsafe fn to_wasm(self, datum: pg_sys::Datum) -> Value {
        // SAFETY: the caller guarantees the datum's type; all these types are pass-by-value.
        unsafe {
            match self {
                Self::Int2 => Value::I32(i16::from_datum(datum, false).unwrap_or_default() as i32),
                Self::Int4 => Value::I32(i32::from_datum(datum, false).unwrap_or_default()),
                Self::Bool => Value::I32(bool::from_datum(datum, false).unwrap_or_default() as i32),
                Self::Int8 => Value::I64(i64::from_datum(datum, false).unwrap_or_default()),
                Self::Float4 => Value::F32(f32::from_datum(datum, false).unwrap_or_default()),
                Self::Float8 => Value::F64(f64::from_datum(datum, false).unwrap_or_default()),
            }
        }
    }

    /// Convert a wasm result to a datum of this type. `Err(v)` carries an out-of-range value.
    #[inline]
    #[allow(
        clippy::unreachable,
        clippy::expect_used,
        reason = "invariant: the call site checked the export's wasm signature against the SQL one, and scalar datums are never NULL"
    )]
    pub fn from_wasm(self, value: &Value) -> Result<pg_sys::Datum, i64> {
        let datum = match (self, value) {
            (Self::Int2, Value::I32(v)) => i16::try_from(*v).map_err(|_| *v as i64)?.into_datum(),
            (Self::Int4, Value::I32(v)) => v.into_datum(),
            (Self::Bool, Value::I32(v)) => (*v != 0).into_datum(),
            (Self::Int8, Value::I64(v)) => v.into_datum(),
            (Self::Float4, Value::F32(v)) => v.into_datum(),
            (Self::Float8, Value::F64(v)) => v.into_datum(),
            // The signature was checked when the call site was resolved.
            _ => unreachable!("wasm result type does not match the checked signature"),
        };
        Ok(datum.expect("scalar datums are never NULL"))
    }
}

/// WebAssembly value types as plwasm names them (also the spelling used in `wasm.modules.exports`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WasmType {
    I32,
    I64,
    F32,
    F64,
    V128,
    ExternRef,
    FuncRef,
    ExceptionRef,
}

impl WasmType {
    pub fn name(self) -> &'static str {
        match self {
            Self::I32 => "i32",
            Self::I64 => "i64",
            Self::F32 => "f32",
            Self::F64 => "f64",
            Self::V128 => "v128",
            Self::ExternRef => "externref",
            Self::FuncRef => "funcref",
            Self::ExceptionRef => "exnref",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "i32" => Self::I32,
            "i64" => Self::I64,
            "f32" => Self::F32,
            "f64" => Self::F64,
            "v128" => Self::V128,
            "externref" => Self::ExternRef,
            "funcref" => Self::FuncRef,
            "exnref" => Self::ExceptionRef,
            _ => return None,
        })
    }
}

impl From<Type> for WasmType {
    fn from(t: Type) -> Self {
        match t {
            Type::I32 => Self::I32,
            Type::I64 => Self::I64,
            Type::F32 => Self::F32,
            Type::F64 => Self::F64,
            Type::V128 => Self::V128,
            Type::ExternRef => Self::ExternRef,
            Type::FuncRef => Self::FuncRef,
            Type::ExceptionRef => Self::ExceptionRef,
        }
    }
}

/// A WebAssembly function signature: `(params) -> (results)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WasmSignature {
    pub params: Vec<WasmType>,
    pub results: Vec<WasmType>,
}

impl WasmSignature {
    pub fn of(ty: &wasmer::FunctionType) -> Self {
        Self {
            params: ty.params().iter().map(|t| WasmType::from(*t)).collect(),
            results: ty.results().iter().map(|t| WasmType::from(*t)).collect(),
        }
    }
}

impl fmt::Display for WasmSignature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list = |types: &[WasmType]| {
            types
                .iter()
                .map(|t| t.name())
                .collect::<Vec<_>>()
                .join(", ")
        };
        write!(f, "({}) -> ({})", list(&self.params), list(&self.results))
    }
}

/// A SQL type passed through the module's memory as bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BytesType {
    /// text, varchar, bpchar: UTF-8.
    Text,
    /// name: UTF-8 (at most 63 bytes as a result).
    Name,
    /// bytea: the raw bytes.
    Bytea,
    /// json: its text.
    Json,
    /// jsonb: its text (as jsonb prints it).
    Jsonb,
    /// A one-dimensional array without NULLs of this scalar: packed little-endian elements.
    Array(SqlScalar),
    /// Any other type (this OID): its JSON form (`json_form.rs`).
    JsonForm(pg_sys::Oid),
}

impl BytesType {
    fn from_oid(oid: pg_sys::Oid) -> Option<Self> {
        Some(match oid {
            pg_sys::TEXTOID | pg_sys::VARCHAROID | pg_sys::BPCHAROID => Self::Text,
            pg_sys::NAMEOID => Self::Name,
            pg_sys::BYTEAOID => Self::Bytea,
            pg_sys::JSONOID => Self::Json,
            pg_sys::JSONBOID => Self::Jsonb,
            pg_sys::INT2ARRAYOID => Self::Array(SqlScalar::Int2),
            pg_sys::INT4ARRAYOID => Self::Array(SqlScalar::Int4),
            pg_sys::INT8ARRAYOID => Self::Array(SqlScalar::Int8),
            pg_sys::FLOAT4ARRAYOID => Self::Array(SqlScalar::Float4),
            pg_sys::FLOAT8ARRAYOID => Self::Array(SqlScalar::Float8),
            pg_sys::BOOLARRAYOID => Self::Array(SqlScalar::Bool),
            _ => return None,
        })
    }
}

/// How one SQL value travels: as a wasm scalar, or as bytes in the module's memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SqlType {
    Scalar(SqlScalar),
    Bytes(BytesType),
}

impl SqlType {
    /// How values of `oid` travel; `json_form(oid)` says whether a type without a native
    /// encoding may travel in JSON form.
    pub fn from_oid(oid: pg_sys::Oid, json_form: &dyn Fn(pg_sys::Oid) -> bool) -> Option<Self> {
        SqlScalar::from_oid(oid)
            .map(Self::Scalar)
            .or_else(|| BytesType::from_oid(oid).map(Self::Bytes))
            .or_else(|| json_form(oid).then_some(Self::Bytes(BytesType::JsonForm(oid))))
    }

    pub fn is_bytes(self) -> bool {
        matches!(self, Self::Bytes(_))
    }
}

/// The SQL side of a call: argument types and the result (None = void).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SqlSignature {
    pub args: Vec<SqlType>,
    pub result: Option<SqlType>,
    /// `RETURNS SETOF result`: the export returns nothing and emits rows through the host API.
    pub set_returning: bool,
    /// `RETURNS trigger` (no arguments): the export takes the trigger event as JSON text and
    /// returns what to do as JSON text, like `f(json) -> json` (`args` and `result` say so).
    pub trigger: bool,
}

impl SqlSignature {
    /// The wasm signature an export must have to implement this SQL signature.
    pub fn wasm(&self) -> WasmSignature {
        let mut params = Vec::new();
        for arg in &self.args {
            match arg {
                SqlType::Scalar(s) => params.push(s.wasm_type()),
                SqlType::Bytes(_) => params.extend([WasmType::I32, WasmType::I32]),
            }
        }
        let results = match self.result {
            _ if self.set_returning => vec![],
            None => vec![],
            Some(SqlType::Scalar(s)) => vec![s.wasm_type()],
            Some(SqlType::Bytes(_)) => vec![WasmType::I64],
        };
        WasmSignature { params, results }
    }

    /// Whether any argument is passed in memory (the module must export `plwasm_alloc`).
    pub fn has_bytes_args(&self) -> bool {
        self.args.iter().any(|a| a.is_bytes())
    }

    /// Whether any value travels through memory (the module must export `memory`).
    pub fn uses_memory(&self) -> bool {
        // Set-returning functions' bytes rows are read from memory too (plwasm.emit_bytes).
        self.has_bytes_args() || self.result.is_some_and(SqlType::is_bytes)
    }

    /// Whether the result comes back as `(ptr << 32) | len` (not for set-returning functions).
    pub fn bytes_result(&self) -> bool {
        !self.set_returning && self.result.is_some_and(SqlType::is_bytes)
    }
}

/// Why a SQL signature cannot be mapped: which position and which type.
#[derive(Debug, PartialEq, Eq)]
pub struct UnsupportedType {
    /// "argument 2" or "the result"
    pub position: String,
    pub type_oid: pg_sys::Oid,
}

/// Map a SQL signature (argument type OIDs, result type OID) onto ABI v1; `json_form` says which
/// other types may travel in JSON form.
pub fn sql_signature(
    arg_types: &[pg_sys::Oid],
    result_type: pg_sys::Oid,
    returns_set: bool,
    json_form: &dyn Fn(pg_sys::Oid) -> bool,
) -> Result<SqlSignature, UnsupportedType> {
    if result_type == pg_sys::TRIGGEROID {
        // The trigger's own arguments (CREATE TRIGGER ... f('a')) arrive in the event.
        if let Some(first) = arg_types.first() {
            return Err(UnsupportedType {
                position: "argument 1 of a trigger function".into(),
                type_oid: *first,
            });
        }
        if returns_set {
            return Err(UnsupportedType {
                position: "the result (SETOF)".into(),
                type_oid: result_type,
            });
        }
        return Ok(SqlSignature {
            args: vec![SqlType::Bytes(BytesType::Json)],
            result: Some(SqlType::Bytes(BytesType::Json)),
            set_returning: false,
            trigger: true,
        });
    }
    let args = arg_types
        .iter()
        .enumerate()
        .map(|(i, oid)| {
            SqlType::from_oid(*oid, json_form).ok_or(UnsupportedType {
                position: format!("argument {}", i + 1),
                type_oid: *oid,
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    if returns_set && result_type == pg_sys::VOIDOID {
        return Err(UnsupportedType {
            position: "the result (SETOF)".into(),
            type_oid: result_type,
        });
    }
    let result = if result_type == pg_sys::VOIDOID {
        None
    } else {
        Some(
            SqlType::from_oid(result_type, json_form).ok_or(UnsupportedType {
                position: "the result".into(),
                type_oid: result_type,
            })?,
        )
    };
    Ok(SqlSignature {
        args,
        result,
        set_returning: returns_set,
        trigger: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use WasmType::{F64, I32, I64};

    fn wasm_of(args: &[pg_sys::Oid], result: pg_sys::Oid) -> WasmSignature {
        sql_signature(args, result, false, &|_| false)
            .expect("supported")
            .wasm()
    }

    #[test]
    fn scalars_map_one_to_one() {
        let sig = wasm_of(&[pg_sys::INT4OID, pg_sys::FLOAT8OID], pg_sys::INT8OID);
        assert_eq!(sig.params, vec![I32, F64]);
        assert_eq!(sig.results, vec![I64]);
        assert_eq!(wasm_of(&[], pg_sys::VOIDOID).results, vec![]);
    }

    #[test]
    fn bytes_are_ptr_len_in_and_packed_i64_out() {
        let sig = wasm_of(&[pg_sys::TEXTOID, pg_sys::INT4OID], pg_sys::TEXTOID);
        assert_eq!(sig.params, vec![I32, I32, I32]);
        assert_eq!(sig.results, vec![I64]);
        let arrays = sql_signature(&[pg_sys::FLOAT8ARRAYOID], pg_sys::JSONBOID, false, &|_| {
            false
        })
        .unwrap();
        assert!(arrays.has_bytes_args() && arrays.uses_memory());
        assert_eq!(
            arrays.args,
            vec![SqlType::Bytes(BytesType::Array(SqlScalar::Float8))]
        );
        let only_result =
            sql_signature(&[pg_sys::INT4OID], pg_sys::BYTEAOID, false, &|_| false).unwrap();
        assert!(!only_result.has_bytes_args() && only_result.uses_memory());
    }

    #[test]
    fn unsupported_types_name_their_position() {
        let numeric_only = |oid| oid == pg_sys::NUMERICOID;
        let err = sql_signature(
            &[pg_sys::INT4OID, pg_sys::NUMERICOID, pg_sys::INTERNALOID],
            pg_sys::INT4OID,
            false,
            &numeric_only,
        )
        .unwrap_err();
        assert_eq!(err.position, "argument 3");
        let err = sql_signature(&[], pg_sys::VOIDOID, true, &numeric_only).unwrap_err();
        assert_eq!(err.position, "the result (SETOF)");
        let setof = sql_signature(&[pg_sys::TEXTOID], pg_sys::TEXTOID, true, &|_| false).unwrap();
        assert_eq!(setof.wasm().results, vec![]);
        assert!(setof.uses_memory() && !setof.bytes_result());
    }

    #[test]
    fn triggers_take_and_return_json_text() {
        let trigger = sql_signature(&[], pg_sys::TRIGGEROID, false, &|_| false).unwrap();
        assert!(trigger.trigger && trigger.has_bytes_args() && trigger.bytes_result());
        assert_eq!(trigger.wasm().params, vec![I32, I32]);
        assert_eq!(trigger.wasm().results, vec![I64]);
        let err = sql_signature(&[pg_sys::INT4OID], pg_sys::TRIGGEROID, false, &|_| true);
        assert_eq!(
            err.unwrap_err().position,
            "argument 1 of a trigger function"
        );
        assert!(sql_signature(&[], pg_sys::TRIGGEROID, true, &|_| true).is_err());
    }
}
