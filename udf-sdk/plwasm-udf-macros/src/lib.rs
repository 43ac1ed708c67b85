//! `#[udf]`: export a plain Rust function as a plwasm SQL function (ABI v1).
//!
//! For
//!
//! ```ignore
//! #[udf(immutable)]
//! fn shout(s: &str, times: i32) -> String { ... }
//! ```
//!
//! it keeps `shout` as written (so it can be unit-tested) and, on wasm32, adds
//!
//! ```ignore
//! #[export_name = "shout"]
//! extern "C" fn __plwasm_udf_shout(a0_ptr: i32, a0_len: i32, a1: i32) -> i64 { /* convert, call, convert */ }
//! #[link_section = "plwasm.udfs"]
//! static __PLWASM_UDF_SHOUT: [u8; N] = *b"{\"name\":\"shout\",...}\n";
//! ```
//!
//! Options: `name = "sql_name"`, one of `immutable`, `stable`, `volatile` (the default),
//! `setof` (a `Vec<T>` result is then a set of rows, as `impl Iterator<Item = T>` always is),
//! `returns = "sql type"` (the result's SQL type) and `table(col = "sql type", ...)` (RETURNS
//! TABLE: each row is a serde struct whose fields are the columns). A parameter's SQL type can
//! be chosen with `#[sql("sql type")]` on it. A SQL type plwasm does not pass natively (numeric,
//! date, a composite type, text[], ...) travels in its JSON form, so the Rust type must then be
//! `Serialize`/`DeserializeOwned`. A function is STRICT unless a parameter is an `Option`.

use proc_macro::TokenStream;
use proc_macro2::{Span, TokenStream as TokenStream2};
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{
    parse_macro_input, FnArg, GenericArgument, ItemFn, Pat, PathArguments, ReturnType, Type,
};

/// Export a Rust function as a SQL function (see the crate docs for the type mapping).
///
/// ```ignore
/// use plwasm_udf::udf;
///
/// /// A URL slug. (Doc comments become COMMENT ON FUNCTION.)
/// #[udf(immutable)]                       // IMMUTABLE (default VOLATILE; also `stable`)
/// fn slugify(title: &str) -> String { title.to_lowercase().replace(' ', "-") }
///
/// #[udf(name = "text_len", parallel = "safe", cost = 5)]   // SQL name, PARALLEL, COST
/// fn len(s: &str) -> i32 { s.chars().count() as i32 }
///
/// #[udf(setof, rows = 10)]                // RETURNS SETOF integer, ROWS 10
/// fn digits(n: i64) -> Vec<i32> { n.to_string().bytes().map(|b| (b - b'0') as i32).collect() }
///
/// #[derive(serde::Serialize, serde::Deserialize)]
/// struct Line { sku: String, qty: i32 }
///
/// #[udf(table(sku = "text", qty = "integer"))]           // RETURNS TABLE (sku text, qty integer)
/// fn lines(order: serde_json::Value) -> Vec<Line> { todo!() }
///
/// #[udf(returns = "numeric")]             // a SQL type without a Rust counterpart, via JSON
/// fn half(#[sql("numeric")] x: f64) -> f64 { x / 2.0 }  // #[sql] names a parameter's type
///
/// #[udf]                                  // Option parameters: CALLED ON NULL INPUT
/// fn greet(name: Option<&str>) -> Result<String, String> {   // Err(..) is an ERROR (P0001)
///     name.map(|n| format!("hi {n}")).ok_or_else(|| "no name".to_string())
/// }
/// ```
#[proc_macro_attribute]
pub fn udf(attr: TokenStream, item: TokenStream) -> TokenStream {
    let function = parse_macro_input!(item as ItemFn);
    match expand(attr.into(), function) {
        Ok(tokens) => tokens.into(),
        Err(error) => error.to_compile_error().into(),
    }
}

/// `#[aggregate]` on `impl State { fn step(&mut self, ...); fn finish(&mut self) -> T }`: a SQL
/// aggregate whose state stays inside the module between rows (see `plwasm_udf::aggregate`).
///
/// ```ignore
/// #[derive(Default)]
/// struct Median(Vec<f64>);
///
/// /// The median of the non-NULL values.
/// #[aggregate]
/// impl Median {
///     fn step(&mut self, value: f64) { self.0.push(value); }
///     fn finish(&mut self) -> Option<f64> { /* sort, pick the middle */ }
/// }
/// ```
///
/// declares (through `wasm.create_functions`) `median(double precision)`, with the support
/// functions `median__step(bigint, double precision) -> bigint` and `median__final(bigint)`.
/// `State` must implement `Default` (the state before the first row). `step`'s parameters are
/// the aggregate's arguments, with the same types, `Option`s and `#[sql("...")]` as `#[udf]`
/// parameters (non-`Option` ones make NULL rows skipped; none: `name(*)`); `finish` gives the
/// result and may be called again on the same state (window aggregates), so it must leave the
/// state equivalent (sorting it is fine, draining it is not). The impl block's doc comment becomes
/// the aggregate's `COMMENT`. Option: `name = "sql_name"` (default: the type's name in
/// snake_case).
#[proc_macro_attribute]
pub fn aggregate(attr: TokenStream, item: TokenStream) -> TokenStream {
    let block = parse_macro_input!(item as syn::ItemImpl);
    match expand_aggregate(attr.into(), block) {
        Ok(tokens) => tokens.into(),
        Err(error) => error.to_compile_error().into(),
    }
}

