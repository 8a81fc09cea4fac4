//! Raw deflate through ISA-L's streaming inflate (the `isal` feature).
//!
//! ISA-L decodes the benchmark's 200 MB layer in about three quarters of zlib-rs's time on
//! the same machine; the decompressing thread is what bounds an unpack, so that is what an
//! unpack gains. Only the deflate stream goes through it: the gzip framing around it is
//! parsed and checked in Rust (`crate::gzip`).

use std::ffi::c_int;
use std::io;
use std::ptr::NonNull;

#[repr(C)]
struct State {
    _opaque: [u8; 0],
}

unsafe extern "C" {
    fn wharf_isal_new() -> *mut State;
    fn wharf_isal_free(s: *mut State);
    fn wharf_isal_reset(s: *mut State);
    fn wharf_isal_inflate(
        s: *mut State,
        input: *const u8,
        in_len: u32,
        out: *mut u8,
        out_len: u32,
        consumed: *mut u32,
        produced: *mut u32,
    ) -> c_int;
    fn wharf_isal_take_unused(s: *mut State, out: *mut [u8; 8]) -> c_int;
}

/// One raw deflate stream being decoded; `reset` starts the next.
pub(crate) struct RawInflate {
    state: NonNull<State>,
}

// SAFETY: the state is plain memory owned by this value and only touched through `&mut self`.
unsafe impl Send for RawInflate {}

/// What one call did.
pub(crate) struct Step {
    pub consumed: usize,
    pub produced: usize,
    /// The stream's final block has been decoded and all of it written out.
    pub ended: bool,
    /// Once ended: input bytes past the end of the stream that ISA-L had read ahead into
    /// its bit buffer (counted in `consumed`): they belong to whatever follows the stream.
    pub unused: ([u8; 8], usize),
}

impl RawInflate {
    pub(crate) fn new() -> io::Result<Self> {
        // SAFETY: no arguments; returns an initialised state or null.
        let state = NonNull::new(unsafe { wharf_isal_new() })
            .ok_or_else(|| io::Error::new(io::ErrorKind::OutOfMemory, "ISA-L inflate state"))?;
        Ok(RawInflate { state })
    }

    pub(crate) fn reset(&mut self) {
        // SAFETY: `state` is a live state from `wharf_isal_new`.
        unsafe { wharf_isal_reset(self.state.as_ptr()) }
    }

    /// Decodes from `input` into `out`. Input ISA-L read beyond the end of the stream is
    /// handed back in `Step::unused`; if some of it cannot be (ISA-L keeps it elsewhere than
    /// its bit buffer), that is an error rather than a silent loss of the bytes that follow.
    pub(crate) fn step(&mut self, input: &[u8], out: &mut [u8]) -> io::Result<Step> {
        let in_len = u32::try_from(input.len()).unwrap_or(u32::MAX);
        let out_len = u32::try_from(out.len()).unwrap_or(u32::MAX);
        let (mut consumed, mut produced) = (0u32, 0u32);
        // SAFETY: the pointers and lengths describe live slices (lengths clamped to them);
        // ISA-L reads at most `in_len` bytes and writes at most `out_len`.
        let r = unsafe {
            wharf_isal_inflate(
                self.state.as_ptr(),
                input.as_ptr(),
                in_len,
                out.as_mut_ptr(),
                out_len,
                &mut consumed,
                &mut produced,
            )
        };
        if r < 0 {
            let what = match r {
                -1 => "invalid deflate block",
                -2 => "invalid deflate symbol",
                -3 => "invalid deflate back-reference distance",
                _ => "ISA-L inflate error",
            };
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("gzip: {what} ({r})"),
            ));
        }
        let ended = r == 1;
        let mut unused = ([0u8; 8], 0);
        if ended {
            // SAFETY: `state` is a live state and `unused.0` has room for 8 bytes.
            let n = unsafe { wharf_isal_take_unused(self.state.as_ptr(), &mut unused.0) };
            unused.1 = usize::try_from(n)
                .map_err(|_| io::Error::other("gzip: ISA-L kept input past the end of a deflate stream"))?;
        }
        Ok(Step {
            consumed: consumed as usize,
            produced: produced as usize,
            ended,
            unused,
        })
    }
}

impl Drop for RawInflate {
    fn drop(&mut self) {
        // SAFETY: `state` came from `wharf_isal_new` and is freed once.
        unsafe { wharf_isal_free(self.state.as_ptr()) }
    }
}
