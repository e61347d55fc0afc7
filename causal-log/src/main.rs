//! `causal-log`: merge, check, query and draw causal logs (see [`causal_log::cli`]).
//!
//! Exit status: 0 when all is well (warnings allowed), 1 when `check` finds a violation (or
//! `query --before` answers no), 2 when an input cannot be read (the message names the file and
//! line), an output cannot be written, or the command line is wrong.

use std::process::ExitCode;

fn main() -> ExitCode {
    let code = causal_log::cli::run(
        std::env::args_os(),
        &mut std::io::stdout().lock(),
        &mut std::io::stderr().lock(),
    );
    ExitCode::from(code)
}
