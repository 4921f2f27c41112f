//! Attribute macros for mcp-bastion.
//!
//! # `#[rate_limit]`
//!
//! Declares the rate limit of a tool next to its code. Put it on the tool's
//! function (beside rmcp's `#[tool]`); the layer picks every declaration
//! linked into the binary up with
//! `McpRateLimitLayer::with_declared_tool_limits()`, which you then mount
//! like any rate limit (`McpStack::new().rate_limit(layer)`, or
//! `Router::layer` inside `McpInspectLayer`).
//!
//! ```
//! use mcp_bastion::ratelimit::declared_tool_limits;
//! use mcp_bastion_macros::rate_limit;
//!
//! #[rate_limit("10/min")]
//! fn search() {}
//!
//! #[rate_limit("1/s gcra burst=5", name = "deep-search", key = principal)]
//! async fn deep_search() {}
//!
//! let declared: Vec<_> = declared_tool_limits().map(|d| (d.tool, d.limit, d.key)).collect();
//! assert!(declared.contains(&("search", "10/min", None)));
//! assert!(declared.contains(&("deep-search", "1/s gcra burst=5", Some("principal"))));
//! ```
//!
//! - The first argument is the limit: `"N/unit"` with unit `s`, `min`, `h`,
//!   `d` (optionally with a multiplier, `"5/10s"`), then optionally `gcra`,
//!   `sliding` and `burst=N`.
//! - `name = "…"`: the tool's name; otherwise the name in a `#[tool(name =
//!   "…")]` written *below* this attribute, otherwise the function's name.
//! - `key = principal | ip | session | key | global`: what the limit is counted
//!   per; otherwise the policy's key.
//!
//! Anything else is a compile error that points at the argument:
//!
//! ```compile_fail
//! #[mcp_bastion_macros::rate_limit("10/fortnight")]
//! fn search() {}
//! ```
//!
//! ```compile_fail
//! #[mcp_bastion_macros::rate_limit("10/min", key = planet)]
//! fn search() {}
//! ```
//!
//! ```compile_fail
//! #[mcp_bastion_macros::rate_limit("10/min", colour = "red")]
//! fn search() {}
//! ```
//!
//! ```compile_fail
//! #[mcp_bastion_macros::rate_limit]
//! fn search() {}
//! ```
//!
//! ```compile_fail
//! #[mcp_bastion_macros::rate_limit("10/min")]
//! struct NotAFunction;
//! ```

use proc_macro::TokenStream;
use proc_macro2::Span;
use quote::quote;
use syn::{
    Expr, ExprLit, ExprPath, ImplItemFn, Lit, LitStr, Meta, Token, parse::Parser,
    punctuated::Punctuated,
};

const KEYS: [&str; 5] = ["principal", "ip", "session", "key", "global"];

/// Declares a tool's rate limit. See the [crate docs](crate).
#[proc_macro_attribute]
pub fn rate_limit(args: TokenStream, item: TokenStream) -> TokenStream {
    match expand(args.into(), item.into()) {
        Ok(tokens) => tokens.into(),
        Err(e) => e.to_compile_error().into(),
    }
}

