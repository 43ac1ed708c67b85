//! The rows a set-returning call emits (`plwasm.emit_*`), kept by Postgres while the call runs:
//! a tuplestore in the memory context "plwasm SETOF rows" (visible in
//! `pg_backend_memory_contexts`), in memory up to `work_mem`, then in temporary files
//! (`temp_file_limit` applies). After the call the handler reads them back and converts them
//! to the function's result type ([`Spool::for_each`]). A set of a native scalar type (SETOF
//! int, float8, bool, ...) skips that: each value goes into the call's result tuplestore as it
//! is emitted ([`Spool::direct`]).
//!
//! Each row is stored as one `bytea`: a tag byte ([`Row`]'s kind) and the value's bytes.
//!
//! This is the one place where a host function calls Postgres while wasm frames are live:
//! `tuplestore_putvalues` may raise an ERROR (temp_file_limit, disk full, out of memory). pgrx
//! turns it into a Rust panic at the FFI boundary, Wasmer carries the panic across the wasm
//! frames, and the call handler's guard raises the original ERROR once the call has unwound;
//! the instance is discarded on the way (`instance::DiscardOnUnwind`).

use pgrx::{pg_sys, FromDatum};
use wasmer::Value;

use crate::abi::{SqlScalar, WasmType};

/// One emitted row, as read back from the spool.
#[derive(Debug, Clone, PartialEq)]
pub enum Row<'a> {
    Null,
    Value(Value),
    Bytes(&'a [u8]),
}

const TAG_NULL: u8 = 0;
const TAG_I32: u8 = 1;
const TAG_I64: u8 = 2;
const TAG_F32: u8 = 3;
const TAG_F64: u8 = 4;
const TAG_BYTES: u8 = 5;

/// Largest value of one row (Postgres's own limit for a palloc'd value, less the header).
pub const MAX_ROW_BYTES: usize = 0x3fff_ffff - 16;

/// A call's rows. Created by the handler before a set-returning call, dropped after it.
pub struct Spool {
    /// The spool's own memory context, tuplestore and row descriptor; all null for a direct
    /// spool, which keeps nothing of its own.
    context: pg_sys::MemoryContext,
    store: *mut pg_sys::Tuplestorestate,
    desc: pg_sys::TupleDesc,
    /// For a set of a native scalar type: rows go straight into the call's result tuplestore.
    direct: Option<Direct>,
}

/// Rows of a set of a native scalar type (SETOF int, float8, ...): each emitted value is
/// converted as it is emitted and put into the result tuplestore, with nothing in between (see
/// [`Spool::direct`]). The first row that does not fit the type stops the filling; the handler
/// reports it after the call, as for a spooled row.
struct Direct {
    scalar: SqlScalar,
    store: *mut pg_sys::Tuplestorestate,
    desc: pg_sys::TupleDesc,
    misfit: Option<Misfit>,
}

/// A row a direct spool could not take.
#[derive(Debug, Clone, PartialEq)]
pub enum Misfit {
    /// A value of another wasm type, or out of the SQL type's range.
    Value(Value),
    /// `emit_bytes` of this many bytes.
    Bytes(usize),
}

impl Spool {
    /// An empty spool in a new memory context under the current one.
    pub fn new() -> Self {
        // SAFETY: plain memory-context and tuplestore set-up on the backend thread.
        unsafe {
            let context = pg_sys::AllocSetContextCreateExtended(
                pg_sys::CurrentMemoryContext,
                c"plwasm SETOF rows".as_ptr(),
                pg_sys::ALLOCSET_DEFAULT_MINSIZE as usize,
                pg_sys::ALLOCSET_DEFAULT_INITSIZE as usize,
                pg_sys::ALLOCSET_DEFAULT_MAXSIZE as usize,
            );
            let old = pg_sys::MemoryContextSwitchTo(context);
            let desc = pg_sys::CreateTemplateTupleDesc(1);
            pg_sys::TupleDescInitEntry(desc, 1, c"row".as_ptr(), pg_sys::BYTEAOID, -1, 0);
            let store = pg_sys::tuplestore_begin_heap(false, false, pg_sys::work_mem);
            pg_sys::MemoryContextSwitchTo(old);
            Self {
                context,
                store,
                desc,
                direct: None,
            }
        }
    }

