//! Tick sources for benchmark timing, extended to 64 bits.

use cortex_m::peripheral::{DCB, DWT};
use edgefit_mcu::Clock;
use edgefit_proto::TimingSource;

/// The DWT cycle counter: one tick per core clock cycle. The 32-bit counter is
/// extended in software, so `now` must be called at least once per wrap
/// (2^32 cycles: 67 s at 64 MHz) — the firmware reads it around every
/// inference, which is far shorter.
pub struct DwtClock {
    hz: u32,
    last: u32,
    high: u64,
    _dwt: DWT,
}

impl DwtClock {
    /// Starts the cycle counter. Takes DWT by value so nothing else resets it;
    /// `dcb` is needed only to power the trace block (TRCENA).
    pub fn start(dcb: &mut DCB, mut dwt: DWT, core_hz: u32) -> Self {
        dcb.enable_trace();
        // Cortex-M7 parts lock DWT until unlocked; a no-op elsewhere.
        DWT::unlock();
        dwt.set_cycle_count(0);
        dwt.enable_cycle_counter();
        Self {
            hz: core_hz,
            last: 0,
            high: 0,
            _dwt: dwt,
        }
    }
}

impl Clock for DwtClock {
    fn now(&mut self) -> u64 {
        let c = DWT::cycle_count();
        if c < self.last {
            self.high += 1 << 32;
        }
        self.last = c;
        self.high | c as u64
    }

    fn tick_hz(&self) -> u64 {
        self.hz as u64
    }

    fn source(&self) -> TimingSource {
        TimingSource::DwtCycles
    }
}

#[cfg(feature = "systick")]
pub use systick::SysTickClock;

#[cfg(feature = "systick")]
mod systick {
    use core::sync::atomic::{AtomicU32, Ordering};
    use cortex_m::peripheral::{syst::SystClkSource, SYST};
    use cortex_m_rt::exception;
    use edgefit_mcu::Clock;
    use edgefit_proto::TimingSource;

    /// The full 24-bit range: one wrap exception per 2^24 ticks.
    const RELOAD: u32 = 0x00FF_FFFF;

    /// SysTick wraps since start; the exception below counts them.
    static WRAPS: AtomicU32 = AtomicU32::new(0);

    #[exception]
    fn SysTick() {
        WRAPS.fetch_add(1, Ordering::Relaxed);
    }

    /// SysTick on the core clock, extended to 64 bits by its wrap exception.
    /// Needs interrupts enabled (they are after reset): `now` called with
    /// exceptions masked across a wrap would miss it.
    pub struct SysTickClock {
        hz: u32,
        source: TimingSource,
        _syst: SYST,
    }

    impl SysTickClock {
        /// Starts SysTick counting core clock cycles. `source` is what the ticks
        /// mean to the host: `SysTick` on hardware, `QemuIcount` under QEMU
        /// `-icount`, where the core clock is derived from virtual time.
        pub fn start(mut syst: SYST, core_hz: u32, source: TimingSource) -> Self {
            syst.disable_counter();
            syst.set_clock_source(SystClkSource::Core);
            syst.set_reload(RELOAD);
            syst.clear_current();
            syst.enable_interrupt();
            syst.enable_counter();
            Self {
                hz: core_hz,
                source,
                _syst: syst,
            }
        }
    }

    impl Clock for SysTickClock {
        fn now(&mut self) -> u64 {
            loop {
                let wraps = WRAPS.load(Ordering::Acquire);
                let current = SYST::get_current();
                // A wrap between the two loads means `current` may belong to
                // either period: read again.
                if WRAPS.load(Ordering::Acquire) == wraps {
                    return ((wraps as u64) << 24) | (RELOAD - current) as u64;
                }
            }
        }

        fn tick_hz(&self) -> u64 {
            self.hz as u64
        }

        fn source(&self) -> TimingSource {
            self.source
        }
    }
}
