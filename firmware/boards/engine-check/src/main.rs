//! Runs random int8 conv and dense cases through the portable kernels and
//! through `KernelPath::Auto` (the DSP kernels on a Cortex-M4), compares the
//! bytes, and counts the instructions each path takes per MAC on
//! representative layers. Results go out by semihosting; QEMU exits with
//! status 0 when every case matched, 1 otherwise.
//!
//! Run under `-icount shift=0` (one virtual nanosecond per instruction):
//! SysTick counts the 25 MHz system clock, so one tick is 40 instructions.
#![no_std]
#![no_main]

use core::sync::atomic::{AtomicU32, Ordering};

use cortex_m::peripheral::{syst::SystClkSource, SYST};
use cortex_m_rt::{entry, exception};
use cortex_m_semihosting::{debug, hprintln};
use edgefit_engine::kernels::conv::conv2d_i8_on;
use edgefit_engine::kernels::dense::dense_i8_on;
use edgefit_engine::kernels::{Geom, I32s, KernelPath, QuantParams};
use edgefit_engine::{Engine, Plan};
use panic_semihosting as _;

include!(concat!(env!("OUT_DIR"), "/plans.rs"));

/// Instructions per SysTick tick under `-icount shift=0` at 25 MHz.
const INSNS_PER_TICK: u64 = 40;
const RELOAD: u32 = 0x00ff_ffff;

static WRAPS: AtomicU32 = AtomicU32::new(0);

#[exception]
fn SysTick() {
    WRAPS.fetch_add(1, Ordering::Relaxed);
}

/// SysTick ticks since start (24-bit counter extended by the wrap count).
fn ticks() -> u64 {
    loop {
        let w = WRAPS.load(Ordering::Relaxed);
        let v = SYST::get_current();
        if WRAPS.load(Ordering::Relaxed) == w {
            return ((w as u64) << 24) + (RELOAD - v) as u64;
        }
    }
}

/// Instructions `f` takes (SysTick resolution: 40).
fn insns(f: impl FnOnce()) -> u64 {
    let t0 = ticks();
    f();
    (ticks() - t0) * INSNS_PER_TICK
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + (self.next() % (hi - lo + 1) as u64) as usize
    }
    fn fill(&mut self, b: &mut [u8]) {
        b.iter_mut().for_each(|v| *v = self.next() as u8);
    }
}

/// Built with `EDGEFIT_CHECK_PROFILE` set: only the DSP path on the layer
/// table (for `qemu -d exec` profiles), no random cases, no plans.
const PROFILE: bool = option_env!("EDGEFIT_CHECK_PROFILE").is_some();

const XMAX: usize = 64 * 1024;
const WMAX: usize = 512 * 1024;
const CMAX: usize = 512;

/// Operand buffers (static: they do not fit a small stack).
struct Bufs {
    x: [u8; XMAX],
    w: [u8; WMAX],
    bias: [u8; CMAX * 4],
    mul: [u8; CMAX * 4],
    shift: [u8; CMAX * 4],
    out_p: [u8; XMAX],
    out_a: [u8; XMAX],
}

static mut BUFS: Bufs = Bufs {
    x: [0; XMAX],
    w: [0; WMAX],
    bias: [0; CMAX * 4],
    mul: [0; CMAX * 4],
    shift: [0; CMAX * 4],
    out_p: [0; XMAX],
    out_a: [0; XMAX],
};

/// Activation arena for the embedded plans.
static mut ARENA: [u8; 256 * 1024] = [0; 256 * 1024];

/// One int8 conv (`dense: false`) or dense (`g.in_*` is the input vector
/// shape, `g.out_c` the outputs) case.
#[derive(Clone, Copy)]
struct Case {
    g: Geom,
    depthwise: bool,
    dense: bool,
    zp: i32,
}

impl Case {
    fn weights(&self) -> usize {
        let g = &self.g;
        if self.dense {
            g.in_h * g.in_w * g.in_c * g.out_c
        } else if self.depthwise {
            g.kernel_h * g.kernel_w * g.in_c
        } else {
            g.kernel_h * g.kernel_w * g.in_c * g.out_c
        }
    }

    fn out_len(&self) -> usize {
        if self.dense {
            self.g.out_c
        } else {
            self.g.out_h * self.g.out_w * self.g.out_c
        }
    }

