//! Read-only SQL from a function: [`query`] and [`Cursor`].
//!
//! ```ignore
//! #[derive(serde::Deserialize)]
//! struct Price { price: f64 }
//!
//! /// The price of a product, NULL if there is none.
//! #[udf(stable)]
//! fn price_of(sku: &str) -> Option<f64> {
//!     let rows: Vec<Price> =
//!         plwasm_udf::query("SELECT price::float8 AS price FROM prices WHERE sku = $1", (sku,));
//!     rows.first().map(|p| p.price)
//! }
//! ```
//!
//! The module needs the `query` capability, which a superuser or a member of
//! `wasm_capabilities` gives it: `SELECT wasm.set_capabilities('mine', '{query}')`.
//!
//! - One `SELECT`, `VALUES` or `TABLE` statement; anything that writes is an ERROR (25006).
//! - It runs as the role calling the SQL function (its owner for `SECURITY DEFINER`), in the
//!   calling statement's snapshot for `STABLE` and `IMMUTABLE` functions, or in a new one that
//!   sees the transaction's changes so far for `VOLATILE` ones (as PL/pgSQL does).
//! - Parameters are anything that serializes to a JSON array: a tuple `(a, b)` for `$1, $2`, a
//!   `Vec`, or `()` for none. Each is typed by its JSON kind: `null` a NULL text, booleans
//!   `boolean`, integers `bigint`, other numbers `numeric`, strings `text`, arrays and objects
//!   `jsonb`. Cast in SQL when a column needs another type (`$1::date`, `$2::int`).
//! - Rows are JSON objects keyed by column name (what `row_to_json` makes), deserialized into `R`
//!   (a struct with the columns it needs, or `serde_json::Value`).
//! - A query's ERROR (a syntax error, division by zero, permission denied, a cancel) ends the
//!   call: it is raised in SQL with its own SQLSTATE. These functions only return on success.

use serde::de::DeserializeOwned;
use serde::Serialize;

/// Run one read-only statement and return all its rows (see the module docs). The result must
/// fit the module's memory cap (`wasm.max_memory`); read larger ones with a [`Cursor`].
pub fn query<R: DeserializeOwned>(sql: &str, params: impl Serialize) -> Vec<R> {
    let params = params_json(&params);
    let json = host::query(sql, &params);
    rows(&json)
}

/// A cursor over one read-only statement, read a batch of rows at a time (see the module docs).
/// Closed when dropped (and in any case when the call ends).
pub struct Cursor<R> {
    handle: i32,
    batch: i32,
    rows: std::vec::IntoIter<R>,
    done: bool,
}

impl<R: DeserializeOwned> Cursor<R> {
    /// Open a cursor; rows are fetched 100 at a time.
    pub fn open(sql: &str, params: impl Serialize) -> Self {
        let params = params_json(&params);
        Self {
            handle: host::cursor_open(sql, &params),
            batch: 100,
            rows: Vec::new().into_iter(),
            done: false,
        }
    }

    /// Fetch `rows` rows at a time (1 to 100000).
    pub fn batch(mut self, rows: i32) -> Self {
        self.batch = rows;
        self
    }
}

impl<R: DeserializeOwned> Iterator for Cursor<R> {
    type Item = R;

    fn next(&mut self) -> Option<R> {
        loop {
            if let Some(row) = self.rows.next() {
                return Some(row);
            }
            if self.done {
                return None;
            }
            let batch: Vec<R> = rows(&host::cursor_fetch(self.handle, self.batch));
            self.done = batch.len() < self.batch as usize;
            self.rows = batch.into_iter();
        }
    }
}

impl<R> Drop for Cursor<R> {
    fn drop(&mut self) {
        host::cursor_close(self.handle);
    }
}

fn params_json(params: &impl Serialize) -> Vec<u8> {
    match serde_json::to_vec(params) {
        Ok(json) => json,
        Err(e) => crate::host::raise_error_code(
            "22023",
            &format!("query parameters cannot be serialized to JSON: {e}"),
        ),
    }
}

fn rows<R: DeserializeOwned>(json: &[u8]) -> Vec<R> {
    match serde_json::from_slice(json) {
        Ok(rows) => rows,
        // 22023 invalid_parameter_value, as for arguments that do not fit their Rust type.
        Err(e) => crate::host::raise_error_code(
            "22023",
            &format!(
                "query rows do not fit the Rust type {}: {e}",
                std::any::type_name::<R>()
            ),
        ),
    }
}

