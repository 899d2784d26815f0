//! Quantisation on the host: calibration of activation ranges and the TFLite int8
//! scheme's parameters.

pub mod calibrate;
pub mod params;

use std::path::Path;

use crate::ir::Graph;
use crate::reference::{ReferenceError, TractReference};
use calibrate::{CalibrationMethod, Calibrator};

/// Runs the f32 graph through tract over `samples` (NCHW f32, the model's input
/// shape) and returns a calibrated range per graph tensor (indexed by `TensorId`).
/// `progress(done, total)` is called after each sample of each pass.
pub fn calibrate_graph(
    onnx: &Path,
    graph: &Graph,
    samples: &[Vec<f32>],
    method: CalibrationMethod,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Vec<(f32, f32)>, ReferenceError> {
    let input_shape = graph.tensor(graph.input).shape.clone();
    // tract returns the model output first; every other computed tensor is an extra output.
    let extras: Vec<String> = graph
        .tensors
        .iter()
        .enumerate()
        .filter(|&(t, _)| t != graph.input && t != graph.output)
        .map(|(_, tensor)| tensor.name.clone())
        .collect();
    let reference = TractReference::load(onnx, &input_shape, &extras)?;
    // Position of each graph tensor in tract's outputs (the input is the sample itself).
    let mut slot = vec![usize::MAX; graph.tensors.len()];
    slot[graph.output] = 1;
    let mut next = 2;
    for (t, slot_t) in slot.iter_mut().enumerate() {
        if t != graph.input && t != graph.output {
            *slot_t = next;
            next += 1;
        }
    }
    let mut calibrator = Calibrator::new(method, graph.tensors.len());
    let total = samples.len() * calibrator.passes();
    let mut done = 0;
    for pass in 0..calibrator.passes() {
        for sample in samples {
            let outputs = reference.run(sample)?;
            let values: Vec<Vec<f32>> = (0..graph.tensors.len())
                .map(|t| {
                    if t == graph.input {
                        sample.clone()
                    } else {
                        outputs[slot[t] - 1].clone()
                    }
                })
                .collect();
            calibrator.observe(pass, &values);
            done += 1;
            progress(done, total);
        }
    }
    Ok(calibrator.ranges())
}

/// Seeded uniform [0, 1) inputs, for models without a matching dataset: plans
/// calibrated this way are for size, memory and speed only.
pub fn synthetic_samples(shape: &[usize], count: usize, seed: u64) -> Vec<Vec<f32>> {
    let n: usize = shape.iter().product();
    let mut state = seed.max(1);
    (0..count)
        .map(|_| {
            (0..n)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    (state >> 40) as f32 / (1u64 << 24) as f32
                })
                .collect()
        })
        .collect()
}
