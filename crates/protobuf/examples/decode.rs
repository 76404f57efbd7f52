//! Prints the JSON form of a Kubernetes protobuf body: `cargo run -p capstan-protobuf --example decode -- FILE`.

fn main() {
    let path = std::env::args().nth(1).expect("usage: decode FILE");
    let body = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    match capstan_protobuf::decode(&body) {
        Ok(object) => println!("{}", serde_json::to_string_pretty(&object).unwrap()),
        Err(err) => {
            eprintln!("{path}: {err}");
            std::process::exit(1);
        }
    }
}
