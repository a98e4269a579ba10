fn main() {
    std::process::exit(bnnc::driver::main_cli());
}
