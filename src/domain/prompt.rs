//! Prompt (voice file) names and the WAV format check of API.md §9.

use std::fmt;

use super::fields::ParamError;
use super::phone::printable;

/// Largest prompt upload.
pub const MAX_PROMPT_BYTES: usize = 10 * 1024 * 1024;

/// A prompt name: `[A-Za-z0-9._-]{1,64}` ending in `.wav`.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(transparent)]
pub struct PromptName(String);

impl PromptName {
    /// Accepts `s` if it is a valid prompt name; `field` names it in the error.
    pub fn parse(field: &str, s: &str) -> Result<Self, ParamError> {
        let ok = (1..=64).contains(&s.len())
            && s.ends_with(".wav")
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
        if ok {
            Ok(Self(s.to_string()))
        } else {
            Err(ParamError::new(format!(
                "invalid {field}: {} (prompt names are 1-64 of A-Z a-z 0-9 . _ - and end in .wav)",
                printable(s)
            )))
        }
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PromptName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What the WAV header says about an accepted prompt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WavInfo {
    /// 8000 or 16000.
    pub sample_rate: u32,
    /// 8 or 16.
    pub bits_per_sample: u16,
    /// Length of the audio.
    pub duration_ms: u64,
}

/// Checks that `bytes` is a RIFF/WAVE file with 8 or 16 kHz mono PCM audio.
pub fn check_wav(bytes: &[u8]) -> Result<WavInfo, ParamError> {
    let bad = |why: &str| ParamError::new(format!("invalid WAV: {why}"));
    if bytes.len() > MAX_PROMPT_BYTES {
        return Err(bad("larger than 10 MB"));
    }
    if bytes.len() < 12 || &bytes[0..4] != b"RIFF" || &bytes[8..12] != b"WAVE" {
        return Err(bad("not a RIFF/WAVE file"));
    }
    let mut pos = 12;
    let mut format: Option<(u16, u16, u32, u16)> = None;
    while pos + 8 <= bytes.len() {
        let id = &bytes[pos..pos + 4];
        let size = u32::from_le_bytes([
            bytes[pos + 4],
            bytes[pos + 5],
            bytes[pos + 6],
            bytes[pos + 7],
        ]) as usize;
        let body = pos + 8;
        if id == b"fmt " {
            if size < 16 || body + 16 > bytes.len() {
                return Err(bad("truncated fmt chunk"));
            }
            let le16 = |at: usize| u16::from_le_bytes([bytes[body + at], bytes[body + at + 1]]);
            let rate = u32::from_le_bytes([
                bytes[body + 4],
                bytes[body + 5],
                bytes[body + 6],
                bytes[body + 7],
            ]);
            format = Some((le16(0), le16(2), rate, le16(14)));
        } else if id == b"data" {
            let (audio_format, channels, sample_rate, bits) =
                format.ok_or_else(|| bad("data before fmt chunk"))?;
            if audio_format != 1 {
                return Err(bad(&format!(
                    "audio format {audio_format} (must be 1, PCM)"
                )));
            }
            if channels != 1 {
                return Err(bad(&format!("{channels} channels (must be mono)")));
            }
            if sample_rate != 8000 && sample_rate != 16000 {
                return Err(bad(&format!(
                    "sample rate {sample_rate} (must be 8000 or 16000)"
                )));
            }
            if bits != 8 && bits != 16 {
                return Err(bad(&format!("{bits} bits per sample (must be 8 or 16)")));
            }
            let available = bytes.len() - body;
            if size > available {
                return Err(bad("data chunk is truncated"));
            }
            let bytes_per_second = u64::from(sample_rate) * u64::from(bits / 8);
            return Ok(WavInfo {
                sample_rate,
                bits_per_sample: bits,
                duration_ms: size as u64 * 1000 / bytes_per_second,
            });
        }
        pos = body.saturating_add(size).saturating_add(size & 1);
    }
    Err(bad("no data chunk"))
}

/// Builds a mono 16-bit PCM WAV file from samples (used for generated prompts and tests).
pub fn build_wav(sample_rate: u32, samples: &[i16]) -> Vec<u8> {
    let data_len = (samples.len() * 2) as u32;
    let mut out = Vec::with_capacity(44 + data_len as usize);
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + data_len).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes()); // PCM
    out.extend_from_slice(&1u16.to_le_bytes()); // mono
    out.extend_from_slice(&sample_rate.to_le_bytes());
    out.extend_from_slice(&(sample_rate * 2).to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&16u16.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&data_len.to_le_bytes());
    for s in samples {
        out.extend_from_slice(&s.to_le_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn names() {
        assert!(PromptName::parse("f", "hello.wav").is_ok());
        assert!(PromptName::parse("f", "A-b_c.1.wav").is_ok());
        for bad in [
            "",
            "hello.mp3",
            "../x.wav",
            "a b.wav",
            "中文.wav",
            &format!("{}.wav", "a".repeat(61)),
        ] {
            assert!(PromptName::parse("f", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn wav_rules() {
        let good = build_wav(8000, &[0; 8000]);
        assert_eq!(
            check_wav(&good).unwrap(),
            WavInfo {
                sample_rate: 8000,
                bits_per_sample: 16,
                duration_ms: 1000
            }
        );
        assert!(check_wav(&build_wav(16000, &[0; 1600])).is_ok());
        let msg = check_wav(&build_wav(44100, &[0; 10])).unwrap_err().0;
        assert_eq!(
            msg,
            "invalid WAV: sample rate 44100 (must be 8000 or 16000)"
        );
        let mut stereo = good.clone();
        stereo[22] = 2;
        assert_eq!(
            check_wav(&stereo).unwrap_err().0,
            "invalid WAV: 2 channels (must be mono)"
        );
        assert_eq!(
            check_wav(b"hello").unwrap_err().0,
            "invalid WAV: not a RIFF/WAVE file"
        );
        assert_eq!(
            check_wav(&good[..50]).unwrap_err().0,
            "invalid WAV: data chunk is truncated"
        );
    }

    proptest! {
        #[test]
        fn never_panics_on_arbitrary_bytes(mut bytes in proptest::collection::vec(any::<u8>(), 0..200), riff in any::<bool>()) {
            if riff && bytes.len() >= 12 {
                bytes[0..4].copy_from_slice(b"RIFF");
                bytes[8..12].copy_from_slice(b"WAVE");
            }
            let _ = check_wav(&bytes);
        }
    }
}
