/*
 * sigsuspend_shim.c: LD_PRELOAD workaround that lets the gateway run under valgrind 3.19 (Debian 12).
 *
 * Swift's libdispatch parks the main thread in `sigsuspend(&mask)` with `mask` in read-only memory. valgrind
 * 3.19's rt_sigsuspend wrapper writes to the caller's mask (it removes the signals it reserves for itself)
 * and crashes with "VALGRIND INTERNAL ERROR: Valgrind received a signal 11" (SEGV_ACCERR at that address)
 * as soon as a Swift program that uses dispatchMain -- every AsyncParsableCommand -- starts. This shim passes
 * the kernel a writable copy instead. It changes nothing outside valgrind and is only used by
 * `bench/run profile`.
 */
#define _GNU_SOURCE
#include <signal.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

int sigsuspend(const sigset_t *mask) {
    sigset_t copy;
    memcpy(&copy, mask, sizeof copy);
    return (int)syscall(SYS_rt_sigsuspend, &copy, (size_t)(_NSIG / 8));
}
