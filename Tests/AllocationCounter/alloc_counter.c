/*
 * An LD_PRELOAD shim that counts heap allocations in the process it is loaded into, the way SwiftNIO's
 * allocation-counter tests count them: every call of malloc, calloc, realloc (whatever it does),
 * posix_memalign, aligned_alloc and memalign adds one. free is not counted.
 *
 * The count is read from outside: on SIGUSR2 the shim writes "<count>\n" to $ALLOC_COUNTER_OUT (through a
 * temporary file and rename, so a reader never sees half a number). Everything the handler calls is
 * async-signal-safe (open, write, close, rename). Used by AllocationBudgetTests with the real gateway.
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
#include <unistd.h>

extern void *__libc_malloc(size_t size);
extern void *__libc_calloc(size_t count, size_t size);
extern void *__libc_realloc(void *pointer, size_t size);
extern void *__libc_memalign(size_t alignment, size_t size);
extern void __libc_free(void *pointer);

static atomic_ulong allocations;
static char out_path[4096];
static char tmp_path[4100];

static void count(void) { atomic_fetch_add_explicit(&allocations, 1, memory_order_relaxed); }

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

static void report(int signal_number) {
    (void)signal_number;
    int saved = errno;
    char digits[32];
    int at = (int)sizeof(digits);
    digits[--at] = '\n';
    unsigned long value = atomic_load_explicit(&allocations, memory_order_relaxed);
    do {
        digits[--at] = (char)('0' + value % 10);
        value /= 10;
    } while (value != 0);
    int fd = open(tmp_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd >= 0) {
        ssize_t written = write(fd, digits + at, sizeof(digits) - (size_t)at);
        close(fd);
        if (written == (ssize_t)(sizeof(digits) - (size_t)at)) rename(tmp_path, out_path);
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
