/*
 * An LD_PRELOAD shim that counts heap allocations in the process it is loaded into, the way SwiftNIO's
 * allocation-counter tests count them: every call of malloc, calloc, realloc (whatever it does),
 * posix_memalign, aligned_alloc and memalign adds one. free is not counted.
 *
 * Counts are kept per thread as well as in total, so a reader can tell the event loop's allocations from a
 * background thread's (whose batches depend on timing). The counts are read from outside: on SIGUSR2 the shim
 * writes "total <count>\n" and then "<thread id> <count>\n" for every thread that allocated to
 * $ALLOC_COUNTER_OUT (through a temporary file and rename, so a reader never sees half a report). Everything
 * the handler calls is async-signal-safe (open, write, close, rename). Used by AllocationBudgetTests with the
 * real gateway.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

extern void *__libc_malloc(size_t size);
extern void *__libc_calloc(size_t count, size_t size);
extern void *__libc_realloc(void *pointer, size_t size);
extern void *__libc_memalign(size_t alignment, size_t size);
extern void __libc_free(void *pointer);

#define THREAD_SLOTS 256

static atomic_ulong allocations;
/* One slot per thread that allocated, claimed on its first allocation; a thread beyond the last slot is
 * counted in the total only. Thread ids may be reused by later threads; the reader compares per id. */
static atomic_int slot_thread[THREAD_SLOTS];
static atomic_ulong slot_count[THREAD_SLOTS];
static atomic_int slots_used;
static __thread int thread_slot __attribute__((tls_model("initial-exec"))) = -1;
static char out_path[4096];
static char tmp_path[4100];

static void count(void) {
    atomic_fetch_add_explicit(&allocations, 1, memory_order_relaxed);
    int slot = thread_slot;
    if (slot == -1) {
        slot = atomic_fetch_add_explicit(&slots_used, 1, memory_order_relaxed);
        if (slot >= THREAD_SLOTS) slot = THREAD_SLOTS;
        else atomic_store_explicit(&slot_thread[slot], (int)syscall(SYS_gettid), memory_order_relaxed);
        thread_slot = slot;
    }
    if (slot < THREAD_SLOTS) atomic_fetch_add_explicit(&slot_count[slot], 1, memory_order_relaxed);
}

void *malloc(size_t size) { count(); return __libc_malloc(size); }
void *calloc(size_t count_, size_t size) { count(); return __libc_calloc(count_, size); }
void *realloc(void *pointer, size_t size) { count(); return __libc_realloc(pointer, size); }
void *memalign(size_t alignment, size_t size) { count(); return __libc_memalign(alignment, size); }
void *aligned_alloc(size_t alignment, size_t size) { count(); return __libc_memalign(alignment, size); }
void free(void *pointer) { __libc_free(pointer); }

int posix_memalign(void **out, size_t alignment, size_t size) {
    if (alignment == 0 || alignment % sizeof(void *) != 0 || (alignment & (alignment - 1)) != 0) return EINVAL;
    count();
    void *pointer = __libc_memalign(alignment, size);
    if (pointer == NULL && size != 0) return ENOMEM;
    *out = pointer;
    return 0;
}

/* Appends `value` in decimal to `buffer` at `*at`. */
static void append_number(char *buffer, size_t *at, unsigned long value) {
    char digits[24];
    int length = 0;
    do {
        digits[length++] = (char)('0' + value % 10);
        value /= 10;
    } while (value != 0);
    while (length > 0) buffer[(*at)++] = digits[--length];
}

static void report(int signal_number) {
    (void)signal_number;
    int saved = errno;
    static char text[64 + THREAD_SLOTS * 48];
    size_t at = 0;
    memcpy(text, "total ", 6);
    at = 6;
    append_number(text, &at, atomic_load_explicit(&allocations, memory_order_relaxed));
    text[at++] = '\n';
    int used = atomic_load_explicit(&slots_used, memory_order_relaxed);
    if (used > THREAD_SLOTS) used = THREAD_SLOTS;
    for (int slot = 0; slot < used; slot++) {
        int thread = atomic_load_explicit(&slot_thread[slot], memory_order_relaxed);
        if (thread == 0) continue; /* claimed, id not yet stored */
        append_number(text, &at, (unsigned long)thread);
        text[at++] = ' ';
        append_number(text, &at, atomic_load_explicit(&slot_count[slot], memory_order_relaxed));
        text[at++] = '\n';
    }
    int fd = open(tmp_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd >= 0) {
        ssize_t written = write(fd, text, at);
        close(fd);
        if (written == (ssize_t)at) rename(tmp_path, out_path);
    }
    errno = saved;
}

__attribute__((constructor)) static void install(void) {
    const char *path = getenv("ALLOC_COUNTER_OUT");
    if (path == NULL || strlen(path) >= sizeof(out_path)) return;
    memcpy(out_path, path, strlen(path) + 1);
    memcpy(tmp_path, path, strlen(path));
    memcpy(tmp_path + strlen(path), ".tmp", 5);
    struct sigaction action;
    memset(&action, 0, sizeof(action));
    action.sa_handler = report;
    action.sa_flags = SA_RESTART;
    sigemptyset(&action.sa_mask);
    sigaction(SIGUSR2, &action, NULL);
}
