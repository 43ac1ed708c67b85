//! Self-describing modules: the `plwasm.udfs` custom section the Rust SDK writes (one JSON object
//! per line: name, export, args [{name, type}], returns, setof, table [{name, type}], strict,
//! volatility, and optionally parallel, cost, rows and comment; or an aggregate: kind
//! "aggregate", name, sfunc, finalfunc, and optionally comment), and
//! `wasm.create_functions`, which declares SQL functions from it.
//!
//! The section comes from an untrusted module, so nothing from it reaches SQL unchecked: each type
//! name is resolved through `regtype` and replaced by Postgres's own spelling, volatility must be
//! from a fixed list, names are quoted as identifiers, the body as a literal, and each CREATE
//! FUNCTION runs as the caller (needing CREATE on the schema) through the validator.

use pgrx::prelude::*;
use pgrx::spi::{quote_identifier, quote_literal};
use serde_json::Value;

use crate::catalog;
use crate::errors::{OrReport, PlWasmError};

/// The custom section's name.
pub const SECTION: &str = "plwasm.udfs";

/// The longest type name a description may use.
const MAX_TYPE_NAME: usize = 200;

/// One function a module describes.
#[derive(Debug, PartialEq)]
pub struct Description {
    pub name: String,
    pub export: String,
    pub args: Vec<(String, String)>,
    pub returns: String,
    /// `RETURNS TABLE (name type, ...)` when not empty (then `returns` and `setof` are ignored).
    pub table: Vec<(String, String)>,
    /// `RETURNS SETOF returns`.
    pub setof: bool,
    pub strict: bool,
    pub volatility: String,
    /// `PARALLEL SAFE`, `RESTRICTED` or `UNSAFE` (default: safe for immutable functions, which
    /// cannot see anything a parallel worker would see differently; unsafe otherwise).
    pub parallel: String,
    /// `COST` (estimated cost per call in units of cpu_operator_cost), if the module says.
    pub cost: Option<f64>,
    /// `ROWS` (estimated rows of a set-returning function), if the module says.
    pub rows: Option<f64>,
    /// `COMMENT ON FUNCTION` (the Rust function's doc comment), if the module says.
    pub comment: Option<String>,
}

/// An aggregate a module describes (`#[aggregate]`): its state is a `bigint` handle that `sfunc`
/// (a function of the same description, `(bigint, args...) -> bigint`) keeps inside the module;
/// `finalfunc(bigint)` gives the result, leaving the state as it was.
#[derive(Debug, PartialEq)]
pub struct AggregateDescription {
    pub name: String,
    pub sfunc: String,
    pub finalfunc: String,
    pub comment: Option<String>,
}

/// What a module's `plwasm.udfs` section describes.
#[derive(Debug, Default)]
pub struct Described {
    pub functions: Vec<Description>,
    pub aggregates: Vec<AggregateDescription>,
}

/// The longest comment a description may give (in bytes).
const MAX_COMMENT: usize = 16 * 1024;

/// The largest COST or ROWS a description may give (Postgres takes any positive float; this only
/// keeps absurd values out of the planner).
const MAX_ESTIMATE: f64 = 1e9;

