//! The `nurture-lab` command line.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use nurture_lab::fit::cross_validate;
use nurture_lab::metrics::Target;
use nurture_lab::scorecard::{Dataset, FitOptions};
use nurture_lab::table::Table;
use nurture_lab::{report, LabError};

/// `println!` that ignores a closed standard output (`| head`) instead of panicking.
macro_rules! out {
    ($($t:tt)*) => {{
        let _ = writeln!(std::io::stdout(), $($t)*);
    }};
}

const USAGE: &str = "usage:
  nurture-lab fit --csv PATH --label COLUMN --positive VALUE [--sep CHAR] [--drop COL,COL,...]
                  [--missing VALUE,...] [--folds K] [--seed N] [--target-precision P | --target-recall R]
                  [--no-interactions] --out DIR [--json]
  nurture-lab fit --events EVENTS.jsonl [--contacts CONTACTS.jsonl] --cutoff TIME [--until TIME]
                  [--folds K] [--seed N] [--target-precision P | --target-recall R] --out DIR [--json]
  nurture-lab evaluate --doc RULESET --csv PATH --label COLUMN --positive VALUE [--sep CHAR] [--missing VALUE,...]
                       [--model ID] [--thresholds T,T,...] --out DIR [--json]
  nurture-lab evaluate --doc RULESET --events EVENTS.jsonl [--contacts CONTACTS.jsonl] --cutoff TIME [--until TIME]
                       [--model ID] [--thresholds T,T,...] --out DIR [--json]
  nurture-lab replay --doc RULESET --events EVENTS.jsonl [--contacts CONTACTS.jsonl] [--until TIME] [--json]
  nurture-lab diff --live RULESET --candidate RULESET --events EVENTS.jsonl [--contacts CONTACTS.jsonl]
                   [--until TIME] [--examples N] [--json]
  nurture-lab lint FILE...";

/// Command-line flags: `--name value` pairs and bare switches.
struct Args {
    pairs: Vec<(String, Option<String>)>,
    positional: Vec<String>,
}

impl Args {
    fn parse(raw: &[String], switches: &[&str]) -> Result<Args, LabError> {
        let mut pairs = Vec::new();
        let mut positional = Vec::new();
        let mut it = raw.iter();
        while let Some(a) = it.next() {
            if let Some(name) = a.strip_prefix("--") {
                if switches.contains(&name) {
                    pairs.push((name.to_string(), None));
                } else {
                    let v = it
                        .next()
                        .ok_or_else(|| LabError::Input(format!("--{name} needs a value\n{USAGE}")))?;
                    pairs.push((name.to_string(), Some(v.clone())));
                }
            } else {
                positional.push(a.clone());
            }
        }
        Ok(Args { pairs, positional })
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.pairs.iter().rev().find(|(n, _)| n == name).and_then(|(_, v)| v.as_deref())
    }

    fn has(&self, name: &str) -> bool {
        self.pairs.iter().any(|(n, _)| n == name)
    }

    fn need(&self, name: &str) -> Result<&str, LabError> {
        self.get(name).ok_or_else(|| LabError::Input(format!("--{name} is required\n{USAGE}")))
    }

    fn check(&self, known: &[&str]) -> Result<(), LabError> {
        for (n, _) in &self.pairs {
            if !known.contains(&n.as_str()) {
                return Err(LabError::Input(format!("unknown option --{n}\n{USAGE}")));
            }
        }
        Ok(())
    }

    fn number<T: std::str::FromStr>(&self, name: &str, default: T) -> Result<T, LabError> {
        match self.get(name) {
            None => Ok(default),
            Some(v) => {
                v.parse().map_err(|_| LabError::Input(format!("--{name}: `{v}` is not a valid number")))
            }
        }
    }
}

fn list(v: Option<&str>) -> Vec<String> {
    v.map(|s| s.split(',').map(|x| x.trim().to_string()).filter(|x| !x.is_empty()).collect())
        .unwrap_or_default()
}

