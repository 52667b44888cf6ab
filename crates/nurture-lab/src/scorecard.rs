//! The points scorecard: binned features, a regularised logistic regression on them
//! (with pairwise interactions kept only where inner cross-validation shows they help),
//! integer points, and export as a nurture rule-set document.
//!
//! # Scaling
//!
//! A score `S` means odds of `2^((S - base) / pdo)` to one: `base` points (default 100)
//! is even odds, and every `pdo` points (default 20) doubles the odds. A bin with
//! coefficient `b` is worth `pdo / ln 2 * b` points; each feature's points are shifted
//! so that its lowest bin is worth 0, the shifts going into the `base` rule, and
//! every amount is rounded to a whole number. The exported score is the sum of the
//! rounded points, exactly as nurture's `Scorer` computes it.

use std::collections::BTreeSet;

use nurture::{Program, Timestamp};

use crate::binning::{bin_categorical, bin_numeric, Bin, BinOptions, Cell, Feature};
use crate::error::{LabError, Result};
use crate::logit::{self, sigmoid, stratified_folds, Logit};
use crate::metrics::auc;
use crate::table::{classify, field_name, Column, Skipped, Table, Typed};

/// The id of the score model in exported documents.
pub const MODEL_ID: &str = "lead";

/// Rows and usable columns, ready to fit.
#[derive(Clone, Debug)]
pub struct Dataset {
    /// Usable columns: (CSV name, field name, values).
    pub columns: Vec<(String, String, Column)>,
    /// Outcomes.
    pub labels: Vec<bool>,
    /// Columns left out, with the reason.
    pub skipped: Vec<(String, Skipped)>,
}

impl Dataset {
    /// Builds a dataset from a table: `label` equal to `positive` is the outcome; the
    /// `drop` columns and the label are left out, as are identifiers and constants.
    ///
    /// # Errors
    ///
    /// A missing label or dropped column, one class, a nearly-numeric column with a
    /// stray value, or no usable column.
    pub fn from_table(table: &Table, label: &str, positive: &str, drop: &[String]) -> Result<Dataset> {
        let labels = table.labels(label, positive)?;
        for d in drop {
            table.column(d)?;
        }
        let mut columns = Vec::new();
        let mut skipped = Vec::new();
        let mut fields = BTreeSet::new();
        for (name, cells) in table.names.iter().zip(&table.columns) {
            if name == label || drop.contains(name) {
                skipped.push((name.clone(), Skipped::Dropped));
                continue;
            }
            match classify(name, cells)? {
                Typed::Skip(why) => skipped.push((name.clone(), why)),
                Typed::Use(col) => {
                    let base = field_name(name);
                    let mut field = base.clone();
                    let mut k = 2;
                    while !fields.insert(field.clone()) {
                        field = format!("{base}_{k}");
                        k += 1;
                    }
                    columns.push((name.clone(), field, col));
                }
            }
        }
        if columns.is_empty() {
            return Err(LabError::Data(
                "no usable column is left after dropping the label, identifiers, constants and --drop".into(),
            ));
        }
        Ok(Dataset { columns, labels, skipped })
    }

    /// Builds a dataset for scoring with an existing rule set: like
    /// [`Dataset::from_table`], but every column but the label is kept (constants and
    /// identifiers too, since a model may read them); a column that fills a `string` or
    /// `bool` field of `schema` stays text, the others are numeric when every present
    /// cell is a finite number.
    ///
    /// # Errors
    ///
    /// A missing label column or a label with one class.
    pub fn for_scoring(
        table: &Table,
        label: &str,
        positive: &str,
        schema: &nurture::Schema,
    ) -> Result<Dataset> {
        let labels = table.labels(label, positive)?;
        let mut columns = Vec::new();
        for (name, cells) in table.names.iter().zip(&table.columns) {
            if name == label {
                continue;
            }
            let text = schema.contact_fields().iter().any(|(f, ty)| {
                (f == name || f == field_name(name))
                    && matches!(ty, nurture::Type::String | nurture::Type::Bool)
            });
            let parsed: Option<Vec<Option<f64>>> = cells
                .iter()
                .map(|c| match c {
                    None => Some(None),
                    Some(v) => v.parse::<f64>().ok().filter(|x| x.is_finite()).map(Some),
                })
                .collect();
            let col = match parsed {
                Some(v) if !text && v.iter().any(Option::is_some) => Column::Numeric(v),
                _ => Column::Categorical(cells.clone()),
            };
            columns.push((name.clone(), field_name(name), col));
        }
        Ok(Dataset { columns, labels, skipped: Vec::new() })
    }

