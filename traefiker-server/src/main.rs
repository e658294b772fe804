//! The `traefiker` binary (being built; see the server issue).

fn main() {
    eprintln!("traefiker: the service is not built yet; run `cargo run -p traefiker-core --example walkthrough`");
    std::process::exit(2);
}
