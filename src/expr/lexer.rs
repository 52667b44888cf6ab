//! Tokens of CEL source text. (being written)
