//! `gauntlet tools rules-check`: checks rule files as Thanos's `tools rules-check` does
//! (Prometheus's checks plus the `partial_response_strategy` field), naming file, group
//! and rule in every error; exits non-zero when a file fails.

use anyhow::{bail, Result};
use clap::Args;

#[derive(Args)]
pub struct RulesCheckArgs {
    /// The rule files to check (repeatable; globs).
    #[arg(long = "rules", required = true)]
    rules: Vec<String>,
}

/// Rules are checked as 3.x PromQL, experimental functions included: a file any ruler
/// configuration can run passes.
const CHECK_DIALECT: promql::Dialect = promql::Dialect {
    compat: promql::Compat::V3,
    experimental_functions: true,
    binop_fill_modifiers: true,
};

pub fn run(a: RulesCheckArgs) -> Result<()> {
    let files = rule::file::expand_patterns(&a.rules).map_err(anyhow::Error::msg)?;
    if files.is_empty() {
        bail!("no rule files match {:?}", a.rules);
    }
    let mut failed = 0;
    for f in &files {
        let name = f.display().to_string();
        println!("Checking {name}");
        let checked = std::fs::read(f)
            .map_err(|e| vec![format!("{name}: {e}")])
            .and_then(|b| rule::file::parse(&name, &b, CHECK_DIALECT));
        match checked {
            Ok(groups) => {
                let n: usize = groups.iter().map(|g| g.rules.len()).sum();
                println!("  SUCCESS: {n} rules found\n");
            }
            Err(errs) => {
                failed += 1;
                println!("  FAILED:");
                for e in errs {
                    println!("{e}");
                }
                println!();
            }
        }
    }
    if failed > 0 {
        bail!("{failed} of {} rule files failed the check", files.len());
    }
    Ok(())
}
