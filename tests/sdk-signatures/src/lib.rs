//! The SDK's signature catalogue (shared with the SDK's native test) as a wasm module.

include!("../../../udf-sdk/plwasm-udf/tests/common/signatures.rs");
