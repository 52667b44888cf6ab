//! Reading a table of contacts from CSV: separators, quoted fields, empty cells and
//! declared missing markers, with each column typed as numeric or categorical.

use std::collections::HashMap;
use std::path::Path;

use crate::error::{LabError, Result};

/// A table read from CSV, column-major; `None` is a missing cell.
#[derive(Clone, Debug)]
pub struct Table {
    /// Column names from the header, in file order.
    pub names: Vec<String>,
    /// `columns[c][r]`: the trimmed cell of row `r`, or `None` when empty or declared missing.
    pub columns: Vec<Vec<Option<String>>>,
}

impl Table {
    /// Reads a CSV file with a header line.
    ///
    /// # Errors
    ///
    /// An unreadable file, a malformed record (its line is named), or no header.
    pub fn read(path: &Path, sep: u8, missing: &[String]) -> Result<Table> {
        let file =
            std::fs::File::open(path).map_err(|e| LabError::Input(format!("{}: {e}", path.display())))?;
        Table::from_reader(file, sep, missing).map_err(|e| match e {
            LabError::Input(m) => LabError::Input(format!("{}: {m}", path.display())),
            other => other,
        })
    }

    /// Reads CSV text from any reader (see [`Table::read`]).
    ///
    /// # Errors
    ///
    /// A malformed record or no header.
    pub fn from_reader(reader: impl std::io::Read, sep: u8, missing: &[String]) -> Result<Table> {
        let mut rdr = csv::ReaderBuilder::new().delimiter(sep).has_headers(true).from_reader(reader);
        let names: Vec<String> = rdr
            .headers()
            .map_err(|e| LabError::Input(e.to_string()))?
            .iter()
            .map(|h| h.trim().trim_start_matches('\u{feff}').to_string())
            .collect();
        if names.is_empty() || names.iter().all(String::is_empty) {
            return Err(LabError::Input("no header line".into()));
        }
        let mut columns: Vec<Vec<Option<String>>> = vec![Vec::new(); names.len()];
        for record in rdr.records() {
            let record = record.map_err(|e| LabError::Input(e.to_string()))?;
            for (c, cell) in record.iter().enumerate() {
                let cell = cell.trim();
                let value = if cell.is_empty() || missing.iter().any(|m| m == cell) {
                    None
                } else {
                    Some(cell.to_string())
                };
                columns[c].push(value);
            }
        }
        Ok(Table { names, columns })
    }

    /// The number of rows.
    pub fn rows(&self) -> usize {
        self.columns.first().map_or(0, Vec::len)
    }

    /// The index of a column by name.
    ///
    /// # Errors
    ///
    /// No such column; the message lists the columns there are.
    pub fn column(&self, name: &str) -> Result<usize> {
        self.names.iter().position(|n| n == name).ok_or_else(|| {
            LabError::Data(format!(
                "no column `{name}`; the columns are: {}",
                self.names.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ")
            ))
        })
    }

    /// The outcome of each row: `true` where the label column equals `positive`.
    ///
    /// # Errors
    ///
    /// A missing label cell, or a label with only one class.
    pub fn labels(&self, label: &str, positive: &str) -> Result<Vec<bool>> {
        let c = self.column(label)?;
        let mut out = Vec::with_capacity(self.rows());
        for (r, cell) in self.columns[c].iter().enumerate() {
            match cell {
                Some(v) => out.push(v == positive),
                None => {
                    return Err(LabError::Data(format!(
                        "row {} (line {}) has no value in the label column `{label}`",
                        r + 1,
                        r + 2
                    )))
                }
            }
        }
        let positives = out.iter().filter(|&&p| p).count();
        if positives == 0 || positives == out.len() {
            let mut seen: Vec<&str> = self.columns[c].iter().flatten().map(String::as_str).collect();
            seen.sort_unstable();
            seen.dedup();
            seen.truncate(5);
            return Err(LabError::Data(format!(
                "the label `{label}` has one class only ({positives} of {} rows equal `{positive}`; values seen: {}); \
                 a model needs both outcomes",
                out.len(),
                seen.join(", ")
            )));
        }
        Ok(out)
    }
}

/// How a column is used.
#[derive(Clone, Debug, PartialEq)]
pub enum Column {
    /// Every present cell is a finite number.
    Numeric(Vec<Option<f64>>),
    /// Text levels.
    Categorical(Vec<Option<String>>),
}

/// Why a column was left out of a model.
#[derive(Clone, Debug, PartialEq)]
pub enum Skipped {
    /// Asked for with `--drop`, or the label.
    Dropped,
    /// Every value distinct: a row identifier, not a feature.
    Identifier,
    /// Fewer than two distinct values.
    Constant,
}

/// Types a column: numeric when every present cell parses as a finite number.
///
/// # Errors
///
/// A column whose cells are nearly all numbers (at least 95%) but not all: the first
/// offending row and value are named, so the value can be declared missing or fixed.
pub fn classify(name: &str, cells: &[Option<String>]) -> Result<Typed> {
    let present: Vec<(usize, &str)> =
        cells.iter().enumerate().filter_map(|(r, c)| c.as_deref().map(|v| (r, v))).collect();
    let mut distinct: HashMap<&str, usize> = HashMap::new();
    for &(_, v) in &present {
        *distinct.entry(v).or_default() += 1;
    }
    if distinct.len() < 2 {
        return Ok(Typed::Skip(Skipped::Constant));
    }
    let parsed: Vec<Option<f64>> =
        present.iter().map(|&(_, v)| v.parse::<f64>().ok().filter(|x| x.is_finite())).collect();
    let numeric = parsed.iter().filter(|p| p.is_some()).count();
    let all_distinct = distinct.len() == present.len() && present.len() > 20;
    if numeric == present.len() {
        let integral = parsed.iter().flatten().all(|x| x.fract() == 0.0);
        if all_distinct && integral {
            return Ok(Typed::Skip(Skipped::Identifier));
        }
        let values = cells.iter().map(|c| c.as_deref().and_then(|v| v.parse::<f64>().ok())).collect();
        return Ok(Typed::Use(Column::Numeric(values)));
    }
    if numeric * 20 >= present.len() * 19 {
        let (r, v) =
            present.iter().zip(&parsed).find(|(_, p)| p.is_none()).map(|(rv, _)| *rv).unwrap_or((0, ""));
        return Err(LabError::Data(format!(
            "column `{name}` is numeric in {numeric} of {} rows, but row {} (line {}) has `{v}`, which is not a \
             finite number; declare it missing with --missing, fix it, or --drop the column",
            present.len(),
            r + 1,
            r + 2
        )));
    }
    if all_distinct {
        return Ok(Typed::Skip(Skipped::Identifier));
    }
    Ok(Typed::Use(Column::Categorical(cells.to_vec())))
}

/// A column to use, or the reason to skip it.
#[derive(Clone, Debug, PartialEq)]
pub enum Typed {
    /// Use the column.
    Use(Column),
    /// Leave it out.
    Skip(Skipped),
}

/// A field name nurture accepts (`[A-Za-z_][A-Za-z0-9_]*`), from a column name:
/// lower snake case, runs of other characters as one `_`.
pub fn field_name(column: &str) -> String {
    let mut out = String::new();
    for ch in column.chars() {
        if ch.is_ascii_alphanumeric() {
            out.push(ch.to_ascii_lowercase());
        } else if !out.ends_with('_') {
            out.push('_');
        }
    }
    let out = out.trim_matches('_').to_string();
    if out.is_empty() {
        "field".into()
    } else if out.starts_with(|c: char| c.is_ascii_digit()) {
        format!("f_{out}")
    } else {
        out
    }
}
