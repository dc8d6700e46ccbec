/// mimalloc: about a fifth less CPU per ingested alert than glibc's malloc
/// in `bench/alert-ingest.sh` (most of the server's allocations are freed
/// by another thread than the one that made them: request → store writer →
/// response).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    let tuned = tune_allocator();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(serve(tuned))
}

/// `mi_option_purge_delay` and `mi_option_arena_eager_commit` in the
/// `mi_option_e` enum of the mimalloc that libmimalloc-sys 0.1.49 bundles
/// (v3; the crate exports no constants for them). Their defaults are 1000 (ms)
/// and 2: `tune_allocator` changes them only when it reads those defaults, so a
/// renumbered enum is left alone, and the test below fails.
const MI_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;
const MI_ARENA_EAGER_COMMIT: libmimalloc_sys::mi_option_t = 4;

/// Keeps RSS low: mimalloc with its defaults held 60–68 MB while the server
/// decided a backlog of new incidents; returning freed memory at once and
/// committing arena memory on use kept it at 46–53 MB, at no measurable CPU
/// cost. Runs before any thread starts; `MIMALLOC_*` in the environment still
/// wins. Returns what it changed.
fn tune_allocator() -> Option<&'static str> {
    use libmimalloc_sys::{mi_option_get, mi_option_set};
    // SAFETY: these only read and set allocator parameters; no other thread
    // runs yet.
    unsafe {
        if mi_option_get(MI_PURGE_DELAY) != 1000 || mi_option_get(MI_ARENA_EAGER_COMMIT) != 2 {
            return None;
        }
        mi_option_set(MI_PURGE_DELAY, 0);
        mi_option_set(MI_ARENA_EAGER_COMMIT, 0);
    }
    Some("mimalloc purge_delay=0 arena_eager_commit=0")
}

async fn serve(tuned: Option<&'static str>) -> anyhow::Result<()> {
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
    // `infraai-server mcp [flags]`: MCP on stdio for a local assistant.
    let mcp = args.peek().map(String::as_str) == Some("mcp");
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,infraai_server=info".into()),
        )
        .init();
    tracing::debug!(?tuned, "allocator");
    if mcp {
        let argv = std::env::args_os()
            .enumerate()
            .filter(|(i, _)| *i != 1)
            .map(|(_, a)| a);
        let config = infraai_server::config::Config::load_from(argv)?;
        return infraai_server::run_mcp_stdio(config).await;
    }
    let config = infraai_server::config::Config::load()?;
    infraai_server::run(config).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mimalloc_options_are_the_ones_meant() {
        // Each option's documented default identifies it in the enum.
        // SAFETY: reads allocator parameters only.
        let (purge, eager) = unsafe {
            (
                libmimalloc_sys::mi_option_get(MI_PURGE_DELAY),
                libmimalloc_sys::mi_option_get(MI_ARENA_EAGER_COMMIT),
            )
        };
        assert_eq!((purge, eager), (1000, 2));
    }
}
