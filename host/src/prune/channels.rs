//! Structured pruning: whole output channels (filters) of convolutions are
//! removed, ranked by their L1 norm (Li et al., "Pruning Filters for
//! Efficient ConvNets", ICLR 2017), together with the matching input
//! channels of every layer that reads them, so the network gets smaller and
//! faster on any engine, not just sparser.
//!
//! Channels are tied together by the graph (the idea behind Torch-Pruning's
//! dependency graph): a residual addition makes the channels of all its
//! inputs one set, so every conv writing into a ResNet stage's stream — the
//! stem or projection and each block's second conv — loses the same channel
//! indices or none. [`channel_groups`] walks the graph from each conv's output
//! through element-wise ops (ReLU, BatchNorm, pooling) to the layers that
//! consume it, merging at additions; a group is prunable when every consumer
//! is a regular conv or a dense layer (behind a Flatten, where each channel
//! is a block of `H*W` features, as in VGG's classifier). Anything else
//! (a depthwise conv, a Concat, the graph output) freezes the group, and the
//! report says why.
//!
//! Optional bias correction (no retraining here): a removed channel `c`
//! contributed `W[:, c] · x_c` to each consumer; with `x_c` replaced by its
//! mean over the calibration images, that is a constant, added to the
//! consumer's bias. It corrects the mean shift of the next layer's output.

use std::collections::HashMap;

use serde::Serialize;
use tract_onnx::pb::{GraphProto, ModelProto, NodeProto, TensorProto};

use crate::import::attrs::Attrs;

use super::magnitude::batchnorm_scale;
use super::{add_to_bias, set_tensor_f32, tensor_f32, PruneError};

/// How channels are chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ChannelScope {
    /// Every prunable group loses the same fraction of its channels.
    Layer,
    /// One threshold over all groups on normalised scores (each channel's L1
    /// norm over its group's mean), so groups with many weak channels lose
    /// more; every group keeps at least one channel.
    Global,
}

#[derive(Debug, Clone)]
pub struct ChannelOptions {
    /// Fraction of the channels of the prunable groups to remove, in [0, 1).
    pub sparsity: f64,
    pub scope: ChannelScope,
    /// Leave the group of the first conv alone (it sees the raw input).
    pub exclude_first: bool,
    /// Leave the group feeding the last layer alone.
    pub exclude_last: bool,
}

/// Where a group's channels are read.
#[derive(Debug, Clone, Serialize)]
pub struct Consumer {
    /// ONNX node name.
    pub node: String,
    pub op: String,
    /// The tensor it reads the channels from (for bias correction).
    pub input: String,
    /// Features per channel: 1 for a conv, `H*W` for a dense layer behind a
    /// Flatten of `C x H x W`.
    #[serde(skip)]
    block: usize,
    #[serde(skip)]
    index: usize,
}

/// Channels that must be pruned together.
#[derive(Debug, Clone, Serialize)]
pub struct ChannelGroup {
    /// Convs writing the channels (several when joined by additions).
    pub producers: Vec<String>,
    pub consumers: Vec<Consumer>,
    pub channels: usize,
    /// Why the group cannot be pruned, if it cannot.
    pub frozen: Option<String>,
    /// Channels removed (indices into the original channels), when pruned.
    pub removed: Vec<usize>,
    #[serde(skip)]
    producer_nodes: Vec<usize>,
    /// BatchNormalization nodes on the channels (their parameters shrink too).
    #[serde(skip)]
    batchnorms: Vec<usize>,
}

/// The result of [`prune_channels`].
#[derive(Debug, Clone, Serialize)]
pub struct ChannelReport {
    pub method: &'static str,
    pub scope: ChannelScope,
    pub sparsity_requested: f64,
    pub bias_correction: bool,
    pub groups: Vec<ChannelGroup>,
}

impl ChannelReport {
    /// Channels of the pruned groups before, and removed.
    pub fn channels(&self) -> (usize, usize) {
        self.groups
            .iter()
            .filter(|g| g.frozen.is_none())
            .fold((0, 0), |(n, r), g| (n + g.channels, r + g.removed.len()))
    }
}

