//! Static activation memory planning, after TensorFlow Lite Micro's
//! `GreedyMemoryPlanner`: every buffer has a size and a lifetime (first and last
//! step that touch it); buffers are placed largest first, each at the lowest offset
//! that does not overlap a buffer already placed whose lifetime overlaps its own.
//!
//! The interface is TFLM's three calls: [`MemoryPlanner::add_buffer`], then
//! [`MemoryPlanner::plan`] which gives every offset and the arena size (the peak).
//! The plan also carries the lower bound, the largest sum of simultaneously live
//! buffers over all steps, so waste is visible: no placement can do better.

use serde::Serialize;

use crate::ir::{Graph, TensorId};

/// Offsets and sizes are rounded up to this, as TFLM's arena does.
pub const ARENA_ALIGNMENT: usize = 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BufferRequest {
    pub size: usize,
    /// First step (op index) at which the buffer is written or read.
    pub first_use: usize,
    /// Last step at which it is read (inclusive).
    pub last_use: usize,
}

impl BufferRequest {
    fn overlaps(&self, other: &BufferRequest) -> bool {
        self.first_use <= other.last_use && other.first_use <= self.last_use
    }
}

#[derive(Debug, Default, Clone)]
pub struct MemoryPlanner {
    buffers: Vec<BufferRequest>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MemoryPlan {
    /// Arena offset of each buffer, in the order they were added.
    pub offsets: Vec<usize>,
    /// Bytes the arena needs: the end of the highest placed buffer.
    pub arena_size: usize,
    /// The largest sum of (unaligned) sizes of buffers live at the same step.
    pub lower_bound: usize,
}

fn align(n: usize) -> usize {
    n.div_ceil(ARENA_ALIGNMENT) * ARENA_ALIGNMENT
}

impl MemoryPlanner {
    pub fn new() -> MemoryPlanner {
        MemoryPlanner::default()
    }

    /// Registers a buffer live from `first_use` to `last_use` (inclusive); returns its index.
    pub fn add_buffer(&mut self, size: usize, first_use: usize, last_use: usize) -> usize {
        debug_assert!(first_use <= last_use);
        self.buffers.push(BufferRequest {
            size,
            first_use,
            last_use: last_use.max(first_use),
        });
        self.buffers.len() - 1
    }

    pub fn buffers(&self) -> &[BufferRequest] {
        &self.buffers
    }

    pub fn plan(&self) -> MemoryPlan {
        let mut order: Vec<usize> = (0..self.buffers.len()).collect();
        // Largest first; ties by earlier first use, then by index, for a deterministic plan.
        order.sort_by_key(|&i| {
            (
                std::cmp::Reverse(self.buffers[i].size),
                self.buffers[i].first_use,
                i,
            )
        });
        let mut offsets = vec![0usize; self.buffers.len()];
        let mut placed: Vec<usize> = Vec::with_capacity(self.buffers.len());
        let mut arena_size = 0;
        for &i in &order {
            let this = self.buffers[i];
            let size = align(this.size);
            // Intervals taken by placed buffers that are live at the same time, by offset.
            let mut taken: Vec<(usize, usize)> = placed
                .iter()
                .filter(|&&j| self.buffers[j].overlaps(&this))
                .map(|&j| (offsets[j], offsets[j] + align(self.buffers[j].size)))
                .collect();
            taken.sort_unstable();
            let mut candidate = 0;
            for (start, end) in taken {
                if candidate + size <= start {
                    break; // fits in the gap before this interval
                }
                candidate = candidate.max(end);
            }
            offsets[i] = candidate;
            arena_size = arena_size.max(candidate + size);
            placed.push(i);
        }
        MemoryPlan {
            offsets,
            arena_size,
            lower_bound: self.lower_bound(),
        }
    }