    /// Nominal MACs (padding taps included, as model summaries count them).
    fn macs(&self) -> u64 {
        let g = &self.g;
        let per = if self.dense {
            g.in_h * g.in_w * g.in_c
        } else if self.depthwise {
            g.kernel_h * g.kernel_w
        } else {
            g.kernel_h * g.kernel_w * g.in_c
        };
        (self.out_len() * per) as u64
    }

    fn fits(&self) -> bool {
        self.g.in_h * self.g.in_w * self.g.in_c <= XMAX
            && self.out_len() <= XMAX
            && self.weights() <= WMAX
            && self.g.out_c <= CMAX
    }
}

/// A conv geometry with `pad` on every side.
#[allow(clippy::too_many_arguments)]
fn conv(h: usize, w: usize, c: usize, oc: usize, k: usize, s: usize, pad: usize) -> Geom {
    Geom {
        in_h: h,
        in_w: w,
        in_c: c,
        out_h: (h + 2 * pad - k) / s + 1,
        out_w: (w + 2 * pad - k) / s + 1,
        out_c: oc,
        kernel_h: k,
        kernel_w: k,
        stride_h: s,
        stride_w: s,
        pad_top: pad,
        pad_left: pad,
    }
}

fn dense(n_in: usize, n_out: usize) -> Geom {
    Geom {
        in_h: 1,
        in_w: 1,
        in_c: n_in,
        out_h: 1,
        out_w: 1,
        out_c: n_out,
        kernel_h: 1,
        kernel_w: 1,
        stride_h: 1,
        stride_w: 1,
        pad_top: 0,
        pad_left: 0,
    }
}

/// Fills the operands with random values and plausible requantisation
/// (outputs spread over int8 rather than saturated).
fn fill(rng: &mut Rng, b: &mut Bufs, cs: &Case) {
    let g = &cs.g;
    rng.fill(&mut b.x[..g.in_h * g.in_w * g.in_c]);
    rng.fill(&mut b.w[..cs.weights()]);
    let taps = (cs.macs() / cs.out_len().max(1) as u64).max(1);
    let shift = -(7 + (64 - taps.leading_zeros() as i32) / 2);
    for ch in 0..g.out_c {
        let bias = (rng.next() % 40_001) as i32 - 20_000;
        let m = (1 << 30) + (rng.next() % (1 << 30)) as i32;
        b.bias[ch * 4..ch * 4 + 4].copy_from_slice(&bias.to_le_bytes());
        b.mul[ch * 4..ch * 4 + 4].copy_from_slice(&m.to_le_bytes());
        b.shift[ch * 4..ch * 4 + 4].copy_from_slice(&shift.to_le_bytes());
    }
}

/// Runs `cs` on both paths; returns (matched, portable insns, auto insns).
fn run_case(b: &mut Bufs, cs: &Case, with_bias: bool, relu: bool) -> (bool, u64, u64) {
    let g = &cs.g;
    let n = g.out_c;
    let q = QuantParams {
        in_zp: cs.zp,
        out_zp: 5,
        act_min: if relu { 5 } else { -128 },
        act_max: 127,
        multipliers: I32s(&b.mul[..n * 4]),
        shifts: I32s(&b.shift[..n * 4]),
    };
    let bias = with_bias.then_some(I32s(&b.bias[..n * 4]));
    let x = &b.x[..g.in_h * g.in_w * g.in_c];
    let w = &b.w[..cs.weights()];
    let len = cs.out_len();
    let mut ok = true;
    let mut go = |path: KernelPath, out: &mut [u8]| {
        out.fill(0xa5);
        let r = if cs.dense {
            dense_i8_on(path, x, w, bias, &q, out)
        } else {
            conv2d_i8_on(path, g, cs.depthwise, x, w, bias, &q, out)
        };
        ok &= r.is_ok();
    };
    let tp = if PROFILE {
        0
    } else {
        insns(|| go(KernelPath::Portable, &mut b.out_p[..len]))
    };
    let ta = insns(|| go(KernelPath::Auto, &mut b.out_a[..len]));
    (ok && (PROFILE || b.out_p[..len] == b.out_a[..len]), tp, ta)
}

