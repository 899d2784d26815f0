//! Unstructured magnitude pruning: the weights of conv and dense layers with
//! the smallest magnitude become zero, either the same fraction of every
//! layer (`Scope::Layer`) or below one threshold over all layers together
//! (`Scope::Global`, which prunes the large, redundant layers harder), or
//! below one threshold on LAMP scores (`Scope::Lamp`, layer-adaptive and
//! independent of each layer's weight scale).
//!
//! A conv followed directly by a BatchNormalization is ranked by its
//! effective weights, `|w| * |gamma| / sqrt(var + eps)` per output channel:
//! that is what the folded conv multiplies by, and raw magnitudes of
//! differently scaled channels are not comparable. Exactly
//! `round(sparsity × n)` weights are zero afterwards (ties broken in storage
//! order); weights that were zero already count.

use serde::Serialize;
use tract_onnx::pb::{GraphProto, ModelProto, NodeProto};

use super::{set_tensor_f32, tensor_f32, PruneError};
use crate::import::attrs::Attrs;

/// Where the sparsity applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Every pruned layer loses the same fraction of its weights.
    Layer,
    /// One magnitude threshold for all pruned layers.
    Global,
    /// One threshold on LAMP scores (Lee et al., ICLR 2021): a weight's
    /// square over the sum of the squares of the layer's weights at least as
    /// large. Layer-adaptive like `Global`, but scale-free: a layer whose
    /// weights are all small is not wiped out.
    Lamp,
}

/// What to prune.
#[derive(Debug, Clone)]
pub struct MagnitudeOptions {
    /// Fraction of the weights to make zero, in `[0, 1)`.
    pub sparsity: f64,
    pub scope: Scope,
    /// Leave the first conv/dense layer alone (it sees the raw input).
    pub exclude_first: bool,
    /// Leave the last conv/dense layer alone (it writes the logits).
    pub exclude_last: bool,
}

/// One conv or dense layer, before and after.
#[derive(Debug, Clone, Serialize)]
pub struct LayerPruning {
    /// ONNX node name.
    pub node: String,
    /// ONNX op: Conv, Gemm or MatMul.
    pub op: String,
    /// The weight initializer.
    pub tensor: String,
    pub weights: usize,
    pub zeros_before: usize,
    pub zeros_after: usize,
    /// Left alone (`--exclude`).
    pub excluded: bool,
}

/// The result of [`prune_magnitude`].
#[derive(Debug, Clone, Serialize)]
pub struct PruneReport {
    pub method: &'static str,
    pub scope: Scope,
    pub sparsity_requested: f64,
    pub layers: Vec<LayerPruning>,
}

impl PruneReport {
    /// Weights of all conv and dense layers.
    pub fn weights(&self) -> usize {
        self.layers.iter().map(|l| l.weights).sum()
    }

    /// Zero weights of all conv and dense layers, before and after.
    pub fn zeros(&self) -> (usize, usize) {
        let before = self.layers.iter().map(|l| l.zeros_before).sum();
        let after = self.layers.iter().map(|l| l.zeros_after).sum();
        (before, after)
    }

    /// Sparsity over the layers that were pruned (not excluded).
    pub fn pruned_sparsity(&self) -> f64 {
        let (n, z) = self
            .layers
            .iter()
            .filter(|l| !l.excluded)
            .fold((0, 0), |(n, z), l| (n + l.weights, z + l.zeros_after));
        if n == 0 {
            0.0
        } else {
            z as f64 / n as f64
        }
    }
}

