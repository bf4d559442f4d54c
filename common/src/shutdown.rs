//! The shutdown signal every service waits on (SIGTERM or Ctrl-C).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::watch;

/// Resolves when the process receives SIGTERM or SIGINT.
pub async fn signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                let _ = s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
    tracing::info!("shutdown signal received");
}

/// For stages whose consumer loop runs on a plain thread (so rdkafka's
/// rebalance callback can block): a small runtime for the async clients
/// they use, and a flag set when the shutdown signal arrives, which the loop
/// polls.
pub fn runtime_with_stop_flag() -> std::io::Result<(tokio::runtime::Runtime, Arc<AtomicBool>)> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let stopping = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stopping);
    let _signal = runtime.spawn(async move {
        signal().await;
        flag.store(true, Ordering::Relaxed);
    });
    Ok((runtime, stopping))
}

/// A flag that blocking loops (consumer threads) can poll, set on shutdown.
pub fn watch_flag() -> (watch::Sender<bool>, watch::Receiver<bool>) {
    watch::channel(false)
}
