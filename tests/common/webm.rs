//! What a browser's Media Source checks of a WebM file, read without GStreamer: within a
//! cluster, each block's timecode is at least the previous block's, whatever its track
//! (Chromium refuses the whole segment otherwise: "Got a block with a timecode before the
//! previous block"). matroskademux accepts such a file, so the recorder's tests check this
//! too.

const SEGMENT: u64 = 0x1853_8067;
const CLUSTER: u64 = 0x1F43_B675;
const TIMECODE: u64 = 0xE7;
const BLOCK_GROUP: u64 = 0xA0;
const SIMPLE_BLOCK: u64 = 0xA3;
const BLOCK: u64 = 0xA1;

/// An EBML variable-length integer at `at`: (value, its length). An element id keeps its
/// length marker; a size does not (all ones: unknown size, `None`).
fn vint(b: &[u8], at: usize, is_id: bool) -> Result<(Option<u64>, usize), String> {
    let first = *b.get(at).ok_or("truncated")?;
    let len = first.leading_zeros() as usize + 1;
    if len > 8 || at + len > b.len() {
        return Err(format!("bad variable-length integer at byte {at}"));
    }
    let mut v = if is_id { first as u64 } else { (first as u64) & (0xFF >> len) };
    for &x in &b[at + 1..at + len] {
        v = (v << 8) | x as u64;
    }
    let unknown = !is_id && v == (1u64 << (7 * len)) - 1;
    Ok((if unknown { None } else { Some(v) }, len))
}

/// Check every cluster of the WebM file `bytes`: Ok(blocks checked), or the first block out
/// of order.
pub fn blocks_in_order(bytes: &[u8]) -> Result<usize, String> {
    let mut blocks = 0;
    walk(bytes, 0, bytes.len(), &mut None, &mut None, &mut blocks)?;
    Ok(blocks)
}

fn walk(
    b: &[u8],
    mut at: usize,
    end: usize,
    cluster: &mut Option<u64>,
    previous: &mut Option<i16>,
    blocks: &mut usize,
) -> Result<(), String> {
    while at < end {
        let (id, id_len) = vint(b, at, true)?;
        let id = id.expect("ids have no unknown size");
        let (size, size_len) = vint(b, at + id_len, false)?;
        let body = at + id_len + size_len;
        let body_end = size.map_or(end, |s| (body + s as usize).min(end));
        match id {
            SEGMENT | BLOCK_GROUP => walk(b, body, body_end, cluster, previous, blocks)?,
            CLUSTER => {
                *cluster = None;
                *previous = None;
                walk(b, body, body_end, cluster, previous, blocks)?;
            }
            TIMECODE => *cluster = Some(b[body..body_end].iter().fold(0, |v, &x| (v << 8) | x as u64)),
            SIMPLE_BLOCK | BLOCK => {
                let (track, track_len) = vint(b, body, false)?;
                let t = body + track_len;
                let relative = i16::from_be_bytes([*b.get(t).ok_or("truncated")?, *b.get(t + 1).ok_or("truncated")?]);
                if previous.is_some_and(|p| relative < p) {
                    return Err(format!(
                        "cluster at {} ms: a block of track {} at {} ms after one at {} ms",
                        cluster.unwrap_or(0),
                        track.unwrap_or(0),
                        cluster.unwrap_or(0) as i64 + relative as i64,
                        cluster.unwrap_or(0) as i64 + previous.unwrap_or(0) as i64,
                    ));
                }
                *previous = Some(relative);
                *blocks += 1;
            }
            _ => {}
        }
        at = body_end;
    }
    Ok(())
}
