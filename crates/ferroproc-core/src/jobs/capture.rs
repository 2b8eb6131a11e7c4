//! What is kept of one stream of a job's output: at most a limit, the rest
//! counted and dropped, so a million jobs never hold more than the limit
//! each.

/// How much of a chunk to keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keep {
    /// All of it.
    All,
    /// Its first `n` bytes (the host cuts the chunk: only it can make one).
    Prefix(usize),
    /// None of it.
    Nothing,
}

/// One stream's capture.
#[derive(Debug)]
pub struct Capture<C> {
    chunks: Vec<C>,
    kept: usize,
    seen: u64,
    truncated: bool,
    /// At most this many bytes are kept (None: all).
    limit: Option<usize>,
    /// False: nothing is kept (only counted).
    keep: bool,
}

impl<C: AsRef<[u8]>> Capture<C> {
    /// Keep at most `limit` bytes (None: everything); with `keep` false,
    /// only count.
    pub fn new(limit: Option<usize>, keep: bool) -> Self {
        Capture { chunks: Vec::new(), kept: 0, seen: 0, truncated: false, limit, keep }
    }

    /// A chunk of `len` bytes arrived: it is counted, and the answer says
    /// what to [`Capture::push`] of it.
    pub fn offer(&mut self, len: usize) -> Keep {
        self.seen += len as u64;
        if !self.keep || len == 0 {
            return Keep::Nothing;
        }
        let room = self.limit.map_or(usize::MAX, |l| l.saturating_sub(self.kept));
        if len <= room {
            Keep::All
        } else {
            self.truncated = true;
            if room == 0 {
                Keep::Nothing
            } else {
                Keep::Prefix(room)
            }
        }
    }

    /// Keep `chunk` (all of what [`Capture::offer`] allowed).
    pub fn push(&mut self, chunk: C) {
        self.kept += chunk.as_ref().len();
        self.chunks.push(chunk);
    }

    /// Bytes seen, kept or not.
    pub fn seen(&self) -> u64 {
        self.seen
    }

    /// Whether output beyond the limit was dropped.
    pub fn truncated(&self) -> bool {
        self.truncated
    }

    /// Bytes kept.
    pub fn kept(&self) -> usize {
        self.kept
    }

    /// The kept chunks, in order (the capture starts over, empty).
    pub fn take_chunks(&mut self) -> Vec<C> {
        self.kept = 0;
        std::mem::take(&mut self.chunks)
    }
}
