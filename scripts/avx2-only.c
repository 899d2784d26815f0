/* Hides AVX-512, AVX-VNNI and AMX from a process, so that the software in it
 * takes its AVX2 paths: how scripts/avx2-only.sh measures "a CPU with AVX2
 * but no VNNI" (the Zen 3 class issue 18 names) on a CPU that has AVX-512.
 *
 * Linux's CPUID faulting (arch_prctl(ARCH_SET_CPUID, 0); the CPU flag
 * `cpuid_fault`) makes every CPUID instruction of the process trap; the
 * SIGSEGV handler runs the real CPUID with faulting briefly off, clears the
 * feature bits below, writes the registers back and steps over the
 * instruction. Loaded with LD_PRELOAD, it is in place before any library's
 * constructor asks the CPU what it has (onnxruntime's MLAS, numpy, Rust's
 * std_detect); the setting survives fork and is set again after exec by the
 * loader. Nothing else changes: same cores, caches and clocks.
 */
#define _GNU_SOURCE
#include <asm/prctl.h>
#include <cpuid.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <ucontext.h>
#include <unistd.h>

static struct sigaction previous;

static long set_cpuid(int enabled) { return syscall(SYS_arch_prctl, ARCH_SET_CPUID, enabled); }

static void on_segv(int sig, siginfo_t *info, void *uc) {
    ucontext_t *ctx = uc;
    greg_t *r = ctx->uc_mcontext.gregs;
    const uint8_t *rip = (const uint8_t *)r[REG_RIP];
    if (rip[0] != 0x0f || rip[1] != 0xa2) {
        /* Not CPUID: a real fault. Give it to whoever handled it before. */
        sigaction(SIGSEGV, &previous, NULL);
        (void)sig;
        (void)info;
        return;
    }
    uint32_t leaf = (uint32_t)r[REG_RAX], sub = (uint32_t)r[REG_RCX];
    uint32_t a, b, c, d;
    set_cpuid(1);
    __cpuid_count(leaf, sub, a, b, c, d);
    set_cpuid(0);
    if (leaf == 7 && sub == 0) {
        /* EBX: AVX512F, DQ, IFMA, PF, ER, CD, BW, VL. */
        b &= ~((1u << 16) | (1u << 17) | (1u << 21) | (1u << 26) | (1u << 27) | (1u << 28) |
               (1u << 30) | (1u << 31));
        /* ECX: AVX512_VBMI, VBMI2, VNNI, BITALG, VPOPCNTDQ. */
        c &= ~((1u << 1) | (1u << 6) | (1u << 11) | (1u << 12) | (1u << 14));
        /* EDX: AVX512_4VNNIW, 4FMAPS, VP2INTERSECT, AMX-BF16, FP16, AMX-TILE,
         * AMX-INT8 (onnxruntime's int8 GEMM takes AMX where the CPU has it,
         * as Intel's Xeons since Sapphire Rapids do; a Zen 3 has none). */
        d &= ~((1u << 2) | (1u << 3) | (1u << 8) | (1u << 22) | (1u << 23) | (1u << 24) |
               (1u << 25));
    } else if (leaf == 7 && sub == 1) {
        /* EAX: AVX-VNNI, AVX512_BF16, AMX-FP16, AVX-IFMA. */
        a &= ~((1u << 4) | (1u << 5) | (1u << 21) | (1u << 23));
        /* EDX: AVX-VNNI-INT8, AVX-NE-CONVERT, AMX-COMPLEX, AVX-VNNI-INT16,
         * AVX10. */
        d &= ~((1u << 4) | (1u << 5) | (1u << 8) | (1u << 10) | (1u << 19));
    }
    r[REG_RAX] = a;
    r[REG_RBX] = b;
    r[REG_RCX] = c;
    r[REG_RDX] = d;
    r[REG_RIP] += 2;
}

__attribute__((constructor)) static void hide_avx512(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_segv;
    sa.sa_flags = SA_SIGINFO | SA_NODEFER;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGSEGV, &sa, &previous);
    if (set_cpuid(0) != 0) {
        perror("avx2-only: arch_prctl(ARCH_SET_CPUID) (no CPUID faulting on this CPU or VM)");
        exit(3);
    }
}
