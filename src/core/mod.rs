//! The pure-Rust core: everything here is plain Rust over libc/nix, with no pyo3,
//! so `cargo test` exercises it directly.
//!
//! - [`exec`]: argv/envp as C data and the PATH rule;
//! - [`fdplan`]: a childFDs mapping turned into dup2/close actions that are right
//!   for any permutation;
//! - [`pty`], [`creds`]: terminals and credential changes, prepared in the parent;
//! - [`spawn`]: the two ways a child is started (`posix_spawn`, or a vfork-style
//!   `clone` when credentials must change);
//! - [`reap`]: exit status through a pidfd.

pub mod creds;
pub mod exec;
pub mod fdplan;
pub mod pty;
pub mod reap;
pub mod spawn;
pub mod sys;
