//! The quantise pass: each activation tensor's int8 parameters, from the
//! calibrated ranges, or inherited through the ops that keep their input's
//! scale (pooling, reshape, transpose); softmax outputs take TFLite's fixed
//! 1/256 scale. Float plans quantise nothing.

use edgefit_engine::Precision;

use super::CompileError;
use crate::ir::{Graph, Op};
use crate::quant::params::QuantParams;

/// One entry per graph tensor (`None` for float plans).
pub fn activation_quant(
    graph: &Graph,
    precision: Precision,
    ranges: Option<&[(f32, f32)]>,
) -> Result<Vec<Option<QuantParams>>, CompileError> {
    let mut quant: Vec<Option<QuantParams>> = vec![None; graph.tensors.len()];
    if precision != Precision::Int8 {
        return Ok(quant);
    }
    let ranges = ranges.ok_or(CompileError::MissingRanges {
        got: 0,
        expected: graph.tensors.len(),
    })?;
    if ranges.len() != graph.tensors.len() {
        return Err(CompileError::MissingRanges {
            got: ranges.len(),
            expected: graph.tensors.len(),
        });
    }
    quant[graph.input] = Some(QuantParams::from_range(
        ranges[graph.input].0,
        ranges[graph.input].1,
    ));
    // A fused conv's own (pre-addition) result keeps its calibrated parameters.
    for node in &graph.nodes {
        if let Op::Conv(c) = &node.op {
            if let Some(r) = c.residual {
                let (lo, hi) = ranges[r.conv_output];
                quant[r.conv_output] = Some(QuantParams::from_range(lo, hi));
            }
        }
    }
    for node in &graph.nodes {
        let q = match node.op {
            Op::MaxPool(_)
            | Op::AvgPool(_)
            | Op::GlobalAvgPool
            | Op::Reshape
            | Op::Transpose { .. } => quant[node.inputs[0]],
            // Probabilities in [0, 1): TFLite's fixed softmax quantisation.
            Op::Softmax { .. } => Some(QuantParams {
                scale: 1.0 / 256.0,
                zero_point: -128,
            }),
            _ => {
                let (lo, hi) = ranges[node.output];
                Some(QuantParams::from_range(lo, hi))
            }
        };
        quant[node.output] = q;
    }
    Ok(quant)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::Pool;

    fn chain(ops: Vec<Op>) -> Graph {
        let shape: &[usize] = &[1, 2, 4, 4];
        crate::ir::chain(&vec![shape; ops.len() + 1], ops)
    }

    #[test]
    fn pools_and_views_inherit_softmax_is_fixed_the_rest_is_calibrated() {
        let pool = Pool {
            kernel: [2, 2],
            stride: [2, 2],
            pads: [0; 4],
            count_include_pad: false,
        };
        let g = chain(vec![
            Op::MaxPool(pool),
            Op::Add {
                activation: crate::ir::Activation::None,
            },
            Op::Reshape,
            Op::Softmax { axes: vec![1] },
        ]);
        let ranges = [
            (-1.0, 1.0),
            (-5.0, 5.0),
            (0.0, 2.0),
            (-9.0, 9.0),
            (0.0, 1.0),
        ];
        let q = activation_quant(&g, Precision::Int8, Some(&ranges)).unwrap();
        let cal = |i: usize| Some(QuantParams::from_range(ranges[i].0, ranges[i].1));
        assert_eq!(q[0], cal(0));
        assert_eq!(
            q[1], q[0],
            "max pool keeps its input's parameters, not its range"
        );
        assert_eq!(q[2], cal(2));
        assert_eq!(q[3], q[2], "a reshape keeps its input's parameters");
        assert_eq!(
            q[4],
            Some(QuantParams {
                scale: 1.0 / 256.0,
                zero_point: -128
            })
        );
        // Float plans: nothing; int8 without ranges: refused with the count.
        assert!(activation_quant(&g, Precision::F32, None)
            .unwrap()
            .iter()
            .all(Option::is_none));
        assert!(matches!(
            activation_quant(&g, Precision::Int8, Some(&ranges[..3])),
            Err(CompileError::MissingRanges {
                got: 3,
                expected: 5
            })
        ));
    }
}