fn attr_i(node: &NodeProto, name: &str, default: i64) -> i64 {
    Attrs::of(node).int(name).unwrap_or(default)
}

fn init_index(graph: &GraphProto, name: &str) -> Option<usize> {
    graph.initializer.iter().position(|t| t.name == name)
}

/// The nodes reading `tensor`, with the input position.
fn readers<'g>(
    graph: &'g GraphProto,
    tensor: &'g str,
) -> impl Iterator<Item = (usize, usize)> + 'g {
    graph.node.iter().enumerate().flat_map(move |(ni, n)| {
        n.input
            .iter()
            .enumerate()
            .filter(move |(_, i)| i.as_str() == tensor)
            .map(move |(pos, _)| (ni, pos))
    })
}

/// Union-find over producer convs.
struct Sets(Vec<usize>);

impl Sets {
    fn find(&mut self, mut a: usize) -> usize {
        while self.0[a] != a {
            self.0[a] = self.0[self.0[a]];
            a = self.0[a];
        }
        a
    }
    fn union(&mut self, a: usize, b: usize) {
        let (a, b) = (self.find(a), self.find(b));
        self.0[a] = b;
    }
}

/// What the walk from one conv's output found.
#[derive(Default)]
struct Walk {
    consumers: Vec<Consumer>,
    batchnorms: Vec<usize>,
    frozen: Option<String>,
    /// Tensors carrying the channels, with the conv that reached them.
    joins: Vec<String>,
}

/// Element-wise ops the channels pass through unchanged (input 0).
const PASS_THROUGH: &[&str] = &[
    "Relu",
    "Clip",
    "LeakyRelu",
    "Sigmoid",
    "HardSigmoid",
    "HardSwish",
    "Identity",
    "Dropout",
    "MaxPool",
    "AveragePool",
    "GlobalAveragePool",
    "GlobalMaxPool",
    "BatchNormalization",
];

fn walk(graph: &GraphProto, start: &str, w: &mut Walk) {
    let mut stack = vec![start.to_owned()];
    let mut seen = Vec::new();
    while let Some(t) = stack.pop() {
        if seen.contains(&t) {
            continue;
        }
        seen.push(t.clone());
        if graph.output.iter().any(|o| o.name == t) {
            w.frozen
                .get_or_insert_with(|| format!("`{t}` is a graph output"));
        }
        for (ni, pos) in readers(graph, &t) {
            let n = &graph.node[ni];
            let out = n.output.first().cloned().unwrap_or_default();
            let freeze = |w: &mut Walk, why: String| {
                w.frozen.get_or_insert(why);
            };
            match n.op_type.as_str() {
                op if PASS_THROUGH.contains(&op) && pos == 0 => {
                    if op == "BatchNormalization" {
                        w.batchnorms.push(ni);
                    }
                    stack.push(out);
                }
                "Add" | "Sum" => {
                    w.joins.push(out.clone());
                    stack.push(out);
                }
                "Conv" if pos == 0 && attr_i(n, "group", 1) == 1 => w.consumers.push(Consumer {
                    node: n.name.clone(),
                    op: n.op_type.clone(),
                    input: t.clone(),
                    block: 1,
                    index: ni,
                }),
                "Gemm" | "MatMul" if pos == 0 => w.consumers.push(Consumer {
                    node: n.name.clone(),
                    op: n.op_type.clone(),
                    input: t.clone(),
                    block: 0, // channels x H x W: known once the channel count is
                    index: ni,
                }),
                "Flatten" if pos == 0 && attr_i(n, "axis", 1) == 1 => stack.push(out),
                "Conv" if pos == 0 => freeze(
                    w,
                    format!(
                        "`{t}` is read by the grouped/depthwise Conv `{}`, whose channels are tied",
                        n.name
                    ),
                ),
                _ => freeze(w, format!("`{t}` is read by {} `{}`", n.op_type, n.name)),
            }
        }
    }
}

