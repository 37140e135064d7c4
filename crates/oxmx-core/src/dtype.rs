//! The 14 dtypes, their categories and MLX's type-promotion rules.

use crate::error::{Error, Result};

#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
pub enum Dtype {
    Bool,
    Uint8,
    Uint16,
    Uint32,
    Uint64,
    Int8,
    Int16,
    Int32,
    Int64,
    Float16,
    Bfloat16,
    Float32,
    Float64,
    Complex64,
}

/// Abstract dtype categories (NumPy/MLX hierarchy).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum DtypeCategory {
    Generic,
    Number,
    Integer,
    SignedInteger,
    UnsignedInteger,
    Inexact,
    Floating,
    ComplexFloating,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Kind {
    Bool,
    Unsigned,
    Signed,
    Float,
    Complex,
}

pub const ALL_DTYPES: [Dtype; 14] = [
    Dtype::Bool,
    Dtype::Uint8,
    Dtype::Uint16,
    Dtype::Uint32,
    Dtype::Uint64,
    Dtype::Int8,
    Dtype::Int16,
    Dtype::Int32,
    Dtype::Int64,
    Dtype::Float16,
    Dtype::Bfloat16,
    Dtype::Float32,
    Dtype::Float64,
    Dtype::Complex64,
];

impl Dtype {
    pub fn size(self) -> usize {
        use Dtype::*;
        match self {
            Bool | Uint8 | Int8 => 1,
            Uint16 | Int16 | Float16 | Bfloat16 => 2,
            Uint32 | Int32 | Float32 => 4,
            Uint64 | Int64 | Float64 | Complex64 => 8,
        }
    }

    pub fn kind(self) -> Kind {
        use Dtype::*;
        match self {
            Bool => Kind::Bool,
            Uint8 | Uint16 | Uint32 | Uint64 => Kind::Unsigned,
            Int8 | Int16 | Int32 | Int64 => Kind::Signed,
            Float16 | Bfloat16 | Float32 | Float64 => Kind::Float,
            Complex64 => Kind::Complex,
        }
    }

    pub fn name(self) -> &'static str {
        use Dtype::*;
        match self {
            Bool => "bool",
            Uint8 => "uint8",
            Uint16 => "uint16",
            Uint32 => "uint32",
            Uint64 => "uint64",
            Int8 => "int8",
            Int16 => "int16",
            Int32 => "int32",
            Int64 => "int64",
            Float16 => "float16",
            Bfloat16 => "bfloat16",
            Float32 => "float32",
            Float64 => "float64",
            Complex64 => "complex64",
        }
    }

    pub fn from_name(name: &str) -> Option<Dtype> {
        ALL_DTYPES.iter().copied().find(|d| d.name() == name)
    }

    pub fn is_float(self) -> bool {
        self.kind() == Kind::Float
    }
    pub fn is_complex(self) -> bool {
        self.kind() == Kind::Complex
    }
    /// Floating or complex.
    pub fn is_inexact(self) -> bool {
        matches!(self.kind(), Kind::Float | Kind::Complex)
    }
    pub fn is_integer(self) -> bool {
        matches!(self.kind(), Kind::Signed | Kind::Unsigned)
    }
    pub fn is_signed_int(self) -> bool {
        self.kind() == Kind::Signed
    }
    pub fn is_unsigned(self) -> bool {
        self.kind() == Kind::Unsigned
    }
    pub fn is_bool(self) -> bool {
        self == Dtype::Bool
    }

    pub fn category_of(self) -> DtypeCategory {
        match self.kind() {
            Kind::Bool => DtypeCategory::Generic,
            Kind::Unsigned => DtypeCategory::UnsignedInteger,
            Kind::Signed => DtypeCategory::SignedInteger,
            Kind::Float => DtypeCategory::Floating,
            Kind::Complex => DtypeCategory::ComplexFloating,
        }
    }

    /// Whether `self` belongs to `cat` (issubdtype semantics).
    pub fn is_in(self, cat: DtypeCategory) -> bool {
        use DtypeCategory::*;
        let k = self.kind();
        match cat {
            Generic => true,
            Number => k != Kind::Bool,
            Integer => matches!(k, Kind::Signed | Kind::Unsigned),
            SignedInteger => k == Kind::Signed,
            UnsignedInteger => k == Kind::Unsigned,
            Inexact => matches!(k, Kind::Float | Kind::Complex),
            Floating => k == Kind::Float,
            ComplexFloating => k == Kind::Complex,
        }
    }

    /// The float dtype an integer/bool dtype turns into for float-only ops.
    pub fn to_inexact(self) -> Dtype {
        if self.is_inexact() {
            self
        } else {
            Dtype::Float32
        }
    }

    /// The real dtype of a complex dtype (complex64 → float32).
    pub fn real_part(self) -> Dtype {
        if self == Dtype::Complex64 {
            Dtype::Float32
        } else {
            self
        }
    }
}

