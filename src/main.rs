fn main() {
    std::process::exit(bnnc::cli::main());
}