fn random_case(rng: &mut Rng, i: usize) -> Case {
    let zp = match i % 5 {
        0 => -128,
        1 => 127,
        _ => rng.range(0, 255) as i32 - 128,
    };
    if i % 7 == 3 {
        let n_in = rng.range(1, 2000);
        return Case {
            g: dense(n_in, rng.range(1, 70)),
            depthwise: false,
            dense: true,
            zp,
        };
    }
    let depthwise = i % 6 == 0;
    let (kh, kw) = if i % 4 == 1 {
        (1, 1)
    } else {
        (rng.range(1, 5), rng.range(1, 5))
    };
    let (sh, sw) = (rng.range(1, 2), rng.range(1, 2));
    let h = rng.range(kh, 12);
    let w = rng.range(kw, 12);
    let c = rng.range(1, 70);
    let oc = if depthwise { c } else { rng.range(1, 45) };
    let pads = [
        rng.range(0, kh - 1),
        rng.range(0, kw - 1),
        rng.range(0, kh - 1),
        rng.range(0, kw - 1),
    ];
    Case {
        g: Geom {
            in_h: h,
            in_w: w,
            in_c: c,
            out_h: (h + pads[0] + pads[2] - kh) / sh + 1,
            out_w: (w + pads[1] + pads[3] - kw) / sw + 1,
            out_c: oc,
            kernel_h: kh,
            kernel_w: kw,
            stride_h: sh,
            stride_w: sw,
            pad_top: pads[0],
            pad_left: pads[1],
        },
        depthwise,
        dense: false,
        zp,
    }
}

/// Calibrates the tick scale: a loop of exactly `2 * n` instructions.
fn calibrate() -> u64 {
    let n: u32 = 1_000_000;
    insns(|| {
        // SAFETY: a register-only countdown loop.
        unsafe {
            core::arch::asm!(
                "2:",
                "subs {n}, #1",
                "bne 2b",
                n = inout(reg) n => _,
                options(nomem, nostack),
            );
        }
    })
}