fn sep(v: Option<&str>) -> Result<u8, LabError> {
    match v {
        None => Ok(b','),
        Some("\\t" | "tab") => Ok(b'\t'),
        Some(s) if s.len() == 1 => Ok(s.as_bytes()[0]),
        Some(s) => Err(LabError::Input(format!("--sep takes one ASCII character, not `{s}`"))),
    }
}

fn fit(raw: &[String]) -> Result<(), LabError> {
    let args = Args::parse(raw, &["json", "no-interactions"])?;
    args.check(&[
        "csv",
        "label",
        "positive",
        "sep",
        "drop",
        "missing",
        "folds",
        "seed",
        "out",
        "json",
        "target-precision",
        "target-recall",
        "no-interactions",
        "pdo",
        "base",
        "l2",
    ])?;
    if let Some(p) = args.positional.first() {
        return Err(LabError::Input(format!("unexpected argument `{p}`\n{USAGE}")));
    }
    let out = PathBuf::from(args.need("out")?);
    let folds: usize = args.number("folds", 5)?;
    if folds < 2 {
        return Err(LabError::Input("--folds must be at least 2".into()));
    }
    let seed: u64 = args.number("seed", 1)?;
    let target = match (args.get("target-precision"), args.get("target-recall")) {
        (Some(_), Some(_)) => {
            return Err(LabError::Input("give --target-precision or --target-recall, not both".into()))
        }
        (_, Some(_)) => Target::Recall(args.number("target-recall", 0.8)?),
        _ => Target::Precision(args.number("target-precision", 0.8)?),
    };
    let mut options = FitOptions::default();
    options.pdo = args.number("pdo", options.pdo)?;
    options.base = args.number("base", options.base)?;
    options.lambda = args.number("l2", options.lambda)?;
    if args.has("no-interactions") {
        options.max_interactions = 0;
    }
    let (data, name) = if args.has("events") {
        let (history, until) = history_args(&args)?;
        let cutoff = nurture::Timestamp::parse(args.need("cutoff")?)
            .map_err(|e| LabError::Input(format!("--cutoff: {e}")))?;
        let target = nurture_lab::engagement::HistoryTarget { cutoff, until };
        (nurture_lab::engagement::features(&history, target)?, "engagement-scorecard".to_string())
    } else {
        let csv = PathBuf::from(args.need("csv")?);
        let table = Table::read(&csv, sep(args.get("sep"))?, &list(args.get("missing")))?;
        let data = Dataset::from_table(
            &table,
            args.need("label")?,
            args.need("positive")?,
            &list(args.get("drop")),
        )?;
        (
            data,
            csv.file_stem().map_or("scorecard".to_string(), |s| format!("{}-scorecard", s.to_string_lossy())),
        )
    };
    let result = cross_validate(&data, folds, seed, &options, target, &name)?;
    let command = std::iter::once("nurture-lab fit".to_string())
        .chain(raw.iter().cloned())
        .collect::<Vec<_>>()
        .join(" ");
    report::write_fit(&out, &data, &result, &command)?;
    let (cv, cv_std) = result.cv_auc();
    let positives = data.labels.iter().filter(|&&l| l).count();
    out!(
        "fitted {} rows ({} positive), {} features, {} rules; cross-validated AUC of the exported scorecard {cv:.4} ± {cv_std:.4} over {folds} folds",
        data.rows(),
        positives,
        result.card.features.len(),
        result.card.rule_count()
    );
    out!("wrote {}", out.join("model.json").display());
    if args.has("json") {
        // The contract's exact shape: these keys, in this order, `": "` and `", "` separators.
        let line = format!(
            "{{\"rows\": {}, \"positives\": {}, \"features\": {}, \"rules\": {}, \"cv_auc\": {}, \"cv_auc_std\": {}, \"mql_threshold\": {}, \"precision\": {}, \"recall\": {}}}",
            data.rows(),
            positives,
            result.card.features.len(),
            result.card.rule_count(),
            num(cv),
            num(cv_std),
            num(result.mql.threshold),
            num(result.mql.precision()),
            num(result.mql.recall()),
        );
        out!("{line}");
    }
    Ok(())
}

