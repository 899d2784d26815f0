//! Architecture families: VGG- and ResNet-style networks at any of
//! torchvision's depths, a width multiplier and an input resolution, written
//! as graph-only ONNX by edgefit itself (no Python), and what each board can
//! hold of them.
//!
//! The graphs are torchvision's definitions (`torchvision.models.vgg*`,
//! `resnet*`, v1.5 bottlenecks: the stride on the 3x3 convolution), scaled:
//! every channel count (and VGG's 4096-wide classifier) times the width
//! multiplier, rounded, at least 1; the input `resolution` x `resolution` x 3.
//! VGG's classifier reads the flattened last feature map (`resolution / 32`
//! squared positions: torchvision's adaptive 7x7 average pool is the
//! identity at 224 and is left out). BatchNormalization stays a node of its
//! own, as torchvision exports it, so parameter counts are torchvision's. At
//! width 1 and 224x224 the parameter and MAC counts equal torchvision's
//! (tested against its exports in `models/imagenet/`).
//!
//! Weights are graph inputs with static shapes (`export_params=False`):
//! the files are a few kB, and every figure edgefit gives for them is
//! computed from the graph.

use std::path::{Path, PathBuf};

use edgefit_profiles::Profile;
use edgefit_report::FamilyMember as FamilyFigures;
use prost::Message;
use tract_onnx::pb;

use crate::variant::{self, VariantError};

/// VGG or ResNet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    Vgg,
    Resnet,
}

impl Family {
    pub fn name(self) -> &'static str {
        match self {
            Family::Vgg => "VGG",
            Family::Resnet => "ResNet",
        }
    }

    /// torchvision's depths of this family.
    pub fn depths(self) -> &'static [u32] {
        match self {
            Family::Vgg => &[11, 13, 16, 19],
            Family::Resnet => &[18, 34, 50, 101, 152],
        }
    }
}

/// One member of a family.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Member {
    pub family: Family,
    pub depth: u32,
    /// Channel multiplier (1 = torchvision's widths).
    pub width: f64,
    /// Input height and width.
    pub resolution: u32,
    /// Classifier outputs.
    pub classes: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum FamilyError {
    #[error("{family} has no depth {depth}: torchvision's are {depths:?}")]
    Depth {
        family: &'static str,
        depth: u32,
        depths: &'static [u32],
    },
    #[error("width multiplier {0} is not in (0, 4]")]
    Width(f64),
    #[error(
        "resolution {0} is not a multiple of 32 from 32 to 512: both families halve it five times"
    )]
    Resolution(u32),
    #[error("{0} classes: at least 1")]
    Classes(u32),
    #[error("write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Import(#[from] VariantError),
}

/// VGG's configurations: channels, 0 = max pool (torchvision's A, B, D, E).
fn vgg_config(depth: u32) -> Option<&'static [u32]> {
    const A: &[u32] = &[64, 0, 128, 0, 256, 256, 0, 512, 512, 0, 512, 512, 0];
    const B: &[u32] = &[
        64, 64, 0, 128, 128, 0, 256, 256, 0, 512, 512, 0, 512, 512, 0,
    ];
    const D: &[u32] = &[
        64, 64, 0, 128, 128, 0, 256, 256, 256, 0, 512, 512, 512, 0, 512, 512, 512, 0,
    ];
    const E: &[u32] = &[
        64, 64, 0, 128, 128, 0, 256, 256, 256, 256, 0, 512, 512, 512, 512, 0, 512, 512, 512, 512, 0,
    ];
    match depth {
        11 => Some(A),
        13 => Some(B),
        16 => Some(D),
        19 => Some(E),
        _ => None,
    }
}

/// ResNet's blocks per stage and whether they are bottlenecks.
fn resnet_config(depth: u32) -> Option<([u32; 4], bool)> {
    match depth {
        18 => Some(([2, 2, 2, 2], false)),
        34 => Some(([3, 4, 6, 3], false)),
        50 => Some(([3, 4, 6, 3], true)),
        101 => Some(([3, 4, 23, 3], true)),
        152 => Some(([3, 8, 36, 3], true)),
        _ => None,
    }
}

/// A graph under construction: nodes, and the weights as graph inputs.
struct Builder {
    nodes: Vec<pb::NodeProto>,
    inputs: Vec<pb::ValueInfoProto>,
    count: usize,
}

