//! jsonb in and out through serde structs, written with the plwasm Rust SDK.

use std::collections::BTreeMap;

use plwasm_udf::udf;
use serde::{Deserialize, Serialize};

/// An order as stored in a jsonb column.
#[derive(Debug, Deserialize, Serialize)]
pub struct Order {
    pub id: i64,
    pub items: Vec<Item>,
    #[serde(default)]
    pub coupon: Option<String>,
}

#[derive(Debug, Deserialize, Serialize)]
pub struct Item {
    pub sku: String,
    pub qty: u32,
    pub unit_price: f64,
}

/// What `order_summary` returns (as jsonb).
#[derive(Debug, PartialEq, Serialize)]
pub struct Summary {
    pub id: i64,
    pub lines: usize,
    pub units: u32,
    pub total: f64,
}

/// Summarise an order; coupon "TENOFF" takes 10 % off. A jsonb argument that does not match
/// `Order` is an ERROR naming the problem.
#[udf(immutable)]
fn order_summary(order: Order) -> Summary {
    let gross: f64 = order
        .items
        .iter()
        .map(|i| i.qty as f64 * i.unit_price)
        .sum();
    let total = if order.coupon.as_deref() == Some("TENOFF") {
        gross * 0.9
    } else {
        gross
    };
    Summary {
        id: order.id,
        lines: order.items.len(),
        units: order.items.iter().map(|i| i.qty).sum(),
        total: (total * 100.0).round() / 100.0,
    }
}

/// Lower-case and de-duplicate the "tags" array of any JSON object (order kept).
#[udf(immutable)]
fn normalize_tags(mut doc: serde_json::Value) -> serde_json::Value {
    if let Some(tags) = doc.get_mut("tags").and_then(|t| t.as_array_mut()) {
        let mut seen = Vec::new();
        for tag in tags.iter().filter_map(|t| t.as_str()) {
            let tag = tag.to_lowercase();
            if !seen.contains(&tag) {
                seen.push(tag);
            }
        }
        *tags = seen.into_iter().map(serde_json::Value::from).collect();
    }
    doc
}

/// One row of `order_lines`.
#[derive(Debug, PartialEq, Serialize)]
pub struct Line {
    pub sku: String,
    pub qty: u32,
    pub amount: f64,
}

/// The order's lines as rows: `RETURNS TABLE (sku text, qty integer, amount numeric)`. Each
/// struct's fields are the columns; `amount` travels as a JSON number into numeric.
#[udf(immutable, table(sku = "text", qty = "integer", amount = "numeric"))]
fn order_lines(order: Order) -> impl Iterator<Item = Line> {
    order.items.into_iter().map(|i| Line {
        amount: (i.qty as f64 * i.unit_price * 100.0).round() / 100.0,
        sku: i.sku,
        qty: i.qty,
    })
}

/// What `order_total` returns: the composite type
/// `CREATE TYPE order_total AS (id bigint, units integer, total numeric)`, which must exist
/// before `wasm.create_functions` declares the function.
#[derive(Debug, PartialEq, Serialize)]
pub struct Total {
    pub id: i64,
    pub units: u32,
    pub total: f64,
}

/// The order's total as a row of a composite type (`returns = "order_total"`).
#[udf(immutable, returns = "order_total")]
fn order_total(order: Order) -> Total {
    let summary = order_summary(order);
    Total {
        id: summary.id,
        units: summary.units,
        total: summary.total,
    }
}

/// A numeric price with a percentage off, rounded to cents: numeric travels as a JSON number
/// (`#[sql("numeric")]`), here read as f64.
#[udf(immutable, returns = "numeric")]
fn discounted(#[sql("numeric")] price: f64, percent: i32) -> f64 {
    (price * (100 - percent) as f64).round() / 100.0
}

/// State transition of a `tally(text)` aggregate whose state is a jsonb object of counts:
///
/// ```sql
/// CREATE AGGREGATE tally(text) (sfunc = tally_accum, stype = jsonb, initcond = '{}');
/// ```
#[udf(immutable)]
fn tally_accum(mut counts: BTreeMap<String, i64>, value: &str) -> BTreeMap<String, i64> {
    *counts.entry(value.to_string()).or_default() += 1;
    counts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary() {
        let order: Order = serde_json::from_str(
            r#"{"id": 7, "items": [{"sku": "a", "qty": 2, "unit_price": 1.5}], "coupon": "TENOFF"}"#,
        )
        .unwrap();
        assert_eq!(
            order_summary(order),
            Summary {
                id: 7,
                lines: 1,
                units: 2,
                total: 2.7
            }
        );
    }

    #[test]
    fn lines_and_totals() {
        let order = || -> Order {
            serde_json::from_str(
                r#"{"id": 1, "items": [{"sku": "a", "qty": 3, "unit_price": 0.1}]}"#,
            )
            .unwrap()
        };
        assert_eq!(
            order_lines(order()).collect::<Vec<_>>(),
            vec![Line {
                sku: "a".into(),
                qty: 3,
                amount: 0.3
            }]
        );
        assert_eq!(order_total(order()).units, 3);
        assert_eq!(discounted(19.99, 10), 17.99);
        let counts = tally_accum(tally_accum(BTreeMap::new(), "a"), "a");
        assert_eq!(counts["a"], 2);
    }
}