    /// Largest sum of sizes of the buffers live at one step.
    pub fn lower_bound(&self) -> usize {
        let steps = self
            .buffers
            .iter()
            .map(|b| b.last_use + 1)
            .max()
            .unwrap_or(0);
        let mut delta = vec![0i64; steps + 1];
        // Difference array over steps: O(buffers + steps).
        for b in &self.buffers {
            delta[b.first_use] += b.size as i64;
            delta[b.last_use + 1] -= b.size as i64;
        }
        let mut running = 0i64;
        let mut best = 0i64;
        for d in delta.iter().take(steps) {
            running += d;
            best = best.max(running);
        }
        best as usize
    }
}

/// The activation memory plan of a graph at one element size.
#[derive(Debug, Clone, Serialize)]
pub struct ActivationPlan {
    pub bytes_per_element: usize,
    pub plan: MemoryPlan,
    /// The planner buffer holding each tensor (views share their source's buffer).
    pub tensor_buffer: Vec<usize>,
    /// Each tensor's offset inside its buffer (0 but for a tiled segment's
    /// input placed inside its output's buffer).
    pub tensor_delta: Vec<usize>,
    /// Per step: bytes of all buffers live at that step (for per-layer memory views).
    pub live_bytes: Vec<usize>,
}

impl ActivationPlan {
    pub fn offset_of(&self, tensor: TensorId) -> usize {
        self.plan.offsets[self.tensor_buffer[tensor]] + self.tensor_delta[tensor]
    }
}

/// A tiled segment as the memory planner sees it: nodes `first..=last` run
/// together, so every tensor they touch lives through all of them; the
/// tensors in `rows` (all but the last node's outputs) take only that many
/// rows; a fused residual writes apart from its skip (a row buffer cannot be
/// written in place); and `reuse` places an input inside the last node's
/// output buffer, `delta` bytes in, where the schedule consumes it first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowBuffers {
    pub first: usize,
    pub last: usize,
    pub rows: Vec<(TensorId, usize)>,
    pub reuse: Option<(TensorId, usize)>,
}

impl RowBuffers {
    fn holds(&self, node: usize) -> bool {
        (self.first..=self.last).contains(&node)
    }
}

/// Plans the activations of `graph` (input and output included) with
/// `bytes_per_element` bytes per value. Steps are node indices; the input is live
/// from step 0, the output to the last step. Reshape outputs alias their input; a
/// fused residual conv writes over its skip input.
pub fn plan_activations(graph: &Graph, bytes_per_element: usize) -> ActivationPlan {
    plan_activations_with(graph, bytes_per_element, None)
}

