//! The lab's error type: every failure carries a message a person can act on.

use std::fmt;

/// An error from reading input, fitting or exporting.
#[derive(Debug)]
pub enum LabError {
    /// Input that cannot be read (a missing file, a malformed CSV or JSON line).
    Input(String),
    /// Input that was read but cannot be used as asked (a missing column, one class).
    Data(String),
    /// A rule-set document that nurture refused, with its rendered diagnostics.
    Document(String),
}

impl fmt::Display for LabError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LabError::Input(m) => write!(f, "cannot read input: {m}"),
            LabError::Data(m) => write!(f, "{m}"),
            LabError::Document(m) => write!(f, "rule-set document refused: {m}"),
        }
    }
}

impl std::error::Error for LabError {}

impl From<nurture::CompileError> for LabError {
    fn from(e: nurture::CompileError) -> LabError {
        LabError::Document(e.to_string())
    }
}

impl From<nurture::RecordError> for LabError {
    fn from(e: nurture::RecordError) -> LabError {
        LabError::Data(e.to_string())
    }
}

/// The lab's result type.
pub type Result<T> = std::result::Result<T, LabError>;
