//! Renders saved `edgefit compare` results: merged JSON, CSV, plots (SVG and
//! PNG), a compact terminal table and a self-contained HTML report.
//!
//! The data model ([`Results`], [`Row`], [`Verdict`], [`LayerMemory`]) is the
//! `results.json` format, schema [`RESULTS_SCHEMA`]; its `rows` load directly
//! in pandas: `pd.DataFrame(json.load(f)["rows"])`.
//!
//! Figures carry their source (`latency_source`, `energy_source`): every
//! renderer marks estimated figures as such.

use std::path::PathBuf;

mod csv;
mod format;
mod html;
mod matrix;
mod model;
mod plots;
mod terminal;

pub use crate::csv::{csv_table, render_csv, ROW_FIELDS};
pub use crate::format::Source;
pub use crate::html::render_html;
pub use crate::matrix::{verdict_matrix, Cell, Matrix, MatrixRow};
pub use crate::model::{
    load_results, BestVariant, FamilyMember, LayerMemory, PrecisionFit, Results, Row, RowTiling,
    SeedModel, Verdict, RESULTS_SCHEMA,
};
pub use crate::plots::render_plots;
pub use crate::terminal::{
    render_family, render_matrix, render_seed, render_terminal, render_text,
};

/// What can go wrong loading results or writing plots.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// A results file could not be read.
    #[error("read {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A results file is not valid results JSON.
    #[error("{}: not valid results JSON at line {line}, column {column}: {source}", path.display())]
    Json {
        /// The file.
        path: PathBuf,
        /// 1-based line of the error.
        line: usize,
        /// 1-based column of the error.
        column: usize,
        /// The parser's message.
        source: serde_json::Error,
    },
    /// A results file has another schema.
    #[error("{}: schema is {found:?}, expected {RESULTS_SCHEMA:?}", path.display())]
    Schema {
        /// The file.
        path: PathBuf,
        /// The schema it declares.
        found: String,
    },
    /// Files to merge rank their verdicts by different criteria.
    #[error(
        "{}: verdicts rank by {found:?} but {} ranks by {expected:?}; merge results of the same criterion",
        path.display(),
        first.display()
    )]
    Criterion {
        /// The file that differs.
        path: PathBuf,
        /// Its criterion.
        found: String,
        /// The first file.
        first: PathBuf,
        /// The first file's criterion.
        expected: String,
    },
    /// No results file was given.
    #[error("no results files given")]
    NoFiles,
    /// A plot or folder could not be written.
    #[error("write {}: {source}", path.display())]
    Write {
        /// The file or folder.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A plot could not be drawn.
    #[error("draw {}: {message}", path.display())]
    Plot {
        /// The plot file.
        path: PathBuf,
        /// The plotting library's message.
        message: String,
    },
    /// The embedded font could not be registered.
    #[error("the embedded plot font could not be loaded")]
    Font,
}
