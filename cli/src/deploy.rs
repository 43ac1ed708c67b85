//! `plwasm deploy` and `plwasm ls`: talking to a database with plwasm installed.
//!
//! A deploy is one transaction: `wasm.load` (the bytes as a bytea parameter), then
//! `wasm.create_functions` for what the module describes; it prints the module's functions after
//! it, marked `+` (new) or `=` (bound to the module before; redeclared if the module describes
//! it). With
//! `--dry-run` the transaction is rolled back after the server checked everything, so the output is
//! what a real deploy would do.

use std::collections::BTreeMap;

use postgres::Client;

use crate::connect::error_text;
use crate::module_file::ModuleFile;

/// What to deploy, and how.
pub struct Deploy<'a> {
    pub name: &'a str,
    pub module: &'a ModuleFile,
    pub schema: Option<&'a str>,
    pub replace: bool,
    pub dry_run: bool,
}

/// A failed deploy or listing: the message to print (exit code 1).
pub struct Failed(pub String);

impl From<postgres::Error> for Failed {
    fn from(e: postgres::Error) -> Self {
        Failed(error_text(&e))
    }
}

/// The functions bound to module `name`, and the aggregates over them: signature → result type.
fn bound_functions(
    client: &mut impl postgres::GenericClient,
    name: &str,
) -> Result<BTreeMap<String, String>, postgres::Error> {
    Ok(client
        .query(
            "SELECT f.function::pg_catalog.text, pg_catalog.pg_get_function_result(f.function)
               FROM wasm.functions f WHERE f.module = $1
             UNION ALL
             SELECT a.aggfnoid::pg_catalog.regprocedure::pg_catalog.text,
                    pg_catalog.pg_get_function_result(a.aggfnoid) || ' (aggregate)'
               FROM pg_catalog.pg_aggregate a
               JOIN wasm.functions f ON f.function::pg_catalog.oid = a.aggtransfn::pg_catalog.oid
              WHERE f.module = $1",
            &[&name],
        )?
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect())
}

fn require_extension(client: &mut impl postgres::GenericClient) -> Result<(), Failed> {
    let installed = client
        .query_opt(
            "SELECT 1 FROM pg_catalog.pg_extension WHERE extname = 'plwasm'",
            &[],
        )?
        .is_some();
    if installed {
        Ok(())
    } else {
        Err(Failed(
            "plwasm is not installed in this database (CREATE EXTENSION plwasm)".into(),
        ))
    }
}

/// Modules larger than this are sent in chunks of this size, with progress on stderr.
const CHUNK: usize = 256 * 1024;

/// `wasm.load` of the module. A large one goes up in chunks into a temporary table (dropped at
/// the end of the transaction) while stderr shows how far it got, then `wasm.load` reads it
/// from there; a small one (or a role that may not create temporary tables) is one parameter.
fn upload_and_load(tx: &mut postgres::Transaction, d: &Deploy) -> Result<(), Failed> {
    let bytes = &d.module.bytes;
    let may_use_temp: bool = tx
        .query_one(
            "SELECT pg_catalog.has_database_privilege(pg_catalog.current_database(), 'TEMP')",
            &[],
        )?
        .get(0);
    if bytes.len() <= CHUNK || !may_use_temp {
        tx.execute(
            "SELECT wasm.load($1, $2, $3)",
            &[&d.name, bytes, &d.replace],
        )?;
        return Ok(());
    }
    tx.batch_execute(
        "CREATE TEMPORARY TABLE plwasm_upload (n integer, chunk bytea) ON COMMIT DROP",
    )?;
    let megabytes = bytes.len() as f64 / (1 << 20) as f64;
    let chunks = bytes.chunks(CHUNK).collect::<Vec<_>>();
    for (n, chunk) in chunks.iter().enumerate() {
        tx.execute(
            "INSERT INTO pg_temp.plwasm_upload VALUES ($1, $2)",
            &[&(n as i32), chunk],
        )?;
        eprint!(
            "\ruploading {megabytes:.1} MB: {:3}%",
            (n + 1) * 100 / chunks.len()
        );
    }
    eprintln!();
    tx.execute(
        "SELECT wasm.load($1, (SELECT pg_catalog.string_agg(chunk, ''::bytea ORDER BY n)
                                FROM pg_temp.plwasm_upload), $2)",
        &[&d.name, &d.replace],
    )?;
    Ok(())
}