    /// A spool for a set of `scalar`'s SQL type whose rows go straight into `store` (the call's
    /// result, rows of `desc`: one column of that type).
    ///
    /// # Safety
    /// `store` and `desc` outlive the spool (they belong to the query); `desc` has one column
    /// of `scalar`'s SQL type.
    pub unsafe fn direct(
        scalar: SqlScalar,
        store: *mut pg_sys::Tuplestorestate,
        desc: pg_sys::TupleDesc,
    ) -> Self {
        Self {
            context: std::ptr::null_mut(),
            store: std::ptr::null_mut(),
            desc: std::ptr::null_mut(),
            direct: Some(Direct {
                scalar,
                store,
                desc,
                misfit: None,
            }),
        }
    }

    /// For a direct spool: the first row that did not fit (`Some(None)`: all did); None for a
    /// spool whose rows are read back with [`Self::for_each`].
    pub fn direct_misfit(&self) -> Option<Option<Misfit>> {
        self.direct.as_ref().map(|direct| direct.misfit.clone())
    }

    /// Append a NULL row or a scalar value.
    pub fn put_value(&mut self, value: Option<&Value>) {
        if let Some(direct) = &mut self.direct {
            direct.put(value);
            return;
        }
        let mut buf = [0u8; 9];
        let len = match value {
            None => {
                buf[0] = TAG_NULL;
                1
            }
            Some(Value::I32(v)) => encode(&mut buf, TAG_I32, &v.to_le_bytes()),
            Some(Value::I64(v)) => encode(&mut buf, TAG_I64, &v.to_le_bytes()),
            Some(Value::F32(v)) => encode(&mut buf, TAG_F32, &v.to_le_bytes()),
            Some(Value::F64(v)) => encode(&mut buf, TAG_F64, &v.to_le_bytes()),
            // Host functions only ever pass the four number types above.
            Some(_) => {
                buf[0] = TAG_NULL;
                1
            }
        };
        self.put(len, |row| {
            row.copy_from_slice(&buf[..len]);
            true
        });
    }

    /// Append a row of `len` bytes that `fill` writes (false: nothing is stored).
    pub fn put_bytes(&mut self, len: usize, fill: impl FnOnce(&mut [u8]) -> bool) -> bool {
        if let Some(direct) = &mut self.direct {
            direct.misfit.get_or_insert(Misfit::Bytes(len));
            return false;
        }
        self.put(len + 1, |row| {
            row[0] = TAG_BYTES;
            fill(&mut row[1..])
        })
    }

    /// Append one stored row of `len` bytes (tag included) written by `fill`.
    fn put(&mut self, len: usize, fill: impl FnOnce(&mut [u8]) -> bool) -> bool {
        let header = pg_sys::VARHDRSZ;
        // SAFETY: a bytea of `len` bytes palloc'd in the spool's context, filled, handed to the
        // tuplestore (which copies it) and freed. Errors here are Postgres ERRORs (see the
        // module's docs for how they cross the wasm frames).
        unsafe {
            let varlena = pg_sys::MemoryContextAlloc(self.context, header + len) as *mut u8;
            let payload = std::slice::from_raw_parts_mut(varlena.add(header), len);
            if !fill(payload) {
                pg_sys::pfree(varlena.cast());
                return false;
            }
            pgrx::set_varsize_4b(varlena.cast(), (header + len) as i32);
            let mut values = [pg_sys::Datum::from(varlena)];
            let mut nulls = [false];
            let old = pg_sys::MemoryContextSwitchTo(self.context);
            pg_sys::tuplestore_putvalues(
                self.store,
                self.desc,
                values.as_mut_ptr(),
                nulls.as_mut_ptr(),
            );
            pg_sys::MemoryContextSwitchTo(old);
            pg_sys::pfree(varlena.cast());
        }
        true
    }

