//! The `tidelog` command.

fn main() -> std::process::ExitCode {
    tidelog_server::cli::main()
}