/// `MyMedian` -> `my_median`.
/// `#[trigger]` on `fn f(event: TriggerEvent<Row>) -> TriggerResult<Row>`: a trigger function
/// (`RETURNS trigger`; see `plwasm_udf::trigger`). It may also return `()` (the row unchanged)
/// or a `Result` of either, whose `Err` is an ERROR. Option: `name = "sql_name"`. The doc
/// comment becomes the function's `COMMENT`.
///
/// ```ignore
/// #[trigger]
/// fn stamp(event: TriggerEvent<serde_json::Value>) -> TriggerResult<serde_json::Value> {
///     TriggerResult::Row(serde_json::json!({"updated_by": event.args[0]}))
/// }
/// ```
#[proc_macro_attribute]
pub fn trigger(attr: TokenStream, item: TokenStream) -> TokenStream {
    let function = parse_macro_input!(item as ItemFn);
    match expand_trigger(attr.into(), function) {
        Ok(tokens) => tokens.into(),
        Err(error) => error.to_compile_error().into(),
    }
}

/// The attribute arguments of `#[trigger]` and `#[aggregate]`, which take only
/// `name = "sql_name"`; anything else is the compile error `unknown`.
fn name_option(attr: TokenStream2, unknown: &str) -> syn::Result<Option<String>> {
    let mut name = None;
    let parser = syn::meta::parser(|meta| {
        if meta.path.is_ident("name") {
            name = Some(meta.value()?.parse::<syn::LitStr>()?.value());
            Ok(())
        } else {
            Err(meta.error(unknown))
        }
    });
    syn::parse::Parser::parse2(parser, attr)?;
    Ok(name)
}

fn expand_trigger(attr: TokenStream2, function: ItemFn) -> syn::Result<TokenStream2> {
    let name = name_option(
        attr,
        "unknown #[trigger] option (it takes name = \"sql_name\")",
    )?;
    if !function.sig.generics.params.is_empty() {
        return Err(syn::Error::new(
            function.sig.generics.span(),
            "#[trigger] functions cannot be generic",
        ));
    }
    let event_type = match function.sig.inputs.iter().collect::<Vec<_>>().as_slice() {
        [FnArg::Typed(event)] => event.ty.clone(),
        _ => {
            return Err(syn::Error::new(
                function.sig.inputs.span(),
                "a #[trigger] function takes one parameter: the event, a TriggerEvent<Row>",
            ))
        }
    };
    let rust_name = &function.sig.ident;
    let sql_name = name.unwrap_or_else(|| rust_name.to_string());
    let wrapper = format_ident!("__plwasm_trigger_{}", rust_name);
    let comment = doc_comment(&function.attrs)
        .map(|c| format!(",\"comment\":{}", json_string(&c)))
        .unwrap_or_default();
    let meta = format!(
        "{{\"name\":{},\"export\":{},\"args\":[],\"returns\":\"trigger\",\"table\":[],\"setof\":false,\"strict\":false,\"volatility\":\"volatile\"{comment}}}\n",
        json_string(&sql_name),
        json_string(&sql_name),
    );
    let sections = section_statics(rust_name, &meta);
    let result_span = function.sig.output.span();
    let deliver = quote_spanned!(result_span=> ::plwasm_udf::__private::trigger_result(r));
    Ok(quote! {
        #[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
        #function

        #[cfg(target_arch = "wasm32")]
        #[doc(hidden)]
        #[unsafe(export_name = #sql_name)]
        pub extern "C" fn #wrapper(event_ptr: i32, event_len: i32) -> i64 {
            ::plwasm_udf::__private::set_panic_hook();
            // SAFETY: the host wrote the event's bytes for this call.
            let bytes = unsafe { ::plwasm_udf::__private::arg_bytes(event_ptr, event_len) };
            let event = ::plwasm_udf::__private::json_arg::<#event_type>(bytes, "event");
            let r = #rust_name(event);
            #deliver
        }

        #sections
    })
}

/// The statics that put a function's description line (`meta`, ending in a newline) into the
/// module's `plwasm.udfs` section and the ABI version into `plwasm.abi` (wasm32 only).
fn section_statics(rust_name: &syn::Ident, meta: &str) -> TokenStream2 {
    let meta_static = format_ident!("__PLWASM_UDF_{}", rust_name.to_string().to_uppercase());
    let abi_static = format_ident!("__PLWASM_ABI_{}", rust_name.to_string().to_uppercase());
    let meta_len = meta.len();
    let meta_bytes = syn::LitByteStr::new(meta.as_bytes(), Span::call_site());
    quote! {
        #[cfg(target_arch = "wasm32")]
        #[doc(hidden)]
        #[unsafe(link_section = "plwasm.udfs")]
        #[used]
        static #meta_static: [u8; #meta_len] = *#meta_bytes;

        #[cfg(target_arch = "wasm32")]
        #[doc(hidden)]
        #[unsafe(link_section = "plwasm.abi")]
        #[used]
        static #abi_static: [u8; ::plwasm_udf::__private::ABI_LINE.len()] =
            ::plwasm_udf::__private::ABI_LINE;
    }
}

