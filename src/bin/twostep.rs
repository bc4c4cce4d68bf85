fn main() -> std::process::ExitCode {
    pam_twostep::cli::main()
}