/// [`plan_activations`], with a tiled segment's row buffers.
pub fn plan_activations_with(
    graph: &Graph,
    bytes_per_element: usize,
    tiled: Option<&RowBuffers>,
) -> ActivationPlan {
    let steps = graph.nodes.len();
    // Each tensor's storage root: views resolve to the tensor they look at.
    let mut root: Vec<TensorId> = (0..graph.tensors.len()).collect();
    for (n, node) in graph.nodes.iter().enumerate() {
        let in_place = !graph.is_view(n);
        if in_place && tiled.is_some_and(|t| t.holds(n)) {
            continue;
        }
        if let Some(i) = graph.output_aliases_input(n) {
            root[node.output] = root[node.inputs[i]];
        }
    }
    let mut delta = vec![0usize; graph.tensors.len()];
    if let Some((input, at)) = tiled.and_then(|t| t.reuse.map(|r| (r, t))) {
        let out = graph.nodes[at.last].output;
        root[input.0] = root[out];
        delta[input.0] = input.1;
    }
    let mut first = vec![usize::MAX; graph.tensors.len()];
    let mut last = vec![0usize; graph.tensors.len()];
    let touch = |t: TensorId, step: usize, first: &mut Vec<usize>, last: &mut Vec<usize>| {
        let r = root[t];
        first[r] = first[r].min(step);
        last[r] = last[r].max(step);
    };
    touch(graph.input, 0, &mut first, &mut last);
    for (step, node) in graph.nodes.iter().enumerate() {
        for &i in &node.inputs {
            touch(i, step, &mut first, &mut last);
        }
        touch(node.output, step, &mut first, &mut last);
    }
    touch(graph.output, steps.saturating_sub(1), &mut first, &mut last);
    let mut size: Vec<usize> = graph
        .tensors
        .iter()
        .map(|t| t.elements() * bytes_per_element)
        .collect();
    if let Some(t) = tiled {
        // Everything a segment touches lives through the whole segment.
        for node in &graph.nodes[t.first..=t.last] {
            for &x in node.inputs.iter().chain([&node.output]) {
                touch(x, t.first, &mut first, &mut last);
                touch(x, t.last, &mut first, &mut last);
            }
        }
        for &(x, rows) in &t.rows {
            let shape = &graph.tensors[x].shape; // NCHW
            size[x] = rows * shape[1] * shape[3] * bytes_per_element;
        }
        if let Some((input, at)) = t.reuse {
            let out = root[graph.nodes[t.last].output];
            size[out] = size[out].max(at + size[input]);
        }
    }

    let mut planner = MemoryPlanner::new();
    let mut buffer_of_root = vec![usize::MAX; graph.tensors.len()];
    for t in 0..graph.tensors.len() {
        if root[t] == t && first[t] != usize::MAX {
            buffer_of_root[t] = planner.add_buffer(size[t], first[t], last[t]);
        }
    }
    let tensor_buffer: Vec<usize> = (0..graph.tensors.len())
        .map(|t| buffer_of_root[root[t]])
        .collect();
    let mut live_bytes = vec![0usize; steps];
    for b in planner.buffers() {
        for slot in live_bytes.iter_mut().take(b.last_use + 1).skip(b.first_use) {
            *slot += b.size;
        }
    }
    ActivationPlan {
        bytes_per_element,
        plan: planner.plan(),
        tensor_buffer,
        tensor_delta: delta,
        live_bytes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tiny deterministic generator, so the property test needs no extra crate.
    struct XorShift(u64);
    impl XorShift {
        fn next(&mut self, below: usize) -> usize {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            (self.0 % below as u64) as usize
        }
    }

    #[test]
    fn chain_reuses_memory() {
        // a -> b -> c: a and c never coexist, so they share an offset.
        let mut p = MemoryPlanner::new();
        p.add_buffer(100, 0, 0);
        p.add_buffer(50, 0, 1);
        p.add_buffer(100, 1, 1);
        let plan = p.plan();
        assert_eq!(plan.offsets[0], plan.offsets[2]);
        assert_eq!(plan.lower_bound, 150);
        assert_eq!(plan.arena_size, 112 + 64);
    }

    #[test]
    fn residual_keeps_the_skip_alive() {
        // x (step 0..2), conv1 out (0..1), conv2 out (1..2), add out (2..2)
        let mut p = MemoryPlanner::new();
        for (first, last) in [(0, 2), (0, 1), (1, 2), (2, 2)] {
            p.add_buffer(1024, first, last);
        }
        let plan = p.plan();
        assert_eq!(plan.lower_bound, 3 * 1024);
        assert_eq!(plan.arena_size, 3 * 1024);
    }

    #[test]
    fn greedy_never_overlaps_live_buffers_and_respects_the_bound() {
        let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
        for _ in 0..500 {
            let mut p = MemoryPlanner::new();
            let n = 1 + rng.next(30);
            for _ in 0..n {
                let first = rng.next(20);
                let last = first + rng.next(6);
                p.add_buffer(1 + rng.next(5000), first, last);
            }
            let plan = p.plan();
            let b = p.buffers();
            assert!(plan.arena_size >= plan.lower_bound);
            for i in 0..n {
                assert_eq!(plan.offsets[i] % ARENA_ALIGNMENT, 0);
                assert!(plan.offsets[i] + b[i].size <= plan.arena_size);
                for j in i + 1..n {
                    if b[i].overlaps(&b[j]) {
                        let (a0, a1) = (plan.offsets[i], plan.offsets[i] + b[i].size);
                        let (b0, b1) = (plan.offsets[j], plan.offsets[j] + b[j].size);
                        assert!(
                            a1 <= b0 || b1 <= a0,
                            "buffers {i} and {j} overlap in time and space"
                        );
                    }
                }
            }
        }
    }
}
