//! gzip (RFC 1952) and "deflate" (zlib RFC 1950, or raw RFC 1951) for
//! [`super::StreamDecoder`]: the gzip framing is parsed here, byte by
//! byte, and the deflate data goes to a raw inflater.

use super::{TRAILING, spare};
use flate2::{Crc, Decompress, FlushDecompress, Status};
use std::mem::ManuallyDrop;

/// gzip (RFC 1952) and "deflate" (zlib, RFC 1950, or raw RFC 1951).
pub(super) struct Inflate {
    /// Handed back to the thread's spares when the stage is dropped.
    z: ManuallyDrop<Decompress>,
    /// CRC-32 and length (mod 2^32) of the current gzip member's output.
    crc: Crc,
    pub(super) framing: Framing,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Framing {
    Gzip(Gz),
    /// "deflate" before its first two bytes are in; holds the first.
    Sniff(Option<u8>),
    /// zlib or raw deflate data; `true` once the stream is complete.
    Deflate(bool),
}

/// Position in a gzip stream of one or more members. Header fields are
/// skipped byte by byte: a huge FNAME costs time but no memory. `flags` is
/// the FLG byte, with each optional field's bit cleared once it is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Gz {
    /// (bytes of the 10-byte fixed header seen, flags).
    Fixed(u8, u8),
    /// (flags, low byte of the FEXTRA length once read).
    ExtraLen(u8, Option<u8>),
    /// (flags, bytes left to skip): FEXTRA data, or the header CRC-16,
    /// which goes unchecked (optional, rare, and the body's CRC-32 is what
    /// catches corruption).
    Skip(u8, u16),
    /// (flags): in zero-terminated FNAME, or FCOMMENT once FNAME is cleared.
    Text(u8),
    Body,
    /// (trailer bytes gathered little-endian, count): CRC-32 then ISIZE.
    Trailer(u64, u8),
    /// A member is complete; more input must be another member.
    End,
}

pub(super) const FHCRC: u8 = 0x02;
pub(super) const FEXTRA: u8 = 0x04;
const FNAME: u8 = 0x08;
const FCOMMENT: u8 = 0x10;
const FRESERVED: u8 = 0xe0;

impl Gz {
    pub(super) const START: Gz = Gz::Fixed(0, 0);

    /// The state reading the first optional header field left in `flags`
    /// (RFC 1952 order), or the body once none is.
    fn next_field(flags: u8) -> Gz {
        if flags & FEXTRA != 0 {
            Gz::ExtraLen(flags & !FEXTRA, None)
        } else if flags & (FNAME | FCOMMENT) != 0 {
            Gz::Text(flags)
        } else if flags & FHCRC != 0 {
            Gz::Skip(flags & !FHCRC, 2)
        } else {
            Gz::Body
        }
    }

    /// Consumes one header byte; only valid in the header states.
    fn step(self, b: u8) -> Result<Gz, &'static str> {
        Ok(match self {
            Gz::Fixed(pos, flags) => {
                let flags = match (pos, b) {
                    (0, 0x1f) | (1, 0x8b) | (2, 8) => flags,
                    (0 | 1, _) => return Err("not a gzip stream (bad magic bytes)"),
                    (2, _) => return Err("unsupported compression method"),
                    (3, f) if f & FRESERVED != 0 => return Err("reserved header flags set"),
                    (3, f) => f,
                    _ => flags, // MTIME, XFL, OS: not needed
                };
                match pos {
                    9 => Gz::next_field(flags),
                    _ => Gz::Fixed(pos + 1, flags),
                }
            }
            Gz::ExtraLen(flags, None) => Gz::ExtraLen(flags, Some(b)),
            Gz::ExtraLen(flags, Some(lo)) => match u16::from_le_bytes([lo, b]) {
                0 => Gz::next_field(flags),
                len => Gz::Skip(flags, len),
            },
            Gz::Skip(flags, 0 | 1) => Gz::next_field(flags),
            Gz::Skip(flags, left) => Gz::Skip(flags, left - 1),
            Gz::Text(flags) if b == 0 => {
                let field = if flags & FNAME != 0 { FNAME } else { FCOMMENT };
                Gz::next_field(flags & !field)
            }
            Gz::Text(_) => self,
            Gz::Body | Gz::Trailer(..) | Gz::End => return Err("not in a header"),
        })
    }
}