/// A JSON number rounded to 4 decimals (`null` when not finite).
fn num(x: f64) -> String {
    if x.is_finite() {
        serde_json::Value::from((x * 10_000.0).round() / 10_000.0).to_string()
    } else {
        "null".into()
    }
}

/// `lint FILE...`: 0 without findings, 1 with findings, 2 when a file cannot be read
/// or compiled.
fn lint(files: &[String]) -> ExitCode {
    if files.is_empty() {
        eprintln!("error: lint needs at least one rule-set file\n{USAGE}");
        return ExitCode::from(2);
    }
    let (mut findings, mut unreadable) = (0usize, 0usize);
    for file in files {
        let text = match std::fs::read_to_string(file) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("error: {file}: {e}");
                unreadable += 1;
                continue;
            }
        };
        let compiled = if file.ends_with(".toml") {
            nurture::Program::from_toml(&text)
        } else {
            nurture::Program::from_json(&text)
        };
        match compiled {
            Ok(program) => {
                let mut stdout = std::io::stdout().lock();
                for f in program.lint() {
                    // A closed pipe (`| head`) is not an error worth a panic.
                    let _ = writeln!(stdout, "{file}: {}", f.render());
                    findings += 1;
                }
            }
            Err(e) => {
                eprintln!("error: {file} does not compile:\n{}", e.render());
                unreadable += 1;
            }
        }
    }
    let _ = writeln!(std::io::stdout(), "{findings} finding(s) in {} file(s)", files.len());
    if unreadable > 0 {
        ExitCode::from(2)
    } else if findings > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

fn read_doc(path: &str) -> Result<(String, nurture::Program), LabError> {
    let text = std::fs::read_to_string(path).map_err(|e| LabError::Input(format!("{path}: {e}")))?;
    let program = if path.ends_with(".toml") {
        nurture::Program::from_toml(&text)
    } else {
        nurture::Program::from_json(&text)
    }
    .map_err(|e| LabError::Document(format!("{path}:\n{}", e.render())))?;
    Ok((text, program))
}

