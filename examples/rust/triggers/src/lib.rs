//! Trigger functions written with the plwasm Rust SDK (`#[trigger]`).
//!
//! ```sql
//! SELECT wasm.load('triggers', pg_read_binary_file('/tmp/triggers.wasm'));
//! SELECT * FROM wasm.create_functions('triggers');
//! CREATE TRIGGER normalize BEFORE INSERT OR UPDATE ON customers
//!     FOR EACH ROW EXECUTE FUNCTION normalize_customer();
//! CREATE TRIGGER protect BEFORE UPDATE OR DELETE ON customers
//!     FOR EACH ROW EXECUTE FUNCTION protect_rows('status', 'locked');
//! CREATE TRIGGER audit AFTER INSERT OR UPDATE OR DELETE ON customers
//!     FOR EACH ROW EXECUTE FUNCTION audit_changes();
//! -- check_customer reads the customers table: the module needs the query capability.
//! SELECT wasm.set_capabilities('triggers', '{query}');
//! CREATE TRIGGER check_customer BEFORE INSERT OR UPDATE ON orders
//!     FOR EACH ROW EXECUTE FUNCTION check_customer();
//! ```

use plwasm_udf::trigger::{Operation, TriggerEvent, TriggerResult};
use plwasm_udf::{notice, trigger};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The columns of a customer row these triggers use; the table may have more (they are left as
/// they are).
#[derive(Debug, Deserialize, Serialize)]
pub struct Customer {
    pub email: String,
    pub name: String,
}

/// Tidies a customer before it is stored: trims both columns, lower-cases the e-mail address
/// and collapses runs of spaces in the name. An address without "@" is an ERROR.
#[trigger]
fn normalize_customer(event: TriggerEvent<Customer>) -> Result<TriggerResult<Customer>, String> {
    let Some(mut row) = event.new else {
        return Ok(TriggerResult::Unchanged);
    };
    row.email = row.email.trim().to_lowercase();
    if !row.email.contains('@') {
        return Err(format!("\"{}\" is not an e-mail address", row.email));
    }
    row.name = row.name.split_whitespace().collect::<Vec<_>>().join(" ");
    Ok(TriggerResult::Row(row))
}

/// `protect_rows('column', 'value')`: skips UPDATEs and DELETEs of rows whose `column` is
/// `value` (as text), so they stay as they are. Works on any table.
#[trigger]
fn protect_rows(event: TriggerEvent<Map<String, Value>>) -> Result<TriggerResult<Value>, String> {
    let [column, value] = event.args.as_slice() else {
        return Err("protect_rows takes two trigger arguments: a column and a value".into());
    };
    let Some(old) = &event.old else {
        return Ok(TriggerResult::Unchanged);
    };
    let current = match old.get(column) {
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
        None => return Err(format!("table {} has no column \"{column}\"", event.table)),
    };
    if &current == value {
        notice!(
            "{} of a row of {} skipped: its {column} is {value}",
            if event.operation == Operation::Delete {
                "DELETE"
            } else {
                "UPDATE"
            },
            event.table
        );
        return Ok(TriggerResult::Skip);
    }
    Ok(TriggerResult::Unchanged)
}

/// The columns whose values differ between two rows, as `column: old -> new`.
pub fn changes(old: &Map<String, Value>, new: &Map<String, Value>) -> Vec<String> {
    new.iter()
        .filter(|(column, value)| old.get(*column) != Some(*value))
        .map(|(column, value)| {
            let before = old.get(column).cloned().unwrap_or(Value::Null);
            format!("{column}: {before} -> {value}")
        })
        .collect()
}

/// An AFTER trigger that reports each change as a NOTICE (what changed, in which table).
#[trigger]
fn audit_changes(event: TriggerEvent<Map<String, Value>>) {
    let what = match (&event.old, &event.new) {
        (Some(old), Some(new)) => changes(old, new).join(", "),
        (None, Some(new)) => Value::Object(new.clone()).to_string(),
        (Some(old), None) => Value::Object(old.clone()).to_string(),
        (None, None) => String::from("(statement)"),
    };
    notice!(
        "audit {:?} on {}.{}: {what}",
        event.operation,
        event.schema,
        event.table
    );
}

/// The column of an order row `check_customer` uses.
#[derive(Debug, PartialEq, Deserialize, Serialize)]
pub struct Order {
    pub customer_id: i64,
}

/// What `check_customer` reads of a customer.
#[derive(Debug, Deserialize)]
struct CustomerStatus {
    status: Option<String>,
}

/// A BEFORE trigger on an orders table: refuses orders of customers that do not exist or whose
/// status is "locked". It reads `customers` with a query, as the role inserting the order.
#[trigger]
fn check_customer(event: TriggerEvent<Order>) -> Result<TriggerResult<Order>, String> {
    let Some(order) = &event.new else {
        return Ok(TriggerResult::Unchanged);
    };
    let found: Vec<CustomerStatus> = plwasm_udf::query(
        "SELECT status FROM customers WHERE id = $1",
        (order.customer_id,),
    );
    match found.first() {
        None => Err(format!("customer {} does not exist", order.customer_id)),
        Some(c) if c.status.as_deref() == Some("locked") => {
            Err(format!("customer {} is locked", order.customer_id))
        }
        Some(_) => Ok(TriggerResult::Unchanged),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event<R: serde::de::DeserializeOwned>(
        op: &str,
        old: Value,
        new: Value,
        args: &[&str],
    ) -> TriggerEvent<R> {
        serde_json::from_value(json!({
            "name": "t", "when": "BEFORE", "level": "ROW", "event": op, "schema": "public",
            "table": "customers", "args": args, "old": old, "new": new
        }))
        .unwrap()
    }

    #[test]
    fn normalizes_and_refuses() {
        let e = event(
            "INSERT",
            Value::Null,
            json!({"email": " Ann@Example.COM ", "name": " Ann   Lee ", "id": 1}),
            &[],
        );
        let TriggerResult::Row(row) = normalize_customer(e).unwrap() else {
            panic!("a row")
        };
        assert_eq!(
            (row.email.as_str(), row.name.as_str()),
            ("ann@example.com", "Ann Lee")
        );
        let bad = event(
            "INSERT",
            Value::Null,
            json!({"email": "nobody", "name": "x"}),
            &[],
        );
        assert!(normalize_customer(bad)
            .unwrap_err()
            .contains("not an e-mail"));
    }

    #[test]
    fn protects_matching_rows() {
        let locked = event(
            "DELETE",
            json!({"status": "locked"}),
            Value::Null,
            &["status", "locked"],
        );
        assert_eq!(protect_rows(locked), Ok(TriggerResult::Skip));
        let open = event(
            "DELETE",
            json!({"status": "open"}),
            Value::Null,
            &["status", "locked"],
        );
        assert_eq!(protect_rows(open), Ok(TriggerResult::Unchanged));
        let no_args = event("DELETE", json!({"status": "open"}), Value::Null, &[]);
        assert!(protect_rows(no_args).is_err());
    }

    #[test]
    fn checks_customers_with_a_query() {
        plwasm_udf::testing::on_query(|_, params| match params[0].as_i64() {
            Some(1) => json!([{"status": "open"}]),
            Some(2) => json!([{"status": "locked"}]),
            _ => json!([]),
        });
        let order = |id: i64| {
            event(
                "INSERT",
                Value::Null,
                json!({"customer_id": id, "qty": 1}),
                &[],
            )
        };
        assert_eq!(check_customer(order(1)).unwrap(), TriggerResult::Unchanged);
        assert!(check_customer(order(2)).unwrap_err().contains("locked"));
        assert!(check_customer(order(3))
            .unwrap_err()
            .contains("does not exist"));
    }

    #[test]
    fn changes_list_differing_columns() {
        let old = json!({"a": 1, "b": "x"});
        let new = json!({"a": 2, "b": "x"});
        assert_eq!(
            changes(old.as_object().unwrap(), new.as_object().unwrap()),
            vec!["a: 1 -> 2".to_string()]
        );
    }
}
