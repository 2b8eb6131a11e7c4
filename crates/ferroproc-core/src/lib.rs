//! ferroproc's host-neutral core: everything about child processes that
//! does not depend on who drives it. Plain Rust over libc, nix and mio, with
//! no pyo3, so `cargo test` exercises every part directly.
//!
//! Starting a child:
//! - [`exec`]: argv/envp as C data and the PATH rule;
//! - [`fdplan`]: a childFDs mapping turned into dup2/close actions that are
//!   right for any permutation;
//! - [`pty`], [`creds`]: terminals and credential changes, prepared in the parent;
//! - [`spawn`]: the two ways a child is started (`posix_spawn`, or a
//!   vfork-style `clone`), behind a guard that kills and reaps on error.
//!
//! Running it:
//! - [`child`]: one child's lifecycle as a state machine (pipes, write
//!   queues, producers' flow control, exit, losses, end-once), and the cell
//!   that locks it under a rule the types enforce;
//! - [`evloop`]: the poll, the lists of children with work, the waker;
//! - [`io`]: reading output into a host's buffers;
//! - [`timers`]: the timer queue;
//! - [`reap`]: exit status and resource usage through a pidfd;
//! - [`jobs`]: the rules for running many jobs (slots, retries, halts,
//!   the memory gate, bounded capture);
//! - [`orphans`]: the children of a loop no host will turn again.
//!
//! And [`sys`] (syscalls, capabilities), [`signals`] (names), [`debuglog`]
//! (records of spawns, exits and the signals sent, for a host's debug log).

pub mod child;
pub mod creds;
pub mod debuglog;
pub mod evloop;
pub mod exec;
pub mod fdplan;
pub mod io;
pub mod jobs;
pub mod orphans;
pub mod pty;
pub mod reap;
pub mod signals;
pub mod spawn;
pub mod sys;
pub mod timers;
