//! What a `LANGUAGE wasm` function body (`prosrc`) points at.
//!
//! - `'module:export'` — export `export` of the loaded module `module`;
//! - `'module'`        — the export named like the SQL function;
//! - `'(module ...)'`  — an inline WebAssembly text module; its export named like the function.
//!
//! Also owns the rule for valid module names, shared by `wasm.load` and the body parser.

/// Longest module name accepted by `wasm.load`.
pub const MAX_MODULE_NAME_LEN: usize = 128;

/// The target of a `LANGUAGE wasm` function.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FunctionTarget {
    /// An export of a module stored with `wasm.load`.
    Stored { module: String, export: String },
    /// A module written inline in the function body, in WebAssembly text.
    Inline { source: String, export: String },
}

impl FunctionTarget {
    /// The module's name as shown in messages.
    pub fn module_label(&self) -> &str {
        match self {
            Self::Stored { module, .. } => module,
            Self::Inline { .. } => "(inline)",
        }
    }

    pub fn export(&self) -> &str {
        match self {
            Self::Stored { export, .. } | Self::Inline { export, .. } => export,
        }
    }
}

/// Check a module name: 1..=128 characters from `[A-Za-z0-9_.-]`, not starting with `.` or `-`.
pub fn check_module_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("a module name must not be empty".into());
    }
    if name.len() > MAX_MODULE_NAME_LEN {
        return Err(format!(
            "a module name is at most {MAX_MODULE_NAME_LEN} characters"
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')))
    {
        return Err(format!(
            "character {c:?} is not allowed (use letters, digits, '_', '.', '-')"
        ));
    }
    if name.starts_with(['.', '-']) {
        return Err("a module name must start with a letter, digit or '_'".into());
    }
    Ok(())
}

/// Parse a function body. `function_name` is the SQL function's name (the default export).
pub fn parse(prosrc: &str, function_name: &str) -> Result<FunctionTarget, String> {
    let body = prosrc.trim();
    if body.starts_with("(module") {
        return Ok(FunctionTarget::Inline {
            source: body.to_string(),
            export: function_name.to_string(),
        });
    }
    let (module, export) = match body.split_once(':') {
        Some((module, export)) => (module, export),
        None => (body, function_name),
    };
    check_module_name(module).map_err(|reason| {
        format!("expected 'module:export', 'module' or an inline '(module ...)': {reason}")
    })?;
    if export.is_empty() {
        return Err("the export name after ':' is empty".into());
    }
    Ok(FunctionTarget::Stored {
        module: module.to_string(),
        export: export.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn module_and_export() {
        assert_eq!(
            parse("geo:dist", "f"),
            Ok(FunctionTarget::Stored {
                module: "geo".into(),
                export: "dist".into()
            })
        );
    }

    #[test]
    fn module_only_uses_function_name() {
        assert_eq!(
            parse("  geo\n", "dist"),
            Ok(FunctionTarget::Stored {
                module: "geo".into(),
                export: "dist".into()
            })
        );
    }

    #[test]
    fn export_may_contain_colons() {
        assert_eq!(parse("m:a:b", "f").unwrap().export(), "a:b");
    }

    #[test]
    fn inline_module() {
        let t = parse("\n (module (func (export \"f\")))", "f").unwrap();
        assert!(matches!(t, FunctionTarget::Inline { .. }));
        assert_eq!(t.module_label(), "(inline)");
    }

    #[test]
    fn bad_bodies() {
        assert!(parse("", "f").is_err());
        assert!(parse(":x", "f").is_err());
        assert!(parse("m:", "f").is_err());
        assert!(parse("bad name:x", "f").is_err());
    }

    #[test]
    fn module_names() {
        assert!(check_module_name("geo_v2.1-beta").is_ok());
        assert!(check_module_name("-x").is_err());
        assert!(check_module_name("a/b").is_err());
        assert!(check_module_name(&"a".repeat(129)).is_err());
    }
}
