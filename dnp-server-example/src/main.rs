//! `dnp-server`: the reference server's binary. See `dnp-server --help`.

fn main() -> std::process::ExitCode {
    dnp_server::cli::main()
}
