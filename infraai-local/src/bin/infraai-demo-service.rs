//! The local cloud's demo service; see `infraai_local::demo_service`.
//!
//! ```text
//! infraai-demo-service --name web --machine-type local-small [--port 0] [--record-dir DIR]
//! ```

#[tokio::main]
async fn main() {
    match infraai_local::demo_service::parse_args(std::env::args().skip(1)) {
        Ok(args) => infraai_local::demo_service::serve(args).await,
        Err(e) => {
            eprintln!("infraai-demo-service: {e}");
            std::process::exit(2);
        }
    }
}