/// The smallest COST or ROWS a description may give (smaller ones would round to 0 in Postgres's
/// float4 columns, which it refuses).
const MIN_ESTIMATE: f64 = 0.001;

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
pub fn parse(section: &[u8]) -> Result<Described, String> {
    let text = std::str::from_utf8(section).map_err(|e| format!("not UTF-8: {e}"))?;
    // No name, type, export or comment may carry a NUL byte (SQL text cannot), anywhere.
    if text.contains('\0') || text.contains("\\u0000") {
        return Err("it contains a NUL character".into());
    }
    let (aggregates, functions): (Vec<&str>, Vec<&str>) = text
        .lines()
        .filter(|line| !line.trim().is_empty())
        .partition(|line| {
            serde_json::from_str::<Value>(line)
                .is_ok_and(|v| v.get("kind").and_then(Value::as_str) == Some("aggregate"))
        });
    let functions = parse_functions(functions.join("\n").as_bytes())?;
    let aggregates = aggregates
        .into_iter()
        .map(|line| {
            let v: Value = serde_json::from_str(line).map_err(|e| format!("not JSON ({e}): {line}"))?;
            let field = |key: &str| {
                v.get(key)
                    .and_then(Value::as_str)
                    .filter(|s| !s.is_empty() && s.len() <= 63)
                    .map(str::to_string)
                    .ok_or_else(|| format!("missing or bad \"{key}\" in {line}"))
            };
            let comment = match v.get("comment") {
                None => None,
                Some(c) => Some(
                    c.as_str()
                        .filter(|c| c.len() <= MAX_COMMENT)
                        .ok_or_else(|| format!("bad \"comment\" in {line}"))?
                        .to_string(),
                ),
            };
            let aggregate = AggregateDescription {
                name: field("name")?,
                sfunc: field("sfunc")?,
                finalfunc: field("finalfunc")?,
                comment,
            };
            // Its support functions must be described by the same module, with the shapes
            // `#[aggregate]` gives them (checked again on canonical types when declared).
            let find = |name: &str| functions.iter().find(|f| f.name == name);
            match (find(&aggregate.sfunc), find(&aggregate.finalfunc)) {
                (Some(sfunc), Some(finalfunc))
                    if !sfunc.args.is_empty()
                        && finalfunc.args.len() == 1
                        && !sfunc.setof
                        && sfunc.table.is_empty() =>
                {
                    Ok(aggregate)
                }
                _ => Err(format!(
                    "aggregate \"{}\" needs functions \"{}\" (bigint, arguments...) -> bigint and \"{}\" (bigint) described by the module",
                    aggregate.name, aggregate.sfunc, aggregate.finalfunc
                )),
            }
        })
        .collect::<Result<Vec<_>, String>>()?;
    Ok(Described {
        functions,
        aggregates,
    })
}

/// Parse and check the function descriptions (one JSON object per line).
fn parse_functions(section: &[u8]) -> Result<Vec<Description>, String> {
    let text = std::str::from_utf8(section).map_err(|e| format!("not UTF-8: {e}"))?;
    // No name, type or export may carry a NUL byte (SQL text cannot), anywhere in the section.
    if text.contains('\0') || text.contains("\\u0000") {
        return Err("it contains a NUL character".into());
    }
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
            // Type names only need to be plausible here: `create_functions` resolves each one
            // through regtype and splices Postgres's own spelling of it, never this text.
            let checked_type = |t: String| {
                if !t.trim().is_empty() && t.len() <= MAX_TYPE_NAME {
                    Ok(t)
                } else {
                    Err(format!("bad type name \"{t}\" in {line}"))
                }
            };
            let columns = |key: &str, required: bool| -> Result<Vec<(String, String)>, String> {
                let Some(list) = v.get(key) else {
                    return if required {
                        Err(format!("missing \"{key}\" in {line}"))
                    } else {
                        Ok(Vec::new())
                    };
                };
                list.as_array()
                    .ok_or_else(|| format!("\"{key}\" is not a list in {line}"))?
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
                        if name.len() > 63 {
                            return Err(format!("name \"{name}\" is too long in {line}"));
                        }
                        Ok((name, checked_type(ty)?))
                    })
                    .collect::<Result<Vec<_>, String>>()
            };
            let args = columns("args", true)?;
            let table = columns("table", false)?;
            if table.iter().any(|(name, _)| name.is_empty()) {
                return Err(format!("a \"table\" column has no name in {line}"));
            }
            let volatility = string("volatility")?;
            if !matches!(volatility.as_str(), "immutable" | "stable" | "volatile") {
                return Err(format!("unknown volatility \"{volatility}\" in {line}"));
            }
            let parallel = match v.get("parallel") {
                None => if volatility == "immutable" { "safe" } else { "unsafe" }.to_string(),
                Some(_) => string("parallel")?,
            };
            if !matches!(parallel.as_str(), "safe" | "restricted" | "unsafe") {
                return Err(format!("unknown parallel safety \"{parallel}\" in {line}"));
            }
            let estimate = |key: &str| -> Result<Option<f64>, String> {
                match v.get(key) {
                    None => Ok(None),
                    Some(n) => match n.as_f64() {
                        Some(x) if (MIN_ESTIMATE..=MAX_ESTIMATE).contains(&x) => Ok(Some(x)),
                        _ => Err(format!(
                            "\"{key}\" must be a number from {MIN_ESTIMATE} to {MAX_ESTIMATE} in {line}"
                        )),
                    },
                }
            };
            let comment = match v.get("comment") {
                None => None,
                Some(_) => Some(string("comment")?),
            };
            if comment.as_ref().is_some_and(|c| c.len() > MAX_COMMENT) {
                return Err(format!(
                    "\"comment\" is longer than {MAX_COMMENT} bytes in {line}"
                ));
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
                table,
                setof: v.get("setof").and_then(Value::as_bool).unwrap_or(false),
                strict: v.get("strict").and_then(Value::as_bool).unwrap_or(true),
                volatility,
                parallel,
                cost: estimate("cost")?,
                rows: estimate("rows")?,
                comment,
            })
        })
        .collect()
}

