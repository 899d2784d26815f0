//! Quantisation on the host: calibration of activation ranges and the TFLite int8
//! scheme's parameters.

pub mod calibrate;
pub mod params;

use std::path::Path;

use crate::ir::{onnx_value_name, Graph};
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
    // Before tract, whose own error for missing weights is "Wrong number of inputs".
    graph.require_weight_values()?;
    let input_shape = graph.tensor(graph.input).shape.clone();
    // tract returns the model output first; every other ONNX value is an extra
    // output. A derived tensor takes its ONNX value's values (same elements,
    // another shape; ranges do not depend on the shape).
    let onnx_name = |t: usize| onnx_value_name(&graph.tensors[t].name);
    let (input_name, output_name) = (onnx_name(graph.input), onnx_name(graph.output));
    let mut extras: Vec<String> = vec![];
    // Position of each graph tensor in tract's outputs; 0 for the input (the sample itself).
    let mut slot = vec![0usize; graph.tensors.len()];
    for (t, slot_t) in slot.iter_mut().enumerate() {
        let name = onnx_name(t);
        *slot_t = if name == input_name {
            0
        } else if name == output_name {
            1
        } else if let Some(i) = extras.iter().position(|e| e == name) {
            i + 2
        } else {
            extras.push(name.to_owned());
            extras.len() + 1
        };
    }
    let reference = TractReference::load(onnx, &input_shape, &extras)?;
    let mut calibrator = Calibrator::new(method, graph.tensors.len());
    let total = samples.len() * calibrator.passes();
    let mut done = 0;
    for pass in 0..calibrator.passes() {
        for sample in samples {
            let outputs = reference.run(sample)?;
            let values: Vec<Vec<f32>> = (0..graph.tensors.len())
                .map(|t| {
                    if slot[t] == 0 {
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

/// Most elements one input may have: 2^28 (1 GiB of f32). A shape beyond
/// it is refused before anything is allocated.
pub const MAX_INPUT_ELEMENTS: usize = 1 << 28;

/// Most bytes all synthetic calibration samples together may take: 2 GiB.
pub const MAX_SYNTHETIC_BYTES: usize = 1 << 31;

/// An input too large to make samples for.
#[derive(Debug, thiserror::Error)]
pub enum SampleSizeError {
    #[error(
        "an input of shape {shape:?} has {elements} elements; edgefit takes at most \
         {MAX_INPUT_ELEMENTS} (1 GiB of f32) per input: give a smaller --input-shape"
    )]
    TooManyElements { shape: Vec<usize>, elements: String },
    #[error(
        "{count} synthetic samples of shape {shape:?} take {bytes} bytes, more than the \
         {MAX_SYNTHETIC_BYTES}-byte (2 GiB) limit: lower --calib-samples or the input shape"
    )]
    TooManySamples {
        shape: Vec<usize>,
        count: usize,
        bytes: String,
    },
}

/// Elements of one input of `shape`, refused beyond [`MAX_INPUT_ELEMENTS`]
/// (checked: a product past `usize` is refused too, not wrapped).
pub fn input_elements(shape: &[usize]) -> Result<usize, SampleSizeError> {
    let exact = shape
        .iter()
        .try_fold(1u128, |acc, &d| acc.checked_mul(d as u128));
    match exact {
        Some(n) if n <= MAX_INPUT_ELEMENTS as u128 => Ok(n as usize),
        _ => Err(SampleSizeError::TooManyElements {
            shape: shape.to_vec(),
            elements: exact.map_or_else(|| "more than 2^128".to_owned(), |n| n.to_string()),
        }),
    }
}

/// Seeded uniform [0, 1) inputs, for models without a matching dataset: plans
/// calibrated this way are for size, memory and speed only. Refuses shapes
/// and counts whose samples would not fit in memory (see
/// [`MAX_INPUT_ELEMENTS`], [`MAX_SYNTHETIC_BYTES`]).
pub fn synthetic_samples(
    shape: &[usize],
    count: usize,
    seed: u64,
) -> Result<Vec<Vec<f32>>, SampleSizeError> {
    let n = input_elements(shape)?;
    let bytes = (n as u128) * (count as u128) * 4;
    if bytes > MAX_SYNTHETIC_BYTES as u128 {
        return Err(SampleSizeError::TooManySamples {
            shape: shape.to_vec(),
            count,
            bytes: bytes.to_string(),
        });
    }
    let mut state = seed.max(1);
    Ok((0..count)
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
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absurd_inputs_are_refused_before_allocating() {
        let e = synthetic_samples(&[1, 1, 100_000, 100_000], 500, 1).unwrap_err();
        assert!(e.to_string().contains("10000000000 elements"), "{e}");
        assert!(e.to_string().contains("at most 268435456"), "{e}");
        let e = input_elements(&[usize::MAX, usize::MAX, 2]).unwrap_err();
        assert!(e.to_string().contains("more than 2^128"), "{e}");
        let e = synthetic_samples(&[1, 3, 224, 224], 5000, 1).unwrap_err();
        assert!(e.to_string().contains("lower --calib-samples"), "{e}");
        let ok = synthetic_samples(&[1, 1, 28, 28], 3, 1).unwrap();
        assert_eq!((ok.len(), ok[0].len()), (3, 784));
        assert!(ok.iter().flatten().all(|v| (0.0..1.0).contains(v)));
    }
}
