//! genetune's pure-Rust core: search-space compilation, seeded sampling, variation, selection
//! (GA, NSGA-II, NSGA-III), deduplication and score normalization. No Python here; the
//! `genetune-py` crate binds it as `genetune._core`.

pub mod config;
pub mod engine;
pub mod error;
pub mod expr;
pub mod normalize;
pub mod operators;
pub mod refdirs;
pub mod selection;
pub mod sorting;
pub mod space;
pub mod surrogate;

pub use config::{Algorithm, Direction, EngineConfig};
pub use engine::Engine;
pub use error::{Error, Result};
pub use space::{Layout, Space, Value};
