//! The structured inputs of the `misc_rules` and `stack` targets, and an encoder producing the
//! bytes `arbitrary` decodes back into a given value (for the seed generator).

use arbitrary::Arbitrary;

/// Input of the `misc_rules` target.
#[derive(Arbitrary, Clone, Debug, PartialEq, Eq)]
pub struct MiscInput {
    /// Registration strings, oldest first.
    pub rules: Vec<Vec<u8>>,
    /// Rules to disable (bit i: rule i).
    pub disabled: u8,
    /// The file's first bytes.
    pub header: Vec<u8>,
    /// `bprm->interp`: the path as given.
    pub path: Vec<u8>,
}

/// A string operation after `ArgStrings::new`.
#[derive(Arbitrary, Clone, Debug, PartialEq, Eq)]
pub enum StackOp {
    /// `push_front` (a `#!`/binfmt_misc argv rewrite).
    PushFront(Vec<u8>),
    /// `remove_arg_zero`.
    RemoveArgZero,
}

/// Input of the `stack` target.
#[derive(Arbitrary, Clone, Debug, PartialEq, Eq)]
pub struct StackInput {
    /// argv (`None`: a NULL argv).
    pub argv: Option<Vec<Vec<u8>>>,
    /// envp.
    pub envp: Vec<Vec<u8>>,
    /// `count` strings of `len` copies of a byte, appended to envp.
    pub fill: Option<(u32, u8, u8)>,
    /// The exec filename.
    pub execfn: Vec<u8>,
    /// RLIMIT_STACK.
    pub rlimit: Option<u64>,
    /// MAX_ARG_STRLEN in pages.
    pub max_strlen_pages: u8,
    /// Rewrites.
    pub ops: Vec<StackOp>,
    /// Stack top (rounded down to a page).
    pub top: u64,
    /// Extra gap between the strings and the top (0 is what the kernel does).
    pub gap: u16,
    /// A raw arg_start instead of the consistent one.
    pub raw_arg_start: Option<u64>,
    /// `arch_align_stack`'s random subtraction.
    pub align_sub: u16,
    /// The platform string.
    pub platform: Vec<u8>,
    /// AT_RANDOM bytes.
    pub random: [u8; 16],
    /// auxv pairs (AT_NULL is appended).
    pub auxv: Vec<(u64, u64)>,
}

/// Writes values in the byte format `arbitrary` 1.x reads them.
#[derive(Default)]
pub struct Enc(pub Vec<u8>);

impl Enc {
    /// A `bool`.
    pub fn bool(&mut self, v: bool) -> &mut Self {
        self.0.push(u8::from(v));
        self
    }
    /// A `u8`.
    pub fn u8(&mut self, v: u8) -> &mut Self {
        self.0.push(v);
        self
    }
    /// A `u16`.
    pub fn u16(&mut self, v: u16) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    /// A `u32`.
    pub fn u32(&mut self, v: u32) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    /// A `u64`.
    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    /// Raw bytes (a fixed-size array).
    pub fn raw(&mut self, v: &[u8]) -> &mut Self {
        self.0.extend_from_slice(v);
        self
    }
    /// The variant `idx` of an enum of `count` variants (derive: `(u32 * count) >> 32`).
    pub fn variant(&mut self, idx: u32, count: u32) -> &mut Self {
        let x = ((u64::from(idx) << 32).div_ceil(u64::from(count))) as u32;
        self.u32(x)
    }
    /// `Some` (the value follows) or `None`.
    pub fn some(&mut self, v: bool) -> &mut Self {
        self.bool(v)
    }
    /// A `Vec<u8>`.
    pub fn bytes(&mut self, v: &[u8]) -> &mut Self {
        for &b in v {
            self.0.push(1);
            self.0.push(b);
        }
        self.0.push(0);
        self
    }
    /// "One more element follows" of a `Vec<T>`.
    pub fn more(&mut self) -> &mut Self {
        self.0.push(1);
        self
    }
    /// The end of a `Vec<T>`.
    pub fn end(&mut self) -> &mut Self {
        self.0.push(0);
        self
    }
}