    /// Call `f` with each row, in the order they were emitted (none for a direct spool: its
    /// rows are in the result already).
    pub fn for_each(&mut self, mut f: impl FnMut(Row<'_>)) {
        if self.store.is_null() {
            return;
        }
        // SAFETY: reads back what `put` wrote; each row's bytes stay valid until the next fetch.
        unsafe {
            let slot = pg_sys::MakeSingleTupleTableSlot(self.desc, &pg_sys::TTSOpsMinimalTuple);
            while pg_sys::tuplestore_gettupleslot(self.store, true, false, slot) {
                let mut isnull = false;
                let datum = pg_sys::slot_getattr(slot, 1, &mut isnull);
                let bytes = <&[u8]>::from_datum(datum, isnull).unwrap_or_default();
                f(decode(bytes));
            }
            pg_sys::ExecDropSingleTupleTableSlot(slot);
        }
    }
}

impl Direct {
    fn put(&mut self, value: Option<&Value>) {
        if self.misfit.is_some() {
            return;
        }
        let (mut datum, mut null) = match value {
            None => (pg_sys::Datum::from(0usize), true),
            Some(value) if WasmType::from(value.ty()) == self.scalar.wasm_type() => {
                match self.scalar.from_wasm(value) {
                    Ok(datum) => (datum, false),
                    Err(_) => {
                        self.misfit = Some(Misfit::Value(value.clone()));
                        return;
                    }
                }
            }
            Some(value) => {
                self.misfit = Some(Misfit::Value(value.clone()));
                return;
            }
        };
        // SAFETY: a by-value datum of the column's type (or NULL) put into the query's
        // tuplestore, which copies it in its own memory context. An ERROR here (temp_file_limit,
        // out of memory) crosses the wasm frames as described in the module docs.
        unsafe { pg_sys::tuplestore_putvalues(self.store, self.desc, &mut datum, &mut null) };
    }
}

impl Default for Spool {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for Spool {
    fn drop(&mut self) {
        // While an ERROR unwinds, Postgres is mid-abort: calling into it from here could raise
        // again, and a panic in a destructor during unwinding aborts the process. The
        // transaction's abort frees the context (a child of the call's) and closes the
        // tuplestore's temporary files through its resource owner.
        // A direct spool owns nothing (its rows belong to the query's result set).
        if std::thread::panicking() || self.store.is_null() {
            return;
        }
        // SAFETY: frees what `new` made (temporary files go with the tuplestore).
        unsafe {
            pg_sys::tuplestore_end(self.store);
            pg_sys::MemoryContextDelete(self.context);
        }
    }
}

fn encode(buf: &mut [u8; 9], tag: u8, bytes: &[u8]) -> usize {
    buf[0] = tag;
    buf[1..=bytes.len()].copy_from_slice(bytes);
    bytes.len() + 1
}

/// A stored row back as a [`Row`]; anything malformed reads as NULL.
fn decode(stored: &[u8]) -> Row<'_> {
    let Some((&tag, rest)) = stored.split_first() else {
        return Row::Null;
    };
    let array = |n: usize| rest.get(..n);
    match tag {
        TAG_I32 => array(4)
            .and_then(|b| b.try_into().ok())
            .map_or(Row::Null, |b| Row::Value(Value::I32(i32::from_le_bytes(b)))),
        TAG_I64 => array(8)
            .and_then(|b| b.try_into().ok())
            .map_or(Row::Null, |b| Row::Value(Value::I64(i64::from_le_bytes(b)))),
        TAG_F32 => array(4)
            .and_then(|b| b.try_into().ok())
            .map_or(Row::Null, |b| Row::Value(Value::F32(f32::from_le_bytes(b)))),
        TAG_F64 => array(8)
            .and_then(|b| b.try_into().ok())
            .map_or(Row::Null, |b| Row::Value(Value::F64(f64::from_le_bytes(b)))),
        TAG_BYTES => Row::Bytes(rest),
        _ => Row::Null,
    }
}

/// Where the host API's `emit_*` functions put rows during a call (set by the handler around a
/// set-returning call; None otherwise, and then emitted rows are ignored).
#[derive(Clone, Copy, Debug)]
pub struct SpoolPtr(pub *mut Spool);

// SAFETY: used only on the backend's thread, while the handler keeps the Spool alive.
unsafe impl Send for SpoolPtr {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_round_trip_through_their_encoding() {
        let mut buf = [0u8; 9];
        let n = encode(&mut buf, TAG_I64, &(-5i64).to_le_bytes());
        assert_eq!(decode(&buf[..n]), Row::Value(Value::I64(-5)));
        let n = encode(&mut buf, TAG_F32, &1.5f32.to_le_bytes());
        assert_eq!(decode(&buf[..n]), Row::Value(Value::F32(1.5)));
        assert_eq!(decode(&[TAG_BYTES, b'h', b'i']), Row::Bytes(b"hi"));
        assert_eq!(decode(&[TAG_BYTES]), Row::Bytes(b""));
        assert_eq!(decode(&[TAG_NULL]), Row::Null);
        // Truncated or unknown rows read as NULL rather than panicking.
        assert_eq!(decode(&[TAG_I32, 1]), Row::Null);
        assert_eq!(decode(&[99]), Row::Null);
        assert_eq!(decode(&[]), Row::Null);
    }
}
