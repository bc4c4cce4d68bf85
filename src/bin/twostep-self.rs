#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    pam_twostep::self_service::main()
}
