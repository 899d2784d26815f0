//! The seed's comparison, reproduced: VGG11/16/19 against ResNet-18/34/50 at
//! ImageNet size (224x224x3, 1000 classes), every figure computed from the
//! graph-only torchvision exports in `models/imagenet/` — parameters and their
//! share in dense layers, MACs, weight bytes per precision, the activation
//! arena per precision and the layer where it peaks — and, per device
//! profile, which precisions fit at all.

use std::path::Path;

use edgefit_profiles::Profile;
use edgefit_report::{PrecisionFit, SeedModel};

use crate::analysis::{analyse, Analysis};
use crate::compare::ENGINE_STATE_BYTES;
use crate::memory::plan_activations;
use crate::variant::{self, VariantError};

/// The networks of the seed's comparison, as named in `models/imagenet/`.
pub const SEED_MODELS: [&str; 6] = [
    "vgg11", "vgg16", "vgg19", "resnet18", "resnet34", "resnet50",
];

/// The layer-by-layer arena of `graph` at `bytes` per activation, residual
/// additions fused as the compiler fuses them, and the step where the most
/// bytes are live.
fn arena(graph: &crate::ir::Graph, bytes: usize) -> (u64, String) {
    let fused = crate::fuse::fuse_residual_adds(graph);
    let plan = plan_activations(&fused, bytes);
    let peak = plan
        .live_bytes
        .iter()
        .enumerate()
        .max_by_key(|(i, b)| (**b, std::cmp::Reverse(*i)))
        .map(|(i, _)| fused.nodes[i].name.clone())
        .unwrap_or_default();
    (plan.plan.arena_size as u64, peak)
}

/// What the seed's comparison and the family sweep compute from a graph:
/// its analysis, the arena with int8 and with f32 activations, the layer
/// where the int8 arena peaks, and per profile the precisions that fit
/// (weights within its flash, arena plus engine state within its RAM; f16
/// plans keep f32 activations).
pub(crate) struct GraphFigures {
    pub analysis: Analysis,
    pub ram_int8: u64,
    pub ram_f32: u64,
    /// The smallest arena with the leading layers tiled, where they can be.
    pub ram_int8_tiled: Option<u64>,
    pub ram_f32_tiled: Option<u64>,
    pub peak_layer: String,
    pub fits: Vec<PrecisionFit>,
}

/// The smallest tiled arena of `graph` with `bpe`-byte activations
/// (residual additions fused, as the compiler does).
fn tiled_arena(graph: &crate::ir::Graph, bpe: usize) -> Option<u64> {
    let fused = crate::fuse::fuse_residual_adds(graph);
    crate::compile::tiling::smallest_arena(&fused, bpe).map(|a| a as u64)
}

pub(crate) fn graph_figures(graph: &crate::ir::Graph, profiles: &[Profile]) -> GraphFigures {
    let analysis = analyse(graph);
    let (ram_int8, peak_layer) = arena(graph, 1);
    let (ram_f32, _) = arena(graph, 4);
    let (ram_int8_tiled, ram_f32_tiled) = (tiled_arena(graph, 1), tiled_arena(graph, 4));
    let w = analysis.totals.weight_bytes;
    let precisions = [
        ("int8", w.int8 as u64, ram_int8, ram_int8_tiled),
        ("f16", w.f16 as u64, ram_f32, ram_f32_tiled),
        ("f32", w.f32 as u64, ram_f32, ram_f32_tiled),
    ];
    // A precision fits whole-tensor, or else with its leading layers tiled
    // ("int8 tiled").
    let fits = profiles
        .iter()
        .map(|p| PrecisionFit {
            profile: p.name.clone(),
            precisions: precisions
                .iter()
                .filter_map(|(n, weights, ram, tiled)| {
                    let fits = |ram: u64| p.fits(*weights, ram + ENGINE_STATE_BYTES).fits();
                    if fits(*ram) {
                        Some((*n).to_owned())
                    } else {
                        tiled.filter(|&t| fits(t)).map(|_| format!("{n} tiled"))
                    }
                })
                .collect(),
        })
        .collect();
    GraphFigures {
        analysis,
        ram_int8,
        ram_f32,
        ram_int8_tiled,
        ram_f32_tiled,
        peak_layer,
        fits,
    }
}

/// The seed's networks found in `dir` (those missing are left out), judged
/// against `profiles`.
pub fn seed_comparison(dir: &Path, profiles: &[Profile]) -> Result<Vec<SeedModel>, VariantError> {
    let mut out = Vec::new();
    for name in SEED_MODELS {
        let path = dir.join(format!("{name}.onnx"));
        if !path.is_file() {
            continue;
        }
        let graph = variant::import(&path)?.graph;
        let GraphFigures {
            analysis: a,
            ram_int8: peak_ram_int8,
            ram_f32: peak_ram_f32,
            ram_int8_tiled: peak_ram_int8_tiled,
            peak_layer,
            fits,
            ..
        } = graph_figures(&graph, profiles);
        let w = a.totals.weight_bytes;
        out.push(SeedModel {
            model: name.to_owned(),
            architecture: if name.starts_with("vgg") {
                "VGG"
            } else {
                "ResNet"
            }
            .to_owned(),
            params: a.totals.params_exported as u64,
            dense_share: a.totals.params_dense as f64 / a.totals.params.max(1) as f64,
            macs: a.totals.macs,
            weight_bytes_int8: w.int8 as u64,
            weight_bytes_f16: w.f16 as u64,
            weight_bytes_f32: w.f32 as u64,
            peak_ram_int8,
            peak_ram_f32,
            peak_ram_int8_tiled,
            peak_layer,
            fits,
            source: format!(
                "computed from the graph-only torchvision export models/imagenet/{name}.onnx: \
                 weights x bytes per precision (a plan adds its requantisation tables), the \
                 layer-by-layer activation arena, and the smallest with the leading layers \
                 tiled; fit = weights within the profile's flash and arena plus \
                 {ENGINE_STATE_BYTES} B within its RAM less the firmware's (\"int8 tiled\": \
                 only with the leading layers tiled)"
            ),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// torchvision's own counts (`sum(p.numel())`, and the MACs every
    /// reference table gives): the seed's 138 M / 15.5 GMAC VGG16 and
    /// 25.6 M / 4.1 GMAC ResNet-50.
    #[test]
    fn the_seed_networks_have_torchvisions_counts() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/imagenet");
        let seed = seed_comparison(&dir, &[]).unwrap();
        let by = |n: &str| seed.iter().find(|s| s.model == n).unwrap();
        for (name, params, gmacs) in [
            ("vgg11", 132_863_336, 7.6),
            ("vgg16", 138_357_544, 15.5),
            ("vgg19", 143_667_240, 19.6),
            ("resnet18", 11_689_512, 1.8),
            ("resnet34", 21_797_672, 3.7),
            ("resnet50", 25_557_032, 4.1),
        ] {
            let s = by(name);
            assert_eq!(s.params, params, "{name}");
            assert!(
                ((s.macs as f64 / 1e9) - gmacs).abs() < 0.05,
                "{name}: {}",
                s.macs
            );
        }
        // VGG16's three dense layers hold 89% of its parameters; ResNet-50's one, 8%.
        assert!((by("vgg16").dense_share - 0.893).abs() < 0.005);
        assert!((by("resnet50").dense_share - 0.080).abs() < 0.005);
        assert_eq!(
            by("vgg16").weight_bytes_f32,
            4 * by("vgg16").weight_bytes_int8 - 3 * 4 * 13_416
        );
    }
}
