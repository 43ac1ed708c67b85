//! `plwasm new`: a UDF crate that builds and deploys as it is: a `cdylib` (the module) and `rlib`
//! (native `cargo test`), the SDK as a dependency, line tables for `file:line` in backtraces, its
//! own workspace (so it builds inside another one's directory too), and two example functions
//! with a test.

use std::path::Path;

/// The SDK next to this CLI's sources (`udf-sdk/plwasm-udf` of the checkout it was built from).
pub fn default_sdk_path() -> Option<std::path::PathBuf> {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../udf-sdk/plwasm-udf")
        .canonicalize()
        .ok()
}

/// Where the new crate gets the SDK from.
pub enum Sdk {
    Path(std::path::PathBuf),
    Git(String),
}

/// Create the crate `name` in directory `dir` (which must not exist yet).
pub fn create(dir: &Path, name: &str, sdk: &Sdk) -> Result<(), String> {
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        || name.starts_with(|c: char| c.is_ascii_digit() || c == '-')
    {
        return Err(format!(
            "\"{name}\" is not a usable crate name: letters, digits, '_' and '-', not starting with a digit or '-'"
        ));
    }
    const RESERVED: &[&str] = &[
        "alloc",
        "core",
        "proc_macro",
        "std",
        "test",
        "as",
        "async",
        "await",
        "break",
        "const",
        "continue",
        "crate",
        "dyn",
        "else",
        "enum",
        "extern",
        "false",
        "fn",
        "for",
        "if",
        "impl",
        "in",
        "let",
        "loop",
        "match",
        "mod",
        "move",
        "mut",
        "pub",
        "ref",
        "return",
        "self",
        "static",
        "struct",
        "super",
        "trait",
        "true",
        "type",
        "unsafe",
        "use",
        "where",
        "while",
    ];
    if RESERVED.contains(&name.replace('-', "_").as_str()) {
        return Err(format!(
            "\"{name}\" is a Rust keyword or standard crate name: choose another crate name"
        ));
    }
    if dir.exists() {
        return Err(format!("{} already exists", dir.display()));
    }
    let dependency = match sdk {
        Sdk::Path(path) => format!(
            "plwasm-udf = {{ path = {} }}",
            toml_string(&path.display().to_string())
        ),
        Sdk::Git(url) => format!(
            "plwasm-udf = {{ git = {}, package = \"plwasm-udf\" }}",
            toml_string(url)
        ),
    };
    let manifest = format!(
        r#"[package]
name = "{name}"
version = "0.1.0"
edition = "2021"

[lib]
# cdylib: the .wasm module; rlib: `cargo test` of the functions, natively.
crate-type = ["cdylib", "rlib"]

[dependencies]
{dependency}

[profile.release]
# file:line of this crate's code in the backtraces of trap errors (bigger, not slower)...
debug = "line-tables-only"
# ...but not of the standard library and other dependencies (2 MB more for a small module).
[profile.release.package."*"]
debug = false

# A workspace of its own: builds the same inside another project's directory.
[workspace]
"#
    );
    let lib = r#"//! SQL functions for PostgreSQL, in WebAssembly (plwasm).
//!
//! Build and deploy: `plwasm deploy . --dsn 'dbname=mydb'`; then `SELECT add_one(41);`.

use plwasm_udf::udf;

/// Adds one to an integer.
#[udf(immutable)]
fn add_one(x: i32) -> i32 {
    x + 1
}

/// The words of a text, lower-cased: one row per word.
#[udf(immutable)]
fn words(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adds_one() {
        assert_eq!(add_one(41), 42);
    }

    #[test]
    fn splits_words() {
        assert_eq!(words("Hello, World").collect::<Vec<_>>(), ["hello", "world"]);
    }
}
"#;
    let write = |path: &Path, text: &str| {
        std::fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))
    };
    std::fs::create_dir_all(dir.join("src"))
        .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    write(&dir.join("Cargo.toml"), &manifest)?;
    write(&dir.join("src/lib.rs"), lib)?;
    write(&dir.join(".gitignore"), "/target\n")?;
    Ok(())
}

/// `text` as a TOML basic string.
fn toml_string(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_strings_are_escaped() {
        assert_eq!(toml_string(r#"a"b\c"#), r#""a\"b\\c""#);
    }

    #[test]
    fn bad_names_are_refused() {
        let sdk = Sdk::Git("x".into());
        for name in ["", "1abc", "-x", "a b", "a/b", "fn", "test", "core"] {
            assert!(
                create(Path::new("/nonexistent/x"), name, &sdk).is_err(),
                "{name}"
            );
        }
    }
}
