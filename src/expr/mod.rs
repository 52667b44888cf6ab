//! The expression language: a documented subset of CEL.
//!
//! Pipeline: [`lexer`] -> [`parser`] (AST with spans, [`ast`]) -> [`check`] (names
//! resolved to slots, types checked, diagnostics) -> [`compile`] (fused predicates) ->
//! [`eval`].

pub mod ast;
pub(crate) mod lexer;
pub(crate) mod parser;
