//! Entry points for siemfwd's fuzz targets that reach this crate's private
//! parsers (compiled only with the `fuzzing` feature; `../fuzz` calls them
//! through `siemfwd::fuzzing`).

use crate::listen::framing::FrameBuffer;
use crate::listen::parse;

/// A syslog stream (RFC 6587 framing, both kinds) fed in chunks whose
/// sizes the first byte picks; every frame parsed as RFC 5424 or 3164.
pub fn syslog_stream(data: &[u8]) {
    let Some((&chunk, rest)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(chunk.max(1));
    let mut frames = FrameBuffer::new(4096);
    for piece in rest.chunks(chunk) {
        frames.read_buf().extend_from_slice(piece);
        loop {
            match frames.next_frame() {
                Ok(Some(f)) => {
                    let _ = parse::parse(frames.get(f));
                }
                Ok(None) => break,
                Err(_) => return,
            }
        }
    }
    if let Some(f) = frames.final_frame() {
        let _ = parse::parse(frames.get(f));
    }
}
