#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    pam_twostep::cli::main()
}