/// The channel groups of `graph`: every regular conv's output channels,
/// merged where additions tie them.
pub fn channel_groups(graph: &GraphProto) -> Result<Vec<ChannelGroup>, PruneError> {
    let convs: Vec<usize> = graph
        .node
        .iter()
        .enumerate()
        .filter(|(_, n)| n.op_type == "Conv" && attr_i(n, "group", 1) == 1)
        .map(|(i, _)| i)
        .collect();
    let mut walks = Vec::with_capacity(convs.len());
    let mut channels = Vec::with_capacity(convs.len());
    for &ni in &convs {
        let n = &graph.node[ni];
        let wname = n.input.get(1).cloned().unwrap_or_default();
        let wt = init_index(graph, &wname).ok_or_else(|| PruneError::MissingWeights {
            node: n.name.clone(),
            op: n.op_type.clone(),
            tensor: wname.clone(),
        })?;
        channels.push(graph.initializer[wt].dims.first().copied().unwrap_or(0) as usize);
        let mut w = Walk::default();
        walk(graph, n.output.first().map_or("", |s| s.as_str()), &mut w);
        walks.push(w);
    }
    // Convs whose walks meet at an addition share their channels.
    let mut sets = Sets((0..convs.len()).collect());
    for a in 0..convs.len() {
        for b in a + 1..convs.len() {
            if walks[a].joins.iter().any(|j| walks[b].joins.contains(j)) {
                sets.union(a, b);
            }
        }
    }
    let mut by_root: HashMap<usize, Vec<usize>> = HashMap::new();
    for a in 0..convs.len() {
        let root = sets.find(a);
        by_root.entry(root).or_default().push(a);
    }
    let mut roots: Vec<_> = by_root.into_values().collect();
    roots.sort_by_key(|m| convs[m[0]]);
    let mut groups = Vec::new();
    for members in roots {
        let mut g = ChannelGroup {
            producers: members
                .iter()
                .map(|&m| graph.node[convs[m]].name.clone())
                .collect(),
            consumers: Vec::new(),
            channels: channels[members[0]],
            frozen: None,
            removed: Vec::new(),
            producer_nodes: members.iter().map(|&m| convs[m]).collect(),
            batchnorms: Vec::new(),
        };
        for &m in &members {
            let w = &walks[m];
            if channels[m] != g.channels {
                g.frozen.get_or_insert(format!(
                    "convs joined by an addition have {} and {} channels",
                    channels[m], g.channels
                ));
            }
            if let Some(f) = &w.frozen {
                g.frozen.get_or_insert(f.clone());
            }
            for c in &w.consumers {
                if !g.consumers.iter().any(|d| d.index == c.index) {
                    g.consumers.push(c.clone());
                }
            }
            for b in &w.batchnorms {
                if !g.batchnorms.contains(b) {
                    g.batchnorms.push(*b);
                }
            }
        }
        // An addition must get all its inputs from the group.
        for m in &members {
            for j in &walks[*m].joins {
                if let Some(add) = graph.node.iter().find(|n| n.output.first() == Some(j)) {
                    let covered = add.input.iter().all(|i| {
                        members.iter().any(|&o| {
                            let out = graph.node[convs[o]].output.first();
                            out == Some(i) || reaches(graph, out.map_or("", |s| s), i)
                        })
                    });
                    if !covered {
                        g.frozen.get_or_insert(format!(
                            "addition `{}` adds channels that no pruned conv writes",
                            add.name
                        ));
                    }
                }
            }
        }
        // Conv consumers must read exactly the group's channels (a model whose
        // shapes disagree is left alone rather than indexed out of bounds).
        for c in &g.consumers {
            let n = &graph.node[c.index];
            if n.op_type == "Conv" {
                let i = n
                    .input
                    .get(1)
                    .and_then(|w| init_index(graph, w))
                    .and_then(|w| graph.initializer[w].dims.get(1).copied())
                    .unwrap_or(0);
                if i as usize != g.channels {
                    g.frozen.get_or_insert(format!(
                        "conv `{}` reads {i} channels, not the {} written",
                        n.name, g.channels
                    ));
                }
            }
        }
        // Dense consumers: features per channel from the weight's input size.
        for c in &mut g.consumers {
            if c.block == 0 {
                let n = &graph.node[c.index];
                let k = dense_inputs(graph, n).unwrap_or(0);
                if g.channels == 0 || k == 0 || !k.is_multiple_of(g.channels) {
                    g.frozen.get_or_insert(format!(
                        "dense layer `{}` has {k} inputs, not a multiple of {} channels",
                        n.name, g.channels
                    ));
                } else {
                    c.block = k / g.channels;
                }
            }
        }
        if g.channels < 2 {
            g.frozen.get_or_insert("a single channel".into());
        }
        groups.push(g);
    }
    Ok(groups)
}