fn snake_case(name: &str) -> String {
    let mut out = String::new();
    for (i, c) in name.chars().enumerate() {
        if c.is_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.extend(c.to_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

fn expand_aggregate(attr: TokenStream2, mut block: syn::ItemImpl) -> syn::Result<TokenStream2> {
    let name = name_option(attr, "#[aggregate] takes only name = \"sql_name\"")?;
    if block.trait_.is_some() || !block.generics.params.is_empty() {
        return Err(syn::Error::new(
            block.span(),
            "#[aggregate] goes on an inherent, non-generic impl block: impl State { fn step(..); fn finish(..) }",
        ));
    }
    let self_ty = block.self_ty.clone();
    let type_name = last_segment(&self_ty)
        .map(|s| s.ident.to_string())
        .ok_or_else(|| {
            syn::Error::new(
                self_ty.span(),
                "#[aggregate]: the state must be a named type",
            )
        })?;
    let sql_name = name.unwrap_or_else(|| snake_case(&type_name));
    let method = |wanted: &str| {
        block.items.iter().find_map(|item| match item {
            syn::ImplItem::Fn(f) if f.sig.ident == wanted => Some(f.sig.clone()),
            _ => None,
        })
    };
    let missing =
        |what: &str| syn::Error::new(block.span(), format!("#[aggregate] impl needs {what}"));
    let step = method("step").ok_or_else(|| missing("fn step(&mut self, ...)"))?;
    let finish = method("finish").ok_or_else(|| missing("fn finish(&mut self) -> T"))?;
    let takes_self = |sig: &syn::Signature| matches!(sig.inputs.first(), Some(FnArg::Receiver(_)));
    if !takes_self(&step) || !takes_self(&finish) || finish.inputs.len() != 1 {
        return Err(syn::Error::new(
            step.span(),
            "#[aggregate]: step takes &mut self and the arguments; finish takes only &mut self (or &self)",
        ));
    }
    // step's parameters become the support function's, #[sql] and all; the impl keeps them bare.
    let mut params = Vec::new();
    let mut names = Vec::new();
    for (index, input) in step.inputs.iter().skip(1).enumerate() {
        let FnArg::Typed(typed) = input else { continue };
        let ident = match &*typed.pat {
            Pat::Ident(p) => p.ident.clone(),
            _ => format_ident!("arg{}", index + 1),
        };
        let attrs = &typed.attrs;
        let ty = &typed.ty;
        params.push(quote!(#(#attrs)* #ident: #ty));
        names.push(ident);
    }
    for item in block.items.iter_mut() {
        if let syn::ImplItem::Fn(f) = item {
            if f.sig.ident == "step" {
                for input in f.sig.inputs.iter_mut() {
                    if let FnArg::Typed(typed) = input {
                        typed.attrs.retain(|a| !a.path().is_ident("sql"));
                    }
                }
            }
        }
    }
    let result = match &finish.output {
        ReturnType::Type(_, ty) => quote!(-> #ty),
        ReturnType::Default => quote!(),
    };
    let step_sql = format!("{sql_name}__step");
    let final_sql = format!("{sql_name}__final");
    let base = snake_case(&type_name);
    let step_fn = format_ident!("__plwasm_aggregate_{}_step", base);
    let final_fn = format_ident!("__plwasm_aggregate_{}_final", base);
    let meta_static = format_ident!("__PLWASM_AGGREGATE_{}", base.to_uppercase());
    let comment = doc_comment(&block.attrs)
        .map(|c| format!(",\"comment\":{}", json_string(&c)))
        .unwrap_or_default();
    let meta = format!(
        "{{\"kind\":\"aggregate\",\"name\":{},\"sfunc\":{},\"finalfunc\":{}{comment}}}\n",
        json_string(&sql_name),
        json_string(&step_sql),
        json_string(&final_sql),
    );
    let meta_len = meta.len();
    let meta_bytes = syn::LitByteStr::new(meta.as_bytes(), Span::call_site());
    Ok(quote! {
        #block

        // (Names starting with __plwasm cannot clash with step's parameters.)
        #[::plwasm_udf::udf(name = #step_sql)]
        #[doc(hidden)]
        fn #step_fn(__plwasm_state: i64, #(#params),*) -> i64 {
            ::plwasm_udf::__private::aggregate_step::<#self_ty>(
                __plwasm_state,
                |__plwasm_self| __plwasm_self.step(#(#names),*),
            )
        }

        #[::plwasm_udf::udf(name = #final_sql)]
        #[doc(hidden)]
        fn #final_fn(__plwasm_state: i64) #result {
            ::plwasm_udf::__private::aggregate_finish::<#self_ty, _>(
                __plwasm_state,
                |__plwasm_self| __plwasm_self.finish(),
            )
        }

        #[cfg(target_arch = "wasm32")]
        #[doc(hidden)]
        #[unsafe(link_section = "plwasm.udfs")]
        #[used]
        static #meta_static: [u8; #meta_len] = *#meta_bytes;
    })
}

struct Options {
    name: Option<String>,
    volatility: &'static str,
    setof: bool,
    returns: Option<syn::LitStr>,
    table: Vec<(String, String)>,
    /// `"safe"`, `"restricted"` or `"unsafe"`; when not given, plwasm decides from the volatility.
    parallel: Option<&'static str>,
    /// COST and ROWS estimates, as JSON numbers.
    cost: Option<String>,
    rows: Option<String>,
}

/// A positive number literal (`25`, `0.5`) as JSON.
fn estimate(meta: &syn::meta::ParseNestedMeta) -> syn::Result<String> {
    let lit: syn::Lit = meta.value()?.parse()?;
    let value = match &lit {
        syn::Lit::Int(i) => i.base10_parse::<f64>()?,
        syn::Lit::Float(f) => f.base10_parse::<f64>()?,
        _ => return Err(syn::Error::new(lit.span(), "expected a number")),
    };
    if !(0.001..=1e9).contains(&value) {
        return Err(syn::Error::new(
            lit.span(),
            "expected a number from 0.001 to 1e9",
        ));
    }
    Ok(format!("{value}"))
}

fn parse_options(attr: TokenStream2) -> syn::Result<Options> {
    let mut options = Options {
        name: None,
        volatility: "volatile",
        setof: false,
        returns: None,
        table: Vec::new(),
        parallel: None,
        cost: None,
        rows: None,
    };
    let parser = syn::meta::parser(|meta| {
        if meta.path.is_ident("name") {
            let value: syn::LitStr = meta.value()?.parse()?;
            options.name = Some(value.value());
        } else if meta.path.is_ident("immutable") {
            options.volatility = "immutable";
        } else if meta.path.is_ident("stable") {
            options.volatility = "stable";
        } else if meta.path.is_ident("volatile") {
            options.volatility = "volatile";
        } else if meta.path.is_ident("parallel_safe") {
            options.parallel = Some("safe");
        } else if meta.path.is_ident("parallel_restricted") {
            options.parallel = Some("restricted");
        } else if meta.path.is_ident("parallel_unsafe") {
            options.parallel = Some("unsafe");
        } else if meta.path.is_ident("parallel") {
            let value: syn::LitStr = meta.value()?.parse()?;
            options.parallel = Some(match value.value().as_str() {
                "safe" => "safe",
                "restricted" => "restricted",
                "unsafe" => "unsafe",
                _ => {
                    return Err(syn::Error::new(
                        value.span(),
                        "parallel = \"safe\", \"restricted\" or \"unsafe\"",
                    ))
                }
            });
        } else if meta.path.is_ident("cost") {
            options.cost = Some(estimate(&meta)?);
        } else if meta.path.is_ident("rows") {
            options.rows = Some(estimate(&meta)?);
        } else if meta.path.is_ident("setof") {
            options.setof = true;
        } else if meta.path.is_ident("returns") {
            options.returns = Some(meta.value()?.parse()?);
        } else if meta.path.is_ident("table") {
            meta.parse_nested_meta(|column| {
                let name = column
                    .path
                    .get_ident()
                    .ok_or_else(|| column.error("expected a column name"))?
                    .to_string();
                let ty: syn::LitStr = column.value()?.parse()?;
                options.table.push((name, ty.value()));
                Ok(())
            })?;
        } else {
            return Err(meta.error(
                "unknown #[udf] option; expected name = \"...\", immutable, stable, volatile, \
                 parallel = \"safe|restricted|unsafe\" (or parallel_safe, ...), cost = N, \
                 rows = N, setof, returns = \"...\" or table(col = \"type\", ...)",
            ));
        }
        Ok(())
    });
    syn::parse::Parser::parse2(parser, attr)?;
    Ok(options)
}

/// How a Rust type travels.
#[derive(Clone)]
enum Kind {
    /// One wasm value of this Rust wasm type (`i32`, `i64`, `f32`, `f64`).
    Scalar {
        wire: TokenStream2,
        sql: &'static str,
    },
    /// Bytes in memory.
    Bytes { sql: &'static str },
    /// Any other type: jsonb through serde (needs `T: Serialize + DeserializeOwned`).
    Json,
}

/// Whether plwasm passes this SQL type natively (as a wasm scalar, UTF-8, raw or packed bytes,
/// or JSON text for json/jsonb); every other type travels in its JSON form.
fn is_native(sql: &str) -> bool {
    let lower = sql.trim().to_ascii_lowercase();
    let (base, array) = match lower.strip_suffix("[]") {
        Some(base) => (base.trim(), true),
        None => (lower.as_str(), false),
    };
    // Drop a type modifier: varchar(20) is varchar.
    let base = base.split('(').next().unwrap_or(base).trim();
    const SCALARS: &[&str] = &[
        "smallint",
        "int2",
        "integer",
        "int",
        "int4",
        "bigint",
        "int8",
        "real",
        "float4",
        "double precision",
        "float8",
        "boolean",
        "bool",
    ];
    const BYTES: &[&str] = &[
        "text",
        "varchar",
        "character varying",
        "bpchar",
        "character",
        "char",
        "name",
        "bytea",
        "json",
        "jsonb",
    ];
    SCALARS.contains(&base) || (!array && BYTES.contains(&base))
}

/// How a value of Rust type `ty` travels and its SQL type, given an explicit SQL type if any.
fn resolve(ty: &Type, explicit: Option<&syn::LitStr>) -> syn::Result<(Kind, String)> {
    let kind = classify(ty)?;
    let default_sql = match &kind {
        Kind::Scalar { sql, .. } | Kind::Bytes { sql } => sql.to_string(),
        Kind::Json => "jsonb".to_string(),
    };
    let Some(explicit) = explicit else {
        return Ok((kind, default_sql));
    };
    let sql = explicit.value();
    if sql.trim().is_empty() {
        return Err(syn::Error::new(explicit.span(), "empty SQL type"));
    }
    let json_text = matches!(sql.trim().to_ascii_lowercase().as_str(), "json" | "jsonb");
    match kind {
        // Native types keep their native form; the Rust type must match it.
        _ if is_native(&sql) && !matches!(kind, Kind::Json) => Ok((kind, sql)),
        Kind::Json if is_native(&sql) && !json_text => Err(syn::Error::new(
            explicit.span(),
            format!("{sql} is passed natively (not as JSON): use the Rust type #[udf] maps to it"),
        )),
        // Everything else travels as JSON through serde.
        _ => Ok((Kind::Json, sql)),
    }
}

/// The `#[sql("type")]` attribute of a parameter, if any.
fn sql_attribute(attrs: &[syn::Attribute]) -> syn::Result<Option<syn::LitStr>> {
    let mut found = None;
    for attr in attrs.iter().filter(|a| a.path().is_ident("sql")) {
        if found.is_some() {
            return Err(syn::Error::new(attr.span(), "more than one #[sql(...)]"));
        }
        found = Some(attr.parse_args::<syn::LitStr>()?);
    }
    Ok(found)
}

/// The function's doc comment (`///` lines), for `COMMENT ON FUNCTION`: one leading space of each
/// line dropped, surrounding blank lines trimmed.
fn doc_comment(attrs: &[syn::Attribute]) -> Option<String> {
    let lines: Vec<String> = attrs
        .iter()
        .filter(|a| a.path().is_ident("doc"))
        .filter_map(|a| match &a.meta {
            syn::Meta::NameValue(syn::MetaNameValue {
                value:
                    syn::Expr::Lit(syn::ExprLit {
                        lit: syn::Lit::Str(text),
                        ..
                    }),
                ..
            }) => Some(text.value()),
            _ => None,
        })
        .map(|line| {
            line.strip_prefix(' ')
                .unwrap_or(&line)
                .trim_end()
                .to_string()
        })
        .collect();
    let text = lines.join("\n").trim().to_string();
    (!text.is_empty()).then_some(text)
}

fn last_segment(ty: &Type) -> Option<&syn::PathSegment> {
    match ty {
        Type::Path(p) if p.qself.is_none() => p.path.segments.last(),
        _ => None,
    }
}

fn generic_arg(segment: &syn::PathSegment, index: usize) -> Option<&Type> {
    match &segment.arguments {
        PathArguments::AngleBracketed(args) => args
            .args
            .iter()
            .filter_map(|a| match a {
                GenericArgument::Type(t) => Some(t),
                _ => None,
            })
            .nth(index),
        _ => None,
    }
}

fn option_inner(ty: &Type) -> Option<&Type> {
    let segment = last_segment(ty)?;
    (segment.ident == "Option")
        .then(|| generic_arg(segment, 0))
        .flatten()
}

fn classify(ty: &Type) -> syn::Result<Kind> {
    let unsupported = || {
        syn::Error::new(
            ty.span(),
            "#[udf] does not support this type; use i16, i32, i64, f32, f64, bool, &str, String, \
             &[u8], Vec<u8>, Vec<i16|i32|i64|f32|f64|bool>, serde_json::Value, a \
             Serialize + DeserializeOwned type, or Option of those",
        )
    };
    if let Type::Reference(reference) = ty {
        return match &*reference.elem {
            Type::Path(p) if p.path.is_ident("str") => Ok(Kind::Bytes { sql: "text" }),
            Type::Slice(slice) if matches!(&*slice.elem, Type::Path(p) if p.path.is_ident("u8")) => {
                Ok(Kind::Bytes { sql: "bytea" })
            }
            _ => Err(unsupported()),
        };
    }
    let segment = last_segment(ty).ok_or_else(unsupported)?;
    let scalar = |wire: TokenStream2, sql| Ok(Kind::Scalar { wire, sql });
    match segment.ident.to_string().as_str() {
        "i16" => scalar(quote!(i32), "smallint"),
        "i32" => scalar(quote!(i32), "integer"),
        "i64" => scalar(quote!(i64), "bigint"),
        "f32" => scalar(quote!(f32), "real"),
        "f64" => scalar(quote!(f64), "double precision"),
        "bool" => scalar(quote!(i32), "boolean"),
        "String" => Ok(Kind::Bytes { sql: "text" }),
        "Value" => Ok(Kind::Bytes { sql: "jsonb" }),
        "Vec" => {
            let element = generic_arg(segment, 0)
                .and_then(last_segment)
                .map(|s| s.ident.to_string())
                .ok_or_else(unsupported)?;
            let sql = match element.as_str() {
                "u8" => "bytea",
                "i16" => "smallint[]",
                "i32" => "integer[]",
                "i64" => "bigint[]",
                "f32" => "real[]",
                "f64" => "double precision[]",
                "bool" => "boolean[]",
                _ => return Err(unsupported()),
            };
            Ok(Kind::Bytes { sql })
        }
        // Primitives without a SQL type of their own would otherwise become jsonb silently.
        primitive @ ("u8" | "u16" | "u32" | "u64" | "u128" | "usize" | "i8" | "i128" | "isize"
        | "char")
            if segment.arguments.is_empty() =>
        {
            let hint = match primitive {
                "u8" | "i8" | "u16" => "i16 (smallint) or i32 (integer)",
                "u32" => "i64 (bigint), converting with u32::try_from",
                "char" => "&str or String (text)",
                _ => "i64 (bigint), or i32 (integer)",
            };
            Err(syn::Error::new(
                ty.span(),
                format!(
                    "#[udf]: {primitive} has no PostgreSQL type (Postgres has no unsigned or \
                     128-bit integers, nor a one-character type); use {hint}"
                ),
            ))
        }
        // Any other named type travels as jsonb through serde.
        _ => Ok(Kind::Json),
    }
}

/// The result type, seen through `Result<T, E>` and `Option<T>`.
struct ResultShape {
    fallible: bool,
    nullable: bool,
    /// How the result (or each row) travels, and its SQL type.
    kind: Option<(Kind, String)>,
    /// Set-returning: the rows' item type (from `impl Iterator<Item = T>` or `#[udf(setof)] Vec<T>`).
    setof: Option<Type>,
}

/// `T` of `impl Iterator<Item = T>`.
fn iterator_item(ty: &Type) -> Option<Type> {
    let Type::ImplTrait(imp) = ty else {
        return None;
    };
    imp.bounds.iter().find_map(|bound| {
        let syn::TypeParamBound::Trait(t) = bound else {
            return None;
        };
        let segment = t.path.segments.last()?;
        if segment.ident != "Iterator" {
            return None;
        }
        let PathArguments::AngleBracketed(args) = &segment.arguments else {
            return None;
        };
        args.args.iter().find_map(|a| match a {
            GenericArgument::AssocType(assoc) if assoc.ident == "Item" => Some(assoc.ty.clone()),
            _ => None,
        })
    })
}

fn result_shape(
    output: &ReturnType,
    setof: bool,
    explicit: Option<&syn::LitStr>,
) -> syn::Result<ResultShape> {
    let mut ty = match output {
        ReturnType::Default => {
            return Ok(ResultShape {
                fallible: false,
                nullable: false,
                kind: None,
                setof: None,
            })
        }
        ReturnType::Type(_, ty) => &**ty,
    };
    let mut fallible = false;
    if let Some(segment) = last_segment(ty) {
        if segment.ident == "Result" {
            fallible = true;
            ty = generic_arg(segment, 0)
                .ok_or_else(|| syn::Error::new(segment.span(), "Result<T, E> expected"))?;
        }
    }
    let item = iterator_item(ty).or_else(|| {
        let segment = last_segment(ty)?;
        (setof && segment.ident == "Vec")
            .then(|| generic_arg(segment, 0).cloned())
            .flatten()
    });
    if let Some(item) = item {
        // Rows may be NULL (Option<T>); their SQL type is T's.
        let row = option_inner(&item).unwrap_or(&item);
        return Ok(ResultShape {
            fallible,
            nullable: false,
            kind: Some(resolve(row, explicit)?),
            setof: Some(item.clone()),
        });
    }
    if setof {
        return Err(syn::Error::new(
            ty.span(),
            "#[udf(setof)] needs a Vec<T> (or impl Iterator<Item = T>) result",
        ));
    }
    let mut nullable = false;
    if let Some(inner) = option_inner(ty) {
        nullable = true;
        ty = inner;
    }
    let kind = match ty {
        Type::Tuple(t) if t.elems.is_empty() => None,
        _ => Some(resolve(ty, explicit)?),
    };
    Ok(ResultShape {
        fallible,
        nullable,
        kind,
        setof: None,
    })
}

fn json_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `{"name":..., "type":...}`: an argument or a RETURNS TABLE column in the description.
fn column_json(name: &str, sql_type: &str) -> String {
    format!(
        "{{\"name\":{},\"type\":{}}}",
        json_string(name),
        json_string(sql_type)
    )
}

fn expand(attr: TokenStream2, mut function: ItemFn) -> syn::Result<TokenStream2> {
    let options = parse_options(attr)?;
    // #[sql("type")] on parameters is ours: read it, then drop it from the function we emit.
    let mut explicit_types = Vec::new();
    for input in function.sig.inputs.iter_mut() {
        if let FnArg::Typed(typed) = input {
            explicit_types.push(sql_attribute(&typed.attrs)?);
            typed.attrs.retain(|a| !a.path().is_ident("sql"));
        } else {
            explicit_types.push(None);
        }
    }
    let rust_name = &function.sig.ident;
    if !function.sig.generics.params.is_empty() {
        return Err(syn::Error::new(
            function.sig.generics.span(),
            "#[udf] functions cannot be generic",
        ));
    }
    let sql_name = options
        .name
        .clone()
        .unwrap_or_else(|| rust_name.to_string());
    let wrapper = format_ident!("__plwasm_udf_{}", rust_name);

    let mut params = Vec::new();
    let mut conversions = Vec::new();
    let mut call_args = Vec::new();
    let mut sql_args = Vec::new();
    let mut strict = true;
    for (index, input) in function.sig.inputs.iter().enumerate() {
        let FnArg::Typed(typed) = input else {
            return Err(syn::Error::new(
                input.span(),
                "#[udf] functions cannot take self",
            ));
        };
        let arg_name = match &*typed.pat {
            Pat::Ident(ident) => ident.ident.to_string(),
            _ => format!("arg{}", index + 1),
        };
        let (nullable, ty) = match option_inner(&typed.ty) {
            Some(inner) => (true, inner),
            None => (false, &*typed.ty),
        };
        strict &= !nullable;
        let (kind, sql) = resolve(ty, explicit_types[index].as_ref())?;
        // How an ERROR about this argument names it, e.g. `"order" ($1)`.
        let arg_label = format!("\"{arg_name}\" (${})", index + 1);
        let value = format_ident!("a{}", index);
        let idx = index as i32;
        let convert = match &kind {
            Kind::Json => quote!(),
            Kind::Scalar { wire, .. } => {
                params.push(quote!(#value: #wire));
                quote_spanned!(ty.span()=> <#ty as ::plwasm_udf::__private::FromWireScalar>::from_wire(#value))
            }
            Kind::Bytes { .. } => {
                let ptr = format_ident!("a{}_ptr", index);
                let len = format_ident!("a{}_len", index);
                params.push(quote!(#ptr: i32, #len: i32));
                quote_spanned!(ty.span()=> {
                    // SAFETY: the host wrote this argument's bytes for this call.
                    let bytes = unsafe { ::plwasm_udf::__private::arg_bytes(#ptr, #len) };
                    match <#ty as ::plwasm_udf::__private::FromWireBytes>::from_wire(bytes) {
                        ::core::result::Result::Ok(v) => v,
                        ::core::result::Result::Err(e) => ::plwasm_udf::__private::raise_error(&e),
                    }
                })
            }
        };
        let convert = match &kind {
            Kind::Json => {
                let ptr = format_ident!("a{}_ptr", index);
                let len = format_ident!("a{}_len", index);
                params.push(quote!(#ptr: i32, #len: i32));
                quote_spanned!(ty.span()=> {
                    // SAFETY: the host wrote this argument's bytes for this call.
                    let bytes = unsafe { ::plwasm_udf::__private::arg_bytes(#ptr, #len) };
                    ::plwasm_udf::__private::json_arg::<#ty>(bytes, #arg_label)
                })
            }
            _ => convert,
        };
        conversions.push(if nullable {
            quote!(let #value = if ::plwasm_udf::__private::arg_is_null(#idx) {
                ::core::option::Option::None
            } else {
                ::core::option::Option::Some(#convert)
            };)
        } else {
            quote!(let #value = #convert;)
        });
        call_args.push(quote!(#value));
        sql_args.push(column_json(&arg_name, &sql));
    }

    let table = !options.table.is_empty();
    if table && options.returns.is_some() {
        return Err(syn::Error::new(
            Span::call_site(),
            "#[udf] takes returns = \"...\" or table(...), not both",
        ));
    }
    let shape = result_shape(
        &function.sig.output,
        options.setof || table,
        options.returns.as_ref(),
    )?;
    if table && !matches!(shape.kind, Some((Kind::Json, _))) {
        return Err(syn::Error::new(
            function.sig.output.span(),
            "#[udf(table(...))] rows must be a Serialize struct whose fields are the columns",
        ));
    }
    let (ret_type, convert_result, zero, sql_ret) = match &shape.kind {
        Some((kind, sql)) if shape.setof.is_some() => {
            let emit = match kind {
                Kind::Json => quote!(::plwasm_udf::__private::emit_json(&row);),
                _ => quote!(::plwasm_udf::__private::EmitRow::emit(row);),
            };
            let sql = if table {
                "record".to_string()
            } else {
                sql.clone()
            };
            (quote!(), quote!(for row in r { #emit }), quote!(), sql)
        }
        None => (quote!(), quote!(let _ = r;), quote!(), "void".to_string()),
        Some((Kind::Scalar { wire, .. }, sql)) => (
            quote!(-> #wire),
            quote!(::plwasm_udf::__private::IntoWireScalar::into_wire(r)),
            quote!(<#wire as ::core::default::Default>::default()),
            sql.clone(),
        ),
        Some((Kind::Bytes { .. }, sql)) => (
            quote!(-> i64),
            quote!(::plwasm_udf::__private::WireResult::into_packed(r)),
            quote!(0i64),
            sql.clone(),
        ),
        Some((Kind::Json, sql)) => (
            quote!(-> i64),
            quote!(::plwasm_udf::__private::json_result(&r)),
            quote!(0i64),
            sql.clone(),
        ),
    };
    let table_columns = options
        .table
        .iter()
        .map(|(name, ty)| column_json(name, ty))
        .collect::<Vec<_>>()
        .join(",");
    let mut body = convert_result;
    if shape.nullable {
        body = quote!(match r {
            ::core::option::Option::Some(r) => { #body }
            ::core::option::Option::None => { ::plwasm_udf::__private::return_null(); #zero }
        });
    }
    if shape.fallible {
        body = quote!(match r {
            ::core::result::Result::Ok(r) => { #body }
            ::core::result::Result::Err(e) => ::plwasm_udf::__private::raise_error(&::std::string::ToString::to_string(&e)),
        });
    }

    let mut planner = String::new();
    if let Some(parallel) = options.parallel {
        planner.push_str(&format!(",\"parallel\":{}", json_string(parallel)));
    }
    if let Some(cost) = &options.cost {
        planner.push_str(&format!(",\"cost\":{cost}"));
    }
    if let Some(rows) = &options.rows {
        planner.push_str(&format!(",\"rows\":{rows}"));
    }
    if let Some(comment) = doc_comment(&function.attrs) {
        planner.push_str(&format!(",\"comment\":{}", json_string(&comment)));
    }
    let meta = format!(
        "{{\"name\":{},\"export\":{},\"args\":[{}],\"returns\":{},\"table\":[{}],\"setof\":{},\"strict\":{},\"volatility\":{}{planner}}}\n",
        json_string(&sql_name),
        json_string(&sql_name),
        sql_args.join(","),
        json_string(&sql_ret),
        table_columns,
        shape.setof.is_some(),
        strict,
        json_string(options.volatility)
    );
    let sections = section_statics(rust_name, &meta);

    Ok(quote! {
        // Natively, only tests call the function: its wasm export is what uses it.
        #[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
        #function

        #[cfg(target_arch = "wasm32")]
        #[doc(hidden)]
        #[unsafe(export_name = #sql_name)]
        pub extern "C" fn #wrapper(#(#params),*) #ret_type {
            ::plwasm_udf::__private::set_panic_hook();
            #(#conversions)*
            let r = #rust_name(#(#call_args),*);
            #body
        }

        #sections
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The `plwasm.udfs` line `#[udf(attr)] item` generates (as it appears in the tokens).
    fn description(attr: TokenStream2, item: TokenStream2) -> syn::Result<String> {
        let tokens = expand(attr, syn::parse2(item).expect("a function"))?.to_string();
        let start = tokens.find("b\"{").expect("metadata literal");
        let end = tokens[start..].find("\\n\"").expect("end of literal");
        Ok(tokens[start + 2..start + end].replace("\\\"", "\""))
    }

    #[test]
    fn parallel_takes_a_value_too() {
        let d = description(
            quote!(parallel = "restricted"),
            quote!(
                fn f(x: i32) -> i32 {
                    x
                }
            ),
        )
        .unwrap();
        assert!(d.contains(r#""parallel":"restricted""#), "{d}");
        assert!(description(
            quote!(parallel = "maybe"),
            quote!(
                fn f(x: i32) -> i32 {
                    x
                }
            )
        )
        .unwrap_err()
        .to_string()
        .contains("\"safe\", \"restricted\" or \"unsafe\""));
    }

    #[test]
    fn doc_comments_become_the_comment() {
        let d = description(
            quote!(),
            quote!(
                /// Adds one.
                ///
                /// Says "hi".
                fn f(x: i32) -> i32 {
                    x + 1
                }
            ),
        )
        .unwrap();
        assert!(
            d.contains(r#","comment":"Adds one.\\u000a\\u000aSays \\"hi\\"."}"#),
            "{d}"
        );
        let d = description(
            quote!(),
            quote!(
                fn g(x: i32) -> i32 {
                    x
                }
            ),
        )
        .unwrap();
        assert!(!d.contains("comment"), "{d}");
    }

    #[test]
    fn explicit_types_are_described_and_not_emitted() {
        let tokens = expand(
            quote!(returns = "numeric"),
            syn::parse_quote!(
                fn f(#[sql("numeric")] x: f64, #[sql("varchar")] s: &str) -> f64 {
                    x
                }
            ),
        )
        .unwrap()
        .to_string();
        assert!(!tokens.contains("# [sql"), "{tokens}");
        let d = description(
            quote!(returns = "numeric"),
            quote!(
                fn f(#[sql("numeric")] x: f64, #[sql("varchar")] s: &str) -> f64 {
                    x
                }
            ),
        )
        .unwrap();
        assert!(
            d.contains(r#""args":[{"name":"x","type":"numeric"},{"name":"s","type":"varchar"}]"#),
            "{d}"
        );
        assert!(d.contains(r#""returns":"numeric""#), "{d}");
    }

    #[test]
    fn tables_are_described() {
        let d = description(
            quote!(table(word = "text", n = "integer")),
            quote!(
                fn f(s: &str) -> impl Iterator<Item = Row> {
                    todo!()
                }
            ),
        )
        .unwrap();
        assert!(d.contains(r#""returns":"record","table":[{"name":"word","type":"text"},{"name":"n","type":"integer"}],"setof":true"#), "{d}");
    }

    #[test]
    fn mistakes_are_compile_errors() {
        let error = |attr: TokenStream2, item: TokenStream2| {
            description(attr, item).unwrap_err().to_string()
        };
        assert!(error(
            quote!(),
            quote!(
                fn f(#[sql("integer[]")] p: Point) {}
            )
        )
        .contains("natively"));
        assert!(error(
            quote!(table(a = "text"), returns = "x"),
            quote!(
                fn f() -> Vec<Row> {
                    todo!()
                }
            )
        )
        .contains("not both"));
        assert!(error(
            quote!(table(a = "text")),
            quote!(
                fn f() -> Vec<i32> {
                    todo!()
                }
            )
        )
        .contains("Serialize struct"));
        assert!(error(
            quote!(),
            quote!(
                fn f(#[sql("")] p: Point) {}
            )
        )
        .contains("empty SQL type"));
        for (ty, hint) in [
            (quote!(u32), "i64 (bigint)"),
            (quote!(usize), "i64 (bigint)"),
            (quote!(u8), "i16 (smallint)"),
            (quote!(char), "String (text)"),
            (quote!(Option<u64>), "i64 (bigint)"),
        ] {
            let message = error(quote!(), quote!(fn f(x: #ty) {}));
            assert!(message.contains("has no PostgreSQL type"), "{message}");
            assert!(message.contains(hint), "{message}");
            let message = error(quote!(), quote!(fn f() -> #ty { todo!() }));
            assert!(message.contains("has no PostgreSQL type"), "{message}");
        }
        assert!(error(
            quote!(bogus),
            quote!(
                fn f() {}
            )
        )
        .contains("unknown #[udf] option"));
        assert!(error(
            quote!(),
            quote!(
                fn f<T>(t: T) {}
            )
        )
        .contains("generic"));
    }

    #[test]
    fn triggers_are_described() {
        let tokens = expand_trigger(
            quote!(name = "stamp_rows"),
            syn::parse_quote!(
                /// Stamps rows.
                fn stamp(event: TriggerEvent<Row>) -> TriggerResult<Row> {
                    TriggerResult::Unchanged
                }
            ),
        )
        .unwrap()
        .to_string();
        assert!(tokens.contains(r#"\"name\":\"stamp_rows\",\"export\":\"stamp_rows\",\"args\":[],\"returns\":\"trigger\""#), "{tokens}");
        assert!(tokens.contains("Stamps rows."), "{tokens}");
        let error = |attr: TokenStream2, item: syn::ItemFn| {
            expand_trigger(attr, item).unwrap_err().to_string()
        };
        assert!(error(
            quote!(),
            syn::parse_quote!(
                fn f() {}
            )
        )
        .contains("one parameter"));
        assert!(error(
            quote!(),
            syn::parse_quote!(
                fn f(a: E, b: E) {}
            )
        )
        .contains("one parameter"));
        assert!(error(
            quote!(when = "x"),
            syn::parse_quote!(
                fn f(a: E) {}
            )
        )
        .contains("unknown #[trigger] option"));
    }

    #[test]
    fn native_types_are_recognised() {
        for native in [
            "integer",
            "varchar(20)",
            "double precision[]",
            "JSONB",
            "bool[]",
        ] {
            assert!(is_native(native), "{native}");
        }
        for other in ["numeric", "text[]", "date", "point2d", "jsonb[]"] {
            assert!(!is_native(other), "{other}");
        }
    }
}
