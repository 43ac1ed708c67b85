//! jsonb in and out through serde structs, written with the plwasm Rust SDK.

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
}
