//! One error type for the whole engine. The Python bindings map each kind to the
//! exception class MLX/NumPy users expect; every message starts with `[op]`.

#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// Bad argument value → `ValueError`.
    #[error("[{op}] {msg}")]
    Value { op: String, msg: String },
    /// Wrong kind of argument → `TypeError`.
    #[error("[{op}] {msg}")]
    Type { op: String, msg: String },
    /// Index out of range → `IndexError`.
    #[error("[{op}] {msg}")]
    Index { op: String, msg: String },
    /// Axis out of range → an error subclassing both `ValueError` and `IndexError`.
    #[error("[{op}] {msg}")]
    Axis { op: String, msg: String },
    /// Allocation over the memory limit or the machine → `MemoryError`.
    #[error("[{op}] {msg}")]
    Memory { op: String, msg: String },
    /// Malformed file → `FormatError`.
    #[error("[{op}] {msg}")]
    Format { op: String, msg: String },
    /// Not available on this backend / not built yet → `NotImplementedError`-like RuntimeError.
    #[error("[{op}] {msg}")]
    Unsupported { op: String, msg: String },
    /// Anything else at run time → `RuntimeError`.
    #[error("[{op}] {msg}")]
    Runtime { op: String, msg: String },
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub fn value(op: &str, msg: impl Into<String>) -> Self {
        Error::Value {
            op: op.to_string(),
            msg: msg.into(),
        }
    }
    pub fn type_err(op: &str, msg: impl Into<String>) -> Self {
        Error::Type {
            op: op.to_string(),
            msg: msg.into(),
        }
    }
    pub fn index(op: &str, msg: impl Into<String>) -> Self {
        Error::Index {
            op: op.to_string(),
            msg: msg.into(),
        }
    }
    pub fn axis(op: &str, msg: impl Into<String>) -> Self {
        Error::Axis {
            op: op.to_string(),
            msg: msg.into(),
        }
    }
    pub fn memory(op: &str, msg: impl Into<String>) -> Self {
        Error::Memory {
            op: op.to_string(),
            msg: msg.into(),
        }
    }
    pub fn format(op: &str, msg: impl Into<String>) -> Self {
        Error::Format {
            op: op.to_string(),
            msg: msg.into(),
        }
    }
    pub fn unsupported(op: &str, msg: impl Into<String>) -> Self {
        Error::Unsupported {
            op: op.to_string(),
            msg: msg.into(),
        }
    }
    pub fn runtime(op: &str, msg: impl Into<String>) -> Self {
        Error::Runtime {
            op: op.to_string(),
            msg: msg.into(),
        }
    }
    /// Size arithmetic overflowed.
    pub fn overflow(op: &str) -> Self {
        Error::value(op, "Array size or index arithmetic overflows.")
    }
}