/// Whether `to` is computed from `from` through element-wise ops (input 0).
fn reaches(graph: &GraphProto, from: &str, to: &str) -> bool {
    let mut t = from.to_owned();
    for _ in 0..graph.node.len() {
        if t == to {
            return true;
        }
        let next = readers(graph, &t)
            .find(|&(ni, pos)| pos == 0 && PASS_THROUGH.contains(&graph.node[ni].op_type.as_str()));
        match next {
            Some((ni, _)) => t = graph.node[ni].output.first().cloned().unwrap_or_default(),
            None => return false,
        }
    }
    false
}

/// A Gemm/MatMul's number of inputs from its stored weight.
fn dense_inputs(graph: &GraphProto, n: &NodeProto) -> Option<usize> {
    let w = &graph.initializer[init_index(graph, n.input.get(1)?)?];
    let trans_b = n.op_type == "Gemm" && attr_i(n, "transB", 0) == 1;
    let k = if trans_b {
        w.dims.get(1)?
    } else {
        w.dims.first()?
    };
    usize::try_from(*k).ok()
}

/// Keeps the `keep` indices of `axis` (blocks of `block` entries) of a
/// row-major tensor.
fn select(values: &[f32], dims: &[i64], axis: usize, keep: &[usize], block: usize) -> Vec<f32> {
    let d: Vec<usize> = dims.iter().map(|&v| v.max(0) as usize).collect();
    let outer: usize = d[..axis].iter().product();
    let len = d[axis];
    let inner: usize = d[axis + 1..].iter().product();
    let mut out = Vec::with_capacity(outer * keep.len() * block * inner);
    for o in 0..outer {
        for &k in keep {
            for b in 0..block {
                let s = ((o * len) + k * block + b) * inner;
                out.extend_from_slice(&values[s..s + inner]);
            }
        }
    }
    out
}

fn bad_tensor(t: &TensorProto, what: &str) -> PruneError {
    PruneError::UnsupportedTensor {
        tensor: t.name.clone(),
        what: what.into(),
    }
}

/// Shrinks initializer `name` along `axis` to the `keep` channels (blocks of
/// `block`).
fn shrink(
    graph: &mut GraphProto,
    name: &str,
    axis: usize,
    keep: &[usize],
    block: usize,
    channels: usize,
) -> Result<(), PruneError> {
    let Some(i) = init_index(graph, name) else {
        return Ok(());
    };
    let t = &graph.initializer[i];
    if t.dims.get(axis).map(|&d| d as usize) != Some(channels * block) {
        return Err(bad_tensor(
            t,
            &format!(
                "its shape {:?} does not hold {channels} channels along axis {axis}",
                t.dims
            ),
        ));
    }
    let v = tensor_f32(t)?;
    let nv = select(&v, &t.dims, axis, keep, block);
    let t = &mut graph.initializer[i];
    set_tensor_f32(t, &nv);
    t.dims[axis] = (keep.len() * block) as i64;
    Ok(())
}

/// L1 norm of each output channel of `node`'s weights, times the BatchNorm
/// scale when one follows.
fn filter_l1(graph: &GraphProto, node: &NodeProto) -> Result<Vec<f32>, PruneError> {
    let name = node.input.get(1).cloned().unwrap_or_default();
    let t =
        &graph.initializer[init_index(graph, &name).ok_or_else(|| PruneError::MissingWeights {
            node: node.name.clone(),
            op: node.op_type.clone(),
            tensor: name.clone(),
        })?];
    let v = tensor_f32(t)?;
    let o = t.dims.first().copied().unwrap_or(1).max(1) as usize;
    let per = v.len() / o;
    let scale = batchnorm_scale(graph, node)?;
    Ok((0..o)
        .map(|c| {
            let l1: f32 = v[c * per..(c + 1) * per].iter().map(|x| x.abs()).sum();
            l1 * scale
                .as_ref()
                .and_then(|s| s.get(c))
                .copied()
                .unwrap_or(1.0)
        })
        .collect())
}

