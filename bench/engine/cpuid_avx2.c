/* bench/engine/cpuid_avx2.c: an LD_PRELOAD shim that makes a process on an AVX-512 machine see
** an AVX2-only CPU, so that ONNX Runtime (MLAS), PyTorch (oneDNN, cpuinfo, MKL), OpenBLAS and
** lpq's own runtime dispatch all pick their AVX2 code. A benchmark tool only (bench/engine/run.sh
** with LPQ_ISA=avx2): never linked into lpq. Built by the Makefile as build/bench/cpuid_avx2.so.
**
** How: Linux's CPUID faulting (the `cpuid_fault` flag in /proc/cpuinfo; arch_prctl
** ARCH_SET_CPUID). The constructor, which runs before the program's own constructors and before
** any thread exists, installs a SIGSEGV handler and turns faulting on; from then on every CPUID
** instruction in this thread, and in every thread it creates later, raises SIGSEGV (the flag is
** per thread, inherited by clone, reset by execve: a re-exec'd program runs this constructor
** again as long as LD_PRELOAD stays set). The handler checks that the faulting instruction is
** CPUID (0F A2), turns faulting off for a moment, executes CPUID with the saved EAX/ECX, turns it
** back on, clears the AVX-512 feature bits (and the AMX ones, which no AVX2-only CPU has) from the
** result, writes EAX..EDX into the interrupted context and steps over the instruction.
**
** What it hides: leaf 7 subleaf 0 EBX AVX512F/DQ/IFMA/PF/ER/CD/BW/VL, ECX VBMI/VBMI2/VNNI/BITALG/
** VPOPCNTDQ, EDX 4VNNIW/4FMAPS/VP2INTERSECT/FP16/AMX-BF16/AMX-TILE/AMX-INT8; leaf 7 subleaf 1 EAX
** AVX512_BF16, EDX AVX10; leaf 0xD subleaf 0 EAX the opmask/ZMM state bits 5-7 (and AMX's 17-18)
** of the XCR0 bits the CPU supports. AVX, AVX2, FMA, F16C, AVX-VNNI stay. XGETBV cannot be
** trapped: a program that decides on XCR0 alone would still see the ZMM state enabled, but MLAS,
** oneDNN/Xbyak, cpuinfo, OpenBLAS and libgcc's __builtin_cpu_supports all need the CPUID feature
** bit as well. glibc's own ifunc choices (memcpy, libmvec) are made by ld.so before any
** constructor runs: run.sh masks those with GLIBC_TUNABLES=glibc.cpu.hwcaps=-AVX512F,... .
**
** Other SIGSEGV handlers: a program that installs its own (node/V8's WebAssembly trap handler)
** would replace this one, so sigaction() and signal() are wrapped: for SIGSEGV they record the
** program's handler and report it back, and this handler passes every fault that is not a CPUID
** on to it (or, for the default action, restores it so the fault kills the process as before).
** LPQ_CPUID_SHIM_DEBUG=1 prints how many CPUIDs were answered when the process exits. */
#define _GNU_SOURCE
#include <asm/prctl.h>
#include <cpuid.h>
#include <dlfcn.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <ucontext.h>
#include <unistd.h>

#ifndef ARCH_SET_CPUID
#define ARCH_SET_CPUID 0x1012
#endif

typedef int (*sigaction_fn)(int, const struct sigaction *, struct sigaction *);

static sigaction_fn real_sigaction;
static struct sigaction app_segv; /* the program's SIGSEGV disposition, as it believes it set it */
static volatile long answered;    /* CPUIDs answered (LPQ_CPUID_SHIM_DEBUG) */
static int active;

static int set_cpuid(int enabled) { return (int)syscall(SYS_arch_prctl, ARCH_SET_CPUID, enabled); }

