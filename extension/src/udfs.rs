//! Self-describing modules: the `plwasm.udfs` custom section the Rust SDK writes (one JSON object
//! per line: name, export, args [{name, type}], returns, setof, strict, volatility), and
//! `wasm.create_functions`, which declares SQL functions from it.
//!
//! The section comes from an untrusted module, so nothing from it reaches SQL unchecked: types and
//! volatility must be from fixed lists, names are quoted as identifiers, the body as a literal, and
//! each CREATE FUNCTION runs as the caller (needing CREATE on the schema) through the validator.

use pgrx::prelude::*;
use pgrx::spi::{quote_identifier, quote_literal};
use serde_json::Value;

use crate::catalog;
use crate::errors::{OrReport, PlWasmError};

/// The custom section's name.
pub const SECTION: &str = "plwasm.udfs";

/// SQL types a description may use (ABI v1 today).
const TYPES: &[&str] = &[
    "smallint",
    "integer",
    "bigint",
    "real",
    "double precision",
    "boolean",
    "text",
    "bytea",
    "json",
    "jsonb",
    "smallint[]",
    "integer[]",
    "bigint[]",
    "real[]",
    "double precision[]",
    "boolean[]",
    "void",
];

/// One function a module describes.
#[derive(Debug, PartialEq)]
pub struct Description {
    pub name: String,
    pub export: String,
    pub args: Vec<(String, String)>,
    pub returns: String,
    /// `RETURNS SETOF returns`.
    pub setof: bool,
    pub strict: bool,
    pub volatility: String,
}

/// The concatenated contents of every `plwasm.udfs` section of `bytes` (None if there is none).
pub fn section(bytes: &[u8]) -> Result<Option<Vec<u8>>, String> {
    use wasmer::wasmparser::{Parser, Payload};
    let mut found: Option<Vec<u8>> = None;
    for payload in Parser::new(0).parse_all(bytes) {
        if let Payload::CustomSection(reader) = payload.map_err(|e| e.to_string())? {
            if reader.name() == SECTION {
                found
                    .get_or_insert_with(Vec::new)
                    .extend_from_slice(reader.data());
            }
        }
    }
    Ok(found)
}

/// Parse and check the descriptions (one JSON object per line).
pub fn parse(section: &[u8]) -> Result<Vec<Description>, String> {
    let text = std::str::from_utf8(section).map_err(|e| format!("not UTF-8: {e}"))?;
    text.lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            let v: Value =
                serde_json::from_str(line).map_err(|e| format!("not JSON ({e}): {line}"))?;
            let string = |key: &str| {
                v.get(key)
                    .and_then(Value::as_str)
                    .map(str::to_string)
                    .ok_or_else(|| format!("missing \"{key}\" in {line}"))
            };
            let checked_type = |t: String| {
                if TYPES.contains(&t.as_str()) {
                    Ok(t)
                } else {
                    Err(format!("unsupported type \"{t}\" in {line}"))
                }
            };
            let args = v
                .get("args")
                .and_then(Value::as_array)
                .ok_or_else(|| format!("missing \"args\" in {line}"))?
                .iter()
                .map(|a| {
                    let name = a
                        .get("name")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string();
                    let ty = a
                        .get("type")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string();
                    Ok((name, checked_type(ty)?))
                })
                .collect::<Result<Vec<_>, String>>()?;
            let volatility = string("volatility")?;
            if !matches!(volatility.as_str(), "immutable" | "stable" | "volatile") {
                return Err(format!("unknown volatility \"{volatility}\" in {line}"));
            }
            let name = string("name")?;
            let export = string("export")?;
            if name.is_empty() || export.is_empty() || name.len() > 63 {
                return Err(format!("bad name or export in {line}"));
            }
            Ok(Description {
                name,
                export,
                args,
                returns: checked_type(string("returns")?)?,
                setof: v.get("setof").and_then(Value::as_bool).unwrap_or(false),
                strict: v.get("strict").and_then(Value::as_bool).unwrap_or(true),
                volatility,
            })
        })
        .collect()
}

/// The CREATE FUNCTION statement for one description.
pub fn create_statement(module: &str, schema: &str, d: &Description, replace: bool) -> String {
    let args = d
        .args
        .iter()
        .map(|(name, ty)| {
            if name.is_empty() {
                ty.clone()
            } else {
                format!("{} {ty}", quote_identifier(name))
            }
        })
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "CREATE {}FUNCTION {}.{}({args}) RETURNS {}{} LANGUAGE wasm {} {} AS {}",
        if replace { "OR REPLACE " } else { "" },
        quote_identifier(schema),
        quote_identifier(&d.name),
        if d.setof { "SETOF " } else { "" },
        d.returns,
        if d.strict {
            "STRICT"
        } else {
            "CALLED ON NULL INPUT"
        },
        d.volatility.to_uppercase(),
        quote_literal(format!("{module}:{}", d.export)),
    )
}

/// Declare the SQL functions a loaded module describes in its `plwasm.udfs` section; returns
/// their signatures. Runs as the caller, like writing the CREATE FUNCTIONs by hand.
#[pg_extern(volatile, parallel_unsafe)]
fn create_functions(
    module: &str,
    schema: default!(Option<&str>, "NULL"),
    replace: default!(bool, false),
) -> SetOfIterator<'static, String> {
    let stored = catalog::lookup(module, true)
        .ok_or_else(|| PlWasmError::ModuleNotFound {
            name: module.to_string(),
        })
        .or_report();
    let bad = |reason: String| PlWasmError::BadDescription {
        module: module.to_string(),
        reason,
    };
    let bytes = stored.bytes.unwrap_or_default();
    let section = section(&bytes)
        .map_err(bad)
        .or_report()
        .ok_or_else(|| {
            bad(format!(
                "it has no {SECTION} section (modules built with the plwasm-udf SDK's #[udf] have one)"
            ))
        })
        .or_report();
    let descriptions = parse(&section).map_err(bad).or_report();
    let schema = match schema {
        Some(schema) => schema.to_string(),
        None => Spi::get_one::<String>("SELECT current_schema()::text")
            .ok()
            .flatten()
            .unwrap_or_else(|| pgrx::error!("no current schema: pass schema => ...")),
    };
    let mut created = Vec::new();
    for d in &descriptions {
        Spi::run(&create_statement(module, &schema, d, replace))
            .unwrap_or_else(|e| pgrx::error!("{e}"));
        created.push(format!(
            "{}.{}({})",
            quote_identifier(&schema),
            quote_identifier(&d.name),
            d.args
                .iter()
                .map(|(_, t)| t.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    SetOfIterator::new(created)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_checks_descriptions() {
        let ok = br#"{"name":"f","export":"f","args":[{"name":"x","type":"text"}],"returns":"integer","strict":true,"volatility":"immutable"}
"#;
        let d = parse(ok).unwrap();
        assert_eq!(d[0].args, vec![("x".to_string(), "text".to_string())]);
        let injected = br#"{"name":"f","export":"f","args":[{"name":"x","type":"int); DROP TABLE t; --"}],"returns":"integer","strict":true,"volatility":"immutable"}"#;
        assert!(parse(injected).unwrap_err().contains("unsupported type"));
        let bad_volatility =
            br#"{"name":"f","export":"f","args":[],"returns":"void","volatility":"leakproof"}"#;
        assert!(parse(bad_volatility).is_err());
    }
}