    /// The cell of column `c`, row `r`.
    pub fn cell(&self, c: usize, r: usize) -> Cell<'_> {
        match &self.columns[c].2 {
            Column::Numeric(v) => v[r].map_or(Cell::Missing, Cell::Number),
            Column::Categorical(v) => v[r].as_deref().map_or(Cell::Missing, Cell::Text),
        }
    }

    /// The number of rows.
    pub fn rows(&self) -> usize {
        self.labels.len()
    }
}

/// Fit settings.
#[derive(Clone, Debug, PartialEq)]
pub struct FitOptions {
    /// Binning.
    pub bins: BinOptions,
    /// L2 penalty.
    pub lambda: f64,
    /// Points to double the odds.
    pub pdo: f64,
    /// Score at even odds.
    pub base: f64,
    /// Most interactions kept (0: none tried).
    pub max_interactions: usize,
    /// Features (by information value) whose pairs are tried as interactions.
    pub interaction_candidates: usize,
    /// Inner folds used to decide on interactions.
    pub inner_folds: usize,
    /// Least gain in inner cross-validated AUC for an interaction to be kept.
    pub min_gain: f64,
    /// Seed for the inner folds.
    pub seed: u64,
}

impl Default for FitOptions {
    fn default() -> FitOptions {
        FitOptions {
            bins: BinOptions::default(),
            lambda: 2.0,
            pdo: 20.0,
            base: 100.0,
            max_interactions: 3,
            interaction_candidates: 6,
            inner_folds: 3,
            min_gain: 0.0005,
            seed: 1,
        }
    }
}

/// A pairwise interaction of two features' bins: one column per well-populated cell.
#[derive(Clone, Debug, PartialEq)]
pub struct Interaction {
    /// The two features, by position.
    pub features: (usize, usize),
    /// The cells kept, as (bin of the first, bin of the second).
    pub cells: Vec<(usize, usize)>,
}

/// A fitted scorecard.
#[derive(Clone, Debug, PartialEq)]
pub struct Scorecard {
    /// The binned features, in column order.
    pub features: Vec<Feature>,
    /// Interactions kept.
    pub interactions: Vec<Interaction>,
    /// The logistic model on the encoded columns.
    pub logit: Logit,
    /// Points per bin, per feature.
    pub points: Vec<Vec<i64>>,
    /// Points per cell, per interaction.
    pub interaction_points: Vec<Vec<i64>>,
    /// Points every contact gets.
    pub base_points: i64,
    /// The scaling used.
    pub pdo: f64,
    /// The score at even odds.
    pub base: f64,
    /// Which dataset column each feature came from.
    pub source: Vec<usize>,
}

/// The encoding of a dataset's rows under some features and interactions.
struct Encoding {
    offsets: Vec<usize>,
    inter_offsets: Vec<usize>,
    columns: usize,
}

impl Encoding {
    fn new(features: &[Feature], interactions: &[Interaction]) -> Encoding {
        let mut offsets = Vec::new();
        let mut n = 0;
        for f in features {
            offsets.push(n);
            n += f.bins.len();
        }
        let mut inter_offsets = Vec::new();
        for i in interactions {
            inter_offsets.push(n);
            n += i.cells.len();
        }
        Encoding { offsets, inter_offsets, columns: n }
    }
}