fn evaluate(raw: &[String]) -> Result<(), LabError> {
    let args = Args::parse(raw, &["json"])?;
    args.check(&[
        "doc",
        "csv",
        "label",
        "positive",
        "sep",
        "missing",
        "model",
        "thresholds",
        "out",
        "json",
        "events",
        "contacts",
        "cutoff",
        "until",
    ])?;
    let (text, program) = read_doc(args.need("doc")?)?;
    let (scores, labels) = if args.has("events") {
        let (history, until) = history_args(&args)?;
        let cutoff = nurture::Timestamp::parse(args.need("cutoff")?)
            .map_err(|e| LabError::Input(format!("--cutoff: {e}")))?;
        let (_, scores, labels) = nurture_lab::history::backtest(
            std::sync::Arc::new(program.clone()),
            &history,
            cutoff,
            until,
            args.get("model"),
        )?;
        (scores, labels)
    } else {
        let table = Table::read(
            &PathBuf::from(args.need("csv")?),
            sep(args.get("sep"))?,
            &list(args.get("missing")),
        )?;
        let data =
            Dataset::for_scoring(&table, args.need("label")?, args.need("positive")?, program.schema())?;
        let scorer = nurture_lab::scorecard::NurtureScorer::new(&text, &data, args.get("model"))?;
        let scores = (0..data.rows()).map(|r| scorer.score(&data, r)).collect::<Result<Vec<f64>, _>>()?;
        (scores, data.labels)
    };
    let positives = labels.iter().filter(|&&l| l).count();
    if positives == 0 || positives == labels.len() {
        return Err(LabError::Data(format!(
            "{positives} of {} rows are positive: an AUC needs both outcomes",
            labels.len()
        )));
    }
    let auc = nurture_lab::metrics::auc(&scores, &labels).unwrap_or(f64::NAN);
    let mut thresholds: Vec<f64> = list(args.get("thresholds"))
        .iter()
        .map(|t| t.parse().map_err(|_| LabError::Input(format!("--thresholds: `{t}` is not a number"))))
        .collect::<Result<_, _>>()?;
    if let Some(s) = program.scorer() {
        let m = args
            .get("model")
            .and_then(|id| s.models().iter().position(|m| m.id().as_str() == id))
            .unwrap_or(0);
        let doc: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
        if let Some(ts) = doc.pointer(&format!("/scoring/models/{m}/thresholds")).and_then(|t| t.as_array()) {
            thresholds.extend(ts.iter().filter_map(|t| t.get("enter").and_then(serde_json::Value::as_f64)));
        }
    }
    let out = PathBuf::from(args.need("out")?);
    std::fs::create_dir_all(&out).map_err(|e| LabError::Input(format!("{}: {e}", out.display())))?;
    // Probabilities for calibration: the score's rank-preserving map to [0, 1] by
    // fitting a one-feature logistic curve of outcome on score.
    let rows: Vec<Vec<(u32, f64)>> = scores.iter().map(|&s| vec![(0, s / 100.0)]).collect();
    let curve = nurture_lab::logit::fit_valued(&rows, &labels, 1, 0.0);
    let probabilities: Vec<f64> =
        rows.iter().map(|r| nurture_lab::logit::sigmoid(curve.log_odds_valued(r))).collect();
    let first = thresholds.first().copied().unwrap_or(f64::NAN);
    report::write_plots(&out, &scores, &probabilities, &labels, first)?;
    let html = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>nurture-lab evaluate</title></head><body><h1>Evaluation</h1><p>{} rows, AUC {auc:.4}</p><h2>Gains by decile</h2>{}<h2>At thresholds</h2>{}<p><img src=\"roc.svg\"><img src=\"gains.svg\"><img src=\"calibration.svg\"><img src=\"score_distribution.svg\"></p></body></html>\n",
        labels.len(),
        report::deciles_html(&scores, &labels),
        report::thresholds_html(&scores, &labels, &thresholds)
    );
    std::fs::write(out.join("report.html"), html).map_err(|e| LabError::Input(e.to_string()))?;
    out!("{} rows, AUC {auc:.4}", labels.len());
    for (i, d) in nurture_lab::metrics::deciles(&scores, &labels).iter().enumerate() {
        out!(
            "  decile {:>2}: {:>6} rows, rate {:.3}, lift {:.2}, cumulative gain {:.3}",
            i + 1,
            d.rows,
            d.positives as f64 / d.rows.max(1) as f64,
            d.lift,
            d.cumulative_gain
        );
    }
    let mut at = Vec::new();
    for &t in &thresholds {
        let a = nurture_lab::metrics::AtThreshold::new(&scores, &labels, t);
        out!("  at {t}: {} flagged, precision {:.3}, recall {:.3}", a.flagged, a.precision(), a.recall());
        at.push(format!(
            "{{\"threshold\": {}, \"flagged\": {}, \"precision\": {}, \"recall\": {}}}",
            num(t),
            a.flagged,
            num(a.precision()),
            num(a.recall())
        ));
    }
    if args.has("json") {
        out!("{{\"rows\": {}, \"auc\": {}, \"thresholds\": [{}]}}", labels.len(), num(auc), at.join(", "));
    }
    Ok(())
}

fn history_args(
    args: &Args,
) -> Result<(nurture_lab::history::History, Option<nurture::Timestamp>), LabError> {
    let events = PathBuf::from(args.need("events")?);
    let contacts = args.get("contacts").map(PathBuf::from);
    let history = nurture_lab::history::History::read(contacts.as_deref(), &events)?;
    let until = args
        .get("until")
        .map(|u| nurture::Timestamp::parse(u).map_err(|e| LabError::Input(format!("--until: {e}"))))
        .transpose()?;
    Ok((history, until))
}

