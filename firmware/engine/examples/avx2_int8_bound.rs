//! How fast an exact int8 GEMM can be with AVX2 alone, on this CPU: the
//! register-only inner loop of the engine's AVX2 micro-kernel (6 pixels ×
//! 16 channels, `vpmaddwd` + `vpaddd`, exact) next to the loop onnxruntime's
//! MLAS runs without VNNI (`vpmaddubsw` + `vpmaddwd` + `vpaddd`, 4 taps per
//! 16-bit pair: it saturates when a pair of products exceeds 32767, which
//! int8 activations with a zero point of -128 and full-range weights reach),
//! both fed from L1, in MACs per cycle; and the same for f32: the engine's
//! multiply-then-add (the portable bits) against onnxruntime's fused
//! multiply-add. The clock is measured by a chain of dependent register
//! adds (one per cycle).
//!
//! `cargo run --release -p edgefit-engine --features std --example avx2_int8_bound`
//!
//! On the 2-vCPU AMD EPYC (Zen 4) of docs/benchmarks.md: 26.1 against 31.5
//! MACs per cycle, the bound behind its AVX2 int8 figures. On the Intel Xeon
//! that replaced it: int8 22.3-22.9 against 25.7-28.1, f32 8.9-9.8 against
//! 14.6-16.3 (three runs).

