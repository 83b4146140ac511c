//! What a pattern rule's regex can match, as far as the pre-pass of
//! [`super::PatternStream`] needs to know: which bytes a match can start
//! with and contain, how long it can be, and a rare byte it must contain
//! early on. With that, the stream runs a rule's regex only at the few
//! positions where a match is possible at all, instead of over every byte.
//!
//! The analysis reads the regex syntax itself, for the subset rule files
//! use (literals, escapes, ASCII classes, groups, alternation, repetition).
//! Anything else (flags, assertions, Unicode classes written as `\p{..}`)
//! gives `None` and the rule is searched the plain way: the shape is only
//! ever a sound over-approximation, so a rule it describes finds exactly
//! what a plain search finds.

/// A set of byte values.
#[derive(Clone, Copy, PartialEq, Eq, Default, Debug)]
pub(super) struct ByteSet(pub [u64; 4]);

impl ByteSet {
    pub fn contains(&self, b: u8) -> bool {
        self.0[usize::from(b >> 6)] >> (b & 63) & 1 == 1
    }

    fn insert(&mut self, b: u8) {
        self.0[usize::from(b >> 6)] |= 1 << (b & 63);
    }

    fn range(lo: u8, hi: u8) -> ByteSet {
        let mut s = ByteSet::default();
        for b in lo..=hi {
            s.insert(b);
        }
        s
    }

    fn union(self, o: ByteSet) -> ByteSet {
        ByteSet(std::array::from_fn(|i| self.0[i] | o.0[i]))
    }

    /// The bytes `f` holds true for.
    pub fn matching(f: impl Fn(u8) -> bool) -> ByteSet {
        let mut s = ByteSet::default();
        (0..=255u8).filter(|b| f(*b)).for_each(|b| s.insert(b));
        s
    }

    /// How many bytes the set holds.
    pub fn count(&self) -> u32 {
        self.0.iter().map(|w| w.count_ones()).sum()
    }

    pub fn intersect(self, o: ByteSet) -> ByteSet {
        ByteSet(std::array::from_fn(|i| self.0[i] & o.0[i]))
    }

    /// How common the bytes are in traffic: letters, digits and spaces
    /// are everywhere, punctuation is rare. Lower is more selective.
    fn weight(&self) -> usize {
        (0..=255u8)
            .filter(|b| self.contains(*b))
            .map(|b| {
                if b.is_ascii_alphanumeric() || b == b' ' {
                    64
                } else {
                    1
                }
            })
            .sum()
    }
}

/// Every match contains a byte of `set` at an offset of at most `within`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct Required {
    pub set: ByteSet,
    pub within: usize,
}

/// What every match of a regex looks like.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct Shape {
    /// Bytes a match can start with.
    pub first: ByteSet,
    /// Bytes a match can contain.
    pub alphabet: ByteSet,
    pub min_len: usize,
    /// `None`: unbounded.
    pub max_len: Option<usize>,
    /// A rare byte every match holds early, if there is one.
    pub required: Option<Required>,
}

/// Analyses `pattern`; `None` when it uses syntax the analysis does not
/// model or can match the empty string.
pub(super) fn shape(pattern: &str) -> Option<Shape> {
    let mut p = Parser {
        s: pattern.as_bytes(),
        i: 0,
    };
    let n = p.alternation()?;
    if p.i != p.s.len() || n.nullable {
        return None;
    }
    // Only rare bytes are worth checking before the regex runs.
    let required = n.req.filter(|r| r.set.weight() < 64);
    Some(Shape {
        first: n.first,
        alphabet: n.alphabet,
        min_len: n.min,
        max_len: n.max,
        required,
    })
}

#[derive(Clone, Copy)]
struct Node {
    first: ByteSet,
    alphabet: ByteSet,
    nullable: bool,
    min: usize,
    max: Option<usize>,
    req: Option<Required>,
}

impl Node {
    fn empty() -> Node {
        Node {
            first: ByteSet::default(),
            alphabet: ByteSet::default(),
            nullable: true,
            min: 0,
            max: Some(0),
            req: None,
        }
    }

    /// One character from `set`; `wide` when it may be a multi-byte UTF-8
    /// character (then any non-ASCII byte may occur, up to 4 bytes).
    fn class(mut set: ByteSet, wide: bool) -> Node {
        if wide {
            set = set.union(ByteSet::range(0x80, 0xff));
        }
        Node {
            first: set,
            alphabet: set,
            nullable: false,
            min: 1,
            max: Some(if wide { 4 } else { 1 }),
            req: Some(Required { set, within: 0 }),
        }
    }