/// Per group, the score of each channel: the sum over the group's convs of
/// the channel's L1 norm over that conv's mean.
fn group_scores(graph: &GraphProto, g: &ChannelGroup) -> Result<Vec<f32>, PruneError> {
    let mut s = vec![0f32; g.channels];
    for &p in &g.producer_nodes {
        let l1 = filter_l1(graph, &graph.node[p])?;
        let mean = l1.iter().sum::<f32>() / l1.len().max(1) as f32;
        for (a, v) in s.iter_mut().zip(&l1) {
            *a += v / mean.max(f32::MIN_POSITIVE);
        }
    }
    Ok(s)
}

/// Mean activations of the tensors the consumers read, for bias correction:
/// tensor name -> values (per channel for conv inputs, per feature for
/// dense inputs).
pub type ActivationMeans = HashMap<String, Vec<f32>>;

/// Prunes output channels of `model`'s convs in place (see the module
/// notes); with `means`, corrects the consumers' biases.
pub fn prune_channels(
    model: &mut ModelProto,
    opts: &ChannelOptions,
    means: Option<&ActivationMeans>,
) -> Result<ChannelReport, PruneError> {
    let graph = super::graph_to_prune(model, opts.sparsity)?;
    let mut groups = channel_groups(graph)?;
    if groups.is_empty() {
        return Err(PruneError::NothingToPrune(
            " (no regular convolution)".into(),
        ));
    }
    let last_dense = graph
        .node
        .iter()
        .rposition(|n| matches!(n.op_type.as_str(), "Gemm" | "MatMul" | "Conv"));
    let n_groups = groups.len();
    for (i, g) in groups.iter_mut().enumerate() {
        if opts.exclude_first && i == 0 {
            g.frozen.get_or_insert("excluded (first)".into());
        }
        let feeds_last = g.consumers.iter().any(|c| Some(c.index) == last_dense);
        if opts.exclude_last && (feeds_last || i + 1 == n_groups) {
            g.frozen.get_or_insert("excluded (last)".into());
        }
    }
    if groups.iter().all(|g| g.frozen.is_some()) {
        let why: Vec<String> = groups
            .iter()
            .map(|g| {
                format!(
                    "{}: {}",
                    g.producers.join("+"),
                    g.frozen.clone().unwrap_or_default()
                )
            })
            .collect();
        return Err(PruneError::NoPrunableChannels(why.join("; ")));
    }

    // Which channels go.
    let scores: Vec<Option<Vec<f32>>> = groups
        .iter()
        .map(|g| {
            g.frozen
                .is_none()
                .then(|| group_scores(graph, g))
                .transpose()
        })
        .collect::<Result<_, _>>()?;
    let mut removed: Vec<Vec<usize>> = vec![Vec::new(); groups.len()];
    match opts.scope {
        ChannelScope::Layer => {
            for (gi, s) in scores.iter().enumerate() {
                let Some(s) = s else { continue };
                let k = ((opts.sparsity * s.len() as f64).round() as usize).min(s.len() - 1);
                removed[gi] = smallest(s, k);
            }
        }
        ChannelScope::Global => {
            let mut all: Vec<(f32, usize, usize)> = scores
                .iter()
                .enumerate()
                .filter_map(|(gi, s)| s.as_ref().map(|s| (gi, s)))
                .flat_map(|(gi, s)| s.iter().enumerate().map(move |(c, &v)| (v, gi, c)))
                .collect();
            let total = all.len();
            let k = (opts.sparsity * total as f64).floor() as usize;
            all.sort_by(|a, b| a.0.total_cmp(&b.0));
            for &(_, gi, c) in &all {
                if removed.iter().map(Vec::len).sum::<usize>() >= k {
                    break;
                }
                if removed[gi].len() + 1 < groups[gi].channels {
                    removed[gi].push(c);
                }
            }
        }
    }

    for (g, mut r) in groups.iter_mut().zip(removed) {
        if r.is_empty() {
            continue;
        }
        r.sort_unstable();
        let keep: Vec<usize> = (0..g.channels)
            .filter(|c| r.binary_search(c).is_err())
            .collect();
        if let Some(means) = means {
            for c in &g.consumers {
                correct_bias(graph, c, &r, g.channels, means.get(&c.input))?;
            }
        }
        for &p in &g.producer_nodes {
            // Weight and bias lose the channels along their first axis.
            for name in graph.node[p].input.clone().iter().skip(1) {
                shrink(graph, name, 0, &keep, 1, g.channels)?;
            }
        }
        for &b in &g.batchnorms {
            let n = graph.node[b].clone();
            for name in n.input.iter().skip(1) {
                shrink(graph, name, 0, &keep, 1, g.channels)?;
            }
        }
        for c in &g.consumers {
            let n = graph.node[c.index].clone();
            let name = n.input.get(1).cloned().unwrap_or_default();
            let axis = match n.op_type.as_str() {
                "Conv" => 1,
                "Gemm" if attr_i(&n, "transB", 0) == 1 => 1,
                _ => 0,
            };
            shrink(graph, &name, axis, &keep, c.block, g.channels)?;
        }
        g.removed = r;
    }
    // Shapes recorded for intermediate tensors are stale now; tools infer them.
    graph.value_info.clear();
    Ok(ChannelReport {
        method: "channels",
        scope: opts.scope,
        sparsity_requested: opts.sparsity,
        bias_correction: means.is_some(),
        groups,
    })
}