fn replay(raw: &[String]) -> Result<(), LabError> {
    let args = Args::parse(raw, &["json"])?;
    args.check(&["doc", "events", "contacts", "until", "json"])?;
    let (_, program) = read_doc(args.need("doc")?)?;
    let (history, until) = history_args(&args)?;
    let r = nurture_lab::history::replay(std::sync::Arc::new(program), &history, until)?;
    out!(
        "{} contacts, {} events replayed ({} of undeclared types skipped)",
        r.contacts.len(),
        r.events.0,
        r.events.1
    );
    let counts = r.counts();
    for (label, n) in &counts {
        out!("  {n:>8}  {label}");
    }
    if args.has("json") {
        let effects: serde_json::Map<String, serde_json::Value> =
            counts.iter().map(|(k, v)| (k.clone(), (*v).into())).collect();
        out!(
            "{}",
            serde_json::json!({"contacts": r.contacts.len(), "events": r.events.0, "skipped": r.events.1, "effects": effects})
        );
    }
    Ok(())
}

fn diff(raw: &[String]) -> Result<(), LabError> {
    let args = Args::parse(raw, &["json"])?;
    args.check(&["live", "candidate", "events", "contacts", "until", "examples", "json"])?;
    let (_, live) = read_doc(args.need("live")?)?;
    let (_, candidate) = read_doc(args.need("candidate")?)?;
    let examples: usize = args.number("examples", 5)?;
    let (history, until) = history_args(&args)?;
    let a = nurture_lab::history::replay(std::sync::Arc::new(live), &history, until)?;
    let b = nurture_lab::history::replay(std::sync::Arc::new(candidate), &history, until)?;
    let d = nurture_lab::history::diff(&a, &b);
    out!("{} contacts, {} events", a.contacts.len(), a.events.0.max(b.events.0));
    out!("effects that change (live -> candidate):");
    for (label, x, y) in &d.effects {
        let what = if *x == 0 {
            "added"
        } else if *y == 0 {
            "removed"
        } else {
            "changed"
        };
        let who = d
            .effect_contacts
            .get(label)
            .map(|c| c.iter().take(examples).cloned().collect::<Vec<_>>().join(", "));
        out!("  {what:<8} {label}: {x} -> {y} (e.g. {})", who.unwrap_or_default());
    }
    out!("contacts whose first threshold crossing moves: {}", d.crossings.len());
    for (t, c, x, y) in d.crossings.iter().take(examples) {
        let show = |v: &Option<nurture::Timestamp>| v.map_or("never".to_string(), |t| t.to_string());
        out!("  {c} {t}: {} -> {}", show(x), show(y));
    }
    out!("contacts whose segments at the end differ: {}", d.segments.len());
    for (c, only_live, only_cand) in d.segments.iter().take(examples) {
        out!("  {c}: leaves {:?}, joins {:?}", only_live, only_cand);
    }
    out!("score distributions (live -> candidate):");
    for (s, mx, my, dx, dy, changed) in &d.scores {
        out!("  {s}: mean {mx:.2} -> {my:.2}, median {dx:.2} -> {dy:.2}, {changed} contacts change");
    }
    if args.has("json") {
        out!(
            "{}",
            serde_json::json!({
                "effects_changed": d.effects.len(),
                "crossings_moved": d.crossings.len(),
                "segments_changed": d.segments.len(),
                "scores_changed": d.scores.iter().map(|s| s.5).sum::<usize>(),
            })
        );
    }
    Ok(())
}

fn main() -> ExitCode {
    let raw: Vec<String> = std::env::args().skip(1).collect();
    let Some((command, rest)) = raw.split_first() else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    let result = match command.as_str() {
        "fit" => fit(rest),
        "lint" => return lint(rest),
        "evaluate" => evaluate(rest),
        "replay" => replay(rest),
        "diff" => diff(rest),
        "-h" | "--help" | "help" => {
            out!("{USAGE}");
            Ok(())
        }
        other => Err(LabError::Input(format!("unknown command `{other}`\n{USAGE}"))),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}
