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
//! This module owns the mapping, the expected wasm signature of a SQL signature, and the
//! conversions between `Datum` and `wasmer::Value`. It knows nothing about catalogs or caches.

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

/// The SQL side of a call: argument scalars and the result (None = void).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SqlSignature {
    pub args: Vec<SqlScalar>,
    pub result: Option<SqlScalar>,
}

impl SqlSignature {
    /// The wasm signature an export must have to implement this SQL signature.
    pub fn wasm(&self) -> WasmSignature {
        WasmSignature {
            params: self.args.iter().map(|a| a.wasm_type()).collect(),
            results: self.result.iter().map(|r| r.wasm_type()).collect(),
        }
    }
}

/// Why a SQL signature cannot be mapped: which position and which type.
#[derive(Debug, PartialEq, Eq)]
pub struct UnsupportedType {
    /// "argument 2" or "the result"
    pub position: String,
    pub type_oid: pg_sys::Oid,
}

/// Map a SQL signature (argument type OIDs, result type OID) onto the scalar ABI.
pub fn sql_signature(
    arg_types: &[pg_sys::Oid],
    result_type: pg_sys::Oid,
    returns_set: bool,
) -> Result<SqlSignature, UnsupportedType> {
    let args = arg_types
        .iter()
        .enumerate()
        .map(|(i, oid)| {
            SqlScalar::from_oid(*oid).ok_or(UnsupportedType {
                position: format!("argument {}", i + 1),
                type_oid: *oid,
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    if returns_set {
        return Err(UnsupportedType {
            position: "the result (SETOF)".into(),
            type_oid: result_type,
        });
    }
    let result = if result_type == pg_sys::VOIDOID {
        None
    } else {
        Some(SqlScalar::from_oid(result_type).ok_or(UnsupportedType {
            position: "the result".into(),
            type_oid: result_type,
        })?)
    };
    Ok(SqlSignature { args, result })
}
