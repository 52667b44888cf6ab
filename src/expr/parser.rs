//! Recursive-descent parser for CEL. (being written)
