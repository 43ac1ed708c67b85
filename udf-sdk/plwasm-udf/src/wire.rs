//! Conversions between Rust values and ABI v1's wire forms (see `docs/abi.md`): scalars as wasm
//! values, everything else as bytes in memory.

/// A Rust type passed as one wasm scalar.
pub trait FromWireScalar: Sized {
    type Wire;
    fn from_wire(wire: Self::Wire) -> Self;
}

/// A Rust type returned as one wasm scalar.
pub trait IntoWireScalar {
    type Wire: Default;
    fn into_wire(self) -> Self::Wire;
}

macro_rules! same_scalar {
    ($($t:ty),*) => {$(
        impl FromWireScalar for $t {
            type Wire = $t;
            fn from_wire(wire: $t) -> Self { wire }
        }
        impl IntoWireScalar for $t {
            type Wire = $t;
            fn into_wire(self) -> $t { self }
        }
    )*};
}
same_scalar!(i32, i64, f32, f64);

impl FromWireScalar for i16 {
    type Wire = i32;
    fn from_wire(wire: i32) -> Self {
        wire as i16
    }
}
impl IntoWireScalar for i16 {
    type Wire = i32;
    fn into_wire(self) -> i32 {
        self as i32
    }
}
impl FromWireScalar for bool {
    type Wire = i32;
    fn from_wire(wire: i32) -> Self {
        wire != 0
    }
}
impl IntoWireScalar for bool {
    type Wire = i32;
    fn into_wire(self) -> i32 {
        self as i32
    }
}

/// A Rust type built from the bytes of a variable-length argument.
pub trait FromWireBytes<'a>: Sized {
    fn from_wire(bytes: &'a [u8]) -> Result<Self, String>;
}

/// A Rust type returned as the bytes of a variable-length result.
pub trait IntoWireBytes {
    fn into_wire(self) -> Vec<u8>;
}

impl<'a> FromWireBytes<'a> for &'a str {
    fn from_wire(bytes: &'a [u8]) -> Result<Self, String> {
        std::str::from_utf8(bytes).map_err(|e| format!("argument is not UTF-8: {e}"))
    }
}
impl<'a> FromWireBytes<'a> for String {
    fn from_wire(bytes: &'a [u8]) -> Result<Self, String> {
        <&str>::from_wire(bytes).map(str::to_string)
    }
}
impl<'a> FromWireBytes<'a> for &'a [u8] {
    fn from_wire(bytes: &'a [u8]) -> Result<Self, String> {
        Ok(bytes)
    }
}
impl<'a> FromWireBytes<'a> for Vec<u8> {
    fn from_wire(bytes: &'a [u8]) -> Result<Self, String> {
        Ok(bytes.to_vec())
    }
}
impl IntoWireBytes for String {
    fn into_wire(self) -> Vec<u8> {
        self.into_bytes()
    }
}
impl IntoWireBytes for &str {
    fn into_wire(self) -> Vec<u8> {
        self.as_bytes().to_vec()
    }
}
impl IntoWireBytes for Vec<u8> {
    fn into_wire(self) -> Vec<u8> {
        self
    }
}
impl IntoWireBytes for &[u8] {
    fn into_wire(self) -> Vec<u8> {
        self.to_vec()
    }
}

macro_rules! packed_array {
    ($($t:ty),*) => {$(
        impl<'a> FromWireBytes<'a> for Vec<$t> {
            fn from_wire(bytes: &'a [u8]) -> Result<Self, String> {
                const N: usize = std::mem::size_of::<$t>();
                if bytes.len() % N != 0 {
                    return Err(format!("{} bytes are not whole {}-byte elements", bytes.len(), N));
                }
                Ok(bytes
                    .chunks_exact(N)
                    .map(|c| <$t>::from_le_bytes(c.try_into().expect("N bytes")))
                    .collect())
            }
        }
        impl IntoWireBytes for Vec<$t> {
            fn into_wire(self) -> Vec<u8> {
                self.iter().flat_map(|v| v.to_le_bytes()).collect()
            }
        }
    )*};
}
packed_array!(i16, i32, i64, f32, f64);

impl<'a> FromWireBytes<'a> for Vec<bool> {
    fn from_wire(bytes: &'a [u8]) -> Result<Self, String> {
        Ok(bytes.iter().map(|b| *b != 0).collect())
    }
}
impl IntoWireBytes for Vec<bool> {
    fn into_wire(self) -> Vec<u8> {
        self.into_iter().map(u8::from).collect()
    }
}

#[cfg(feature = "json")]
impl<'a> FromWireBytes<'a> for serde_json::Value {
    fn from_wire(bytes: &'a [u8]) -> Result<Self, String> {
        serde_json::from_slice(bytes).map_err(|e| format!("argument is not JSON: {e}"))
    }
}
#[cfg(feature = "json")]
impl IntoWireBytes for serde_json::Value {
    fn into_wire(self) -> Vec<u8> {
        self.to_string().into_bytes()
    }
}

/// A variable-length result, leaked into a buffer the host releases with `plwasm_free`:
/// returns `(ptr << 32) | len`.
pub trait WireResult {
    fn into_packed(self) -> i64;
}

impl<T: IntoWireBytes> WireResult for T {
    fn into_packed(self) -> i64 {
        pack(&self.into_wire())
    }
}