/// `name type, ...` (unnamed entries are just the type); types are spliced as given, so callers
/// pass canonical names (see [`canonical_types`]).
fn column_list(columns: &[(String, String)]) -> String {
    columns
        .iter()
        .map(|(name, ty)| {
            if name.is_empty() {
                ty.clone()
            } else {
                format!("{} {ty}", quote_identifier(name))
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The CREATE FUNCTION statement for one description whose types are canonical.
pub fn create_statement(module: &str, schema: &str, d: &Description, replace: bool) -> String {
    let args = column_list(&d.args);
    let returns = if !d.table.is_empty() {
        format!("TABLE({})", column_list(&d.table))
    } else if d.setof {
        format!("SETOF {}", d.returns)
    } else {
        d.returns.clone()
    };
    let returns_set = d.setof || !d.table.is_empty();
    let mut estimates = String::new();
    if let Some(cost) = d.cost {
        estimates.push_str(&format!(" COST {cost}"));
    }
    if let (Some(rows), true) = (d.rows, returns_set) {
        estimates.push_str(&format!(" ROWS {rows}"));
    }
    format!(
        "CREATE {}FUNCTION {}.{}({args}) RETURNS {returns} LANGUAGE wasm {} {} PARALLEL {}{estimates} AS {}",
        if replace { "OR REPLACE " } else { "" },
        quote_identifier(schema),
        quote_identifier(&d.name),
        if d.strict {
            "STRICT"
        } else {
            "CALLED ON NULL INPUT"
        },
        d.volatility.to_uppercase(),
        d.parallel.to_uppercase(),
        quote_literal(format!("{module}:{}", d.export)),
    )
}

/// Declare the SQL functions a loaded module describes in its `plwasm.udfs` section; returns
/// their signatures. Runs as the caller, like writing the CREATE FUNCTIONs by hand.
#[pg_extern(volatile, parallel_unsafe)]
fn create_functions(
    module: Option<&str>,
    schema: default!(Option<&str>, "NULL"),
    replace: default!(bool, false),
) -> SetOfIterator<'static, String> {
    let Some(module) = module else {
        pgrx::ereport!(
            ERROR,
            pgrx::PgSqlErrorCode::ERRCODE_NULL_VALUE_NOT_ALLOWED,
            "wasm.create_functions: the module name must not be NULL"
        );
    };
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
    let Described {
        functions: mut descriptions,
        aggregates,
    } = parse(&section).map_err(bad).or_report();
    let schema = match schema {
        Some(schema) => schema.to_string(),
        None => Spi::get_one::<String>("SELECT pg_catalog.current_schema()::pg_catalog.text")
            .ok()
            .flatten()
            .unwrap_or_else(|| {
                pgrx::ereport!(
                    ERROR,
                    pgrx::PgSqlErrorCode::ERRCODE_INVALID_SCHEMA_NAME,
                    "wasm.create_functions: no schema has been selected to create in",
                    "Pass schema => '...', or set search_path to an existing schema."
                );
            }),
    };
    canonical_types(&mut descriptions, &schema);
    // A query cannot run in a parallel worker (it needs a subtransaction): functions of a module
    // that imports the query functions are at most PARALLEL RESTRICTED.
    if crate::runtime::query::imports_query_bytes(&bytes) {
        let mut restricted = Vec::new();
        for d in descriptions.iter_mut().filter(|d| d.parallel == "safe") {
            d.parallel = "restricted".to_string();
            restricted.push(d.name.clone());
        }
        if !restricted.is_empty() {
            pgrx::notice!(
                "module \"{module}\" runs queries, which parallel workers cannot: declaring {} \
                 PARALLEL RESTRICTED",
                restricted.join(", ")
            );
        }
    }
    let mut created = Vec::new();
    for d in &descriptions {
        Spi::run(&create_statement(module, &schema, d, replace))
            .unwrap_or_else(|e| pgrx::error!("{e}"));
        let signature = format!(
            "{}.{}({})",
            quote_identifier(&schema),
            quote_identifier(&d.name),
            d.args
                .iter()
                .map(|(_, t)| t.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
        // A replaced function whose doc comment is gone loses its comment too.
        if d.comment.is_some() || replace {
            let comment = d.comment.clone().map_or("NULL".into(), quote_literal);
            Spi::run(&format!("COMMENT ON FUNCTION {signature} IS {comment}"))
                .unwrap_or_else(|e| pgrx::error!("{e}"));
        }
        created.push(signature);
    }
    for aggregate in &aggregates {
        let function = |name: &str| descriptions.iter().find(|d| d.name == name);
        let (Some(sfunc), Some(finalfunc)) =
            (function(&aggregate.sfunc), function(&aggregate.finalfunc))
        else {
            continue; // parse() checked that both are described
        };
        if sfunc.args[0].1 != "bigint"
            || sfunc.returns != "bigint"
            || finalfunc.args[0].1 != "bigint"
        {
            bad(format!(
                "aggregate \"{}\": its state functions must take and return bigint handles",
                aggregate.name
            ))
            .report();
        }
        let arg_types = match &sfunc.args[1..] {
            [] => "*".to_string(),
            args => args
                .iter()
                .map(|(_, t)| t.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        };
        let qualified =
            |name: &str| format!("{}.{}", quote_identifier(&schema), quote_identifier(name));
        let signature = format!("{}({arg_types})", qualified(&aggregate.name));
        Spi::run(&format!(
            // The final function leaves the state the module keeps as it was (READ_ONLY, the
            // default): Postgres may finalize a state again (window aggregates, a rescanned
            // hash aggregate), so it must not release it.
            "CREATE {}AGGREGATE {signature} (SFUNC = {}, STYPE = bigint, FINALFUNC = {}, \
             INITCOND = '0')",
            if replace { "OR REPLACE " } else { "" },
            qualified(&aggregate.sfunc),
            qualified(&aggregate.finalfunc),
        ))
        .unwrap_or_else(|e| pgrx::error!("{e}"));
        if aggregate.comment.is_some() || replace {
            let comment = aggregate
                .comment
                .clone()
                .map_or("NULL".into(), quote_literal);
            Spi::run(&format!("COMMENT ON AGGREGATE {signature} IS {comment}"))
                .unwrap_or_else(|e| pgrx::error!("{e}"));
        }
        created.push(signature);
    }
    SetOfIterator::new(created)
}

/// Replace every type name of the descriptions by Postgres's own spelling of the type it names
/// (`regtype` input, then `format_type`): a name that is not exactly one existing type is an
/// ERROR, and nothing from the module's text is spliced into SQL. Unqualified names are looked up
/// in `schema` first, then along the search path (as the caller would see them).
fn canonical_types(descriptions: &mut [Description], schema: &str) {
    let mut names: Vec<&mut String> = Vec::new();
    for d in descriptions.iter_mut() {
        names.extend(
            d.args
                .iter_mut()
                .chain(d.table.iter_mut())
                .map(|(_, ty)| ty),
        );
        names.push(&mut d.returns);
    }
    let spi_error = |e: pgrx::spi::Error| -> ! { pgrx::error!("{e}") };
    let previous = Spi::get_one::<String>("SELECT pg_catalog.current_setting('search_path')")
        .unwrap_or_else(|e| spi_error(e))
        .unwrap_or_default();
    let set_path = |path: &str| {
        Spi::get_one_with_args::<String>(
            "SELECT pg_catalog.set_config('search_path', $1, true)",
            &[path.into()],
        )
        .unwrap_or_else(|e| spi_error(e));
    };
    // Resolve every name at once with the schema first on the path, then spell the types for
    // the caller's own path (qualified where needed).
    let text: Vec<String> = names.iter().map(|name| name.to_string()).collect();
    set_path(&format!("{}, {previous}", quote_identifier(schema)));
    let oids = Spi::get_one_with_args::<Vec<i64>>(
        "SELECT pg_catalog.array_agg(t::pg_catalog.regtype::pg_catalog.oid::pg_catalog.int8 \
         ORDER BY n) FROM pg_catalog.unnest($1::pg_catalog.text[]) WITH ORDINALITY AS u(t, n)",
        &[text.into()],
    )
    .unwrap_or_else(|e| spi_error(e))
    .unwrap_or_default();
    set_path(&previous);
    let spelled = Spi::get_one_with_args::<Vec<String>>(
        "SELECT pg_catalog.array_agg(pg_catalog.format_type(o::pg_catalog.oid, NULL) ORDER BY n) \
         FROM pg_catalog.unnest($1::pg_catalog.int8[]) WITH ORDINALITY AS u(o, n)",
        &[oids.into()],
    )
    .unwrap_or_else(|e| spi_error(e))
    .unwrap_or_default();
    assert_eq!(spelled.len(), names.len(), "one spelling per type name");
    for (name, spelling) in names.into_iter().zip(spelled) {
        *name = spelling;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aggregates_need_their_functions() {
        let step = r#"{"name":"m__step","export":"m__step","args":[{"name":"state","type":"bigint"},{"name":"v","type":"double precision"}],"returns":"bigint","volatility":"volatile"}"#;
        let last = r#"{"name":"m__final","export":"m__final","args":[{"name":"state","type":"bigint"}],"returns":"double precision","volatility":"volatile"}"#;
        let agg = r#"{"kind":"aggregate","name":"m","sfunc":"m__step","finalfunc":"m__final","comment":"The median."}"#;
        let described = parse(format!("{step}\n{agg}\n{last}\n").as_bytes()).unwrap();
        assert_eq!(described.functions.len(), 2);
        assert_eq!(
            described.aggregates,
            vec![AggregateDescription {
                name: "m".into(),
                sfunc: "m__step".into(),
                finalfunc: "m__final".into(),
                comment: Some("The median.".into()),
            }]
        );
        assert!(parse(format!("{step}\n{agg}\n").as_bytes())
            .unwrap_err()
            .contains("needs functions"));
        let unnamed = r#"{"kind":"aggregate","name":"","sfunc":"m__step","finalfunc":"m__final"}"#;
        assert!(parse(format!("{step}\n{last}\n{unnamed}").as_bytes()).is_err());
    }

    #[test]
    fn parses_and_checks_descriptions() {
        let ok = br#"{"name":"f","export":"f","args":[{"name":"x","type":"text"}],"returns":"integer","strict":true,"volatility":"immutable"}
"#;
        let d = parse(ok).unwrap().functions;
        assert_eq!(d[0].args, vec![("x".to_string(), "text".to_string())]);
        let empty_type = br#"{"name":"f","export":"f","args":[{"name":"x","type":""}],"returns":"integer","strict":true,"volatility":"immutable"}"#;
        assert!(parse(empty_type).unwrap_err().contains("bad type name"));
        let bad_volatility =
            br#"{"name":"f","export":"f","args":[],"returns":"void","volatility":"leakproof"}"#;
        assert!(parse(bad_volatility).is_err());
        let table = br#"{"name":"f","export":"f","args":[],"returns":"record","table":[{"name":"a","type":"text"},{"name":"b","type":"numeric"}],"setof":true,"volatility":"stable"}"#;
        let d = &parse(table).unwrap().functions[0];
        // (create_statement quotes through Postgres, so the statement itself is checked by
        // pg_regress sdk, whose order_lines is declared RETURNS TABLE.)
        assert_eq!(
            d.table,
            vec![
                ("a".to_string(), "text".to_string()),
                ("b".to_string(), "numeric".to_string())
            ]
        );
        let unnamed_column = br#"{"name":"f","export":"f","args":[],"returns":"record","table":[{"name":"","type":"text"}],"volatility":"stable"}"#;
        assert!(parse(unnamed_column).is_err());
    }

    #[test]
    fn parallel_safety_defaults_by_volatility_and_estimates_are_checked() {
        let with = |extra: &str, volatility: &str| {
            let line = format!(
                r#"{{"name":"f","export":"f","args":[],"returns":"integer","volatility":"{volatility}"{extra}}}"#
            );
            parse(line.as_bytes())
        };
        assert_eq!(with("", "immutable").unwrap().functions[0].parallel, "safe");
        assert_eq!(with("", "stable").unwrap().functions[0].parallel, "unsafe");
        assert_eq!(
            with("", "volatile").unwrap().functions[0].parallel,
            "unsafe"
        );
        let d = &with(r#","parallel":"restricted","cost":25,"rows":7.5"#, "stable")
            .unwrap()
            .functions[0];
        assert_eq!(
            (d.parallel.as_str(), d.cost, d.rows),
            ("restricted", Some(25.0), Some(7.5))
        );
        for bad in [
            r#","parallel":"sometimes""#,
            r#","parallel":1"#,
            r#","cost":0"#,
            r#","cost":-3"#,
            r#","cost":"25""#,
            r#","cost":1e12"#,
            r#","cost":1e-50"#,
            r#","rows":0"#,
        ] {
            assert!(with(bad, "immutable").is_err(), "{bad} was accepted");
        }
    }
}