#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
fn main() {
    use std::arch::asm;
    use std::time::Instant;

    if !std::arch::is_x86_feature_detected!("avx2") {
        eprintln!("no AVX2 on this CPU");
        std::process::exit(1);
    }
    const STEPS: u64 = 100_000_000;
    let buf = [1u8; 256];
    let p = buf.as_ptr();

    // Cycles: one dependent add per cycle. A register operand, not an
    // immediate: Intel's cores since Golden Cove fold chains of
    // add-immediate at rename (such a chain ran at "10.8 GHz" on a Xeon).
    let t = Instant::now();
    // SAFETY: registers only.
    unsafe {
        asm!(
            "2:",
            "add {a}, {one}", "add {a}, {one}", "add {a}, {one}", "add {a}, {one}",
            "sub {n}, 4",
            "jnz 2b",
            a = inout(reg) 0u64 => _,
            one = in(reg) 1u64,
            n = inout(reg) STEPS * 4 => _,
        );
    }
    let ghz = (STEPS * 4) as f64 / t.elapsed().as_secs_f64() / 1e9;

    // One multiply-accumulate of the exact kernel: pixel broadcast (ymm14)
    // times 8 channels × 2 taps of the panel (`$w`), into `$acc`.
    macro_rules! madd {
        ($acc:literal, $w:literal) => {
            concat!(
                "vpmaddwd ymm15, ymm14, ymm",
                $w,
                "\n",
                "vpaddd ymm",
                $acc,
                ", ymm",
                $acc,
                ", ymm15\n"
            )
        };
    }
    // The saturating kernel's: 8 channels × 4 taps, widened to i32 by a
    // vpmaddwd with the 16-bit ones at `{ones}` (from L1).
    macro_rules! maddubs {
        ($acc:literal, $w:literal) => {
            concat!(
                "vpmaddubsw ymm15, ymm14, ymm",
                $w,
                "\n",
                "vpmaddwd ymm15, ymm15, [{ones}]\n",
                "vpaddd ymm",
                $acc,
                ", ymm",
                $acc,
                ", ymm15\n"
            )
        };
    }
    // The engine's f32 kernel's: a multiply, then an add (each output's
    // eight lane sums in the portable order, which a fused multiply-add
    // would round differently), 8 taps of one channel per register.
    macro_rules! mul_add {
        ($acc:literal, $w:literal) => {
            concat!(
                "vmulps ymm15, ymm14, ymm",
                $w,
                "\n",
                "vaddps ymm",
                $acc,
                ", ymm",
                $acc,
                ", ymm15\n"
            )
        };
    }
    // onnxruntime's fp32 kernels': one fused multiply-add, one input value
    // broadcast across 8 channels.
    macro_rules! fma {
        ($acc:literal, $w:literal) => {
            concat!("vfmadd231ps ymm", $acc, ", ymm14, ymm", $w, "\n")
        };
    }
    let ones = [1i16; 16];
    // Seconds for STEPS steps of 6 pixels × 16 channels (f32 kernel: 6
    // pixels × 2 channels): two panel loads, six pixel loads by `$load`,
    // 12 `$mac`s.
    macro_rules! time_6x16 {
        ($load:literal, $mac:ident) => {{
            let t = Instant::now();
            // SAFETY: reads 116 bytes of `buf` and 32 of `ones`; ymm
            // registers only otherwise.
            unsafe {
                asm!(
                    "# ones: {ones}",
                    "2:",
                    "vmovdqu ymm12, [{p}]", "vmovdqu ymm13, [{p} + 32]",
                    concat!($load, " ymm14, [{p} + 64]"), $mac!("0", "12"), $mac!("1", "13"),
                    concat!($load, " ymm14, [{p} + 68]"), $mac!("2", "12"), $mac!("3", "13"),
                    concat!($load, " ymm14, [{p} + 72]"), $mac!("4", "12"), $mac!("5", "13"),
                    concat!($load, " ymm14, [{p} + 76]"), $mac!("6", "12"), $mac!("7", "13"),
                    concat!($load, " ymm14, [{p} + 80]"), $mac!("8", "12"), $mac!("9", "13"),
                    concat!($load, " ymm14, [{p} + 84]"), $mac!("10", "12"), $mac!("11", "13"),
                    "dec {n}",
                    "jnz 2b",
                    p = in(reg) p,
                    ones = in(reg) ones.as_ptr(),
                    n = inout(reg) STEPS => _,
                    out("ymm0") _, out("ymm1") _, out("ymm2") _, out("ymm3") _,
                    out("ymm4") _, out("ymm5") _, out("ymm6") _, out("ymm7") _,
                    out("ymm8") _, out("ymm9") _, out("ymm10") _, out("ymm11") _,
                    out("ymm12") _, out("ymm13") _, out("ymm14") _, out("ymm15") _,
                );
            }
            t.elapsed().as_secs_f64()
        }};
    }
    let per_cycle = |macs: f64, secs: f64| macs * STEPS as f64 / (secs * ghz * 1e9);
    let exact = per_cycle(192.0, time_6x16!("vpbroadcastd", madd));
    let saturating = per_cycle(384.0, time_6x16!("vpbroadcastd", maddubs));
    let f32_engine = per_cycle(96.0, time_6x16!("vmovups", mul_add));
    let f32_fma = per_cycle(96.0, time_6x16!("vbroadcastss", fma));
    println!("clock {ghz:.2} GHz (dependent adds)");
    println!(
        "exact    vpmaddwd + vpaddd, 6x16:              {exact:5.1} MACs/cycle = {:6.1} GMAC/s",
        exact * ghz
    );
    println!(
        "saturating vpmaddubsw + vpmaddwd + vpaddd, 6x16: {saturating:5.1} MACs/cycle = {:6.1} GMAC/s",
        saturating * ghz
    );
    println!(
        "f32 vmulps + vaddps (the engine's), 6x2:        {f32_engine:5.1} MACs/cycle = {:6.1} GMAC/s",
        f32_engine * ghz
    );
    println!(
        "f32 vfmadd231ps (onnxruntime's), 6x16:          {f32_fma:5.1} MACs/cycle = {:6.1} GMAC/s",
        f32_fma * ghz
    );
    println!("(register-only loops fed from L1: upper bounds for a whole layer)");
}

#[cfg(not(target_arch = "x86_64"))]
fn main() {
    eprintln!("avx2_int8_bound: x86-64 only");
}
