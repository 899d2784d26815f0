//! Shape ops against the engine's NHWC storage: each graph below once gave a
//! silently wrong answer (issue "correct or refused"). Each is built here as a
//! real ONNX file, run by tract (the reference) and by the compiled plan, and
//! must agree, or be refused at import naming the node.

use std::path::{Path, PathBuf};

use edgefit::compile::compile;
use edgefit::import::{import_onnx, ImportOptions};
use edgefit::quant::calibrate::CalibrationMethod;
use edgefit::quant::calibrate_graph;
use edgefit::reference::TractReference;
use edgefit::runner::PlanRunner;
use edgefit_engine::{KernelPath, Precision};
use prost::Message;
use tract_onnx::pb;

/// A small seeded generator for weights and inputs.
struct Rng(u64);
impl Rng {
    fn values(&mut self, n: usize) -> Vec<f32> {
        (0..n)
            .map(|_| {
                self.0 ^= self.0 << 13;
                self.0 ^= self.0 >> 7;
                self.0 ^= self.0 << 17;
                (self.0 % 2001) as f32 / 1000.0 - 1.0
            })
            .collect()
    }
}

fn value(name: &str, shape: &[usize]) -> pb::ValueInfoProto {
    use pb::tensor_shape_proto::{dimension::Value, Dimension};
    pb::ValueInfoProto {
        name: name.into(),
        r#type: Some(pb::TypeProto {
            value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor {
                elem_type: 1,
                shape: Some(pb::TensorShapeProto {
                    dim: shape
                        .iter()
                        .map(|&d| Dimension {
                            value: Some(Value::DimValue(d as i64)),
                            ..Default::default()
                        })
                        .collect(),
                }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn floats(name: &str, shape: &[usize], data: Vec<f32>) -> pb::TensorProto {
    pb::TensorProto {
        name: name.into(),
        dims: shape.iter().map(|&d| d as i64).collect(),
        data_type: 1,
        float_data: data,
        ..Default::default()
    }
}

fn ints(name: &str, data: &[i64]) -> pb::TensorProto {
    pb::TensorProto {
        name: name.into(),
        dims: vec![data.len() as i64],
        data_type: 7,
        int64_data: data.to_vec(),
        ..Default::default()
    }
}

fn attr_ints(name: &str, v: &[i64]) -> pb::AttributeProto {
    pb::AttributeProto {
        name: name.into(),
        r#type: 7,
        ints: v.to_vec(),
        ..Default::default()
    }
}

fn attr_int(name: &str, v: i64) -> pb::AttributeProto {
    pb::AttributeProto {
        name: name.into(),
        r#type: 2,
        i: v,
        ..Default::default()
    }
}

fn node(op: &str, inputs: &[&str], output: &str, attrs: Vec<pb::AttributeProto>) -> pb::NodeProto {
    pb::NodeProto {
        name: format!("{op}_{output}"),
        op_type: op.into(),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: vec![output.into()],
        attribute: attrs,
        ..Default::default()
    }
}

/// Writes the model to a temporary file (one name per test: they run in
/// parallel); returns its path.
fn write_model(
    name: &str,
    nodes: Vec<pb::NodeProto>,
    inits: Vec<pb::TensorProto>,
    input: (&[usize], &str),
    output: (&[usize], &str),
) -> PathBuf {
    let model = pb::ModelProto {
        ir_version: 8,
        producer_name: "edgefit-test".into(),
        opset_import: vec![pb::OperatorSetIdProto {
            domain: String::new(),
            version: 13,
        }],
        graph: Some(pb::GraphProto {
            name: name.into(),
            node: nodes,
            initializer: inits,
            input: vec![value(input.1, input.0)],
            output: vec![value(output.1, output.0)],
            ..Default::default()
        }),
        ..Default::default()
    };
    let dir = std::env::temp_dir().join(format!("edgefit-layout-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{name}.onnx"));
    std::fs::write(&path, model.encode_to_vec()).unwrap();
    path
}

/// The f32 plan gives tract's output on a few random inputs.
fn assert_matches_tract(path: &Path, input_shape: &[usize]) {
    let model = import_onnx(path, &ImportOptions::default()).unwrap();
    let plan = compile(&model.graph, Precision::F32, None, 1).unwrap();
    let tract = TractReference::load(path, input_shape, &[]).unwrap();
    let mut runner = PlanRunner::new(&plan.bytes).unwrap();
    let mut rng = Rng(0x5EED);
    for _ in 0..4 {
        let x = rng.values(input_shape.iter().product());
        let want = tract.run(&x).unwrap().swap_remove(0);
        let got = runner.run(&x).unwrap();
        assert_eq!(got.len(), want.len());
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert!(
                (g - w).abs() <= 1e-5 + 1e-4 * w.abs(),
                "{}: output {i}: plan {g}, tract {w}",
                path.display()
            );
        }
    }
}

fn conv(
    rng: &mut Rng,
    name: &str,
    x: &str,
    out: &str,
    cin: usize,
    cout: usize,
) -> (pb::NodeProto, Vec<pb::TensorProto>) {
    let (w, b) = (format!("{name}_w"), format!("{name}_b"));
    (
        node(
            "Conv",
            &[x, &w, &b],
            out,
            vec![attr_ints("pads", &[1, 1, 1, 1])],
        ),
        vec![
            floats(&w, &[cout, cin, 3, 3], rng.values(cout * cin * 9)),
            floats(&b, &[cout], rng.values(cout)),
        ],
    )
}

#[test]
fn flatten_of_a_feature_map_as_the_output_is_in_nchw_order() {
    let mut rng = Rng(1);
    let (c, w) = conv(&mut rng, "c", "x", "y", 2, 3);
    let path = write_model(
        "conv_flatten",
        vec![c, node("Flatten", &["y"], "z", vec![])],
        w,
        (&[1, 2, 4, 4], "x"),
        (&[1, 48], "z"),
    );
    assert_matches_tract(&path, &[1, 2, 4, 4]);
}

#[test]
fn a_feature_map_as_the_output_is_in_nchw_order() {
    let mut rng = Rng(2);
    let (c, w) = conv(&mut rng, "c", "x", "y", 2, 3);
    let path = write_model(
        "conv_out",
        vec![c],
        w,
        (&[1, 2, 4, 4], "x"),
        (&[1, 3, 4, 4], "y"),
    );
    assert_matches_tract(&path, &[1, 2, 4, 4]);
}

#[test]
fn reshape_from_2d_into_a_map_then_global_pool() {
    let path = write_model(
        "reshape_gap",
        vec![
            node("Reshape", &["x", "shape"], "m", vec![]),
            node("GlobalAveragePool", &["m"], "y", vec![]),
        ],
        vec![ints("shape", &[1, 2, 3, 4])],
        (&[1, 24], "x"),
        (&[1, 2, 1, 1], "y"),
    );
    assert_matches_tract(&path, &[1, 24]);
}

#[test]
fn softmax_over_channels_of_a_map_is_exact_and_over_width_refused() {
    let mut rng = Rng(3);
    let (c, w) = conv(&mut rng, "c", "x", "y", 2, 3);
    let channels = write_model(
        "softmax_c",
        vec![
            c.clone(),
            node("Softmax", &["y"], "z", vec![attr_int("axis", 1)]),
        ],
        w.clone(),
        (&[1, 2, 4, 4], "x"),
        (&[1, 3, 4, 4], "z"),
    );
    assert_matches_tract(&channels, &[1, 2, 4, 4]);
    let width = write_model(
        "softmax_w",
        vec![c, node("Softmax", &["y"], "z", vec![attr_int("axis", -1)])],
        w,
        (&[1, 2, 4, 4], "x"),
        (&[1, 3, 4, 4], "z"),
    );
    let e = import_onnx(&width, &ImportOptions::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("Softmax_z") && e.contains("axis [3]"), "{e}");
}

#[test]
fn a_batch_other_than_one_is_refused_naming_input_shape() {
    let mut rng = Rng(4);
    let (c, w) = conv(&mut rng, "c", "x", "y", 1, 2);
    let path = write_model(
        "batch2",
        vec![c],
        w,
        (&[2, 1, 4, 4], "x"),
        (&[2, 2, 4, 4], "y"),
    );
    let e = import_onnx(&path, &ImportOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("batch of 2") && e.contains("--input-shape 1,1,4,4"),
        "{e}"
    );
    let forced = ImportOptions {
        input_shape: Some(vec![1, 1, 4, 4]),
    };
    assert!(import_onnx(&path, &forced).is_ok());
}

/// A Keras-style export (tf2onnx): NHWC input, a Transpose to NCHW for the
/// convolutions, a Transpose back before the flatten and the dense layer.
fn keras_style(name: &str, rng: &mut Rng) -> PathBuf {
    let (c, mut w) = conv(rng, "c", "nchw", "y", 2, 3);
    w.push(floats("fc_w", &[48, 5], rng.values(240)));
    w.push(floats("fc_b", &[5], rng.values(5)));
    w.push(ints("flat", &[1, -1]));
    write_model(
        name,
        vec![
            node(
                "Transpose",
                &["x"],
                "nchw",
                vec![attr_ints("perm", &[0, 3, 1, 2])],
            ),
            c,
            node("Relu", &["y"], "r", vec![]),
            node(
                "Transpose",
                &["r"],
                "nhwc",
                vec![attr_ints("perm", &[0, 2, 3, 1])],
            ),
            node("Reshape", &["nhwc", "flat"], "f", vec![]),
            node("MatMul", &["f", "fc_w"], "mm", vec![]),
            node("Add", &["mm", "fc_b"], "logits", vec![]),
        ],
        w,
        (&[1, 4, 4, 2], "x"),
        (&[1, 5], "logits"),
    )
}

#[test]
fn keras_style_transposes_match_tract() {
    let path = keras_style("keras_f32", &mut Rng(5));
    assert_matches_tract(&path, &[1, 4, 4, 2]);
}

#[test]
fn int8_plans_with_transposes_are_the_same_bytes_on_every_kernel_path() {
    let path = keras_style("keras_int8", &mut Rng(6));
    let model = import_onnx(&path, &ImportOptions::default()).unwrap();
    let mut rng = Rng(7);
    let samples: Vec<Vec<f32>> = (0..16).map(|_| rng.values(32)).collect();
    let ranges = calibrate_graph(
        &path,
        &model.graph,
        &samples,
        CalibrationMethod::MinMax,
        &mut |_, _| {},
    )
    .unwrap();
    let plan = compile(&model.graph, Precision::Int8, Some(&ranges), 1).unwrap();
    let mut fast = PlanRunner::new(&plan.bytes).unwrap();
    let mut portable = PlanRunner::with_kernels(&plan.bytes, KernelPath::Portable).unwrap();
    let tract = TractReference::load(&path, &[1, 4, 4, 2], &[]).unwrap();
    let mut agree = 0;
    for x in &samples {
        let a = fast.run(x).unwrap();
        portable.run(x).unwrap();
        assert_eq!(fast.raw_output().unwrap(), portable.raw_output().unwrap());
        let want = tract.run(x).unwrap().swap_remove(0);
        agree += usize::from(edgefit::runner::argmax(&a) == edgefit::runner::argmax(&want));
    }
    // int8 is an approximation: most top-1 answers agree with f32 (a wrong
    // layout would leave them at chance, 1 in 5).
    assert!(agree >= 12, "int8 agrees with tract on {agree} of 16");
}
