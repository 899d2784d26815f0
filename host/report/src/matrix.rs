//! The verdict matrix: boards as rows, architectures as columns, each cell
//! the best variant of that architecture that fits the board (or what the
//! closest one lacks), the winner marked, and a sentence only where a
//! board's verdict differs from the board before it.

use crate::format::{human_bytes, percent};
use crate::{Results, Row};

/// One cell: the best fitting variant of an architecture on a board.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell<'r> {
    /// The verdict's choice.
    Fits {
        row: &'r Row,
        /// The board's winner.
        winner: bool,
    },
    /// Nothing of this architecture fits: the closest variant and its
    /// shortfalls in bytes.
    NoneFits {
        closest: &'r Row,
        ram_bytes: u64,
        flash_bytes: u64,
    },
    /// The architecture was not compared on this board.
    Absent,
}

/// One board's line.
#[derive(Debug, Clone, PartialEq)]
pub struct MatrixRow<'r> {
    pub profile: &'r str,
    /// One per [`Matrix::architectures`].
    pub cells: Vec<Cell<'r>>,
    /// The verdict's sentence, where it differs from the previous board's.
    pub sentence: Option<&'r str>,
}

/// The matrix of a result set.
#[derive(Debug, Clone, PartialEq)]
pub struct Matrix<'r> {
    pub architectures: Vec<&'r str>,
    pub rows: Vec<MatrixRow<'r>>,
}

/// What a board's verdict chose: its winner and, per architecture, the
/// chosen (model, variant).
type VerdictKey<'r> = (Option<&'r str>, Vec<Option<(&'r str, &'r str)>>);

/// Builds the matrix from the verdicts (in their order) and the rows.
pub fn verdict_matrix(r: &Results) -> Matrix<'_> {
    let mut architectures: Vec<&str> = r.rows.iter().map(|x| x.architecture.as_str()).collect();
    architectures.sort_unstable();
    architectures.dedup();
    let mut rows = Vec::new();
    // What the previous board's verdict chose: (winner, chosen variants).
    let mut previous: Option<VerdictKey<'_>> = None;
    for v in &r.verdicts {
        let on: Vec<&Row> = r.rows.iter().filter(|x| x.profile == v.profile).collect();
        let cells: Vec<Cell<'_>> = architectures
            .iter()
            .map(|a| {
                let chosen = v.best.iter().find(|b| b.architecture == *a).and_then(|b| {
                    on.iter()
                        .find(|x| x.model == b.model && x.variant == b.variant)
                        .copied()
                });
                if let Some(row) = chosen {
                    return Cell::Fits {
                        row,
                        winner: v.winner.as_deref() == Some(*a),
                    };
                }
                let shortfall = |x: &Row| {
                    (-x.ram_margin_bytes).max(0) as u64 + (-x.flash_margin_bytes).max(0) as u64
                };
                match on
                    .iter()
                    .filter(|x| x.architecture == *a)
                    .min_by_key(|x| shortfall(x))
                {
                    Some(closest) => Cell::NoneFits {
                        closest,
                        ram_bytes: (-closest.ram_margin_bytes).max(0) as u64,
                        flash_bytes: (-closest.flash_margin_bytes).max(0) as u64,
                    },
                    None => Cell::Absent,
                }
            })
            .collect();
        let key = (
            v.winner.as_deref(),
            cells
                .iter()
                .map(|c| match c {
                    Cell::Fits { row, .. } => Some((row.model.as_str(), row.variant.as_str())),
                    _ => None,
                })
                .collect::<Vec<_>>(),
        );
        let same = previous.as_ref() == Some(&key);
        previous = Some(key);
        rows.push(MatrixRow {
            profile: &v.profile,
            cells,
            sentence: (!same).then_some(v.sentence.as_str()),
        });
    }
    Matrix {
        architectures,
        rows,
    }
}

impl Cell<'_> {
    /// The cell as text: `"resnet-fmnist int8 LAMP 50% · 71 KiB flash · 24 KiB RAM
    /// · 91.2% ★"`, or `"none fits: needs 12 KiB more RAM"`.
    pub fn text(&self) -> String {
        match self {
            Cell::Fits { row, winner } => format!(
                "{} {} · {} flash · {} RAM · {}{}",
                row.model,
                row.variant,
                human_bytes(row.plan_bytes as f64),
                human_bytes(row.peak_ram_bytes as f64),
                row.accuracy
                    .map_or_else(|| "accuracy not measured".to_owned(), percent),
                if *winner { " ★" } else { "" }
            ),
            Cell::NoneFits {
                ram_bytes,
                flash_bytes,
                ..
            } => {
                let mut needs = Vec::new();
                if *ram_bytes > 0 {
                    needs.push(format!("{} more RAM", human_bytes(*ram_bytes as f64)));
                }
                if *flash_bytes > 0 {
                    needs.push(format!("{} more flash", human_bytes(*flash_bytes as f64)));
                }
                format!("none fits: needs {}", needs.join(" and "))
            }
            Cell::Absent => "not compared".to_owned(),
        }
    }
}
