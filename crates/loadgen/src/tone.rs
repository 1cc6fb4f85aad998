//! A real Opus stream: a 440 Hz tone, 20 ms frames, in-band FEC.

use opus::{Application, Channels, Decoder, Encoder};

/// Sample rate of the tone.
pub const RATE: u32 = 48_000;
/// Samples per 20 ms frame.
pub const FRAME: usize = 960;

/// Encodes a continuous sine tone into Opus packets.
pub struct ToneEncoder {
    enc: Encoder,
    freq: f32,
    phase: u64,
}

impl ToneEncoder {
    /// A tone of `freq` Hz.
    pub fn new(freq: f32) -> Result<Self, opus::Error> {
        let mut enc = Encoder::new(RATE, Channels::Mono, Application::Voip)?;
        enc.set_inband_fec(true)?;
        enc.set_packet_loss_perc(5)?;
        enc.set_bitrate(opus::Bitrate::Bits(32_000))?;
        Ok(ToneEncoder { enc, freq, phase: 0 })
    }

    /// The next 20 ms Opus packet.
    pub fn next_packet(&mut self) -> Vec<u8> {
        let mut pcm = [0i16; FRAME];
        for (i, s) in pcm.iter_mut().enumerate() {
            let t = (self.phase + i as u64) as f32 / RATE as f32;
            *s = ((2.0 * std::f32::consts::PI * self.freq * t).sin() * 12_000.0) as i16;
        }
        self.phase += FRAME as u64;
        let mut out = vec![0u8; 400];
        let n = self.enc.encode(&pcm, &mut out).expect("opus encode of a valid frame");
        out.truncate(n);
        out
    }
}

/// Decode Opus packets (in order) to PCM.
pub fn decode(packets: &[Vec<u8>]) -> Result<Vec<i16>, opus::Error> {
    let mut dec = Decoder::new(RATE, Channels::Mono)?;
    let mut pcm = Vec::new();
    let mut buf = vec![0i16; FRAME * 6];
    for p in packets {
        let n = dec.decode(p, &mut buf, false)?;
        pcm.extend_from_slice(&buf[..n]);
    }
    Ok(pcm)
}

/// The frequency (Hz, 10 Hz resolution between 100 and 4000 Hz) with the most energy in `pcm`.
pub fn dominant_frequency(pcm: &[i16]) -> f32 {
    let n = pcm.len().min(RATE as usize); // up to one second
    let samples = &pcm[pcm.len() - n..];
    let mut best = (0.0f32, 0.0f64);
    let mut f = 100.0f32;
    while f <= 4000.0 {
        // Goertzel.
        let w = 2.0 * std::f64::consts::PI * f as f64 / RATE as f64;
        let c = 2.0 * w.cos();
        let (mut s1, mut s2) = (0.0f64, 0.0f64);
        for &x in samples {
            let s0 = x as f64 + c * s1 - s2;
            s2 = s1;
            s1 = s0;
        }
        let power = s1 * s1 + s2 * s2 - c * s1 * s2;
        if power > best.1 {
            best = (f, power);
        }
        f += 10.0;
    }
    best.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tone_round_trip_is_440() {
        let mut e = ToneEncoder::new(440.0).unwrap();
        let packets: Vec<Vec<u8>> = (0..60).map(|_| e.next_packet()).collect();
        let pcm = decode(&packets).unwrap();
        assert_eq!(pcm.len(), 60 * FRAME);
        assert_eq!(dominant_frequency(&pcm), 440.0);
        let mut e2 = ToneEncoder::new(1000.0).unwrap();
        let packets: Vec<Vec<u8>> = (0..60).map(|_| e2.next_packet()).collect();
        assert_eq!(dominant_frequency(&decode(&packets).unwrap()), 1000.0);
    }
}
