//! The `xbn` command-line tool; see `xbn --help`.

fn main() {
    // Keep freed activation buffers for reuse (see xbn::malloc); before any tensor exists.
    xbn::malloc::tune_malloc();
    std::process::exit(xbn::cli::main());
}
