//! The `tidelog` command.

fn main() -> std::process::ExitCode {
    // `tidelog bench ...` has its own parser (server/src/cli/bench.rs).
    if std::env::args_os().nth(1).is_some_and(|a| a == "bench") {
        return tidelog_server::cli::bench::main();
    }
    tidelog_server::cli::main()
}