    fn then(self, b: Node) -> Node {
        let first = if self.nullable {
            self.first.union(b.first)
        } else {
            self.first
        };
        let later = match (b.req, self.max) {
            (Some(r), Some(m)) => Some(Required {
                set: r.set,
                within: m + r.within,
            }),
            _ => None,
        };
        Node {
            first,
            alphabet: self.alphabet.union(b.alphabet),
            nullable: self.nullable && b.nullable,
            min: self.min + b.min,
            max: self.max.zip(b.max).map(|(x, y)| x + y),
            req: better(self.req, later),
        }
    }

    fn or(self, b: Node) -> Node {
        Node {
            first: self.first.union(b.first),
            alphabet: self.alphabet.union(b.alphabet),
            nullable: self.nullable || b.nullable,
            min: self.min.min(b.min),
            max: self.max.zip(b.max).map(|(x, y)| x.max(y)),
            req: self.req.zip(b.req).map(|(x, y)| Required {
                set: x.set.union(y.set),
                within: x.within.max(y.within),
            }),
        }
    }

    fn repeat(self, lo: usize, hi: Option<usize>) -> Node {
        Node {
            first: if hi == Some(0) {
                ByteSet::default()
            } else {
                self.first
            },
            alphabet: self.alphabet,
            nullable: lo == 0 || self.nullable,
            min: self.min.saturating_mul(lo),
            max: match (self.max, hi) {
                (Some(0), _) => Some(0),
                (Some(m), Some(h)) => Some(m.saturating_mul(h)),
                _ => None,
            },
            req: if lo == 0 { None } else { self.req },
        }
    }
}

/// A requirement met within this many bytes of a match's start beats any
/// farther one: the pre-pass reads runs that short from its filter's
/// 64-byte windows instead of walking them, and a nearer byte is a sharper
/// filter. (An e-mail's `@` or `%`, within 64 bytes, beats the `.` before
/// its top-level domain, hundreds of bytes on.)
const NEAR: usize = 64;