/// Any deserializable type from a jsonb argument.
#[cfg(feature = "json")]
pub fn json_arg<T: serde::de::DeserializeOwned>(bytes: &[u8], name: &str) -> T {
    match serde_json::from_slice(bytes) {
        Ok(value) => value,
        // 22023 invalid_parameter_value: the value is valid JSON of the SQL type, but not of the
        // shape the Rust parameter needs.
        Err(e) => crate::host::raise_error_code(
            "22023",
            &format!(
                "argument {name} does not fit the Rust type {}: {e}",
                std::any::type_name::<T>()
            ),
        ),
    }
}

/// Any serializable value as a jsonb result.
#[cfg(feature = "json")]
pub fn json_result<T: serde::Serialize>(value: &T) -> i64 {
    match serde_json::to_vec(value) {
        Ok(bytes) => pack(&bytes),
        Err(e) => crate::host::raise_error(&format!("result cannot be serialized to JSON: {e}")),
    }
}

/// A `#[trigger]` function's result as the host reads it; an `Err` is an ERROR.
#[cfg(feature = "json")]
pub fn trigger_result<T: crate::trigger::IntoTriggerResult>(result: T) -> i64 {
    match result.into_json() {
        Ok(bytes) => pack(&bytes),
        Err(message) => crate::host::raise_error(&message),
    }
}

/// Copy `bytes` into a fresh buffer the host releases with `plwasm_free`; `(ptr << 32) | len`.
fn pack(bytes: &[u8]) -> i64 {
    let len = bytes.len();
    let layout = std::alloc::Layout::from_size_align(len.max(1), 8).expect("a valid result layout");
    // SAFETY: a non-zero-sized layout; `plwasm_free(ptr, len)` deallocates with the same one.
    let ptr = unsafe {
        let ptr = std::alloc::alloc(layout);
        if ptr.is_null() {
            std::alloc::handle_alloc_error(layout);
        }
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), ptr, len);
        ptr
    };
    // wasm32 addresses fit in 32 bits.
    ((ptr as usize as u64) << 32 | len as u64) as i64
}

/// The bytes of an argument `(ptr, len)` (empty when `len` is 0, whatever `ptr` is).
///
/// # Safety
/// `ptr..ptr+len` is memory the host wrote for this call.
pub unsafe fn arg_bytes<'a>(ptr: i32, len: i32) -> &'a [u8] {
    if len <= 0 {
        &[]
    } else {
        // SAFETY: caller's contract.
        unsafe { std::slice::from_raw_parts(ptr as usize as *const u8, len as usize) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scalars_round_trip() {
        assert_eq!(i16::from_wire(-5i16.into_wire()), -5);
        assert!(bool::from_wire(7));
        assert_eq!(true.into_wire(), 1);
    }

    #[test]
    fn text_and_bytes() {
        assert_eq!(<&str>::from_wire("héllo".as_bytes()), Ok("héllo"));
        assert!(<&str>::from_wire(&[0xff]).is_err());
        assert_eq!(String::from("x").into_wire(), b"x");
        assert_eq!(<Vec<u8>>::from_wire(&[1, 2]), Ok(vec![1, 2]));
    }

    #[test]
    fn packed_arrays_are_little_endian() {
        let v = vec![1.5f64, -2.0];
        let bytes = v.clone().into_wire();
        assert_eq!(bytes.len(), 16);
        assert_eq!(<Vec<f64>>::from_wire(&bytes), Ok(v));
        assert!(<Vec<i32>>::from_wire(&[1, 2, 3]).is_err());
        assert_eq!(<Vec<bool>>::from_wire(&[1, 0]), Ok(vec![true, false]));
        assert_eq!(vec![258i16].into_wire(), vec![2, 1]);
    }

    #[cfg(feature = "json")]
    #[test]
    fn json() {
        let v = serde_json::Value::from_wire(br#"{"a": [1]}"#).unwrap();
        assert_eq!(v["a"][0], 1);
        assert_eq!(v.into_wire(), br#"{"a":[1]}"#);
    }
}

/// A Rust value that can be one row of a set-returning function.
pub trait EmitRow {
    fn emit(self);
}

macro_rules! emit_scalar {
    ($($t:ty => $variant:ident as $wire:ty),*) => {$(
        impl EmitRow for $t {
            fn emit(self) {
                crate::host::emit(crate::host::Row::$variant(self as $wire));
            }
        }
    )*};
}
emit_scalar!(i16 => I32 as i32, i32 => I32 as i32, i64 => I64 as i64, f32 => F32 as f32, f64 => F64 as f64);

impl EmitRow for bool {
    fn emit(self) {
        crate::host::emit(crate::host::Row::I32(self as i32));
    }
}

macro_rules! emit_bytes {
    ($($t:ty),*) => {$(
        impl EmitRow for $t {
            fn emit(self) {
                crate::host::emit(crate::host::Row::Bytes(&IntoWireBytes::into_wire(self)));
            }
        }
    )*};
}
emit_bytes!(
    String,
    &str,
    Vec<u8>,
    &[u8],
    Vec<i16>,
    Vec<i32>,
    Vec<i64>,
    Vec<f32>,
    Vec<f64>,
    Vec<bool>
);
#[cfg(feature = "json")]
emit_bytes!(serde_json::Value);

impl<T: EmitRow> EmitRow for Option<T> {
    fn emit(self) {
        match self {
            Some(v) => v.emit(),
            None => crate::host::emit(crate::host::Row::Null),
        }
    }
}

/// Emit any serializable value as one jsonb row.
#[cfg(feature = "json")]
pub fn emit_json<T: serde::Serialize>(value: &T) {
    match serde_json::to_vec(value) {
        Ok(bytes) => crate::host::emit(crate::host::Row::Bytes(&bytes)),
        Err(e) => crate::host::raise_error(&format!("row cannot be serialized to JSON: {e}")),
    }
}