/// Per output of a conv or dense layer: the sum over its pruned weights of
/// weight x mean input (a conv's input mean per channel, averaged over
/// positions). `None` when the shapes do not match.
fn pruned_shift(
    node: &NodeProto,
    dims: &[i64],
    before: &[f32],
    after: &[f32],
    mean: &[f32],
) -> Option<(usize, Vec<f32>)> {
    let d: Vec<usize> = dims.iter().map(|&v| v.max(0) as usize).collect();
    let gone = |i: usize| if after[i] == 0.0 { before[i] } else { 0.0 };
    match node.op_type.as_str() {
        "Conv" => {
            let (o, ci) = (*d.first()?, *d.get(1)?);
            let taps: usize = d.get(2..)?.iter().product();
            if o == 0 || ci == 0 || mean.is_empty() || !mean.len().is_multiple_of(ci) {
                return None;
            }
            // Grouped convs read a slice of the channels: not corrected.
            let per = mean.len() / ci;
            let mc: Vec<f32> = (0..ci)
                .map(|c| mean[c * per..(c + 1) * per].iter().sum::<f32>() / per as f32)
                .collect();
            let delta = (0..o)
                .map(|oc| {
                    (0..ci)
                        .map(|c| {
                            let s = (oc * ci + c) * taps;
                            (s..s + taps).map(gone).sum::<f32>() * mc[c]
                        })
                        .sum()
                })
                .collect();
            Some((o, delta))
        }
        "Gemm" | "MatMul" => {
            let trans_b = node.op_type == "Gemm" && Attrs::of(node).int("transB") == Some(1);
            let (k, o) = if trans_b {
                (*d.get(1)?, *d.first()?)
            } else {
                (*d.first()?, *d.get(1)?)
            };
            if mean.len() != k {
                return None;
            }
            let at = |f: usize, oc: usize| if trans_b { oc * k + f } else { f * o + oc };
            let delta = (0..o)
                .map(|oc| (0..k).map(|f| gone(at(f, oc)) * mean[f]).sum())
                .collect();
            Some((o, delta))
        }
        _ => None,
    }
}

/// A prunable layer found in the graph.
struct Target {
    node: usize,
    init: usize,
    /// Per-output-channel ranking factor (BatchNorm scale), if any.
    channel_scale: Option<Vec<f32>>,
}

/// Prunes `model`'s conv and dense weights in place (see the module notes).
pub fn prune_magnitude(
    model: &mut ModelProto,
    opts: &MagnitudeOptions,
) -> Result<PruneReport, PruneError> {
    prune_magnitude_corrected(model, opts, None)
}

/// The tensors whose mean activations [`prune_magnitude_corrected`] needs:
/// the input of every conv and dense layer.
pub fn magnitude_correction_inputs(model: &ModelProto) -> Result<Vec<String>, PruneError> {
    let Some(graph) = model.graph.as_ref() else {
        return Ok(Vec::new());
    };
    let mut names: Vec<String> = Vec::new();
    for t in find_targets(graph)? {
        if let Some(i) = graph.node[t.node].input.first() {
            if !names.contains(i) {
                names.push(i.clone());
            }
        }
    }
    Ok(names)
}