#[entry]
fn main() -> ! {
    let mut p = cortex_m::Peripherals::take().unwrap();
    p.SYST.set_clock_source(SystClkSource::Core);
    p.SYST.set_reload(RELOAD);
    p.SYST.clear_current();
    p.SYST.enable_interrupt();
    p.SYST.enable_counter();

    // SAFETY: main runs once and is the only user of these statics.
    let b: &mut Bufs = unsafe { &mut *core::ptr::addr_of_mut!(BUFS) };
    let arena: &mut [u8] = unsafe { &mut *core::ptr::addr_of_mut!(ARENA) };

    hprintln!(
        "edgefit engine check: KernelPath::Auto uses SIMD (DSP) kernels: {}",
        KernelPath::Auto.uses_simd()
    );
    let cal = calibrate();
    hprintln!(
        "calibration: 2,000,000-instruction loop measured as {} instructions",
        cal
    );

    let mut failures = 0u32;
    let mut rng = Rng(0x5eed_c0de_0bad_f00d);
    let cases = if PROFILE { 0 } else { 300 };
    let mut checked = 0;
    for i in 0..cases {
        let cs = random_case(&mut rng, i);
        if !cs.fits() {
            continue;
        }
        fill(&mut rng, b, &cs);
        if i % 11 == 0 {
            // Extremes: every input and weight at -128.
            b.x.fill(0x80);
            b.w.fill(0x80);
        }
        let (ok, _, _) = run_case(b, &cs, i % 3 != 0, i % 2 == 0);
        checked += 1;
        if !ok {
            failures += 1;
            let g = &cs.g;
            hprintln!(
                "MISMATCH case {}: dense {} depthwise {} {}x{}x{} -> {}x{}x{} k {}x{} s {}x{} pad {},{} zp {}",
                i, cs.dense, cs.depthwise, g.in_h, g.in_w, g.in_c, g.out_h, g.out_w, g.out_c,
                g.kernel_h, g.kernel_w, g.stride_h, g.stride_w, g.pad_top, g.pad_left, cs.zp
            );
        }
    }
    hprintln!("random cases: {} checked, {} mismatched", checked, failures);

    let layers: [(&str, Case); 10] = [
        (
            "stem conv 3x3 1->16 @28x28 pad 1",
            cv(conv(28, 28, 1, 16, 3, 1, 1)),
        ),
        (
            "conv 3x3 16->16 @28x28 pad 1",
            cv(conv(28, 28, 16, 16, 3, 1, 1)),
        ),
        (
            "conv 3x3 16->32 @14x14 pad 1",
            cv(conv(14, 14, 16, 32, 3, 1, 1)),
        ),
        (
            "conv 3x3 32->32 @14x14 pad 1",
            cv(conv(14, 14, 32, 32, 3, 1, 1)),
        ),
        (
            "conv 3x3 s2 32->64 14x14->7x7",
            cv(conv(14, 14, 32, 64, 3, 2, 1)),
        ),
        (
            "conv 3x3 64->64 @7x7 pad 1",
            cv(conv(7, 7, 64, 64, 3, 1, 1)),
        ),
        (
            "conv 1x1 s2 32->64 14x14->7x7",
            cv(conv(14, 14, 32, 64, 1, 2, 0)),
        ),
        ("conv 1x1 64->64 @7x7", cv(conv(7, 7, 64, 64, 1, 1, 0))),
        (
            "depthwise 3x3 32 @14x14 pad 1",
            Case {
                depthwise: true,
                ..cv(conv(14, 14, 32, 32, 3, 1, 1))
            },
        ),
        (
            "dense 1568->128",
            Case {
                dense: true,
                ..cv(dense(1568, 128))
            },
        ),
    ];
    hprintln!("layer                                  MACs   portable insn/MAC   auto insn/MAC   speed-up");
    for (name, cs) in layers.iter() {
        fill(&mut rng, b, cs);
        let (ok, tp, ta) = run_case(b, cs, true, true);
        if !ok {
            failures += 1;
        }
        let macs = cs.macs();
        hprintln!(
            "{:<36} {:>8}   {:>4}.{:02}              {:>3}.{:02}          {:>2}.{:01}x  {}",
            name,
            macs,
            tp / macs,
            tp * 100 / macs % 100,
            ta / macs,
            ta * 100 / macs % 100,
            tp / ta.max(1),
            tp * 10 / ta.max(1) % 10,
            if ok { "ok" } else { "MISMATCH" }
        );
    }

    for (name, bytes) in PLANS.iter().filter(|_| !PROFILE) {
        let plan = match Plan::parse(bytes) {
            Ok(p) => p,
            Err(_) => {
                hprintln!("plan {}: does not parse", name);
                failures += 1;
                continue;
            }
        };
        let mut outs = [[0u8; 64]; 2];
        let mut cost = [0u64; 2];
        let mut ok = true;
        for (k, path) in [KernelPath::Portable, KernelPath::Auto]
            .into_iter()
            .enumerate()
        {
            let e = Engine::with_kernels(&plan, path);
            let Some(a) = arena.get_mut(..e.arena_size()) else {
                hprintln!("plan {}: arena {} B too large", name, e.arena_size());
                ok = false;
                break;
            };
            let mut r2 = Rng(7);
            match e.input_mut(a) {
                Ok(inp) => rng_fill(&mut r2, inp),
                Err(_) => ok = false,
            }
            cost[k] = insns(|| ok &= e.run(a).is_ok());
            if let Ok(o) = e.output(a) {
                let n = o.len().min(64);
                outs[k][..n].copy_from_slice(&o[..n]);
            }
        }
        ok &= outs[0] == outs[1];
        if !ok {
            failures += 1;
        }
        hprintln!(
            "plan {}: portable {} insns, auto {} insns ({}.{}x): {}",
            name,
            cost[0],
            cost[1],
            cost[0] / cost[1].max(1),
            cost[0] * 10 / cost[1].max(1) % 10,
            if ok { "outputs identical" } else { "MISMATCH" }
        );
    }

    if failures == 0 {
        hprintln!("engine check: PASS");
        debug::exit(debug::EXIT_SUCCESS);
    } else {
        hprintln!("engine check: FAIL ({} failures)", failures);
        debug::exit(debug::EXIT_FAILURE);
    }
    loop {
        cortex_m::asm::wfi();
    }
}

fn rng_fill(r: &mut Rng, b: &mut [u8]) {
    r.fill(b)
}

fn cv(g: Geom) -> Case {
    Case {
        g,
        depthwise: false,
        dense: false,
        zp: -3,
    }
}
