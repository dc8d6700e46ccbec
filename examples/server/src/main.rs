use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,infraai_server=info".into()),
        )
        .init();
    let config = infraai_server::config::Config::load(infraai_server::config::Cli::parse())?;
    infraai_server::run(config).await
}
