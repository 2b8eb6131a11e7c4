//! The Python bindings: the only code that touches pyo3.

pub mod engine;
pub mod errors;
pub mod process;

use pyo3::prelude::*;

/// `ferroproc._core`: the Rust engine behind ferroproc's reactor.
#[pymodule]
pub fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<engine::Engine>()?;
    m.add_class::<engine::DelayedCall>()?;
    m.add_class::<process::Process>()?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
