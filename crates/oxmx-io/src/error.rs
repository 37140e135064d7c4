//! One error type for the crate.

/// What went wrong. `Format` is a malformed (or unsupported) file; `Integrity` a digest or
/// signature that does not match; `Invalid` a bad argument to a writer; `Io` the operating
/// system's error (file not found, disk full...).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Format(String),
    #[error("{0}")]
    Integrity(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

pub type Result<T> = std::result::Result<T, Error>;

/// `Err(Error::Format(..))` with a formatted message.
#[macro_export]
macro_rules! bail {
    ($($t:tt)*) => {
        return Err($crate::Error::Format(format!($($t)*)))
    };
}

pub(crate) fn fmt_err(msg: impl Into<String>) -> Error {
    Error::Format(msg.into())
}

pub(crate) fn invalid(msg: impl Into<String>) -> Error {
    Error::Invalid(msg.into())
}
