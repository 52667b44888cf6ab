//! The command line's contracts: exit codes and the `--json` line.

use std::process::Command;

fn lab() -> Command {
    Command::new(env!("CARGO_BIN_EXE_nurture-lab"))
}

fn fixture(name: &str) -> String {
    format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn lint_exit_codes() {
    let code = |args: &[String]| lab().arg("lint").args(args).output().expect("runs").status.code();
    assert_eq!(code(&[fixture("lint/clean.json")]), Some(0));
    assert_eq!(code(&[fixture("lint/flawed.json")]), Some(1));
    assert_eq!(code(&[fixture("lint/clean.json"), fixture("lint/flawed.json")]), Some(1));
    assert_eq!(code(&[fixture("lint/absent.json")]), Some(2));
    assert_eq!(code(&[fixture("contacts.csv")]), Some(2), "not a rule set");
}

#[test]
fn fit_writes_the_model_the_plots_and_the_json_line() {
    let out = std::env::temp_dir().join(format!("nurture-lab-cli-{}", std::process::id()));
    let output = lab()
        .args([
            "fit",
            "--csv",
            &fixture("contacts.csv"),
            "--sep",
            ";",
            "--label",
            "Outcome",
            "--positive",
            "yes",
        ])
        .args(["--missing", "Select", "--folds", "3", "--seed", "5", "--json", "--out"])
        .arg(&out)
        .output()
        .expect("runs");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let last = stdout.lines().last().expect("a last line");
    let v: serde_json::Value = serde_json::from_str(last).expect("the last line is JSON");
    let keys: Vec<&str> = v.as_object().expect("object").keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "rows",
            "positives",
            "features",
            "rules",
            "cv_auc",
            "cv_auc_std",
            "mql_threshold",
            "precision",
            "recall"
        ]
    );
    assert_eq!(v["rows"], 400);
    for f in
        ["model.json", "report.html", "roc.svg", "gains.svg", "calibration.svg", "score_distribution.svg"]
    {
        assert!(out.join(f).exists(), "{f}");
    }
    let model = std::fs::read_to_string(out.join("model.json")).expect("model");
    nurture::Program::from_json(&model).expect("the exported model compiles");
    let _ = std::fs::remove_dir_all(&out);
    // A label column that does not exist: exit 2 and a clear message.
    let bad = lab()
        .args([
            "fit",
            "--csv",
            &fixture("contacts.csv"),
            "--sep",
            ";",
            "--label",
            "Nope",
            "--positive",
            "1",
            "--out",
        ])
        .arg(std::env::temp_dir().join("nurture-lab-never"))
        .output()
        .expect("runs");
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("no column `Nope`"));
}
