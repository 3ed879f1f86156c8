//! cargo run -p dnp-examples --example plan_offline -- [snapshot.json dnp.json [policy.json]]
//!
//! Plans the enforcement of a DNP list on a library snapshot, offline, and prints the plan
//! as a table: what would be removed, why, with what confidence, and what is skipped.
//! Without arguments it reads the samples in `examples/data/`. A file that does not parse
//! prints the typed error (field, line, column) and exits with status 2.

use std::process::ExitCode;

use dnp_examples::plan_offline;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() == 1 || args.len() > 3 || args.iter().any(|a| a == "-h" || a == "--help") {
        eprintln!("usage: plan_offline [snapshot.json dnp.json [policy.json]]");
        return ExitCode::from(2);
    }
    match plan_offline::run(&args) {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::from(2)
        }
    }
}
