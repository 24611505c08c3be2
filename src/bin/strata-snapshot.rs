//! `strata-snapshot`: the privileged helper, run by the backup user through
//! `sudo -n`. All of it lives in `strata::privileged`.

fn main() -> std::process::ExitCode {
    strata::privileged::main()
}