/// The bins of row `r` under `features` (taken from dataset columns `source`).
fn assign_row(data: &Dataset, features: &[Feature], source: &[usize], r: usize) -> Vec<Option<usize>> {
    features.iter().zip(source).map(|(f, &c)| f.assign(data.cell(c, r))).collect()
}

fn encode(bins: &[Option<usize>], interactions: &[Interaction], enc: &Encoding) -> Vec<u32> {
    let mut row: Vec<u32> =
        bins.iter().zip(&enc.offsets).filter_map(|(b, &o)| b.map(|b| (o + b) as u32)).collect();
    for (i, &o) in interactions.iter().zip(&enc.inter_offsets) {
        if let (Some(a), Some(b)) = (bins[i.features.0], bins[i.features.1]) {
            if let Some(k) = i.cells.iter().position(|&c| c == (a, b)) {
                row.push((o + k) as u32);
            }
        }
    }
    row
}

/// Bins every usable column on the rows `train`.
fn bin_all(data: &Dataset, train: &[usize], o: &BinOptions) -> (Vec<Feature>, Vec<usize>) {
    let mut features = Vec::new();
    let mut source = Vec::new();
    for (c, (name, field, col)) in data.columns.iter().enumerate() {
        let missing: Vec<bool> = train
            .iter()
            .filter(|&&r| matches!(data.cell(c, r), Cell::Missing))
            .map(|&r| data.labels[r])
            .collect();
        let feature = match col {
            Column::Numeric(v) => {
                let present: Vec<(f64, bool)> =
                    train.iter().filter_map(|&r| v[r].map(|x| (x, data.labels[r]))).collect();
                if present.is_empty() {
                    continue;
                }
                bin_numeric(name, field, &present, &missing, o)
            }
            Column::Categorical(v) => {
                let present: Vec<(&str, bool)> =
                    train.iter().filter_map(|&r| v[r].as_deref().map(|x| (x, data.labels[r]))).collect();
                if present.is_empty() {
                    continue;
                }
                bin_categorical(name, field, &present, &missing, o)
            }
        };
        if feature.bins.len() >= 2 {
            features.push(feature);
            source.push(c);
        }
    }
    (features, source)
}

/// Cells of a candidate interaction with at least `min_rows` training rows.
fn cells(
    bins: &[Vec<Option<usize>>],
    train: &[usize],
    a: usize,
    b: usize,
    min_rows: usize,
) -> Vec<(usize, usize)> {
    let mut counts: std::collections::BTreeMap<(usize, usize), usize> = Default::default();
    for &r in train {
        if let (Some(x), Some(y)) = (bins[r][a], bins[r][b]) {
            *counts.entry((x, y)).or_default() += 1;
        }
    }
    counts.into_iter().filter(|&(_, n)| n >= min_rows).map(|(c, _)| c).collect()
}

/// Inner cross-validated AUC of the floating-point model with `interactions`.
fn inner_auc(
    bins: &[Vec<Option<usize>>],
    labels: &[bool],
    train: &[usize],
    features: &[Feature],
    interactions: &[Interaction],
    o: &FitOptions,
) -> f64 {
    let enc = Encoding::new(features, interactions);
    let rows: Vec<Vec<u32>> = train.iter().map(|&r| encode(&bins[r], interactions, &enc)).collect();
    let y: Vec<bool> = train.iter().map(|&r| labels[r]).collect();
    let folds = stratified_folds(&y, o.inner_folds, o.seed ^ 0x5eed);
    let mut scores = vec![0.0; y.len()];
    for k in 0..o.inner_folds {
        let (tr, te): (Vec<usize>, Vec<usize>) = (0..y.len()).partition(|&i| folds[i] != k);
        let model = logit::fit(
            &tr.iter().map(|&i| rows[i].clone()).collect::<Vec<_>>(),
            &tr.iter().map(|&i| y[i]).collect::<Vec<_>>(),
            enc.columns,
            o.lambda,
        );
        for i in te {
            scores[i] = model.log_odds(&rows[i]);
        }
    }
    auc(&scores, &y).unwrap_or(0.5)
}

