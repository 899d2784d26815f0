//! Checks that a compiled plan gives the same bits on every kernel path:
//! runs it op by op through the fastest kernels (`auto`), the AVX2 ones
//! (`no-avx512`) and the portable ones on the same seeded input, and
//! compares the whole activation arena after every op, so a difference in
//! any intermediate tensor shows, not only in the output.
//!
//! `cargo run --release -p edgefit-engine --features std --example plan_paths PLAN.efp... [--runs N] [--scratch-auto]`
//!
//! `--scratch-auto` first sets each plan's scratch size (a header field) to
//! what this engine's kernels want (`kernels::scratch::for_plan`), so plans
//! from an older writer take the scratch-using fast paths too.
//!
//! Each run uses a new input: f32 plans get values in [-1, 1) with some
//! exact zeros of both signs, int8 plans random bytes. Exits non-zero on the
//! first difference.

use edgefit_engine::{Engine, KernelPath, Plan, Precision};

mod common;
use common::Rng;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let runs = args
        .iter()
        .position(|a| a == "--runs")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(2usize);
    let paths: Vec<&String> = args
        .iter()
        .enumerate()
        .filter(|(i, a)| !a.starts_with("--") && (*i == 0 || args[i - 1] != "--runs"))
        .map(|(_, a)| a)
        .collect();
    if paths.is_empty() {
        eprintln!("usage: plan_paths PLAN.efp... [--runs N]");
        std::process::exit(2);
    }
    let scratch_auto = args.iter().any(|a| a == "--scratch-auto");
    let mut failed = false;
    for path in paths {
        let mut bytes = std::fs::read(path).unwrap_or_else(|e| {
            eprintln!("{path}: {e}");
            std::process::exit(1)
        });
        if scratch_auto {
            let want = Plan::parse(&bytes).map(|p| edgefit_engine::kernels::scratch::for_plan(&p));
            if let (Ok(want), Ok(mut h)) = (want, edgefit_engine::Header::decode(&bytes)) {
                h.scratch_bytes = want as u32;
                bytes[..edgefit_engine::format::HEADER_SIZE].copy_from_slice(&h.encode());
            }
        }
        let plan = Plan::parse(&bytes).unwrap_or_else(|e| {
            eprintln!("{path}: {e}");
            std::process::exit(1)
        });
        let kinds = [KernelPath::Auto, KernelPath::NoAvx512, KernelPath::Portable];
        let engines: Vec<Engine> = kinds
            .iter()
            .map(|&k| Engine::with_kernels(&plan, k))
            .collect();
        let act = plan.activation_arena_size();
        let mut rng = Rng(0x5EED_0F32 ^ bytes.len() as u64);
        for run in 0..runs {
            let mut arenas: Vec<edgefit_engine::AlignedBytes> = engines
                .iter()
                .map(|e| edgefit_engine::AlignedBytes::zeroed(e.arena_size()))
                .collect();
            let input = {
                let n = engines[0].input_mut(&mut arenas[0]).unwrap().len();
                let mut v = vec![0u8; n];
                if plan.precision() == Precision::Int8 {
                    v.iter_mut().for_each(|b| *b = rng.next() as u8);
                } else {
                    for c in v.chunks_exact_mut(4) {
                        let r = rng.next();
                        let f = match r % 16 {
                            0 => -0.0,
                            1 => 0.0,
                            _ => ((r >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0,
                        };
                        c.copy_from_slice(&f.to_le_bytes());
                    }
                }
                v
            };
            for (e, a) in engines.iter().zip(arenas.iter_mut()) {
                e.input_mut(a).unwrap().copy_from_slice(&input);
            }
            for op in 0..engines[0].op_count() {
                for (e, a) in engines.iter().zip(arenas.iter_mut()) {
                    e.run_op(a, op).unwrap();
                }
                for (k, a) in kinds.iter().zip(&arenas).take(2) {
                    if a[..act] != arenas[2][..act] {
                        let at = (0..act).find(|&i| a[i] != arenas[2][i]).unwrap_or(0);
                        eprintln!(
                            "{path} run {run}: after op {op} ({:?}) the arena differs \
                             between {k:?} and Portable at byte {at}",
                            plan.op(op as u32).map(|o| o.kind)
                        );
                        failed = true;
                    }
                }
                if failed {
                    break;
                }
            }
            if failed {
                break;
            }
        }
        if !failed {
            println!(
                "{path}: {} ops, scratch {} bytes, {runs} runs: {} and {} equal Portable after every op",
                engines[0].op_count(),
                plan.scratch_bytes(),
                KernelPath::Auto.simd_name(),
                KernelPath::NoAvx512.simd_name()
            );
        }
    }
    if failed {
        std::process::exit(1);
    }
}