/// [`prune_magnitude`], then, with `means` (mean activations of each layer's
/// input over calibration images, from [`magnitude_correction_inputs`]),
/// bias correction: each pruned weight's contribution at the mean input,
/// `w * mean(x)`, is added to its output's bias, so the layer's mean output
/// does not shift.
pub fn prune_magnitude_corrected(
    model: &mut ModelProto,
    opts: &MagnitudeOptions,
    means: Option<&super::ActivationMeans>,
) -> Result<PruneReport, PruneError> {
    let graph = super::graph_to_prune(model, opts.sparsity)?;
    let targets = find_targets(graph)?;
    if targets.is_empty() {
        return Err(PruneError::NothingToPrune(String::new()));
    }
    let last = targets.len() - 1;
    let excluded = |i: usize| (opts.exclude_first && i == 0) || (opts.exclude_last && i == last);
    if (0..targets.len()).all(excluded) {
        return Err(PruneError::NothingToPrune(
            " once the first and last are excluded".into(),
        ));
    }

    // Values and ranking keys of every layer.
    let mut values = Vec::with_capacity(targets.len());
    let mut keys: Vec<Vec<f32>> = Vec::with_capacity(targets.len());
    for t in &targets {
        let v = tensor_f32(&graph.initializer[t.init])?;
        let k: Vec<f32> = match &t.channel_scale {
            // OIHW: output channel `o` is the `o`-th run of `v.len() / O`.
            Some(s) if !s.is_empty() && v.len() % s.len() == 0 => {
                let per_out = v.len() / s.len();
                v.iter()
                    .enumerate()
                    .map(|(i, w)| w.abs() * s[i / per_out])
                    .collect()
            }
            _ => v.iter().map(|w| w.abs()).collect(),
        };
        values.push(v);
        keys.push(k);
    }

    let zeros = |v: &[f32]| v.iter().filter(|w| **w == 0.0).count();
    let zeros_before: Vec<usize> = values.iter().map(|v| zeros(v)).collect();
    let originals = means.map(|_| values.clone());
    let count = |n: usize| (opts.sparsity * n as f64).round() as usize;
    match opts.scope {
        Scope::Layer => {
            for (i, (v, k)) in values.iter_mut().zip(&keys).enumerate() {
                if !excluded(i) {
                    let cut = Cut::smallest(k.iter().copied(), count(v.len()));
                    cut.apply(v, k, &mut 0);
                }
            }
        }
        Scope::Global | Scope::Lamp => {
            if opts.scope == Scope::Lamp {
                for k in keys.iter_mut() {
                    *k = lamp_scores(k);
                }
            }
            let included = || {
                keys.iter()
                    .enumerate()
                    .filter(|(i, _)| !excluded(*i))
                    .flat_map(|(_, k)| k.iter().copied())
            };
            let total = included().count();
            let cut = Cut::smallest(included(), count(total));
            let mut taken = 0;
            for (i, (v, k)) in values.iter_mut().zip(&keys).enumerate() {
                if !excluded(i) {
                    cut.apply(v, k, &mut taken);
                }
            }
        }
    }

    // A layer with no weight left computes only its bias: refuse before
    // anything is changed.
    for (i, (t, v)) in targets.iter().zip(&values).enumerate() {
        if !excluded(i) && !v.is_empty() && zeros(v) == v.len() && zeros_before[i] < v.len() {
            let node = &graph.node[t.node];
            return Err(PruneError::WholeLayer {
                node: node.name.clone(),
                weights: v.len(),
                sparsity: opts.sparsity,
            });
        }
    }
    if let (Some(means), Some(originals)) = (means, &originals) {
        for (i, t) in targets.iter().enumerate() {
            if excluded(i) {
                continue;
            }
            let node = graph.node[t.node].clone();
            let Some(mean) = node.input.first().and_then(|n| means.get(n)) else {
                continue;
            };
            let dims = graph.initializer[t.init].dims.clone();
            if let Some((outs, delta)) = pruned_shift(&node, &dims, &originals[i], &values[i], mean)
            {
                super::add_to_bias(graph, t.node, outs, &delta)?;
            }
        }
    }
    let mut layers = Vec::with_capacity(targets.len());
    for (i, (t, v)) in targets.iter().zip(&values).enumerate() {
        set_tensor_f32(&mut graph.initializer[t.init], v);
        let node = &graph.node[t.node];
        layers.push(LayerPruning {
            node: node.name.clone(),
            op: node.op_type.clone(),
            tensor: graph.initializer[t.init].name.clone(),
            weights: v.len(),
            zeros_before: zeros_before[i],
            zeros_after: zeros(v),
            excluded: excluded(i),
        });
    }
    Ok(PruneReport {
        method: "magnitude",
        scope: opts.scope,
        sparsity_requested: opts.sparsity,
        layers,
    })
}

/// LAMP scores of one layer's magnitudes: `k_i^2 / sum of k_j^2 over the
/// j ranked at or above i` (ascending order, ties in storage order), so the
/// layer's largest weight scores 1.
fn lamp_scores(keys: &[f32]) -> Vec<f32> {
    let mut order: Vec<usize> = (0..keys.len()).collect();
    order.sort_by(|&a, &b| keys[a].total_cmp(&keys[b]).then(a.cmp(&b)));
    let mut scores = vec![0.0f32; keys.len()];
    let mut suffix = 0.0f64;
    for &i in order.iter().rev() {
        let sq = f64::from(keys[i]) * f64::from(keys[i]);
        suffix += sq;
        scores[i] = if suffix > 0.0 {
            (sq / suffix) as f32
        } else {
            0.0
        };
    }
    scores
}

/// "The `k` smallest keys": every key below `threshold`, and the first
/// `equal` keys equal to it (in the order [`Cut::apply`] visits them).
struct Cut {
    threshold: f32,
    equal: usize,
}

impl Cut {
    fn smallest(keys: impl Iterator<Item = f32>, k: usize) -> Cut {
        let mut all: Vec<f32> = keys.collect();
        if k == 0 || all.is_empty() {
            return Cut {
                threshold: 0.0,
                equal: 0,
            };
        }
        let k = k.min(all.len());
        let (_, &mut threshold, _) = all.select_nth_unstable_by(k - 1, f32::total_cmp);
        let below = all
            .iter()
            .filter(|x| x.total_cmp(&threshold).is_lt())
            .count();
        Cut {
            threshold,
            equal: k - below,
        }
    }

