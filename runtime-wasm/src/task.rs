//! Tasks: `wasi:cli/run` components and core modules with `_start`, run
//! from start to exit in a store of their own.

use std::sync::Arc;

use wasmtime::Engine;

use crate::compile::Prepared;
use crate::guest::{GuestConfig, LogSink, Metered, Stdin, Usage};
use crate::outcome::Outcome;

/// Instantiates and runs a task to its end. The caller races it against a
/// kill: dropping the future stops the guest wherever it is, since the
/// guest yields at every epoch tick.
pub(crate) async fn run(
    engine: Engine,
    prepared: Prepared,
    guest: Arc<GuestConfig>,
    log: Arc<LogSink>,
    stdin: Stdin,
    usage: Arc<Usage>,
) -> Outcome {
    match prepared {
        Prepared::Command(pre) => {
            let mut store = match guest.component_store(&engine, &log, stdin, &usage) {
                Ok(store) => store,
                Err(error) => return Outcome::start_error(error.to_string()),
            };
            let result = Metered::new(
                async {
                    let command = pre.instantiate_async(&mut store).await?;
                    command.wasi_cli_run().call_run(&mut store).await
                },
                &usage,
            )
            .await;
            match result {
                Ok(Ok(())) => Outcome::exited(0),
                Ok(Err(())) => Outcome::exited(1),
                Err(error) => failed(&log, &error, store.data().limiter.exceeded),
            }
        }
        Prepared::Module(pre) => {
            let mut store = match guest.module_store(&engine, &log, stdin, &usage) {
                Ok(store) => store,
                Err(error) => return Outcome::start_error(error.to_string()),
            };
            let result = Metered::new(
                async {
                    let instance = pre.instantiate_async(&mut store).await?;
                    let start = instance.get_typed_func::<(), ()>(&mut store, "_start")?;
                    start.call_async(&mut store, ()).await
                },
                &usage,
            )
            .await;
            match result {
                Ok(()) => Outcome::exited(0),
                Err(error) => failed(&log, &error, store.data().limiter.exceeded),
            }
        }
        Prepared::Http(_) => Outcome::start_error("an HTTP component does not run as a task"),
    }
}

/// How a task that returned `error` ended; unless it merely exited, the
/// whole error (with the guest's backtrace) goes to its log, on stderr.
fn failed(log: &LogSink, error: &wasmtime::Error, out_of_memory: bool) -> Outcome {
    let outcome = Outcome::from_error(error, out_of_memory);
    if outcome.reason != skiff_sdk::runtime::reason::COMPLETED
        && error.downcast_ref::<wasmtime_wasi::I32Exit>().is_none()
    {
        let text = format!("skiff: the guest failed: {error:?}\n");
        log.write(skiff_sdk::runtime::log::Stream::Stderr, text.as_bytes());
    }
    outcome
}
