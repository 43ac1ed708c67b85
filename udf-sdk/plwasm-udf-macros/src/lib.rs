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
//! Options: `name = "sql_name"`, one of `immutable`, `stable`, `volatile` (the default), and
//! `setof` (a `Vec<T>` result is then a set of rows, as `impl Iterator<Item = T>` always is).
//! A function is STRICT unless a parameter is an `Option`.

use proc_macro::TokenStream;
use proc_macro2::{Span, TokenStream as TokenStream2};
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{
    parse_macro_input, FnArg, GenericArgument, ItemFn, Pat, PathArguments, ReturnType, Type,
};

#[proc_macro_attribute]
pub fn udf(attr: TokenStream, item: TokenStream) -> TokenStream {
    let function = parse_macro_input!(item as ItemFn);
    match expand(attr.into(), function) {
        Ok(tokens) => tokens.into(),
        Err(error) => error.to_compile_error().into(),
    }
}

struct Options {
    name: Option<String>,
    volatility: &'static str,
    setof: bool,
}

fn parse_options(attr: TokenStream2) -> syn::Result<Options> {
    let mut options = Options {
        name: None,
        volatility: "volatile",
        setof: false,
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
        } else if meta.path.is_ident("setof") {
            options.setof = true;
        } else {
            return Err(meta.error(
                "unknown #[udf] option; expected name = \"...\", immutable, stable, volatile or setof",
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
        // Any other named type travels as jsonb through serde.
        _ => Ok(Kind::Json),
    }
}

/// The result type, seen through `Result<T, E>` and `Option<T>`.
struct ResultShape {
    fallible: bool,
    nullable: bool,
    kind: Option<Kind>,
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

fn result_shape(output: &ReturnType, setof: bool) -> syn::Result<ResultShape> {
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
            kind: Some(classify(row)?),
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
        _ => Some(classify(ty)?),
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

fn expand(attr: TokenStream2, function: ItemFn) -> syn::Result<TokenStream2> {
    let options = parse_options(attr)?;
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
    let meta_static = format_ident!("__PLWASM_UDF_{}", rust_name.to_string().to_uppercase());

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
        let kind = classify(ty)?;
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
                    match ::plwasm_udf::__private::json_arg::<#ty>(bytes) {
                        ::core::result::Result::Ok(v) => v,
                        ::core::result::Result::Err(e) => ::plwasm_udf::__private::raise_error(&e),
                    }
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
        let sql = match kind {
            Kind::Scalar { sql, .. } | Kind::Bytes { sql } => sql,
            Kind::Json => "jsonb",
        };
        sql_args.push(format!(
            "{{\"name\":{},\"type\":{}}}",
            json_string(&arg_name),
            json_string(sql)
        ));
    }

    let shape = result_shape(&function.sig.output, options.setof)?;
    let (ret_type, convert_result, zero, sql_ret) = match &shape.kind {
        Some(kind) if shape.setof.is_some() => {
            let emit = match kind {
                Kind::Json => quote!(::plwasm_udf::__private::emit_json(&row);),
                _ => quote!(::plwasm_udf::__private::EmitRow::emit(row);),
            };
            let sql = match kind {
                Kind::Scalar { sql, .. } | Kind::Bytes { sql } => *sql,
                Kind::Json => "jsonb",
            };
            (quote!(), quote!(for row in r { #emit }), quote!(), sql)
        }
        None => (quote!(), quote!(let _ = r;), quote!(), "void"),
        Some(Kind::Scalar { wire, sql }) => (
            quote!(-> #wire),
            quote!(::plwasm_udf::__private::IntoWireScalar::into_wire(r)),
            quote!(<#wire as ::core::default::Default>::default()),
            *sql,
        ),
        Some(Kind::Bytes { sql }) => (
            quote!(-> i64),
            quote!(::plwasm_udf::__private::WireResult::into_packed(r)),
            quote!(0i64),
            *sql,
        ),
        Some(Kind::Json) => (
            quote!(-> i64),
            quote!(::plwasm_udf::__private::json_result(&r)),
            quote!(0i64),
            "jsonb",
        ),
    };
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

    let meta = format!(
        "{{\"name\":{},\"export\":{},\"args\":[{}],\"returns\":{},\"setof\":{},\"strict\":{},\"volatility\":{}}}\n",
        json_string(&sql_name),
        json_string(&sql_name),
        sql_args.join(","),
        json_string(sql_ret),
        shape.setof.is_some(),
        strict,
        json_string(options.volatility)
    );
    let meta_len = meta.len();
    let meta_bytes = syn::LitByteStr::new(meta.as_bytes(), Span::call_site());

    Ok(quote! {
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

        #[cfg(target_arch = "wasm32")]
        #[doc(hidden)]
        #[unsafe(link_section = "plwasm.udfs")]
        #[used]
        static #meta_static: [u8; #meta_len] = *#meta_bytes;
    })
}