/// Run the deploy; returns the report printed on success.
pub fn deploy(client: &mut Client, d: &Deploy) -> Result<String, Failed> {
    let mut tx = client.transaction()?;
    require_extension(&mut tx)?;
    let deployed: Option<String> = tx
        .query_opt(
            "SELECT sha256 FROM wasm.modules WHERE name = $1",
            &[&d.name],
        )?
        .map(|row| row.get(0));
    if deployed.is_some() && !d.replace {
        return Err(Failed(format!(
            "module \"{}\" is already deployed; pass --replace to replace it",
            d.name
        )));
    }
    let before = bound_functions(&mut tx, d.name)?;
    let size = d.module.bytes.len();
    upload_and_load(&mut tx, d)?;
    if !d.module.described.is_empty() {
        tx.query(
            "SELECT * FROM wasm.create_functions($1, $2, $3)",
            &[&d.name, &d.schema, &d.replace],
        )?;
    }
    let after = bound_functions(&mut tx, d.name)?;
    let sha256: String = tx
        .query_one(
            "SELECT sha256 FROM wasm.modules WHERE name = $1",
            &[&d.name],
        )?
        .get(0);

    let mut report = format!(
        "module \"{}\": {} bytes, sha256 {}, {}\n",
        d.name,
        size,
        &sha256[..16],
        match &deployed {
            None => "new".to_string(),
            Some(old) if *old == sha256 => "the same bytes as deployed".to_string(),
            Some(old) => format!("replacing sha256 {}", &old[..16]),
        }
    );
    if after.is_empty() {
        report.push_str(
            "no SQL functions (the module describes none: declare them with CREATE FUNCTION ... LANGUAGE wasm)\n",
        );
    }
    for (signature, result) in &after {
        let mark = if before.contains_key(signature) {
            '='
        } else {
            '+'
        };
        report.push_str(&format!("  {mark} {signature} -> {result}\n"));
    }
    if d.dry_run {
        tx.rollback()?;
        report.push_str("dry run: rolled back, nothing was changed\n");
    } else {
        tx.commit()?;
        report.push_str(&format!(
            "deployed ({} functions and aggregates)\n",
            after.len()
        ));
    }
    Ok(report)
}

/// `plwasm ls`: the modules, with their functions when `functions`.
pub fn list(client: &mut Client, functions: bool) -> Result<String, Failed> {
    require_extension(client)?;
    let rows = client.query(
        "SELECT m.name, coalesce(m.owner::pg_catalog.text, '(no owner)'), m.size_bytes,
                pg_catalog.to_char(m.loaded_at, 'YYYY-MM-DD HH24:MI:SS'),
                (SELECT pg_catalog.count(*) FROM wasm.functions f WHERE f.module = m.name)
                + (SELECT pg_catalog.count(*) FROM pg_catalog.pg_aggregate a
                     JOIN wasm.functions f ON f.function::pg_catalog.oid = a.aggtransfn::pg_catalog.oid
                    WHERE f.module = m.name)
           FROM wasm.modules m ORDER BY m.name",
        &[],
    )?;
    let mut out = format!(
        "{:<24} {:<16} {:>10} {:<19} {:>9}\n",
        "module", "owner", "bytes", "loaded", "functions"
    );
    for row in &rows {
        let name: String = row.get(0);
        out.push_str(&format!(
            "{:<24} {:<16} {:>10} {:<19} {:>9}\n",
            name,
            row.get::<_, String>(1),
            row.get::<_, i32>(2),
            row.get::<_, String>(3),
            row.get::<_, i64>(4)
        ));
        if functions {
            for (signature, result) in bound_functions(client, &name)? {
                out.push_str(&format!("    {signature} -> {result}\n"));
            }
        }
    }
    if rows.is_empty() {
        out.push_str("(no modules)\n");
    }
    Ok(out)
}
