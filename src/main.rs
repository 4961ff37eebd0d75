//! The `tayori` binary: see [`tayori::cli`].

fn main() -> std::process::ExitCode {
    tayori::cli::main()
}
