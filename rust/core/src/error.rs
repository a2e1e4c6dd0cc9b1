//! The one error type of the core. The bindings map each variant to a Python exception in one place.

/// Everything that can go wrong in the engine, with a message meant for the end user.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    /// A search-space definition is invalid. `path` names the parameter (empty when unknown).
    #[error("{}", with_path(path, message))]
    InvalidSpace { path: String, message: String },
    /// The search configuration is invalid.
    #[error("{0}")]
    InvalidConfig(String),
    /// `tell` got ids or scores that do not fit the pending generation.
    #[error("{0}")]
    InvalidTell(String),
    /// Serialized engine state that cannot be restored.
    #[error("{0}")]
    InvalidState(String),
    /// Arrays whose shapes do not fit together.
    #[error("{0}")]
    InvalidShape(String),
}

fn with_path(path: &str, message: &str) -> String {
    if path.is_empty() {
        message.to_owned()
    } else {
        format!("{path}: {message}")
    }
}

impl Error {
    pub(crate) fn space(path: &str, message: impl Into<String>) -> Self {
        Error::InvalidSpace {
            path: path.to_owned(),
            message: message.into(),
        }
    }
}

pub type Result<T> = std::result::Result<T, Error>;
