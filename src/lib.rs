//! ferroproc's engine: spawning, fd plans, PTYs, credentials and reaping in
//! [`core`] (pure Rust), and the Python bindings in [`py`] (the only code that
//! touches pyo3).

pub mod core;
pub mod py;

pub use py::_core;