impl std::fmt::Display for Dtype {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl DtypeCategory {
    pub fn name(self) -> &'static str {
        use DtypeCategory::*;
        match self {
            Generic => "generic",
            Number => "number",
            Integer => "integer",
            SignedInteger => "signedinteger",
            UnsignedInteger => "unsignedinteger",
            Inexact => "inexact",
            Floating => "floating",
            ComplexFloating => "complexfloating",
        }
    }
    pub fn parent(self) -> Option<DtypeCategory> {
        use DtypeCategory::*;
        match self {
            Generic => None,
            Number => Some(Generic),
            Integer | Inexact => Some(Number),
            SignedInteger | UnsignedInteger => Some(Integer),
            Floating | ComplexFloating => Some(Inexact),
        }
    }
    pub fn is_sub(self, other: DtypeCategory) -> bool {
        let mut c = Some(self);
        while let Some(x) = c {
            if x == other {
                return true;
            }
            c = x.parent();
        }
        false
    }
}

fn rank_of_int(d: Dtype) -> u8 {
    match d.size() {
        1 => 0,
        2 => 1,
        4 => 2,
        _ => 3,
    }
}

fn signed_of_rank(r: u8) -> Dtype {
    match r {
        0 => Dtype::Int8,
        1 => Dtype::Int16,
        2 => Dtype::Int32,
        _ => Dtype::Int64,
    }
}

/// MLX's promotion of two dtypes (array with array).
pub fn promote(a: Dtype, b: Dtype) -> Dtype {
    use Dtype::*;
    if a == b {
        return a;
    }
    let (ka, kb) = (a.kind(), b.kind());
    match (ka, kb) {
        (Kind::Complex, _) | (_, Kind::Complex) => Complex64,
        (Kind::Bool, _) => b,
        (_, Kind::Bool) => a,
        (Kind::Float, Kind::Float) => {
            if a == Float64 || b == Float64 {
                Float64
            } else if a == Float32 || b == Float32 {
                Float32
            } else {
                // float16 with bfloat16
                Float32
            }
        }
        (Kind::Float, _) => a,
        (_, Kind::Float) => b,
        (Kind::Unsigned, Kind::Unsigned) | (Kind::Signed, Kind::Signed) => {
            if a.size() >= b.size() {
                a
            } else {
                b
            }
        }
        _ => {
            let (u, s) = if ka == Kind::Unsigned { (a, b) } else { (b, a) };
            let (ru, rs) = (rank_of_int(u), rank_of_int(s));
            if rs > ru {
                s
            } else if ru == 3 {
                Float32
            } else {
                signed_of_rank(ru + 1)
            }
        }
    }
}

/// Kind of a Python scalar that takes part in an op ("weak" type).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ScalarKind {
    Bool,
    Int,
    Float,
    Complex,
}

/// Promotion of an array dtype with a weak Python scalar: the array's dtype wins unless
/// the scalar's kind is higher.
pub fn promote_weak(a: Dtype, s: ScalarKind) -> Dtype {
    match s {
        ScalarKind::Bool => a,
        ScalarKind::Int => {
            if a == Dtype::Bool {
                Dtype::Int32
            } else {
                a
            }
        }
        ScalarKind::Float => {
            if a.is_inexact() {
                a
            } else {
                Dtype::Float32
            }
        }
        ScalarKind::Complex => Dtype::Complex64,
    }
}

/// The dtype of a Python scalar on its own.
pub fn scalar_default_dtype(s: ScalarKind) -> Dtype {
    match s {
        ScalarKind::Bool => Dtype::Bool,
        ScalarKind::Int => Dtype::Int32,
        ScalarKind::Float => Dtype::Float32,
        ScalarKind::Complex => Dtype::Complex64,
    }
}

/// NumPy-style `can_cast(from, to)` under "safe" casting.
pub fn can_cast_safe(from: Dtype, to: Dtype) -> bool {
    if from == to {
        return true;
    }
    use Kind::*;
    match (from.kind(), to.kind()) {
        (Bool, _) => true,
        (_, Bool) => false,
        (Unsigned, Unsigned) | (Signed, Signed) => to.size() >= from.size(),
        (Unsigned, Signed) => to.size() > from.size(),
        (Signed, Unsigned) => false,
        (Unsigned | Signed, Float) => to.size() > from.size(),
        (Unsigned | Signed, Complex) => from.size() <= 2,
        (Float, Float) => to == Dtype::Float64 || (to == Dtype::Float32 && from != Dtype::Float64),
        (Float, Complex) => matches!(from, Dtype::Float16 | Dtype::Bfloat16 | Dtype::Float32),
        (Complex, _) => false,
        (Float, _) => false,
    }
}

pub fn check_dtype_for(op: &str, d: Dtype, allowed: &[Kind]) -> Result<()> {
    if allowed.contains(&d.kind()) {
        Ok(())
    } else {
        Err(Error::value(op, format!("Unsupported dtype {d}.")))
    }
}
