//! Trigger functions: `#[trigger]` on `fn f(event: TriggerEvent<Row>) -> TriggerResult<Row>`.
//!
//! ```ignore
//! use plwasm_udf::trigger::{TriggerEvent, TriggerResult};
//! use plwasm_udf::trigger;
//!
//! #[derive(serde::Serialize, serde::Deserialize)]
//! struct Customer { email: String }
//!
//! /// Lower-cases e-mail addresses.
//! #[trigger]
//! fn normalize_email(event: TriggerEvent<Customer>) -> TriggerResult<Customer> {
//!     match event.new {
//!         Some(mut row) => { row.email = row.email.to_lowercase(); TriggerResult::Row(row) }
//!         None => TriggerResult::Unchanged,
//!     }
//! }
//! ```
//!
//! `wasm.create_functions` declares it as `normalize_email() RETURNS trigger`; attach it with
//! `CREATE TRIGGER ... EXECUTE FUNCTION normalize_email()`.
//!
//! The row type only needs the columns the trigger uses: serde ignores the others when reading
//! the row, and a [`TriggerResult::Row`] changes only the columns it has (the others keep
//! their values). Use `serde_json::Value` (or a map) for rows of any table.

use serde::{Deserialize, Serialize};

/// When the trigger fires.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
pub enum When {
    #[serde(rename = "BEFORE")]
    Before,
    #[serde(rename = "AFTER")]
    After,
    #[serde(rename = "INSTEAD OF")]
    InsteadOf,
}

/// Whether the trigger fires for each row or once per statement.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
pub enum Level {
    #[serde(rename = "ROW")]
    Row,
    #[serde(rename = "STATEMENT")]
    Statement,
}

/// The operation that fired the trigger.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
pub enum Operation {
    #[serde(rename = "INSERT")]
    Insert,
    #[serde(rename = "UPDATE")]
    Update,
    #[serde(rename = "DELETE")]
    Delete,
    #[serde(rename = "TRUNCATE")]
    Truncate,
}

/// What a trigger function receives (`docs/abi.md`, "Triggers").
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct TriggerEvent<R> {
    /// The trigger's name.
    pub name: String,
    pub when: When,
    pub level: Level,
    /// The operation (`event` in the JSON).
    #[serde(rename = "event")]
    pub operation: Operation,
    /// The table's (or view's) schema and name.
    pub schema: String,
    pub table: String,
    /// The arguments of `CREATE TRIGGER ... EXECUTE FUNCTION f('a', 'b')`.
    pub args: Vec<String>,
    /// The row before the change (UPDATE and DELETE row triggers).
    pub old: Option<R>,
    /// The row after the change (INSERT and UPDATE row triggers).
    pub new: Option<R>,
}

/// What a BEFORE or INSTEAD OF row trigger tells Postgres to do. Postgres ignores what AFTER
/// and statement-level triggers return.
#[derive(Clone, Debug, PartialEq)]
pub enum TriggerResult<R> {
    /// Go on with the row as it is (NEW for INSERT and UPDATE, OLD for DELETE).
    Unchanged,
    /// Skip this row's operation (`RETURN NULL` in PL/pgSQL).
    Skip,
    /// Go on with this row: its columns replace the row's; columns it does not have keep their
    /// values. It must serialize to a JSON object whose keys are column names.
    Row(R),
}

/// What a `#[trigger]` function may return: a [`TriggerResult`], `()` (unchanged), or a
/// `Result` of either whose `Err` is an ERROR.
pub trait IntoTriggerResult {
    /// The result as the host reads it (JSON text).
    fn into_json(self) -> Result<Vec<u8>, String>;
}

impl<R: Serialize> IntoTriggerResult for TriggerResult<R> {
    fn into_json(self) -> Result<Vec<u8>, String> {
        match self {
            Self::Unchanged => Ok(b"\"unchanged\"".to_vec()),
            Self::Skip => Ok(b"\"skip\"".to_vec()),
            Self::Row(row) => match serde_json::to_value(&row) {
                Ok(value @ serde_json::Value::Object(_)) => Ok(value.to_string().into_bytes()),
                Ok(other) => Err(format!(
                    "TriggerResult::Row must serialize to a JSON object of columns, not {other}"
                )),
                Err(e) => Err(format!(
                    "the trigger's row cannot be serialized to JSON: {e}"
                )),
            },
        }
    }
}

impl IntoTriggerResult for () {
    fn into_json(self) -> Result<Vec<u8>, String> {
        Ok(b"\"unchanged\"".to_vec())
    }
}

impl<T: IntoTriggerResult, E: std::fmt::Display> IntoTriggerResult for Result<T, E> {
    fn into_json(self) -> Result<Vec<u8>, String> {
        match self {
            Ok(result) => result.into_json(),
            Err(e) => Err(e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct Order {
        id: i64,
        sku: String,
    }

    #[test]
    fn events_parse_with_partial_rows() {
        let json = r#"{"name":"t","when":"INSTEAD OF","level":"ROW","event":"UPDATE",
            "schema":"public","table":"orders","args":["a"],
            "old":{"id":1,"sku":"x","qty":2},"new":{"id":1,"sku":"Y","qty":3}}"#;
        let event: TriggerEvent<Order> = serde_json::from_str(json).unwrap();
        assert_eq!(event.when, When::InsteadOf);
        assert_eq!(event.operation, Operation::Update);
        assert_eq!(event.args, vec!["a".to_string()]);
        assert_eq!(event.new.unwrap().sku, "Y");
        let statement = r#"{"name":"t","when":"AFTER","level":"STATEMENT","event":"TRUNCATE",
            "schema":"s","table":"t","args":[],"old":null,"new":null}"#;
        let event: TriggerEvent<serde_json::Value> = serde_json::from_str(statement).unwrap();
        assert_eq!(event.level, Level::Statement);
        assert!(event.old.is_none() && event.new.is_none());
    }

    #[test]
    fn results_are_json() {
        let row = TriggerResult::Row(Order {
            id: 1,
            sku: "a".into(),
        });
        assert_eq!(row.into_json().unwrap(), br#"{"id":1,"sku":"a"}"#);
        assert_eq!(
            TriggerResult::<Order>::Skip.into_json().unwrap(),
            b"\"skip\""
        );
        assert_eq!(().into_json().unwrap(), b"\"unchanged\"");
        let failed: Result<TriggerResult<Order>, &str> = Err("no");
        assert_eq!(failed.into_json().unwrap_err(), "no");
        let not_a_row = TriggerResult::Row(5);
        assert!(not_a_row.into_json().unwrap_err().contains("JSON object"));
    }
}
