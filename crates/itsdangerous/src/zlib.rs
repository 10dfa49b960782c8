//! zlib as Python's `zlib` module does it.

use flate2::{Compression, Decompress, FlushDecompress, Status};

/// Python's `zlib.compress(data)` (level 6, zlib header). `None` only if zlib fails, which it
/// does not for an in-memory buffer; the caller then sends the payload uncompressed.
///
/// Every call tries it (that is how Python decides), so the deflate state (about 260 KiB) is
/// kept per thread and reset between calls: allocating it afresh for each token cost more than
/// the rest of signing. A reset stream produces exactly the bytes a new one would.
pub(super) fn compress(data: &[u8]) -> Option<Vec<u8>> {
    thread_local! {
        static DEFLATE: std::cell::RefCell<flate2::Compress> =
            std::cell::RefCell::new(flate2::Compress::new(Compression::new(6), true));
    }
    DEFLATE.with(|deflate| {
        let mut deflate = deflate.try_borrow_mut().ok()?;
        deflate.reset();
        let mut out = Vec::with_capacity(data.len() + 64);
        loop {
            let consumed = usize::try_from(deflate.total_in()).ok()?;
            let status = deflate
                .compress_vec(
                    data.get(consumed..)?,
                    &mut out,
                    flate2::FlushCompress::Finish,
                )
                .ok()?;
            if status == Status::StreamEnd {
                return Some(out);
            }
            out.reserve(out.capacity().max(64));
        }
    })
}

/// Python's `zlib.decompress(data)`: one complete zlib stream (trailing bytes after its end
/// are ignored, as Python does), but refusing to produce more than `limit` bytes.
pub(super) fn inflate(data: &[u8], limit: usize) -> Option<Vec<u8>> {
    let mut inflater = Decompress::new(true);
    let mut out = Vec::new();
    let mut chunk = [0u8; 8 * 1024];
    loop {
        let (in_before, out_before) = (inflater.total_in(), inflater.total_out());
        let input = data
            .get(usize::try_from(in_before).ok()?..)
            .unwrap_or_default();
        let status = inflater
            .decompress(input, &mut chunk, FlushDecompress::None)
            .ok()?;
        let produced = usize::try_from(inflater.total_out() - out_before).ok()?;
        out.extend_from_slice(chunk.get(..produced)?);
        if out.len() > limit {
            return None;
        }
        match status {
            Status::StreamEnd => return Some(out),
            // No progress at all: the stream is truncated.
            Status::Ok | Status::BufError if inflater.total_in() == in_before && produced == 0 => {
                return None;
            }
            Status::Ok | Status::BufError => {}
        }
    }
}
