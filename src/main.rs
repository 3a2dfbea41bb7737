//! The `onlabel` binary: everything lives in the library; see `onlabel::cli`.

fn main() {
    std::process::exit(onlabel::cli::run());
}