fn expand(
    args: proc_macro2::TokenStream,
    item: proc_macro2::TokenStream,
) -> syn::Result<proc_macro2::TokenStream> {
    let args = Punctuated::<Expr, Token![,]>::parse_terminated.parse2(args)?;
    // functions and methods share this shape
    let mut func: ImplItemFn = syn::parse2(item)
        .map_err(|e| syn::Error::new(e.span(), "#[rate_limit] goes on a tool function"))?;
    let mut iter = args.iter();
    let limit = match iter.next() {
        Some(Expr::Lit(ExprLit {
            lit: Lit::Str(s), ..
        })) => s.clone(),
        Some(other) => {
            return Err(syn::Error::new_spanned(
                other,
                "the first argument is the limit, a string such as \"10/min\"",
            ));
        }
        None => {
            return Err(syn::Error::new(
                Span::call_site(),
                "#[rate_limit] needs a limit, e.g. #[rate_limit(\"10/min\")]",
            ));
        }
    };
    check_limit(&limit.value()).map_err(|why| syn::Error::new_spanned(&limit, why))?;
    let mut name: Option<LitStr> = None;
    let mut key: Option<String> = None;
    for arg in iter {
        let Expr::Assign(assign) = arg else {
            return Err(syn::Error::new_spanned(
                arg,
                "expected `name = \"…\"` or `key = principal|ip|session`",
            ));
        };
        let field = match &*assign.left {
            Expr::Path(p) => p.path.get_ident().map(|i| i.to_string()),
            _ => None,
        };
        match field.as_deref() {
            Some("name") => match &*assign.right {
                Expr::Lit(ExprLit {
                    lit: Lit::Str(s), ..
                }) if !s.value().is_empty() => name = Some(s.clone()),
                other => {
                    return Err(syn::Error::new_spanned(
                        other,
                        "`name` is the tool's name, a non-empty string",
                    ));
                }
            },
            Some("key") => {
                let value = match &*assign.right {
                    Expr::Path(ExprPath { path, .. }) => path.get_ident().map(|i| i.to_string()),
                    Expr::Lit(ExprLit {
                        lit: Lit::Str(s), ..
                    }) => Some(s.value()),
                    _ => None,
                };
                match value {
                    Some(v) if KEYS.contains(&v.as_str()) => key = Some(v),
                    _ => {
                        return Err(syn::Error::new_spanned(
                            &assign.right,
                            "`key` is one of principal, ip, session, key, global",
                        ));
                    }
                }
            }
            _ => {
                return Err(syn::Error::new_spanned(
                    &assign.left,
                    "unknown argument: expected `name` or `key`",
                ));
            }
        }
    }
    let tool = match name {
        Some(n) => n.value(),
        None => tool_attr_name(&func).unwrap_or_else(|| func.sig.ident.to_string()),
    };
    let key = match key {
        Some(k) => quote!(::core::option::Option::Some(#k)),
        None => quote!(::core::option::Option::None),
    };
    // The registration is an item inside the body: valid in free functions and
    // in methods alike, and registered at link time whether or not it runs.
    let registration: syn::Stmt = syn::parse_quote! {
        ::mcp_bastion::ratelimit::__inventory::submit! {
            ::mcp_bastion::ratelimit::DeclaredToolLimit {
                tool: #tool,
                limit: #limit,
                key: #key,
                location: ::core::concat!(::core::file!(), ":", ::core::line!()),
            }
        }
    };
    func.block.stmts.insert(0, registration);
    Ok(quote!(#func))
}

/// `name = "…"` of a `#[tool(…)]` attribute on the same function.
fn tool_attr_name(func: &ImplItemFn) -> Option<String> {
    func.attrs.iter().find_map(|attr| {
        if attr
            .path()
            .segments
            .last()
            .is_none_or(|s| s.ident != "tool")
        {
            return None;
        }
        let Meta::List(list) = &attr.meta else {
            return None;
        };
        let nested = list
            .parse_args_with(Punctuated::<Meta, Token![,]>::parse_terminated)
            .ok()?;
        nested.iter().find_map(|m| match m {
            Meta::NameValue(nv) if nv.path.is_ident("name") => match &nv.value {
                Expr::Lit(ExprLit {
                    lit: Lit::Str(s), ..
                }) => Some(s.value()),
                _ => None,
            },
            _ => None,
        })
    })
}

/// The grammar of `mcp_bastion::ratelimit::Limit`, checked at compile time
/// (this crate cannot depend on the library that depends on it).
fn check_limit(s: &str) -> Result<(), String> {
    let mut words = s.split([' ', ',', ';']).filter(|w| !w.is_empty());
    let rate = words
        .next()
        .ok_or("the limit is empty; write e.g. \"10/min\"")?;
    let (count, per) = rate
        .split_once('/')
        .ok_or("a limit is COUNT/PERIOD, e.g. \"10/min\"")?;
    match count.parse::<u32>() {
        Ok(n) if n > 0 => {}
        _ => return Err(format!("`{count}` is not a count above zero")),
    }
    let split = per.find(|c: char| !c.is_ascii_digit()).unwrap_or(per.len());
    let (mult, unit) = per.split_at(split);
    if !mult.is_empty() && mult.parse::<u64>().map_or(true, |m| m == 0) {
        return Err(format!("`{mult}` is not a multiplier above zero"));
    }
    const UNITS: [&str; 19] = [
        "s", "sec", "secs", "second", "seconds", "m", "min", "mins", "minute", "minutes", "h",
        "hr", "hour", "hours", "d", "day", "days", "ms", "",
    ];
    if unit.is_empty() || !UNITS.contains(&unit.to_ascii_lowercase().as_str()) {
        return Err(format!(
            "unknown period `{per}`: use s, min, h or d (e.g. \"10/min\")"
        ));
    }
    for word in words {
        let w = word.to_ascii_lowercase();
        if matches!(w.as_str(), "gcra" | "sliding" | "window" | "sliding-window") {
            continue;
        }
        match w.strip_prefix("burst=").map(str::parse::<u32>) {
            Some(Ok(n)) if n > 0 => {}
            _ => {
                return Err(format!(
                    "unknown option `{word}`: expected gcra, sliding or burst=N"
                ));
            }
        }
    }
    Ok(())
}
