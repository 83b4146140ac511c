//! Which of up to [`SLOTS`] byte sets each byte of a 64-byte block is in,
//! as one 64-bit map per set: for the pattern detector's block filter, and
//! for finding base64 runs. Both ask where runs of set bits are long
//! enough, which [`at_least`] answers for a window's first [`HALF`]
//! positions.
//!
//! Two ways give the same maps. Everywhere: a 256-entry class table (bit
//! `j` of `class[b]`: byte `b` is in set `j`) read byte by byte, then a bit
//! transpose ([`transpose`]). On x86-64 CPUs with AVX2, found at
//! run time: nibble lookups, 32 bytes at a time. A byte `b` is in set `j`
//! when bit `b >> 4` of `low[j][b & 15]` is set (the bits of the high
//! nibbles 0..8 in one table, 8..16 in a second, looked up only when some
//! set holds a non-ASCII byte), which `pshufb` looks up for 32 bytes at
//! once. Where the CPU also has AVX-512 (F and BW), the same lookups take
//! the whole block at once, and a byte-mask test gives each set's map
//! without the compare and `movemask` per half: a set costs three
//! instructions a block instead of twelve.

/// Bytes per block, and bits per map.
pub(crate) const BLOCK: usize = 64;
/// Positions a 64-bit window of maps judges: its other half is
/// look-ahead, so runs up to `HALF + 1` bits from each are seen whole.
pub(crate) const HALF: usize = BLOCK / 2;
/// Sets one classifier follows: one bit each of a class-table entry.
pub(crate) const SLOTS: usize = 16;
/// Eight sets per byte plane the transpose reads.
const PLANES: usize = SLOTS / 8;

/// Byte sets, and the tables that sort bytes into them.
pub(crate) struct Classifier {
    /// Bit `j` of `class[b]`: byte `b` is in set `j`.
    class: Box<[u16; 256]>,
    /// Per set: for each low nibble, the high nibbles 0..8 (`[0]`) and
    /// 8..16 (`[1]`) that make a byte of the set; each table twice, as
    /// `pshufb` looks up each 128-bit lane on its own.
    nibbles: Vec<[[u8; 32]; 2]>,
    /// Some set holds a byte of 0x80 or above: the second tables count.
    non_ascii: bool,
    avx2: bool,
    avx512: bool,
}

impl Classifier {
    pub fn new() -> Classifier {
        Classifier {
            class: Box::new([0; 256]),
            nibbles: Vec::new(),
            non_ascii: false,
            avx2: crate::detect::cpu::has_avx2(),
            avx512: crate::detect::cpu::has_avx512bw(),
        }
    }

    /// Follows the set of bytes `contains` accepts as the next slot; `None`
    /// when all are taken.
    pub fn add(&mut self, contains: impl Fn(u8) -> bool) -> Option<usize> {
        let j = self.nibbles.len();
        if j == SLOTS {
            return None;
        }
        let mut nibbles = [[0u8; 32]; 2];
        for b in (0..=255u8).filter(|&b| contains(b)) {
            self.class[usize::from(b)] |= 1 << j;
            let (low, high) = (usize::from(b & 15), b >> 4);
            let table = &mut nibbles[usize::from(high >> 3)];
            table[low] |= 1 << (high & 7);
            table[low + 16] |= 1 << (high & 7);
        }
        self.non_ascii |= nibbles[1] != [0; 32];
        self.nibbles.push(nibbles);
        Some(j)
    }

    /// The sets byte `b` is in: bit `j` for slot `j`.
    pub fn classes(&self, b: u8) -> u16 {
        self.class[usize::from(b)]
    }

    /// One map per slot for `buf[at..at + BLOCK]`; bytes past the end are
    /// in no set.
    pub fn maps(&self, buf: &[u8], at: usize) -> [u64; SLOTS] {
        maps_by(buf, at, |block| self.block_maps(block))
    }

    /// [`Classifier::maps`] with AVX2, for callers compiled with it, into
    /// which the lookups are inlined.
    ///
    /// # Safety
    ///
    /// The CPU must have AVX2.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    #[inline]
    pub unsafe fn maps_avx2(&self, buf: &[u8], at: usize) -> [u64; SLOTS] {
        // SAFETY: the caller promises AVX2.
        maps_by(buf, at, |block| unsafe { self.by_nibbles(block) })
    }

    /// [`Classifier::maps`] with AVX-512, for callers compiled with it.
    ///
    /// # Safety
    ///
    /// The CPU must have AVX-512F and AVX-512BW.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx512bw")]
    #[inline]
    pub unsafe fn maps_avx512(&self, buf: &[u8], at: usize) -> [u64; SLOTS] {
        // SAFETY: the caller promises AVX-512F and BW.
        maps_by(buf, at, |block| unsafe { self.by_nibbles512(block) })
    }