fn value_info(name: &str, shape: &[usize]) -> pb::ValueInfoProto {
    use pb::tensor_shape_proto::{dimension::Value, Dimension};
    pb::ValueInfoProto {
        name: name.to_owned(),
        r#type: Some(pb::TypeProto {
            value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor {
                elem_type: pb::tensor_proto::DataType::Float as i32,
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

fn ints(name: &str, v: &[i64]) -> pb::AttributeProto {
    pb::AttributeProto {
        name: name.to_owned(),
        r#type: pb::attribute_proto::AttributeType::Ints as i32,
        ints: v.to_vec(),
        ..Default::default()
    }
}

fn int(name: &str, v: i64) -> pb::AttributeProto {
    pb::AttributeProto {
        name: name.to_owned(),
        r#type: pb::attribute_proto::AttributeType::Int as i32,
        i: v,
        ..Default::default()
    }
}

impl Builder {
    fn node(
        &mut self,
        op: &str,
        inputs: Vec<String>,
        attribute: Vec<pb::AttributeProto>,
    ) -> String {
        self.count += 1;
        let output = format!("{}_{}", op.to_ascii_lowercase(), self.count);
        self.nodes.push(pb::NodeProto {
            name: format!("{op}_{}", self.count),
            op_type: op.to_owned(),
            input: inputs,
            output: vec![output.clone()],
            attribute,
            ..Default::default()
        });
        output
    }

    fn weight(&mut self, what: &str, shape: &[usize]) -> String {
        let name = format!("{what}_{}", self.count + 1);
        self.inputs.push(value_info(&name, shape));
        name
    }

    #[allow(clippy::too_many_arguments)]
    fn conv(
        &mut self,
        x: &str,
        cin: usize,
        cout: usize,
        k: usize,
        stride: usize,
        pad: usize,
        bias: bool,
    ) -> String {
        let mut inputs = vec![x.to_owned(), self.weight("conv_w", &[cout, cin, k, k])];
        if bias {
            inputs.push(self.weight("conv_b", &[cout]));
        }
        let (k, s, p) = (k as i64, stride as i64, pad as i64);
        self.node(
            "Conv",
            inputs,
            vec![
                ints("kernel_shape", &[k, k]),
                ints("strides", &[s, s]),
                ints("pads", &[p, p, p, p]),
            ],
        )
    }

    fn bn(&mut self, x: &str, c: usize) -> String {
        let inputs = vec![
            x.to_owned(),
            self.weight("bn_scale", &[c]),
            self.weight("bn_bias", &[c]),
            self.weight("bn_mean", &[c]),
            self.weight("bn_var", &[c]),
        ];
        self.node("BatchNormalization", inputs, vec![])
    }

    fn relu(&mut self, x: &str) -> String {
        self.node("Relu", vec![x.to_owned()], vec![])
    }

    fn max_pool(&mut self, x: &str, k: i64, s: i64, p: i64) -> String {
        self.node(
            "MaxPool",
            vec![x.to_owned()],
            vec![
                ints("kernel_shape", &[k, k]),
                ints("strides", &[s, s]),
                ints("pads", &[p, p, p, p]),
            ],
        )
    }

    fn dense(&mut self, x: &str, n_in: usize, n_out: usize) -> String {
        let inputs = vec![
            x.to_owned(),
            self.weight("fc_w", &[n_out, n_in]),
            self.weight("fc_b", &[n_out]),
        ];
        self.node("Gemm", inputs, vec![int("transB", 1)])
    }
}

impl Member {
    /// Checks the member's settings.
    pub fn check(&self) -> Result<(), FamilyError> {
        let known = match self.family {
            Family::Vgg => vgg_config(self.depth).is_some(),
            Family::Resnet => resnet_config(self.depth).is_some(),
        };
        if !known {
            return Err(FamilyError::Depth {
                family: self.family.name(),
                depth: self.depth,
                depths: self.family.depths(),
            });
        }
        if !(self.width > 0.0 && self.width <= 4.0) {
            return Err(FamilyError::Width(self.width));
        }
        if !self.resolution.is_multiple_of(32) || !(32..=512).contains(&self.resolution) {
            return Err(FamilyError::Resolution(self.resolution));
        }
        if self.classes == 0 {
            return Err(FamilyError::Classes(self.classes));
        }
        Ok(())
    }

    /// e.g. `"vgg16-w0.5-r96"`.
    pub fn name(&self) -> String {
        format!(
            "{}{}-w{}-r{}",
            self.family.name().to_ascii_lowercase(),
            self.depth,
            self.width,
            self.resolution
        )
    }

    fn channels(&self, c: u32) -> usize {
        ((c as f64 * self.width).round() as usize).max(1)
    }

    /// The member as a graph-only ONNX model (opset 13).
    pub fn model(&self) -> Result<pb::ModelProto, FamilyError> {
        self.check()?;
        let mut b = Builder {
            nodes: Vec::new(),
            inputs: Vec::new(),
            count: 0,
        };
        let res = self.resolution as usize;
        let mut x = "input".to_owned();
        let logits = match self.family {
            Family::Vgg => {
                let mut c = 3;
                for &v in vgg_config(self.depth).unwrap_or_default() {
                    if v == 0 {
                        x = b.max_pool(&x, 2, 2, 0);
                    } else {
                        let out = self.channels(v);
                        x = b.conv(&x, c, out, 3, 1, 1, true);
                        x = b.relu(&x);
                        c = out;
                    }
                }
                let fm = res / 32;
                x = b.node("Flatten", vec![x], vec![int("axis", 1)]);
                let hidden = self.channels(4096);
                x = b.dense(&x, c * fm * fm, hidden);
                x = b.relu(&x);
                x = b.dense(&x, hidden, hidden);
                x = b.relu(&x);
                b.dense(&x, hidden, self.classes as usize)
            }
            Family::Resnet => {
                let (blocks, bottleneck) = resnet_config(self.depth).unwrap_or(([0; 4], false));
                let expansion = if bottleneck { 4 } else { 1 };
                let stem = self.channels(64);
                x = b.conv(&x, 3, stem, 7, 2, 3, false);
                x = b.bn(&x, stem);
                x = b.relu(&x);
                x = b.max_pool(&x, 3, 2, 1);
                let mut c = stem;
                for (stage, &n) in blocks.iter().enumerate() {
                    let planes = self.channels(64 << stage);
                    for i in 0..n {
                        let stride = if stage > 0 && i == 0 { 2 } else { 1 };
                        let out = planes * expansion;
                        let mut y = if bottleneck {
                            let y = b.conv(&x, c, planes, 1, 1, 0, false);
                            let y = b.bn(&y, planes);
                            let y = b.relu(&y);
                            let y = b.conv(&y, planes, planes, 3, stride, 1, false);
                            let y = b.bn(&y, planes);
                            let y = b.relu(&y);
                            let y = b.conv(&y, planes, out, 1, 1, 0, false);
                            b.bn(&y, out)
                        } else {
                            let y = b.conv(&x, c, planes, 3, stride, 1, false);
                            let y = b.bn(&y, planes);
                            let y = b.relu(&y);
                            let y = b.conv(&y, planes, out, 3, 1, 1, false);
                            b.bn(&y, out)
                        };
                        let skip = if stride != 1 || c != out {
                            let s = b.conv(&x, c, out, 1, stride, 0, false);
                            b.bn(&s, out)
                        } else {
                            x.clone()
                        };
                        y = b.node("Add", vec![y, skip], vec![]);
                        x = b.relu(&y);
                        c = out;
                    }
                }
                x = b.node("GlobalAveragePool", vec![x], vec![]);
                x = b.node("Flatten", vec![x], vec![int("axis", 1)]);
                b.dense(&x, c, self.classes as usize)
            }
        };
        let mut inputs = vec![value_info("input", &[1, 3, res, res])];
        inputs.append(&mut b.inputs);
        let output = value_info(&logits, &[1, self.classes as usize]);
        Ok(pb::ModelProto {
            ir_version: 7,
            producer_name: "edgefit".into(),
            producer_version: env!("CARGO_PKG_VERSION").into(),
            opset_import: vec![pb::OperatorSetIdProto {
                domain: String::new(),
                version: 13,
            }],
            graph: Some(pb::GraphProto {
                name: self.name(),
                node: b.nodes,
                input: inputs,
                output: vec![output],
                ..Default::default()
            }),
            ..Default::default()
        })
    }

    /// Writes the member's ONNX file into `dir`; returns its path.
    pub fn write(&self, dir: &Path) -> Result<PathBuf, FamilyError> {
        let path = dir.join(format!("{}.onnx", self.name()));
        let write = |source| FamilyError::Write {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(write)?;
        std::fs::write(&path, self.model()?.encode_to_vec()).map_err(write)?;
        Ok(path)
    }
}

/// Every member of `families` at `depths` (those of each family that exist
/// for it), `widths` and `resolutions`.
pub fn members(
    families: &[Family],
    depths: &[u32],
    widths: &[f64],
    resolutions: &[u32],
    classes: u32,
) -> Result<Vec<Member>, FamilyError> {
    let mut out = Vec::new();
    for &family in families {
        let mine: Vec<u32> = if depths.is_empty() {
            family.depths().to_vec()
        } else {
            depths
                .iter()
                .copied()
                .filter(|d| family.depths().contains(d))
                .collect()
        };
        for &depth in &mine {
            for &width in widths {
                for &resolution in resolutions {
                    let m = Member {
                        family,
                        depth,
                        width,
                        resolution,
                        classes,
                    };
                    m.check()?;
                    out.push(m);
                }
            }
        }
    }
    // A depth no chosen family has is a typo.
    if let Some(&d) = depths
        .iter()
        .find(|d| !families.iter().any(|f| f.depths().contains(d)))
    {
        let f = families.first().copied().unwrap_or(Family::Vgg);
        return Err(FamilyError::Depth {
            family: f.name(),
            depth: d,
            depths: f.depths(),
        });
    }
    Ok(out)
}

/// Writes each member into `dir` as ONNX, imports it back, and computes its
/// figures from the graph: parameters, MACs, weight bytes per precision, the
/// layer-by-layer arena (residual additions fused) per activation size; and
/// per profile, the precisions that fit.
pub fn family_figures(
    members: &[Member],
    dir: &Path,
    profiles: &[Profile],
) -> Result<Vec<FamilyFigures>, FamilyError> {
    let mut out = Vec::new();
    for m in members {
        let path = m.write(dir)?;
        let graph = variant::import(&path)?.graph;
        let f = crate::seed::graph_figures(&graph, profiles);
        let w = f.analysis.totals.weight_bytes;
        out.push(FamilyFigures {
            name: m.name(),
            family: m.family.name().to_owned(),
            depth: m.depth,
            width: m.width,
            resolution: m.resolution,
            params: f.analysis.totals.params_exported as u64,
            macs: f.analysis.totals.macs,
            weight_bytes_int8: w.int8 as u64,
            weight_bytes_f16: w.f16 as u64,
            weight_bytes_f32: w.f32 as u64,
            peak_ram_int8: f.ram_int8,
            peak_ram_f32: f.ram_f32,
            peak_ram_int8_tiled: f.ram_int8_tiled,
            peak_ram_f32_tiled: f.ram_f32_tiled,
            fits: f.fits,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::analyse;

    fn member(family: Family, depth: u32) -> Member {
        Member {
            family,
            depth,
            width: 1.0,
            resolution: 224,
            classes: 1000,
        }
    }

    /// At width 1 and 224x224 every standard depth has torchvision's
    /// parameter and MAC counts: those of its own exports in
    /// models/imagenet (and the published ones).
    #[test]
    fn standard_members_match_torchvision() {
        let dir = std::env::temp_dir().join(format!("edgefit-family-{}", std::process::id()));
        let imagenet = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/imagenet");
        for (family, depth, params) in [
            (Family::Vgg, 11, 132_863_336u64),
            (Family::Vgg, 16, 138_357_544),
            (Family::Vgg, 19, 143_667_240),
            (Family::Resnet, 18, 11_689_512),
            (Family::Resnet, 34, 21_797_672),
            (Family::Resnet, 50, 25_557_032),
        ] {
            let m = member(family, depth);
            let ours = family_figures(&[m], &dir, &[]).unwrap().remove(0);
            let theirs = analyse(
                &variant::import(&imagenet.join(format!(
                    "{}{depth}.onnx",
                    family.name().to_ascii_lowercase()
                )))
                .unwrap()
                .graph,
            );
            assert_eq!(ours.params, params, "{}", m.name());
            assert_eq!(
                ours.params,
                theirs.totals.params_exported as u64,
                "{}",
                m.name()
            );
            assert_eq!(ours.macs, theirs.totals.macs, "{}", m.name());
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn scaled_members_and_bad_settings() {
        let dir = std::env::temp_dir().join(format!("edgefit-family-s-{}", std::process::id()));
        // Half width: about a quarter of the convolutions' parameters.
        let full = member(Family::Resnet, 18);
        let half = Member { width: 0.5, ..full };
        let f = family_figures(&[full, half], &dir, &[]).unwrap();
        let ratio = f[1].macs as f64 / f[0].macs as f64;
        assert!((0.24..0.30).contains(&ratio), "{ratio}");
        // VGG's classifier follows the resolution: at 32x32 the first dense
        // layer reads 512 values instead of 25,088.
        let small = Member {
            resolution: 32,
            ..member(Family::Vgg, 11)
        };
        let s = family_figures(&[small], &dir, &[]).unwrap().remove(0);
        assert_eq!(
            s.params,
            132_863_336 - (25_088 - 512) * 4096,
            "{}",
            small.name()
        );
        for bad in [
            Member { depth: 17, ..full },
            Member { width: 0.0, ..full },
            Member {
                resolution: 100,
                ..full
            },
        ] {
            assert!(bad.model().is_err(), "{bad:?}");
        }
        assert!(members(&[Family::Vgg], &[12], &[1.0], &[224], 1000).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