impl Scorecard {
    /// Fits a scorecard on the rows `train` of `data`.
    ///
    /// # Errors
    ///
    /// No feature with two or more bins, or one class among the rows.
    pub fn fit(data: &Dataset, train: &[usize], o: &FitOptions) -> Result<Scorecard> {
        let positives = train.iter().filter(|&&r| data.labels[r]).count();
        if positives == 0 || positives == train.len() {
            return Err(LabError::Data("the training rows hold one class only".into()));
        }
        let (features, source) = bin_all(data, train, &o.bins);
        if features.is_empty() {
            return Err(LabError::Data("no column has two or more bins to score".into()));
        }
        let bins: Vec<Vec<Option<usize>>> = (0..data.rows())
            .map(|r| if train.is_empty() { Vec::new() } else { assign_row(data, &features, &source, r) })
            .collect();
        // Forward selection of interactions among the strongest features' pairs.
        let mut interactions = Vec::new();
        if o.max_interactions > 0 {
            let mut by_iv: Vec<usize> = (0..features.len()).collect();
            by_iv.sort_by(|&a, &b| features[b].iv.total_cmp(&features[a].iv).then(a.cmp(&b)));
            by_iv.truncate(o.interaction_candidates);
            let min_rows = (train.len() / 100).max(30);
            let mut pairs = Vec::new();
            for (i, &a) in by_iv.iter().enumerate() {
                for &b in &by_iv[i + 1..] {
                    let (a, b) = (a.min(b), a.max(b));
                    let c = cells(&bins, train, a, b, min_rows);
                    if !c.is_empty() {
                        pairs.push(Interaction { features: (a, b), cells: c });
                    }
                }
            }
            let mut best = inner_auc(&bins, &data.labels, train, &features, &interactions, o);
            while interactions.len() < o.max_interactions && !pairs.is_empty() {
                let mut top: Option<(usize, f64)> = None;
                for (k, p) in pairs.iter().enumerate() {
                    let mut with = interactions.clone();
                    with.push(p.clone());
                    let a = inner_auc(&bins, &data.labels, train, &features, &with, o);
                    if top.is_none_or(|(_, t)| a > t) {
                        top = Some((k, a));
                    }
                }
                match top {
                    Some((k, a)) if a >= best + o.min_gain => {
                        interactions.push(pairs.remove(k));
                        best = a;
                    }
                    _ => break,
                }
            }
        }
        let enc = Encoding::new(&features, &interactions);
        let rows: Vec<Vec<u32>> = train.iter().map(|&r| encode(&bins[r], &interactions, &enc)).collect();
        let y: Vec<bool> = train.iter().map(|&r| data.labels[r]).collect();
        let model = logit::fit(&rows, &y, enc.columns, o.lambda);
        // Integer points.
        let factor = o.pdo / std::f64::consts::LN_2;
        let mut base = o.base + factor * model.intercept;
        let mut points = Vec::new();
        for (f, &off) in features.iter().zip(&enc.offsets) {
            let raw: Vec<f64> = (0..f.bins.len()).map(|b| factor * model.coefficients[off + b]).collect();
            let shift = raw.iter().copied().fold(f64::INFINITY, f64::min);
            base += shift;
            points.push(raw.iter().map(|x| (x - shift).round() as i64).collect());
        }
        let interaction_points = interactions
            .iter()
            .zip(&enc.inter_offsets)
            .map(|(i, &off)| {
                (0..i.cells.len()).map(|k| (factor * model.coefficients[off + k]).round() as i64).collect()
            })
            .collect();
        Ok(Scorecard {
            features,
            interactions,
            logit: model,
            points,
            interaction_points,
            base_points: base.round() as i64,
            pdo: o.pdo,
            base: o.base,
            source,
        })
    }