    /// True when [`Classifier::maps_avx512`] may be called.
    pub fn has_avx512(&self) -> bool {
        self.avx512
    }

    /// Classifies without AVX-512 from now on, so that tests on a CPU
    /// with it reach the AVX2 path too.
    #[cfg(test)]
    pub fn forget_avx512(&mut self) {
        self.avx512 = false;
    }

    fn block_maps(&self, block: &[u8; BLOCK]) -> [u64; SLOTS] {
        #[cfg(target_arch = "x86_64")]
        if self.avx512 {
            // SAFETY: `avx512` is set only where the CPU was found to have
            // AVX-512F and BW (`has_avx512bw`).
            return unsafe { self.by_nibbles512(block) };
        }
        #[cfg(target_arch = "x86_64")]
        if self.avx2 {
            // SAFETY: `avx2` is set only where the CPU was found to have
            // AVX2 (`has_avx2`).
            return unsafe { self.by_nibbles(block) };
        }
        self.by_table(block)
    }

    /// The class table and the bit transpose.
    fn by_table(&self, block: &[u8; BLOCK]) -> [u64; SLOTS] {
        let mut planes = [[0u8; BLOCK]; PLANES];
        for (i, &b) in block.iter().enumerate() {
            let c = self.class[usize::from(b)];
            planes[0][i] = c as u8;
            planes[1][i] = (c >> 8) as u8;
        }
        let mut out = [0u64; SLOTS];
        let used = self.nibbles.len().div_ceil(8);
        for (plane, maps) in planes.iter().zip(out.chunks_exact_mut(8)).take(used) {
            transpose::bit_planes(plane, maps.try_into().expect("8 maps"));
        }
        out
    }

    /// One map of set `slot` per block of `buf` into `out` (cleared
    /// first): block `k` is `buf[64 * k..]`, and bytes past the end are in
    /// no set. Finding base64 runs reads nearly every block of a chunk, and
    /// asked for one block at a time, each answer cost a call and every
    /// slot's maps.
    pub fn slot_maps(&self, buf: &[u8], slot: usize, out: &mut Vec<u64>) {
        out.clear();
        // Room for the partial block too: pushed after the whole ones, it
        // would otherwise move the maps of every short message.
        out.reserve(buf.len().div_ceil(BLOCK));
        let whole = buf.len() / BLOCK * BLOCK;
        let by_blocks = |out: &mut Vec<u64>| {
            out.extend((0..whole).step_by(BLOCK).map(|at| self.maps(buf, at)[slot]));
        };
        #[cfg(target_arch = "x86_64")]
        if self.avx512 {
            // SAFETY: `avx512` is set only where the CPU was found to have
            // AVX-512F and BW (`has_avx512bw`).
            unsafe { self.slot_maps_by_nibbles512(&buf[..whole], slot, out) };
        } else if self.avx2 {
            // SAFETY: `avx2` is set only where the CPU was found to have
            // AVX2 (`has_avx2`).
            unsafe { self.slot_maps_by_nibbles(&buf[..whole], slot, out) };
        } else {
            by_blocks(out);
        }
        #[cfg(not(target_arch = "x86_64"))]
        by_blocks(out);
        if whole < buf.len() {
            out.push(self.maps(buf, whole)[slot]);
        }
    }

    /// [`Classifier::slot_maps`] for whole blocks, with AVX2.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    fn slot_maps_by_nibbles(&self, whole: &[u8], slot: usize, out: &mut Vec<u64>) {
        let nibbles = &self.nibbles[slot];
        // A loop, not a closure: a closure does not get the target
        // feature, and whether it is inlined was left to the compiler,
        // which changed its mind between builds (a call per block).
        for block in whole.chunks_exact(BLOCK) {
            let halves = nibbles::split(block.try_into().expect("a block"));
            out.push(nibbles::map(&halves, nibbles, self.non_ascii));
        }
    }

    /// [`Classifier::slot_maps`] for whole blocks, with AVX-512.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx512bw")]
    fn slot_maps_by_nibbles512(&self, whole: &[u8], slot: usize, out: &mut Vec<u64>) {
        let nibbles = &self.nibbles[slot];
        for block in whole.chunks_exact(BLOCK) {
            let split = nibbles512::split(block.try_into().expect("a block"));
            out.push(nibbles512::map(&split, nibbles, self.non_ascii));
        }
    }

    /// The nibble lookups, with AVX-512.
    ///
    /// # Safety
    ///
    /// The CPU must have AVX-512F and AVX-512BW.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx512bw")]
    #[inline]
    unsafe fn by_nibbles512(&self, block: &[u8; BLOCK]) -> [u64; SLOTS] {
        let split = nibbles512::split(block);
        let mut out = [0u64; SLOTS];
        for (o, tables) in out.iter_mut().zip(&self.nibbles) {
            *o = nibbles512::map(&split, tables, self.non_ascii);
        }
        out
    }

    /// The nibble lookups, with AVX2.
    ///
    /// # Safety
    ///
    /// The CPU must have AVX2.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    #[inline]
    unsafe fn by_nibbles(&self, block: &[u8; BLOCK]) -> [u64; SLOTS] {
        let halves = nibbles::split(block);
        let mut out = [0u64; SLOTS];
        for (o, tables) in out.iter_mut().zip(&self.nibbles) {
            *o = nibbles::map(&halves, tables, self.non_ascii);
        }
        out
    }
}