/* Clears what an AVX2-only CPU would not report, for CPUID leaf/subleaf. */
static void mask(uint32_t leaf, uint32_t sub, uint32_t r[4]) {
  if (leaf == 7 && sub == 0) {
    r[1] &= ~((1u << 16) | (1u << 17) | (1u << 21) | (1u << 26) | (1u << 27) | (1u << 28) |
              (1u << 30) | (1u << 31));
    r[2] &= ~((1u << 1) | (1u << 6) | (1u << 11) | (1u << 12) | (1u << 14));
    r[3] &= ~((1u << 2) | (1u << 3) | (1u << 8) | (1u << 22) | (1u << 23) | (1u << 24) |
              (1u << 25));
  } else if (leaf == 7 && sub == 1) {
    r[0] &= ~(1u << 5);
    r[3] &= ~(1u << 19);
  } else if (leaf == 0xd && sub == 0) {
    r[0] &= ~((1u << 5) | (1u << 6) | (1u << 7) | (1u << 17) | (1u << 18));
  } else if (leaf == 0x24) { /* AVX10 */
    r[0] = r[1] = r[2] = r[3] = 0;
  }
}

static void pass_on(int sig, siginfo_t *si, void *ctx) {
  const struct sigaction a = app_segv;
  if (a.sa_flags & SA_SIGINFO) {
    a.sa_sigaction(sig, si, ctx);
  } else if (a.sa_handler != SIG_DFL && a.sa_handler != SIG_IGN) {
    a.sa_handler(sig);
  } else { /* the default action: restore it; the instruction faults again and kills us */
    struct sigaction d;
    memset(&d, 0, sizeof d);
    d.sa_handler = SIG_DFL;
    real_sigaction(SIGSEGV, &d, NULL);
  }
}

static void on_segv(int sig, siginfo_t *si, void *ctx) {
  ucontext_t *uc = ctx;
  greg_t *g = uc->uc_mcontext.gregs;
  const unsigned char *ip = (const unsigned char *)g[REG_RIP];
  /* CPUID faulting raises #GP: SI_KERNEL, and then RIP is mapped code we can read */
  if (si->si_code != SI_KERNEL || ip[0] != 0x0f || ip[1] != 0xa2) {
    pass_on(sig, si, ctx);
    return;
  }
  const uint32_t leaf = (uint32_t)g[REG_RAX], sub = (uint32_t)g[REG_RCX];
  uint32_t r[4];
  set_cpuid(1);
  __cpuid_count(leaf, sub, r[0], r[1], r[2], r[3]);
  set_cpuid(0);
  mask(leaf, sub, r);
  g[REG_RAX] = r[0]; /* CPUID zero-extends into the 64-bit registers */
  g[REG_RBX] = r[1];
  g[REG_RCX] = r[2];
  g[REG_RDX] = r[3];
  g[REG_RIP] += 2;
  answered++;
}

static sigaction_fn get_real(void) {
  if (!real_sigaction)
    real_sigaction = (sigaction_fn)dlsym(RTLD_NEXT, "sigaction");
  return real_sigaction;
}

int sigaction(int sig, const struct sigaction *act, struct sigaction *old) {
  if (!get_real())
    return -1;
  if (sig != SIGSEGV || !active)
    return real_sigaction(sig, act, old);
  if (old)
    *old = app_segv;
  if (act)
    app_segv = *act;
  return 0;
}

sighandler_t signal(int sig, sighandler_t h) {
  struct sigaction a, o;
  memset(&a, 0, sizeof a);
  a.sa_handler = h;
  a.sa_flags = SA_RESTART;
  sigemptyset(&a.sa_mask);
  return sigaction(sig, &a, &o) == 0 ? o.sa_handler : SIG_ERR;
}

static void report(void) { fprintf(stderr, "cpuid_avx2: %ld CPUIDs answered\n", answered); }

__attribute__((constructor(101))) static void shim_init(void) {
  if (!get_real())
    return;
  struct sigaction a;
  memset(&a, 0, sizeof a);
  a.sa_sigaction = on_segv;
  a.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_RESTART;
  sigemptyset(&a.sa_mask);
  if (real_sigaction(SIGSEGV, &a, &app_segv) != 0)
    return;
  if (set_cpuid(0) != 0) { /* no CPUID faulting on this CPU or kernel: leave everything as is */
    fprintf(stderr, "cpuid_avx2: CPUID faulting unavailable; the process sees the real CPU\n");
    real_sigaction(SIGSEGV, &app_segv, NULL);
    return;
  }
  active = 1;
  const char *dbg = getenv("LPQ_CPUID_SHIM_DEBUG");
  if (dbg && dbg[0] == '1')
    atexit(report);
}
