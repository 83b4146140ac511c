//! `%XX` escapes as the detectors read them, in URLs, form bodies and
//! percent-encoded text: the one place that says what an escape stands for.

/// The byte a `%XX` escape at `buf[i]` stands for; `None` when none starts
/// there. The `%` is looked at first: most callers ask at positions that
/// rarely hold one. Inlined: it is asked at every pattern candidate.
#[inline]
pub(crate) fn escape_at(buf: &[u8], i: usize) -> Option<u8> {
    match buf.get(i..i.checked_add(3)?)? {
        [b'%', h, l] => Some(hex_value(*h)? << 4 | hex_value(*l)?),
        _ => None,
    }
}

/// The value of the hex digit `b`.
#[inline]
pub(crate) fn hex_value(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_escape_stands_for_its_byte_and_nothing_else_is_one() {
        assert_eq!(escape_at(b"a%3Db", 1), Some(b'='));
        assert_eq!(escape_at(b"%2f", 0), Some(b'/'), "either case");
        assert_eq!(escape_at(b"%3", 0), None, "cut short");
        assert_eq!(escape_at(b"%G1", 0), None);
        assert_eq!(escape_at(b"x3D", 0), None);
        assert_eq!(escape_at(b"%3D", usize::MAX), None);
    }
}