/// The maps of `buf[at..at + BLOCK]` by `block_maps`, bytes past the end
/// in no set.
#[inline(always)]
fn maps_by(
    buf: &[u8],
    at: usize,
    block_maps: impl Fn(&[u8; BLOCK]) -> [u64; SLOTS],
) -> [u64; SLOTS] {
    match buf.get(at..at + BLOCK) {
        Some(block) => block_maps(block.try_into().expect("a block")),
        None => {
            let tail = buf.get(at..).unwrap_or_default();
            // The block after the last, which every walk looks ahead to:
            // nothing to classify.
            if tail.is_empty() {
                return [0; SLOTS];
            }
            let mut block = [0u8; BLOCK];
            block[..tail.len()].copy_from_slice(tail);
            let inside = u64::MAX
                .checked_shl(tail.len() as u32)
                .map_or(u64::MAX, |m| !m);
            block_maps(&block).map(|m| m & inside)
        }
    }
}

/// The steps of the nibble lookups (AVX2), shared by every caller.
#[cfg(target_arch = "x86_64")]
mod nibbles {
    use super::BLOCK;
    use std::arch::x86_64::{
        __m256i, _mm256_and_si256, _mm256_cmpeq_epi8, _mm256_loadu_si256, _mm256_movemask_epi8,
        _mm256_or_si256, _mm256_set1_epi8, _mm256_setr_epi8, _mm256_setzero_si256,
        _mm256_shuffle_epi8, _mm256_srli_epi16,
    };

    /// Per 32-byte half of a block: the low nibbles, and the bit each
    /// byte's high nibble selects in the first and the second tables.
    pub(super) type Halves = [[__m256i; 3]; 2];

    #[target_feature(enable = "avx2")]
    pub(super) fn split(block: &[u8; BLOCK]) -> Halves {
        #[rustfmt::skip]
        let bit_of_low = _mm256_setr_epi8(
            1, 2, 4, 8, 16, 32, 64, -128, 0, 0, 0, 0, 0, 0, 0, 0,
            1, 2, 4, 8, 16, 32, 64, -128, 0, 0, 0, 0, 0, 0, 0, 0,
        );
        #[rustfmt::skip]
        let bit_of_high = _mm256_setr_epi8(
            0, 0, 0, 0, 0, 0, 0, 0, 1, 2, 4, 8, 16, 32, 64, -128,
            0, 0, 0, 0, 0, 0, 0, 0, 1, 2, 4, 8, 16, 32, 64, -128,
        );
        let nibble = _mm256_set1_epi8(0x0f);
        std::array::from_fn(|h| {
            let part = &block[32 * h..32 * (h + 1)];
            // SAFETY: `part` is 32 readable bytes; `loadu` needs no alignment.
            let v = unsafe { _mm256_loadu_si256(part.as_ptr().cast()) };
            let low = _mm256_and_si256(v, nibble);
            let high = _mm256_and_si256(_mm256_srli_epi16(v, 4), nibble);
            let bit_low = _mm256_shuffle_epi8(bit_of_low, high);
            let bit_high = _mm256_shuffle_epi8(bit_of_high, high);
            [low, bit_low, bit_high]
        })
    }

    /// The map of the set whose tables are `tables`; the second table is
    /// read only when some set holds a non-ASCII byte.
    #[target_feature(enable = "avx2")]
    pub(super) fn map(halves: &Halves, tables: &[[u8; 32]; 2], non_ascii: bool) -> u64 {
        let table = |t: &[u8; 32]| -> __m256i {
            // SAFETY: `t` is 32 readable bytes; `loadu` needs no alignment.
            unsafe { _mm256_loadu_si256(t.as_ptr().cast()) }
        };
        let (ascii, upper) = (table(&tables[0]), table(&tables[1]));
        let zero = _mm256_setzero_si256();
        let mut map = 0u64;
        for (h, [low, bit_low, bit_high]) in halves.iter().enumerate() {
            let mut hit = _mm256_and_si256(_mm256_shuffle_epi8(ascii, *low), *bit_low);
            if non_ascii {
                let more = _mm256_and_si256(_mm256_shuffle_epi8(upper, *low), *bit_high);
                hit = _mm256_or_si256(hit, more);
            }
            let missing = _mm256_movemask_epi8(_mm256_cmpeq_epi8(hit, zero)) as u32;
            map |= u64::from(!missing) << (32 * h);
        }
        map
    }
}

