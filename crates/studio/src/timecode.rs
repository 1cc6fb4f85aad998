//! A machine-readable capture time burnt into the picture, for glass-to-glass measurement:
//! the studio writes it into each mixed frame; a pupil page in test mode (`?timecode`) reads
//! it back from a canvas and compares it with its own clock (the same machine, or clocks
//! kept in step).
//!
//! Rules of the code:
//! - the capture's wall-clock time, in milliseconds since the Unix epoch, modulo 2^32;
//! - 32 cells side by side across the top [`ROWS`] rows of the frame, most significant bit
//!   first, each `width / 32` pixels wide: luma [`WHITE`] for a 1, [`BLACK`] for a 0;
//! - at 1280×720 a cell is 40×40 pixels, and still 10×10 in the 180p layer, so every layer
//!   carries it through the encoder.

/// Cells (bits) across the frame.
pub const CELLS: usize = 32;
/// Rows of the frame the code covers, at 720p (scaled with the frame's height).
pub const ROWS: usize = 40;
/// Luma of a 1.
pub const WHITE: u8 = 235;
/// Luma of a 0.
pub const BLACK: u8 = 16;

/// Write `ms` (the capture's wall-clock milliseconds, modulo 2^32) into the luma plane `y`
/// of a frame `width` × `height` with `stride` bytes per row. A plane too small is left as is.
pub fn burn(y: &mut [u8], width: usize, height: usize, stride: usize, ms: u32) {
    let rows = (ROWS * height / 720).max(1).min(height);
    let cell = width / CELLS;
    if cell == 0 || stride < width || y.len() < stride * rows {
        return;
    }
    for row in y.chunks_mut(stride).take(rows) {
        for (i, px) in row[..cell * CELLS].chunks_mut(cell).enumerate() {
            let bit = (ms >> (CELLS - 1 - i)) & 1;
            px.fill(if bit == 1 { WHITE } else { BLACK });
        }
    }
}

/// Read the code back from a luma plane (the page does the same on a canvas).
pub fn read(y: &[u8], width: usize, height: usize, stride: usize) -> Option<u32> {
    let rows = (ROWS * height / 720).max(1).min(height);
    let cell = width / CELLS;
    if cell == 0 || y.len() < stride * rows {
        return None;
    }
    let row = &y[stride * (rows / 2)..];
    Some((0..CELLS).fold(0u32, |v, i| (v << 1) | u32::from(row[i * cell + cell / 2] > 128)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burnt_time_reads_back_at_every_layer_size() {
        for (w, h) in [(1280, 720), (640, 360), (320, 180)] {
            let mut y = vec![128u8; w * h];
            burn(&mut y, w, h, w, 0xdead_beef);
            assert_eq!(read(&y, w, h, w), Some(0xdead_beef), "{w}x{h}");
            // Below the code, the picture is untouched.
            let rows = ROWS * h / 720;
            assert!(y[w * rows..].iter().all(|&v| v == 128));
        }
        let mut tiny = vec![0u8; 10];
        burn(&mut tiny, 10, 1, 10, 1);
        assert_eq!(tiny, vec![0u8; 10], "too narrow for 32 cells: untouched");
    }
}