#[cfg(target_arch = "wasm32")]
mod host {
    mod imports {
        #[link(wasm_import_module = "plwasm")]
        unsafe extern "C" {
            pub fn query(sql_ptr: i32, sql_len: i32, params_ptr: i32, params_len: i32) -> i32;
            pub fn query_read(ptr: i32, len: i32) -> i32;
            pub fn cursor_open(sql_ptr: i32, sql_len: i32, params_ptr: i32, params_len: i32)
                -> i32;
            pub fn cursor_fetch(handle: i32, rows: i32) -> i32;
            pub fn cursor_close(handle: i32);
        }
    }

    /// What the last query or fetch left for `query_read`.
    fn take(len: i32) -> Vec<u8> {
        let mut buf = vec![0u8; len.max(0) as usize];
        // SAFETY: the host writes at most `len` bytes into our buffer.
        let n = unsafe { imports::query_read(buf.as_mut_ptr() as i32, len) };
        buf.truncate(n.max(0) as usize);
        buf
    }

    pub fn query(sql: &str, params: &[u8]) -> Vec<u8> {
        // SAFETY: the host reads both strings; it traps the call on any error.
        let len = unsafe {
            imports::query(
                sql.as_ptr() as i32,
                sql.len() as i32,
                params.as_ptr() as i32,
                params.len() as i32,
            )
        };
        take(len)
    }

    pub fn cursor_open(sql: &str, params: &[u8]) -> i32 {
        // SAFETY: as in `query`.
        unsafe {
            imports::cursor_open(
                sql.as_ptr() as i32,
                sql.len() as i32,
                params.as_ptr() as i32,
                params.len() as i32,
            )
        }
    }

    pub fn cursor_fetch(handle: i32, rows: i32) -> Vec<u8> {
        // SAFETY: a host import; it traps the call on any error.
        take(unsafe { imports::cursor_fetch(handle, rows) })
    }

    pub fn cursor_close(handle: i32) {
        // SAFETY: a host import.
        unsafe { imports::cursor_close(handle) }
    }
}

/// Natively (`cargo test`), queries are answered by the handler set with
/// [`crate::testing::on_query`].
#[cfg(not(target_arch = "wasm32"))]
mod host {
    use crate::host::native::QUERY_HANDLER;

    fn answer(sql: &str, params: &[u8]) -> Vec<u8> {
        let params: serde_json::Value = serde_json::from_slice(params).unwrap_or_default();
        QUERY_HANDLER.with(|h| match &*h.borrow() {
            Some(handler) => serde_json::to_vec(&handler(sql, &params)).unwrap_or_default(),
            None => panic!(
                "plwasm_udf::query natively: set a handler with plwasm_udf::testing::on_query"
            ),
        })
    }

    pub fn query(sql: &str, params: &[u8]) -> Vec<u8> {
        answer(sql, params)
    }

    /// Natively a cursor is the whole answer, given as one batch.
    pub fn cursor_open(sql: &str, params: &[u8]) -> i32 {
        let rows = answer(sql, params);
        crate::host::native::CURSORS.with(|c| {
            let mut cursors = c.borrow_mut();
            cursors.push(Some(rows));
            cursors.len() as i32 - 1
        })
    }

    pub fn cursor_fetch(handle: i32, _rows: i32) -> Vec<u8> {
        crate::host::native::CURSORS.with(|c| {
            c.borrow_mut()
                .get_mut(handle as usize)
                .and_then(|slot| slot.as_mut().map(std::mem::take))
                .filter(|rows| !rows.is_empty())
                .unwrap_or_else(|| b"[]".to_vec())
        })
    }

    pub fn cursor_close(handle: i32) {
        crate::host::native::CURSORS.with(|c| {
            if let Some(slot) = c.borrow_mut().get_mut(handle as usize) {
                *slot = None;
            }
        })
    }
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug, PartialEq)]
    struct Row {
        n: i64,
    }

    #[test]
    fn queries_and_cursors_natively() {
        crate::testing::on_query(|sql, params| {
            assert_eq!(sql, "SELECT $1 AS n");
            serde_json::json!([{"n": params[0]}, {"n": 2}])
        });
        let rows: Vec<Row> = query("SELECT $1 AS n", (7,));
        assert_eq!(rows, vec![Row { n: 7 }, Row { n: 2 }]);
        let cursor: Cursor<Row> = Cursor::open("SELECT $1 AS n", [1]).batch(5);
        assert_eq!(cursor.map(|r| r.n).collect::<Vec<_>>(), vec![1, 2]);
    }
}