/// The steps of the nibble lookups with AVX-512: those of [`nibbles`],
/// a whole block at a time.
#[cfg(target_arch = "x86_64")]
mod nibbles512 {
    use super::BLOCK;
    use std::arch::x86_64::{
        __m512i, _mm_setr_epi8, _mm256_loadu_si256, _mm512_and_si512, _mm512_broadcast_i32x4,
        _mm512_broadcast_i64x4, _mm512_loadu_si512, _mm512_set1_epi8, _mm512_shuffle_epi8,
        _mm512_srli_epi16, _mm512_test_epi8_mask,
    };

    /// A block's low nibbles, and the bit each byte's high nibble selects
    /// in the first and the second tables.
    pub(super) struct Split {
        low: __m512i,
        bit_low: __m512i,
        bit_high: __m512i,
    }

    #[target_feature(enable = "avx512f,avx512bw")]
    pub(super) fn split(block: &[u8; BLOCK]) -> Split {
        let bit_of_low = _mm512_broadcast_i32x4(_mm_setr_epi8(
            1, 2, 4, 8, 16, 32, 64, -128, 0, 0, 0, 0, 0, 0, 0, 0,
        ));
        let bit_of_high = _mm512_broadcast_i32x4(_mm_setr_epi8(
            0, 0, 0, 0, 0, 0, 0, 0, 1, 2, 4, 8, 16, 32, 64, -128,
        ));
        let nibble = _mm512_set1_epi8(0x0f);
        // SAFETY: `block` is 64 readable bytes; `loadu` needs no alignment.
        let v = unsafe { _mm512_loadu_si512(block.as_ptr().cast()) };
        let high = _mm512_and_si512(_mm512_srli_epi16::<4>(v), nibble);
        Split {
            low: _mm512_and_si512(v, nibble),
            bit_low: _mm512_shuffle_epi8(bit_of_low, high),
            bit_high: _mm512_shuffle_epi8(bit_of_high, high),
        }
    }

    /// The map of the set whose tables are `tables`; the second table is
    /// read only when some set holds a non-ASCII byte.
    #[target_feature(enable = "avx512f,avx512bw")]
    pub(super) fn map(split: &Split, tables: &[[u8; 32]; 2], non_ascii: bool) -> u64 {
        let mut map = _mm512_test_epi8_mask(
            _mm512_shuffle_epi8(table(&tables[0]), split.low),
            split.bit_low,
        );
        if non_ascii {
            let more = _mm512_shuffle_epi8(table(&tables[1]), split.low);
            map |= _mm512_test_epi8_mask(more, split.bit_high);
        }
        map
    }

    /// A 32-byte table (one 16-byte table twice) in all four lanes.
    #[target_feature(enable = "avx512f,avx512bw")]
    fn table(t: &[u8; 32]) -> __m512i {
        // SAFETY: `t` is 32 readable bytes; `loadu` needs no alignment.
        _mm512_broadcast_i64x4(unsafe { _mm256_loadu_si256(t.as_ptr().cast()) })
    }
}

/// The shifts [`at_least`] makes for one run length.
pub(crate) type RunShifts = [u32; 6];

/// The shifts for a run of `len` bits (up to `HALF + 1`): doubling, then
/// one step to make up the rest; none for 0 or 1. A shift of 0 changes
/// nothing, so every length takes the same six steps, unrolled.
pub(crate) const fn run_shifts(len: usize) -> RunShifts {
    let mut shifts = [0; 6];
    let (mut have, mut i) = (1, 0);
    while have * 2 <= len {
        shifts[i] = have as u32;
        have *= 2;
        i += 1;
    }
    if len > have {
        // Two runs of `have` bits, `len - have` apart, cover `len` bits.
        shifts[i] = (len - have) as u32;
    }
    shifts
}

/// Bit `p` set when bits `p..p + len` of `a` are all set, `shifts` being
/// `run_shifts(len)`.
pub(crate) fn at_least(a: u64, shifts: &RunShifts) -> u64 {
    shifts.iter().fold(a, |run, s| run & run >> s)
}

#[path = "classify_transpose.rs"]
mod transpose;

#[cfg(test)]
#[path = "classify_tests.rs"]
mod tests;