/// The `k` smallest scores' indices (ties in channel order).
fn smallest(s: &[f32], k: usize) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..s.len()).collect();
    idx.sort_by(|&a, &b| s[a].total_cmp(&s[b]).then(a.cmp(&b)));
    idx.truncate(k);
    idx
}

/// Adds the removed channels' mean contribution to consumer `c`'s bias
/// (creating the bias if the layer has none).
fn correct_bias(
    graph: &mut GraphProto,
    c: &Consumer,
    removed: &[usize],
    channels: usize,
    mean: Option<&Vec<f32>>,
) -> Result<(), PruneError> {
    let Some(mean) = mean else { return Ok(()) };
    let n = graph.node[c.index].clone();
    let wname = n.input.get(1).cloned().unwrap_or_default();
    let Some(wi) = init_index(graph, &wname) else {
        return Ok(());
    };
    let wt = &graph.initializer[wi];
    let w = tensor_f32(wt)?;
    let dims: Vec<usize> = wt.dims.iter().map(|&d| d.max(0) as usize).collect();
    // Per output: sum over the removed channels of weight x mean input.
    let (outs, delta) = match n.op_type.as_str() {
        "Conv" => {
            let (o, i) = (dims[0], dims[1]);
            let taps: usize = dims[2..].iter().product();
            let per_channel = mean_per_channel(mean, channels);
            let d: Vec<f32> = (0..o)
                .map(|oc| {
                    removed
                        .iter()
                        .map(|&ch| {
                            let s = (oc * i + ch) * taps;
                            w[s..s + taps].iter().sum::<f32>() * per_channel[ch]
                        })
                        .sum()
                })
                .collect();
            (o, d)
        }
        _ => {
            let trans_b = n.op_type == "Gemm" && attr_i(&n, "transB", 0) == 1;
            let (k, o) = if trans_b {
                (dims[1], dims[0])
            } else {
                (dims[0], dims[1])
            };
            if mean.len() != k {
                return Ok(());
            }
            let at = |f: usize, oc: usize| {
                if trans_b {
                    w[oc * k + f]
                } else {
                    w[f * o + oc]
                }
            };
            let d: Vec<f32> = (0..o)
                .map(|oc| {
                    removed
                        .iter()
                        .flat_map(|&ch| ch * c.block..(ch + 1) * c.block)
                        .map(|f| at(f, oc) * mean[f])
                        .sum()
                })
                .collect();
            (o, d)
        }
    };
    add_to_bias(graph, c.index, outs, &delta)
}

