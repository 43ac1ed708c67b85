//! ABI v1 variable-length values: SQL datums to the bytes a guest receives, and the bytes a guest
//! returns back to datums, with the checks `docs/abi.md` promises (UTF-8 text, valid JSON, whole
//! array elements). Nothing here touches wasm: `cache.rs` moves the bytes in and out of memory.

use std::borrow::Cow;
use std::ffi::CString;

use pgrx::pg_sys;
use pgrx::{FromDatum, IntoDatum};

use crate::abi::{BytesType, SqlScalar};

/// Why bytes could not become (or come from) a SQL value.
#[derive(Debug, PartialEq, Eq)]
pub enum ValueError {
    /// Text that is not UTF-8 (byte offset of the first bad byte).
    InvalidUtf8(usize),
    /// Text containing a NUL byte, which Postgres text cannot hold.
    Nul,
    /// A packed array whose length is not a whole number of elements.
    PartialElement { len: usize, element: usize },
    /// A name longer than 63 bytes.
    NameTooLong(usize),
    /// An array argument with more than one dimension.
    MultiDimensional(usize),
    /// An array argument containing NULLs.
    ArrayWithNulls,
}

impl std::fmt::Display for ValueError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::InvalidUtf8(at) => write!(f, "invalid UTF-8 at byte {at}"),
            Self::Nul => write!(f, "text contains a NUL byte"),
            Self::PartialElement { len, element } => write!(
                f,
                "{len} bytes are not a whole number of {element}-byte array elements"
            ),
            Self::NameTooLong(len) => write!(f, "a name is at most 63 bytes, got {len}"),
            Self::MultiDimensional(n) => write!(
                f,
                "only one-dimensional arrays are passed packed, this one has {n} dimensions"
            ),
            Self::ArrayWithNulls => write!(f, "arrays with NULL elements cannot be passed packed"),
        }
    }
}

/// Size in bytes of one packed array element.
pub fn element_size(scalar: SqlScalar) -> usize {
    match scalar {
        SqlScalar::Bool => 1,
        SqlScalar::Int2 => 2,
        SqlScalar::Int4 | SqlScalar::Float4 => 4,
        SqlScalar::Int8 | SqlScalar::Float8 => 8,
    }
}

/// The bytes a guest receives for a non-NULL argument, borrowed from the datum when possible.
///
/// # Safety
/// `datum` must be a non-NULL value of a type `ty` describes; the bytes live as long as the
/// current memory context (the call).
#[allow(
    clippy::expect_used,
    clippy::unreachable,
    reason = "invariants: pg_detoast_datum never returns NULL, and JSON-form arguments go through json_form::to_json (the caller matches on them first)"
)]
pub unsafe fn to_bytes<'a>(
    ty: BytesType,
    datum: pg_sys::Datum,
) -> Result<Cow<'a, [u8]>, ValueError> {
    // SAFETY: the caller guarantees the datum's type.
    unsafe {
        match ty {
            // json is stored as its text, like text, varchar and bpchar.
            BytesType::Text | BytesType::Json | BytesType::Bytea => Ok(Cow::Borrowed(
                <&[u8]>::from_datum(datum, false).unwrap_or_default(),
            )),
            BytesType::Name => {
                let name = datum.cast_mut_ptr::<pg_sys::NameData>();
                Ok(Cow::Borrowed(
                    std::ffi::CStr::from_ptr((*name).data.as_ptr()).to_bytes(),
                ))
            }
            BytesType::Jsonb => Ok(Cow::Borrowed(jsonb_text(datum))),
            BytesType::JsonForm(_) => {
                unreachable!("JSON-form arguments go through json_form::to_json")
            }
            BytesType::Array(scalar) => {
                let detoasted = pg_sys::pg_detoast_datum(datum.cast_mut_ptr());
                let mut array = pgrx::array::RawArray::from_ptr(
                    std::ptr::NonNull::new(detoasted.cast()).expect("detoasted array"),
                );
                let ndim = array.dims().len();
                if ndim > 1 {
                    return Err(ValueError::MultiDimensional(ndim));
                }
                if array.nulls().is_some() {
                    return Err(ValueError::ArrayWithNulls);
                }
                let count = array.len();
                if count == 0 {
                    return Ok(Cow::Borrowed(&[]));
                }
                // Fixed-size pass-by-value elements are stored packed, in machine order (little
                // endian on every platform plwasm builds for).
                let data = array.data::<u8>().as_ptr().cast::<u8>();
                Ok(Cow::Borrowed(std::slice::from_raw_parts(
                    data,
                    count * element_size(scalar),
                )))
            }
        }
    }
}