    /// The integer score of row `r` of `data`, as the lab computes it.
    pub fn score(&self, data: &Dataset, r: usize) -> i64 {
        let bins = assign_row(data, &self.features, &self.source, r);
        let mut s = self.base_points;
        for (b, pts) in bins.iter().zip(&self.points) {
            if let Some(b) = b {
                s += pts[*b];
            }
        }
        for (i, pts) in self.interactions.iter().zip(&self.interaction_points) {
            if let (Some(a), Some(b)) = (bins[i.features.0], bins[i.features.1]) {
                if let Some(k) = i.cells.iter().position(|&c| c == (a, b)) {
                    s += pts[k];
                }
            }
        }
        s
    }

    /// The floating-point model's probability for row `r`.
    pub fn probability(&self, data: &Dataset, r: usize) -> f64 {
        let bins = assign_row(data, &self.features, &self.source, r);
        let enc = Encoding::new(&self.features, &self.interactions);
        sigmoid(self.logit.log_odds(&encode(&bins, &self.interactions, &enc)))
    }

    /// The probability a score stands for under the scaling.
    pub fn score_probability(&self, score: f64) -> f64 {
        sigmoid((score - self.base) * std::f64::consts::LN_2 / self.pdo)
    }

    /// The number of fit rules the exported document has (the base rule included).
    pub fn rule_count(&self) -> usize {
        1 + self.points.iter().map(Vec::len).sum::<usize>()
            + self.interaction_points.iter().map(Vec::len).sum::<usize>()
    }

    /// Every rule: (id, CEL condition, points, human label).
    pub fn rules(&self) -> Vec<(String, String, i64, String)> {
        let mut out =
            vec![("base".to_string(), "true".to_string(), self.base_points, "every contact".to_string())];
        let mut ids = BTreeSet::new();
        ids.insert("base".to_string());
        let mut unique = |id: String| {
            let mut candidate = id.clone();
            let mut k = 2;
            while !ids.insert(candidate.clone()) {
                candidate = format!("{id}_{k}");
                k += 1;
            }
            candidate
        };
        let mut bin_ids: Vec<Vec<String>> = Vec::new();
        for (f, pts) in self.features.iter().zip(&self.points) {
            let mut ids_f = Vec::new();
            for (b, &p) in f.bins.iter().zip(pts) {
                let id = unique(format!("{}_{}", f.field, bin_slug(b)));
                out.push((id.clone(), condition(f, b), p, format!("{}: {}", f.column, bin_label(b))));
                ids_f.push(id);
            }
            bin_ids.push(ids_f);
        }
        for (i, pts) in self.interactions.iter().zip(&self.interaction_points) {
            let (fa, fb) = (&self.features[i.features.0], &self.features[i.features.1]);
            for (&(a, b), &p) in i.cells.iter().zip(pts) {
                let id = unique(format!("{}__and__{}", bin_ids[i.features.0][a], bin_ids[i.features.1][b]));
                let cond = format!("({}) && ({})", condition(fa, &fa.bins[a]), condition(fb, &fb.bins[b]));
                let label = format!(
                    "{}: {} and {}: {}",
                    fa.column,
                    bin_label(&fa.bins[a]),
                    fb.column,
                    bin_label(&fb.bins[b])
                );
                out.push((id, cond, p, label));
            }
        }
        out
    }

    /// The exported rule set: one fit rule per bin (and per interaction cell), an
    /// `mql` threshold at `mql`, and `bands` as `(name, from)`.
    pub fn document(&self, name: &str, mql: f64, bands: &[(String, f64)]) -> serde_json::Value {
        let mut contact = serde_json::Map::new();
        for f in &self.features {
            contact.insert(f.field.clone(), (if f.numeric { "double" } else { "string" }).into());
        }
        let rules: Vec<serde_json::Value> = self
            .rules()
            .into_iter()
            .map(|(id, cond, points, _)| serde_json::json!({"id": id, "fit": cond, "points": points}))
            .collect();
        let bands: Vec<serde_json::Value> =
            bands.iter().map(|(n, from)| serde_json::json!({"name": n, "from": from})).collect();
        serde_json::json!({
            "version": 1,
            "name": name,
            "schema": {"contact": contact, "events": {}, "scores": [MODEL_ID]},
            "scoring": {"models": [{
                "id": MODEL_ID,
                "rules": rules,
                "thresholds": [{"id": "mql", "enter": mql}],
                "bands": bands
            }]}
        })
    }