/// Per-channel means from an NCHW mean tensor (channel-major blocks).
fn mean_per_channel(mean: &[f32], channels: usize) -> Vec<f32> {
    let per = (mean.len() / channels.max(1)).max(1);
    (0..channels)
        .map(|c| {
            let s = mean.get(c * per..(c + 1) * per).unwrap_or(&[]);
            s.iter().sum::<f32>() / s.len().max(1) as f32
        })
        .collect()
}

/// Mean value of each element of the `names` tensors over `samples`, from
/// tract running the unpruned model at `path` (for [`prune_channels`]'s bias
/// correction).
pub fn activation_means(
    path: &std::path::Path,
    input_shape: &[usize],
    names: &[String],
    samples: &[Vec<f32>],
) -> Result<ActivationMeans, crate::reference::ReferenceError> {
    // The graph input is the samples themselves; tract cannot return it as
    // an extra output.
    let inputs: Vec<String> = super::load_model(path)
        .ok()
        .and_then(|m| m.graph)
        .map(|g| g.input.into_iter().map(|i| i.name).collect())
        .unwrap_or_default();
    let inner: Vec<String> = names
        .iter()
        .filter(|n| !inputs.contains(n))
        .cloned()
        .collect();
    let reference = crate::reference::TractReference::load(path, input_shape, &inner)?;
    let mut sums: Vec<Vec<f64>> = vec![Vec::new(); inner.len()];
    let mut input_sum: Vec<f64> = Vec::new();
    for x in samples {
        if input_sum.is_empty() {
            input_sum = vec![0.0; x.len()];
        }
        for (a, b) in input_sum.iter_mut().zip(x) {
            *a += *b as f64;
        }
        let outs = reference.run(x)?;
        for (sum, v) in sums.iter_mut().zip(outs.iter().skip(1)) {
            if sum.is_empty() {
                *sum = vec![0.0; v.len()];
            }
            for (a, b) in sum.iter_mut().zip(v) {
                *a += *b as f64;
            }
        }
    }
    let n = samples.len().max(1) as f64;
    let mean = |s: &[f64]| s.iter().map(|v| (v / n) as f32).collect::<Vec<f32>>();
    let mut out: ActivationMeans = inner
        .iter()
        .cloned()
        .zip(sums.iter().map(|s| mean(s)))
        .collect();
    for name in names.iter().filter(|n| inputs.contains(n)) {
        out.insert(name.clone(), mean(&input_sum));
    }
    Ok(out)
}

/// The tensors whose mean activations bias correction needs.
pub fn correction_inputs(model: &ModelProto) -> Result<Vec<String>, PruneError> {
    let Some(graph) = model.graph.as_ref() else {
        return Ok(Vec::new());
    };
    let mut names = Vec::new();
    for g in channel_groups(graph)? {
        for c in g.consumers {
            if !names.contains(&c.input) {
                names.push(c.input);
            }
        }
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn select_keeps_channels_along_any_axis() {
        // [2, 3] keep columns 0 and 2.
        let v = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        assert_eq!(select(&v, &[2, 3], 1, &[0, 2], 1), vec![1.0, 3.0, 4.0, 6.0]);
        assert_eq!(select(&v, &[2, 3], 0, &[1], 1), vec![4.0, 5.0, 6.0]);
        // [1, 4] as 2 channels of 2 features: keep channel 1.
        assert_eq!(
            select(&[1.0, 2.0, 3.0, 4.0], &[1, 4], 1, &[1], 2),
            vec![3.0, 4.0]
        );
        // [2, 2, 2]: keep middle index 1.
        let v: Vec<f32> = (0..8).map(|x| x as f32).collect();
        assert_eq!(select(&v, &[2, 2, 2], 1, &[1], 1), vec![2.0, 3.0, 6.0, 7.0]);
    }

    #[test]
    fn smallest_breaks_ties_in_order() {
        assert_eq!(smallest(&[3.0, 1.0, 1.0, 0.5], 2), vec![3, 1]);
    }
}
