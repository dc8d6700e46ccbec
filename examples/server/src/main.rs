use clap::Parser;

fn main() -> anyhow::Result<()> {
    limit_malloc_arenas();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(serve())
}

/// glibc gives each thread that contends for the heap an arena of its own
/// (up to 8 per core) and keeps what each arena freed: with the blocking
/// pool's threads, RSS grew from about 40 to 82 MB while a backlog of 215k
/// incidents was decided, and stays near 40 MB with two arenas (no
/// measurable cost in `bench/alert-ingest.sh`). Must run before any thread
/// starts; `MALLOC_ARENA_MAX` in the environment still wins.
fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt only sets an allocator parameter; no thread runs yet.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 2);
        }
    }
}

async fn serve() -> anyhow::Result<()> {
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