/// zlib header check (RFC 1950 §2.2): method 8, window ≤ 32 KiB, FCHECK.
/// Raw deflate practically never passes: a low nibble of 8 in its first
/// byte means a stored block with non-zero padding bits.
pub(super) fn looks_like_zlib(cmf: u8, flg: u8) -> bool {
    cmf & 0x0f == 8 && cmf >> 4 <= 7 && (u16::from(cmf) << 8 | u16::from(flg)) % 31 == 0
}

impl Drop for Inflate {
    fn drop(&mut self) {
        // SAFETY: `z` is taken once, here, and `self` is not used after.
        spare::keep_inflater(unsafe { ManuallyDrop::take(&mut self.z) });
    }
}

impl Inflate {
    pub(super) fn new(framing: Framing) -> Inflate {
        // Always raw: gzip framing is parsed here, and "deflate" switches
        // to zlib once its first two bytes have been seen.
        Inflate {
            z: ManuallyDrop::new(spare::inflater()),
            crc: Crc::new(),
            framing,
        }
    }

    pub(super) fn step(
        &mut self,
        input: &[u8],
        out: &mut [u8],
        made: &mut usize,
    ) -> Result<usize, String> {
        let b = match (self.framing, input) {
            (Framing::Gzip(Gz::Body) | Framing::Deflate(false), _) => {
                return self.inflate(input, out, made);
            }
            (_, []) => return Ok(0),
            (_, [b, ..]) => *b,
        };
        self.framing = match self.framing {
            Framing::Sniff(None) => Framing::Sniff(Some(b)),
            Framing::Sniff(Some(first)) => {
                self.z.reset(looks_like_zlib(first, b));
                self.framing = Framing::Deflate(false);
                // Both bytes belong to the stream, but only `b` is in `input`.
                return Ok(self.inflate(&[first, b], out, made)?.saturating_sub(1));
            }
            Framing::Gzip(Gz::Trailer(acc, len)) => {
                let acc = acc | u64::from(b) << (8 * u32::from(len));
                match len {
                    7 => self.check_trailer(acc)?,
                    _ => Framing::Gzip(Gz::Trailer(acc, len + 1)),
                }
            }
            // Concatenated members form one gzip stream (RFC 1952 §2.2).
            Framing::Gzip(Gz::End) if b == 0x1f => {
                self.z.reset(false);
                self.crc.reset();
                Framing::Gzip(Gz::Fixed(1, 0))
            }
            Framing::Gzip(Gz::End) | Framing::Deflate(_) => return Err(TRAILING.into()),
            Framing::Gzip(gz) => Framing::Gzip(gz.step(b)?),
        };
        Ok(1)
    }

    /// One inflater call; moves on to the trailer (gzip) or the end once
    /// the deflate stream is complete.
    fn inflate(&mut self, input: &[u8], out: &mut [u8], made: &mut usize) -> Result<usize, String> {
        let (in0, out0) = (self.z.total_in(), self.z.total_out());
        let status = self.z.decompress(input, out, FlushDecompress::None);
        // Both deltas are bounded by the slices just passed in.
        *made = (self.z.total_out() - out0) as usize;
        let used = (self.z.total_in() - in0) as usize;
        if let (Framing::Gzip(_), Some(chunk)) = (self.framing, out.get(..*made)) {
            self.crc.update(chunk);
        }
        if status.map_err(|e| e.to_string())? == Status::StreamEnd {
            self.framing = match self.framing {
                Framing::Gzip(_) => Framing::Gzip(Gz::Trailer(0, 0)),
                _ => Framing::Deflate(true),
            };
        }
        Ok(used)
    }

    /// Checks a gzip member's trailer against what was actually decoded.
    fn check_trailer(&self, trailer: u64) -> Result<Framing, &'static str> {
        // Low half: CRC-32; high half: ISIZE, the length modulo 2^32.
        if trailer as u32 != self.crc.sum() {
            return Err("CRC-32 mismatch");
        }
        if (trailer >> 32) as u32 != self.crc.amount() {
            return Err("length (ISIZE) mismatch");
        }
        Ok(Framing::Gzip(Gz::End))
    }
}
