//! `ferroproc._core`: the Python bindings over `ferroproc-core`. The only code
//! that touches pyo3. Dependencies run one way:
//!
//! ```text
//! jobs      → engine, spawn, timers, debuglog, dispatch, handle, host, errors
//! engine    → spawn, transport, timers, debuglog, dispatch, handle, host, errors
//! spawn     → transport, timers, debuglog, dispatch, handle, host, errors
//! transport → debuglog, dispatch, handle, host, errors, attrs
//! timers    → dispatch, handle, host
//! debuglog  → dispatch
//! dispatch  → handle, host
//! handle    → host
//! host, errors → (ferroproc_core only); attrs → (pyo3 only)
//! ```
//!
//! - [`engine`]: the `Engine` class: polls and turns the core loop;
//! - [`dispatch`]: the core's events turned into protocol calls;
//! - [`timers`]: `callLater` and `DelayedCall`;
//! - [`transport`]: the `Process` class protocols hold;
//! - [`spawn`]: `SpawnArgs` marshalling, with the rollback guard;
//! - [`jobs`]: the `JobQueue` class: the jobs runner's scheduling loop;
//! - [`handle`]: what an engine shares with its transports and timers;
//! - [`host`]: `bytes` buffers and per-child protocol objects for the core;
//! - [`errors`]: OS errors and spawn failures as Python exceptions;
//! - [`attrs`]: a program's own values under the transport's ferroproc names;
//! - [`debuglog`]: spawns, exits and signals at DEBUG on the `ferroproc` logger.

mod attrs;
mod debuglog;
mod dispatch;
mod engine;
mod errors;
mod handle;
mod host;
mod jobs;
mod spawn;
mod timers;
mod transport;

use pyo3::prelude::*;

/// `ferroproc._core`: the Rust engine behind ferroproc's reactors.
#[pymodule]
pub fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<engine::Engine>()?;
    m.add_class::<timers::DelayedCall>()?;
    m.add_class::<transport::Process>()?;
    m.add_class::<jobs::JobQueue>()?;
    m.add_function(wrap_pyfunction!(errors::parse_signal_py, m)?)?;
    m.add_function(wrap_pyfunction!(debuglog::records_made, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
