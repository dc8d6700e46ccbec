use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // The local cloud runs its demo service as `infraai-server demo-service …`,
    // so a fresh clone needs no second binary.
    let mut args = std::env::args().skip(1).peekable();
    if args.peek().map(String::as_str) == Some(infraai_server::wiring::DEMO_SERVICE) {
        args.next();
        match infraai_local::demo_service::parse_args(args) {
            Ok(a) => {
                infraai_local::demo_service::serve(a).await;
                return Ok(());
            }
            Err(e) => anyhow::bail!("demo-service: {e}"),
        }
    }
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,infraai_server=info".into()),
        )
        .init();
    let config = infraai_server::config::Config::load(infraai_server::config::Cli::parse())?;
    infraai_server::run(config).await
}
