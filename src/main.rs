//! The `xbn` command-line tool; see `xbn --help`.

fn main() {
    std::process::exit(xbn::cli::main());
}
