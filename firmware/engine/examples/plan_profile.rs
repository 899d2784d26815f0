//! Where a plan's time goes: runs a compiled plan op by op and prints each
//! op's median wall-clock time over the runs (after one warm-up run).
//!
//! `cargo run --release -p edgefit-engine --features std --example plan_profile PLAN.efp [auto|no-avx512|portable] [RUNS] [--scratch-auto]`
//!
//! `--scratch-auto` first sets the plan's scratch size (a header field) to
//! what this engine's kernels want (`kernels::scratch::for_plan`, what its
//! `PlanBuilder` writes), for plans written by an older writer.
//!
//! It also times encoding an f32 NCHW sample into the input tensor
//! (`input::encode_nchw`, part of each inference `edgefit speed` times).
//!
//! The last line also gives whole runs in the thread's CPU time (Linux;
//! wall-clock time elsewhere), median and fastest: on a machine shared with
//! other work the fastest CPU time is the steadiest figure.

use edgefit_engine::{Engine, KernelPath, Plan};

mod common;
use common::{thread_cpu_seconds, wall_seconds, Rng};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let Some(path) = args.get(1) else {
        eprintln!("usage: plan_profile PLAN.efp [auto|no-avx512|portable] [RUNS]");
        std::process::exit(2);
    };
    let kernels = match args.get(2).map(String::as_str) {
        None | Some("auto") => KernelPath::Auto,
        Some("no-avx512") => KernelPath::NoAvx512,
        Some("portable") => KernelPath::Portable,
        Some(other) => {
            eprintln!("unknown kernel path {other}");
            std::process::exit(2);
        }
    };
    let runs: usize = args.get(3).and_then(|v| v.parse().ok()).unwrap_or(5);
    let scratch_auto = args.iter().any(|a| a == "--scratch-auto");
    let mut bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("{path}: {e}");
            std::process::exit(1);
        }
    };
    if scratch_auto {
        let want = Plan::parse(&bytes).map(|p| edgefit_engine::kernels::scratch::for_plan(&p));
        let header = edgefit_engine::Header::decode(&bytes);
        if let (Ok(want), Ok(mut h)) = (want, header) {
            eprintln!("scratch: {} -> {want} bytes", h.scratch_bytes);
            h.scratch_bytes = want as u32;
            bytes[..edgefit_engine::format::HEADER_SIZE].copy_from_slice(&h.encode());
        }
    }
    let bytes = edgefit_engine::AlignedBytes::copy_of(&bytes);
    let plan = match Plan::parse(&bytes) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("{path}: {e}");
            std::process::exit(1);
        }
    };
    let engine = Engine::with_kernels(&plan, kernels);
    let mut arena = edgefit_engine::AlignedBytes::zeroed(engine.arena_size());
    let n = engine.op_count();
    let mut times = vec![Vec::with_capacity(runs); n];
    let mut totals = Vec::with_capacity(runs);
    let mut cpu = Vec::with_capacity(runs);
    for _ in 0..runs + 1 {
        let c0 = thread_cpu_seconds();
        let t0 = wall_seconds();
        for (i, t) in times.iter_mut().enumerate() {
            let s = wall_seconds();
            if let Err(e) = engine.run_op(&mut arena, i) {
                eprintln!("op {i}: {e}");
                std::process::exit(1);
            }
            t.push((wall_seconds() - s) * 1e3);
        }
        totals.push((wall_seconds() - t0) * 1e3);
        cpu.push((thread_cpu_seconds() - c0) * 1e3);
    }
    let median = |v: &mut Vec<f64>| {
        v.remove(0); // warm-up
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    println!("kernels: {}", engine.simd_name());
    println!("{:>3}  {:<16} {:>10}", "op", "kind", "median ms");
    let mut sum = 0.0;
    for (i, t) in times.iter_mut().enumerate() {
        let m = median(t);
        sum += m;
        let kind = plan
            .op(i as u32)
            .map(|o| format!("{:?}", o.kind))
            .unwrap_or_default();
        println!("{i:>3}  {kind:<16} {m:>10.3}");
    }
    if let Ok(input) = plan.input() {
        // Seeded random values in [-2, 2) (a normalised image's range):
        // rounding's branches see what real inputs give them.
        let count = input.elements().unwrap_or(0) as usize;
        let mut rng = Rng(0x5eed_1234_5678_9abc);
        let nchw: Vec<f32> = (0..count)
            .map(|_| (rng.next() >> 40) as f32 / (1u64 << 22) as f32 - 2.0)
            .collect();
        let mut encode = Vec::with_capacity(runs + 1);
        for _ in 0..runs + 1 {
            let s = wall_seconds();
            let encoded = engine
                .input_mut(&mut arena)
                .map_err(|e| e.to_string())
                .and_then(|slot| {
                    edgefit_engine::input::encode_nchw(&input, &nchw, slot)
                        .map_err(|e| e.to_string())
                });
            if let Err(e) = encoded {
                eprintln!("input: {e}");
                std::process::exit(1);
            }
            encode.push((wall_seconds() - s) * 1e3);
        }
        println!("input encode (f32 NCHW): {:.3} ms", median(&mut encode));
    }
    let median_run = median(&mut totals);
    let cpu_median = median(&mut cpu);
    println!(
        "sum of op medians {sum:.2} ms, median run {median_run:.2} ms, \
         cpu time median {cpu_median:.2} ms min {:.2} ms",
        cpu[0]
    );
}