/// The more selective of two requirements.
fn better(a: Option<Required>, b: Option<Required>) -> Option<Required> {
    match (a, b) {
        (Some(x), Some(y)) => {
            let key = |r: &Required| (r.within > NEAR, r.set.weight(), r.within);
            Some(if key(&y) < key(&x) { y } else { x })
        }
        (x, y) => x.or(y),
    }
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn eat(&mut self, b: u8) -> bool {
        let hit = self.peek() == Some(b);
        self.i += usize::from(hit);
        hit
    }

    fn alternation(&mut self) -> Option<Node> {
        let mut n = self.concat()?;
        while self.eat(b'|') {
            n = n.or(self.concat()?);
        }
        Some(n)
    }

    fn concat(&mut self) -> Option<Node> {
        let mut n = Node::empty();
        while let Some(b) = self.peek() {
            if b == b'|' || b == b')' {
                break;
            }
            let atom = self.atom()?;
            n = n.then(self.quantified(atom)?);
        }
        Some(n)
    }

    fn quantified(&mut self, mut atom: Node) -> Option<Node> {
        loop {
            let (lo, hi) = match self.peek() {
                Some(b'?') => (0, Some(1)),
                Some(b'*') => (0, None),
                Some(b'+') => (1, None),
                Some(b'{') => {
                    self.i += 1;
                    let lo = self.number()?;
                    let hi = if self.eat(b',') {
                        if self.peek() == Some(b'}') {
                            None
                        } else {
                            Some(self.number()?)
                        }
                    } else {
                        Some(lo)
                    };
                    if self.peek() != Some(b'}') || hi.is_some_and(|h| h < lo) {
                        return None;
                    }
                    (lo, hi)
                }
                _ => return Some(atom),
            };
            self.i += 1;
            self.eat(b'?'); // laziness changes no shape
            atom = atom.repeat(lo, hi);
        }
    }

    fn number(&mut self) -> Option<usize> {
        let start = self.i;
        while self.peek().is_some_and(|b| b.is_ascii_digit()) {
            self.i += 1;
        }
        std::str::from_utf8(&self.s[start..self.i])
            .ok()?
            .parse()
            .ok()
    }

    fn atom(&mut self) -> Option<Node> {
        let b = self.peek()?;
        self.i += 1;
        match b {
            b'(' => {
                if self.eat(b'?') {
                    // Only non-capturing and named groups; flags change
                    // what bytes match, so they are not modelled.
                    if self.eat(b'P') || self.peek() == Some(b'<') {
                        self.eat(b'<');
                        while self.peek().is_some_and(|c| c != b'>') {
                            self.i += 1;
                        }
                        self.eat(b'>');
                    } else if !self.eat(b':') {
                        return None;
                    }
                }
                let n = self.alternation()?;
                self.eat(b')').then_some(n)
            }
            b'[' => self.class(),
            b'\\' => {
                let (set, wide) = self.escape()?;
                Some(Node::class(set, wide))
            }
            b'.' => Some(Node::class(ByteSet::range(0, 0x7f), true)),
            b'^' | b'$' | b')' | b'*' | b'+' | b'?' | b'{' => None,
            _ if b >= 0x80 => {
                // A literal multi-byte character: its UTF-8 bytes.
                let len = match b {
                    0xf0.. => 4,
                    0xe0.. => 3,
                    _ => 2,
                };
                let mut n = Node::class(ByteSet::range(b, b), false);
                for _ in 1..len {
                    let c = self.peek()?;
                    self.i += 1;
                    n = n.then(Node::class(ByteSet::range(c, c), false));
                }
                Some(n)
            }
            _ => Some(Node::class(ByteSet::range(b, b), false)),
        }
    }

    /// After a `\`: the bytes it stands for, and whether it may match a
    /// multi-byte character. Assertions (`\b`, `\A`…) are not modelled.
    fn escape(&mut self) -> Option<(ByteSet, bool)> {
        let b = self.peek()?;
        self.i += 1;
        let one = |c: u8| Some((ByteSet::range(c, c), false));
        match b {
            b'd' => Some((ByteSet::range(b'0', b'9'), true)),
            b'w' => {
                let s = ByteSet::range(b'0', b'9')
                    .union(ByteSet::range(b'A', b'Z'))
                    .union(ByteSet::range(b'a', b'z'))
                    .union(ByteSet::range(b'_', b'_'));
                Some((s, true))
            }
            b's' => Some((
                ByteSet::range(b'\t', b'\r').union(ByteSet::range(b' ', b' ')),
                true,
            )),
            b't' => one(b'\t'),
            b'n' => one(b'\n'),
            b'r' => one(b'\r'),
            b'x' => {
                let hex = self.s.get(self.i..self.i + 2)?;
                let v = u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?;
                self.i += 2;
                // `\xHH` above 0x7f is a code point (two UTF-8 bytes).
                if v < 0x80 {
                    one(v)
                } else {
                    Some((ByteSet::default(), true))
                }
            }
            _ if b.is_ascii_punctuation() => one(b),
            _ => None,
        }
    }

    /// After a `[`: a class of ASCII members, ranges and escapes, maybe
    /// negated. Nested classes and set operations are not modelled.
    fn class(&mut self) -> Option<Node> {
        let negated = self.eat(b'^');
        let mut set = ByteSet::default();
        let mut wide = false;
        let mut first = true;
        loop {
            let b = self.peek()?;
            self.i += 1;
            if b == b']' && !first {
                break;
            }
            first = false;
            let lo = match b {
                b'[' if self.peek() == Some(b':') => return None,
                b'[' | b'&' | b'~' if self.peek() == Some(b) => return None,
                b'\\' => {
                    let (s, w) = self.escape()?;
                    if s.0.iter().map(|w| w.count_ones()).sum::<u32>() != 1 || w {
                        set = set.union(s);
                        wide |= w;
                        continue;
                    }
                    (0..=255u8).find(|c| s.contains(*c))?
                }
                0x80.. => return None,
                _ => b,
            };
            if self.peek() == Some(b'-') && self.s.get(self.i + 1).is_some_and(|c| *c != b']') {
                self.i += 1;
                let hi = match self.peek()? {
                    b'\\' => {
                        self.i += 1;
                        let (s, _) = self.escape()?;
                        (0..=255u8).find(|c| s.contains(*c))?
                    }
                    c if c < 0x80 => {
                        self.i += 1;
                        c
                    }
                    _ => return None,
                };
                if hi < lo {
                    return None;
                }
                set = set.union(ByteSet::range(lo, hi));
            } else {
                set = set.union(ByteSet::range(lo, lo));
            }
        }
        if negated {
            // Everything else, including every multi-byte character.
            let ascii = ByteSet::range(0, 0x7f);
            let rest = ByteSet(std::array::from_fn(|i| ascii.0[i] & !set.0[i]));
            return Some(Node::class(rest, true));
        }
        Some(Node::class(set, wide))
    }
}
