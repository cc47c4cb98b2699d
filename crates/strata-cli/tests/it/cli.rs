//! The command line itself: help, bad flags, the data directory's sources.

use serde_json::json;

use crate::support::{Strata, append_line};

#[test]
fn every_command_has_help() {
    let strata = Strata::new();
    for command in [
        "append",
        "read",
        "read-all",
        "tail",
        "verify",
        "export",
        "import",
        "bench",
        "serve",
        "completions",
        "man",
    ] {
        let run = strata.run(&[command, "--help"], "");
        run.assert_success();
        assert!(run.stdout().contains("Usage"), "{command}: {run:?}");
        let help = run.stdout();
        for code in ["Exit codes:", "  0  ", "  1  ", "  2  "] {
            assert!(help.contains(code), "{command} lists {code:?}: {help}");
        }
    }
    let read = strata.run(&["read", "--help"], "").stdout();
    assert!(read.contains("  3  the stream does not exist"), "{read}");
    let top = strata.run(&["--help"], "").stdout();
    assert!(top.contains("  3  not found"), "{top}");
    let import = strata.run(&["import", "--help"], "");
    assert!(import.stdout().contains("non-empty store"), "{import:?}");
}

#[test]
fn bad_flags_are_usage_errors() {
    let strata = Strata::new();
    for args in [
        &["no-such-command"][..],
        &["read"],
        &["read", "a-1", "--limit", "-1"],
        &["read", "a-1", "--from", "x"],
        &["read-all", "--bogus"],
        &["tail", "--from", "-5"],
        &[],
    ] {
        let run = strata.run(args, "");
        assert_eq!(run.code(), Some(2), "{args:?}: {run:?}");
        run.assert_no_panic();
    }
}

#[test]
fn the_data_dir_flag_wins_over_the_environment() {
    let strata = Strata::new();
    let other = strata.scratch().join("other");
    let other = other.to_str().unwrap();
    let line = format!("{}\n", append_line("a-1", json!("any"), &["T"]));
    strata
        .run(&["append", "--data-dir", other], &line)
        .assert_success();
    let run = strata.run(&["read", "a-1", "--data-dir", other], "");
    assert_eq!(run.json_lines().len(), 1, "{run:?}");
    assert!(!strata.data_dir().exists());
}

#[test]
fn without_flag_or_environment_the_data_dir_is_strata_data_here() {
    let strata = Strata::new();
    let line = format!("{}\n", append_line("a-1", json!("any"), &["T"]));
    let mut command = strata.command(&["append"]);
    command
        .env_remove("STRATA_DATA_DIR")
        .current_dir(strata.scratch());
    crate::support::run(command, line.as_bytes()).assert_success();
    assert!(strata.scratch().join("strata-data").is_dir());
}

#[test]
fn completions_and_the_manual_page_come_from_the_command_line_definitions() {
    let strata = Strata::new();
    for (shell, marker) in [
        ("bash", "_strata()"),
        ("zsh", "#compdef strata"),
        ("fish", "complete -c strata"),
    ] {
        let run = strata.run(&["completions", shell], "");
        run.assert_success();
        let script = run.stdout();
        assert!(script.contains(marker), "{shell}: {script}");
        for command in ["read-all", "import", "verify", "completions"] {
            assert!(script.contains(command), "{shell} completes {command}");
        }
    }
    let man = strata.run(&["man"], "");
    man.assert_success();
    assert!(man.stdout().contains(".TH strata 1"), "{man:?}");
    assert!(man.stdout().contains("Exit codes"), "{man:?}");
    assert_eq!(strata.run(&["completions", "nope"], "").code(), Some(2));
}