    /// Zeroes the weights whose keys fall in the cut; `taken` counts the
    /// keys equal to the threshold used so far (shared across layers).
    fn apply(&self, values: &mut [f32], keys: &[f32], taken: &mut usize) {
        for (w, k) in values.iter_mut().zip(keys) {
            match k.total_cmp(&self.threshold) {
                std::cmp::Ordering::Less => *w = 0.0,
                std::cmp::Ordering::Equal if *taken < self.equal => {
                    *w = 0.0;
                    *taken += 1;
                }
                _ => {}
            }
        }
    }
}

/// The conv and dense layers in graph order, with their weight initializers.
fn find_targets(graph: &GraphProto) -> Result<Vec<Target>, PruneError> {
    let init_index = |name: &str| graph.initializer.iter().position(|t| t.name == name);
    let mut targets = Vec::new();
    for (ni, node) in graph.node.iter().enumerate() {
        let weight_input = match node.op_type.as_str() {
            "Conv" | "Gemm" => node.input.get(1),
            // A MatMul is a dense layer when its second operand is a stored
            // matrix; two activations multiplied are left alone.
            "MatMul" => node.input.get(1).filter(|n| init_index(n).is_some()),
            _ => None,
        };
        let Some(name) = weight_input else { continue };
        let init = init_index(name).ok_or_else(|| PruneError::MissingWeights {
            node: node.name.clone(),
            op: node.op_type.clone(),
            tensor: name.clone(),
        })?;
        let channel_scale = if node.op_type == "Conv" {
            batchnorm_scale(graph, node)?
        } else {
            None
        };
        targets.push(Target {
            node: ni,
            init,
            channel_scale,
        });
    }
    Ok(targets)
}

/// `|gamma| / sqrt(var + eps)` per channel when `conv`'s output goes only to
/// a BatchNormalization whose scale and variance are stored in the file.
pub(super) fn batchnorm_scale(
    graph: &GraphProto,
    conv: &NodeProto,
) -> Result<Option<Vec<f32>>, PruneError> {
    let Some(out) = conv.output.first() else {
        return Ok(None);
    };
    let mut consumers = graph.node.iter().filter(|n| n.input.contains(out));
    let (Some(bn), None) = (consumers.next(), consumers.next()) else {
        return Ok(None);
    };
    if bn.op_type != "BatchNormalization" || bn.input.first() != Some(out) {
        return Ok(None);
    }
    let stored = |i: usize| {
        bn.input
            .get(i)
            .and_then(|n| graph.initializer.iter().find(|t| &t.name == n))
    };
    let (Some(gamma), Some(var)) = (stored(1), stored(4)) else {
        return Ok(None);
    };
    let eps = Attrs::of(bn).float("epsilon").unwrap_or(1e-5);
    let (gamma, var) = (tensor_f32(gamma)?, tensor_f32(var)?);
    Ok(Some(
        gamma
            .iter()
            .zip(&var)
            .map(|(g, v)| g.abs() / (v + eps).max(f32::MIN_POSITIVE).sqrt())
            .collect(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cut_takes_exactly_k_with_ties_in_order() {
        let keys = [3.0, 1.0, 2.0, 1.0, 0.0, 1.0];
        let cut = Cut::smallest(keys.iter().copied(), 3);
        let mut v = [9.0f32; 6];
        cut.apply(&mut v, &keys, &mut 0);
        // 0.0 and the first two 1.0s; the third 1.0 stays.
        assert_eq!(v, [9.0, 0.0, 9.0, 0.0, 0.0, 9.0]);
        let none = Cut::smallest(keys.iter().copied(), 0);
        let mut v = [9.0f32; 6];
        none.apply(&mut v, &keys, &mut 0);
        assert_eq!(v, [9.0; 6]);
    }

    #[test]
    fn lamp_scores_are_scale_free_and_the_largest_is_one() {
        let a = lamp_scores(&[1.0, 2.0, 3.0]);
        let b = lamp_scores(&[10.0, 20.0, 30.0]);
        assert_eq!(a, b);
        assert_eq!(a[2], 1.0);
        // 1 / (1 + 4 + 9), 4 / (4 + 9)
        assert!((a[0] - 1.0 / 14.0).abs() < 1e-7 && (a[1] - 4.0 / 13.0).abs() < 1e-7);
    }
}