/// The text of a jsonb datum, as `jsonb_out` prints it (what it calls, without looking the
/// output function up on every call), in a palloc'd string of the current memory context.
///
/// # Safety
/// `datum` is a non-NULL jsonb value.
unsafe fn jsonb_text<'a>(datum: pg_sys::Datum) -> &'a [u8] {
    // SAFETY: a detoasted jsonb varlena (4-byte header: pg_detoast_datum expands short ones)
    // starts with its header, then the root container;
    // JsonbToCString returns a NUL-terminated palloc'd string.
    unsafe {
        let jsonb = pg_sys::pg_detoast_datum(datum.cast_mut_ptr());
        let len = pgrx::varlena::varsize_any(jsonb) as i32;
        let root = jsonb
            .cast::<u8>()
            .add(pg_sys::VARHDRSZ)
            .cast::<pg_sys::JsonbContainer>();
        let text = pg_sys::JsonbToCString(std::ptr::null_mut(), root, len);
        std::ffi::CStr::from_ptr(text).to_bytes()
    }
}

/// Parse text through a type's input function (Postgres reports invalid input itself; a
/// domain's input function checks its constraints).
#[allow(
    clippy::expect_used,
    reason = "invariant: callers pass text already checked to hold no NUL (values::utf8)"
)]
pub fn input_text(type_oid: pg_sys::Oid, text: &str) -> pg_sys::Datum {
    let text = CString::new(text).expect("NUL bytes were rejected before");
    // SAFETY: a valid C string and the type's own input function.
    unsafe {
        let mut input = pg_sys::InvalidOid;
        let mut io_param = pg_sys::InvalidOid;
        pg_sys::getTypeInputInfo(type_oid, &mut input, &mut io_param);
        pg_sys::OidInputFunctionCall(input, text.as_ptr().cast_mut(), io_param, -1)
    }
}

/// Bytes as text Postgres can hold: UTF-8 without NUL.
pub fn utf8(bytes: &[u8]) -> Result<&str, ValueError> {
    let text = std::str::from_utf8(bytes).map_err(|e| ValueError::InvalidUtf8(e.valid_up_to()))?;
    if text.contains('\0') {
        return Err(ValueError::Nul);
    }
    Ok(text)
}

/// An array datum from packed little-endian elements of `N` bytes (`bytes.len()` is a multiple).
#[allow(
    clippy::expect_used,
    reason = "invariant: chunks_exact(N) yields N-byte chunks"
)]
fn packed<const N: usize, T: IntoDatum>(
    bytes: &[u8],
    decode: fn([u8; N]) -> T,
) -> Option<pg_sys::Datum>
where
    Vec<T>: IntoDatum,
{
    bytes
        .chunks_exact(N)
        .map(|chunk| decode(chunk.try_into().expect("N bytes")))
        .collect::<Vec<T>>()
        .into_datum()
}

/// The datum for bytes a guest returned as a value of `ty` (not JSON form: a call site's
/// [`crate::abi::json_form::JsonDecoder`] parses those).
#[allow(
    clippy::unreachable,
    clippy::expect_used,
    reason = "invariant: JSON-form results go through a JsonDecoder (the caller matches on it first), and non-NULL values make non-NULL datums"
)]
pub fn from_bytes(ty: BytesType, bytes: &[u8]) -> Result<pg_sys::Datum, ValueError> {
    let datum = match ty {
        BytesType::JsonForm(_) => unreachable!("JSON-form results go through a JsonDecoder"),
        // A text datum is also a valid varchar or bpchar datum (same representation).
        BytesType::Text => utf8(bytes)?.into_datum(),
        BytesType::Bytea => bytes.into_datum(),
        BytesType::Name => {
            let text = utf8(bytes)?;
            if text.len() >= pg_sys::NAMEDATALEN as usize {
                return Err(ValueError::NameTooLong(text.len()));
            }
            // SAFETY: a zeroed NameData in the current memory context, filled below.
            unsafe {
                let name = pgrx::pg_sys::palloc0(std::mem::size_of::<pg_sys::NameData>())
                    .cast::<pg_sys::NameData>();
                std::ptr::copy_nonoverlapping(
                    text.as_ptr(),
                    (*name).data.as_mut_ptr().cast(),
                    text.len(),
                );
                Some(pg_sys::Datum::from(name))
            }
        }
        BytesType::Json => Some(input_text(pg_sys::JSONOID, utf8(bytes)?)),
        BytesType::Jsonb => Some(input_text(pg_sys::JSONBOID, utf8(bytes)?)),
        BytesType::Array(scalar) => {
            let size = element_size(scalar);
            if !bytes.len().is_multiple_of(size) {
                return Err(ValueError::PartialElement {
                    len: bytes.len(),
                    element: size,
                });
            }
            match scalar {
                SqlScalar::Bool => packed(bytes, |[b]: [u8; 1]| b != 0),
                SqlScalar::Int2 => packed(bytes, i16::from_le_bytes),
                SqlScalar::Int4 => packed(bytes, i32::from_le_bytes),
                SqlScalar::Int8 => packed(bytes, i64::from_le_bytes),
                SqlScalar::Float4 => packed(bytes, f32::from_le_bytes),
                SqlScalar::Float8 => packed(bytes, f64::from_le_bytes),
            }
        }
    };
    Ok(datum.expect("non-NULL values make non-NULL datums"))
}