    /// The lowest and highest scores the card can give.
    pub fn range(&self) -> (i64, i64) {
        let (mut lo, mut hi) = (self.base_points, self.base_points);
        for pts in &self.points {
            lo += pts.iter().copied().min().unwrap_or(0).min(0);
            hi += pts.iter().copied().max().unwrap_or(0).max(0);
        }
        for pts in &self.interaction_points {
            lo += pts.iter().copied().filter(|&p| p < 0).min().unwrap_or(0);
            hi += pts.iter().copied().filter(|&p| p > 0).max().unwrap_or(0);
        }
        (lo, hi)
    }
}

/// A CEL string literal.
pub fn cel_string(s: &str) -> String {
    let mut out = String::from("\"");
    for ch in s.chars() {
        match ch {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A CEL double literal.
pub fn cel_double(x: f64) -> String {
    let s = format!("{x:?}");
    if s.contains(['.', 'e', 'E']) {
        s
    } else {
        format!("{s}.0")
    }
}

fn condition(f: &Feature, b: &Bin) -> String {
    let x = format!("contact.{}", f.field);
    match b {
        Bin::Missing => format!("!has({x})"),
        Bin::Range { lo, hi } => {
            let mut parts = vec![format!("has({x})")];
            if let Some(lo) = lo {
                parts.push(format!("{x} >= {}", cel_double(*lo)));
            }
            if let Some(hi) = hi {
                parts.push(format!("{x} < {}", cel_double(*hi)));
            }
            parts.join(" && ")
        }
        Bin::Level(l) => format!("has({x}) && {x} == {}", cel_string(l)),
        Bin::Other(known) if known.is_empty() => format!("has({x})"),
        Bin::Other(known) => {
            format!(
                "has({x}) && !({x} in [{}])",
                known.iter().map(|k| cel_string(k)).collect::<Vec<_>>().join(", ")
            )
        }
    }
}

fn num_slug(x: f64) -> String {
    format!("{x}").replace('-', "minus").replace('.', "p")
}

fn text_slug(s: &str) -> String {
    let slug = field_name(s);
    let mut slug: String = slug.chars().take(40).collect();
    if slug.ends_with('_') {
        slug.pop();
    }
    slug
}

fn bin_slug(b: &Bin) -> String {
    match b {
        Bin::Missing => "missing".into(),
        Bin::Range { lo: None, hi: Some(h) } => format!("below_{}", num_slug(*h)),
        Bin::Range { lo: Some(l), hi: None } => format!("{}_plus", num_slug(*l)),
        Bin::Range { lo: Some(l), hi: Some(h) } => format!("{}_to_{}", num_slug(*l), num_slug(*h)),
        Bin::Range { lo: None, hi: None } => "any".into(),
        Bin::Level(l) => format!("is_{}", text_slug(l)),
        Bin::Other(_) => "other".into(),
    }
}

fn bin_label(b: &Bin) -> String {
    match b {
        Bin::Missing => "missing".into(),
        Bin::Range { lo: None, hi: Some(h) } => format!("below {h}"),
        Bin::Range { lo: Some(l), hi: None } => format!("{l} or more"),
        Bin::Range { lo: Some(l), hi: Some(h) } => format!("{l} to below {h}"),
        Bin::Range { lo: None, hi: None } => "any value".into(),
        Bin::Level(l) => format!("`{l}`"),
        Bin::Other(k) => format!("any other value ({} levels listed separately)", k.len()),
    }
}

/// Scores rows of a dataset with a compiled rule-set document through nurture's own
/// `Scorer`: each row becomes a contact whose fields are the dataset columns of the same
/// field name, fit rules are evaluated once, and the first score model is read.
pub struct NurtureScorer {
    program: Program,
    /// (dataset column, contact field name, numeric)
    fields: Vec<(usize, String, FieldKind)>,
    model: usize,
    now: Timestamp,
}

/// How a dataset cell becomes a contact field value.
#[derive(Clone, Copy, Debug, PartialEq)]
enum FieldKind {
    Double,
    Int,
    String,
    Bool,
}

impl NurtureScorer {
    /// Compiles `document` and maps its contact fields to `data`'s columns by field name.
    ///
    /// # Errors
    ///
    /// A document nurture refuses, one without a score model, or a field of a type a
    /// table cell cannot fill.
    pub fn new(document: &str, data: &Dataset, model: Option<&str>) -> Result<NurtureScorer> {
        let program = Program::from_json(document)?;
        let scorer =
            program.scorer().ok_or_else(|| LabError::Data("the document has no score model".into()))?;
        let model = match model {
            Some(id) => scorer
                .models()
                .iter()
                .position(|m| m.id().as_str() == id)
                .ok_or_else(|| LabError::Data(format!("the document has no score model `{id}`")))?,
            None => 0,
        };
        let mut fields = Vec::new();
        for (name, ty) in program.schema().contact_fields().iter() {
            let Some(c) = data.columns.iter().position(|(col, f, _)| f == name || col == name) else {
                continue;
            };
            let kind = match ty {
                nurture::Type::Double => FieldKind::Double,
                nurture::Type::Int => FieldKind::Int,
                nurture::Type::String => FieldKind::String,
                nurture::Type::Bool => FieldKind::Bool,
                other => {
                    return Err(LabError::Data(format!(
                        "contact field `{name}` has type {other:?}, which a table cell cannot fill"
                    )))
                }
            };
            fields.push((c, name.to_string(), kind));
        }
        let now = Timestamp::from_unix(0, 0).map_err(|e| LabError::Data(e.to_string()))?;
        Ok(NurtureScorer { program, fields, model, now })
    }

    /// The score of row `r`.
    ///
    /// # Errors
    ///
    /// A cell that does not fit its field's type (named with its row).
    pub fn score(&self, data: &Dataset, r: usize) -> Result<f64> {
        let schema = self.program.schema();
        let mut contact = schema.contact(format!("row{}", r + 1));
        for (c, name, kind) in &self.fields {
            let bad = |v: &str| {
                LabError::Data(format!(
                    "row {} (line {}): `{v}` in column `{}` is not a {kind:?}",
                    r + 1,
                    r + 2,
                    data.columns[*c].0
                ))
            };
            contact = match (data.cell(*c, r), kind) {
                (Cell::Missing, _) => contact,
                (Cell::Number(x), FieldKind::Double) => contact.set(name, x)?,
                (Cell::Number(x), FieldKind::Int) if x.fract() == 0.0 => contact.set(name, x as i64)?,
                (Cell::Number(x), FieldKind::String) => contact.set(name, format!("{x}"))?,
                (Cell::Text(t), FieldKind::String) => contact.set(name, t)?,
                (Cell::Text(t), FieldKind::Bool) => match t.to_ascii_lowercase().as_str() {
                    "yes" | "true" | "1" => contact.set(name, true)?,
                    "no" | "false" | "0" => contact.set(name, false)?,
                    _ => return Err(bad(t)),
                },
                (Cell::Number(x), FieldKind::Bool) if x == 0.0 || x == 1.0 => contact.set(name, x == 1.0)?,
                (Cell::Number(x), _) => return Err(bad(&format!("{x}"))),
                (Cell::Text(t), _) => return Err(bad(t)),
            };
        }
        let contact = contact.build();
        let scorer = self.program.scorer().ok_or_else(|| LabError::Data("no score model".into()))?;
        let mut state = scorer.new_state(self.now);
        // The update (crossings, band changes) is not needed: only the value is read.
        let _update = scorer
            .handle_attributes(&mut state, &contact, self.now)
            .map_err(|e| LabError::Data(format!("row {}: {e}", r + 1)))?;
        Ok(scorer.value(&state, self.model, self.now).unwrap_or(0.0))
    }

    /// The compiled program.
    pub fn program(&self) -> &Program {
        &self.program
    }
}
