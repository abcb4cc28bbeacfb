//! The `gauntlet` binary: parses Thanos's subcommands and flags and wires the library crates.

fn main() {}
