/*
 * heap_by_stack: an LD_PRELOAD shim that says which call stacks hold the heap of a process, for measuring what
 * an idle connection keeps (scenario (d)). On SIGUSR2 it writes "<live count> <key> <frame>..." lines to
 * $LIVE_OUT (key: usable size for blocks of 1 KiB or more, 0 for smaller). Take one dump before opening
 * connections and one with them open; bench/lib/heap_by_stack.py diffs and symbolizes the two.
 * Build: cc -O2 -shared -fPIC -o heap_by_stack.so bench/lib/heap_by_stack.c -lpthread
 */
#define _GNU_SOURCE
#include <execinfo.h>
#include <fcntl.h>
#include <malloc.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <errno.h>
#include <pthread.h>
extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);
extern void __libc_free(void *);
/* Live allocations attributed to the call stack that made them (DEPTH - 1 frames above malloc; for blocks of
 * 1 KiB or more the usable size is part of the key, smaller ones are counted together per stack), in an
 * open-addressed table of pointers -> stack slot and stack slots -> live count. One lock: slow, a measurement
 * tool only. */
#define DEPTH 10
#define STACKS 65536
#define PTRS (1 << 22)
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static void *stacks[STACKS][DEPTH];
static long stack_live[STACKS];
static void *ptr_key[PTRS];
static int ptr_stack[PTRS];
static __thread int busy;
static int ready;
static uint64_t hash_stack(void **f, int n) { uint64_t h = 1469598103934665603ull; for (int i = 0; i < n; i++) { h ^= (uint64_t)f[i]; h *= 1099511628211ull; } return h; }
static void track(void *p) {
    if (!p || !ready || busy) return;
    size_t u = malloc_usable_size(p);
    busy = 1;
    void *frames[DEPTH + 2]; int n = backtrace(frames, DEPTH + 2);
    void **f = frames + 2; n -= 2; if (n < 0) n = 0;
    void *key[DEPTH] = {0}; key[0] = (void *)(u >= 1024 ? u : 0); memcpy(key + 1, f, sizeof(void *) * (n > DEPTH - 1 ? DEPTH - 1 : n));
    uint64_t h = hash_stack(key, DEPTH);
    pthread_mutex_lock(&lock);
    int s = (int)(h % STACKS);
    for (int probe = 0; probe < STACKS; probe++, s = (s + 1) % STACKS) {
        if (memcmp(stacks[s], key, sizeof key) == 0) break;
        if (stacks[s][0] == 0) { memcpy(stacks[s], key, sizeof key); break; }
    }
    stack_live[s]++;
    uint64_t ph = ((uint64_t)p >> 4) * 11400714819323198485ull; int i = (int)(ph >> 42);
    while (ptr_key[i] && ptr_key[i] != (void *)1) i = (i + 1) & (PTRS - 1);
    ptr_key[i] = p; ptr_stack[i] = s;
    pthread_mutex_unlock(&lock);
    busy = 0;
}
static void untrack(void *p) {
    if (!p || !ready) return;
    pthread_mutex_lock(&lock);
    uint64_t ph = ((uint64_t)p >> 4) * 11400714819323198485ull; int i = (int)(ph >> 42);
    for (int probe = 0; probe < PTRS && ptr_key[i]; probe++, i = (i + 1) & (PTRS - 1)) {
        if (ptr_key[i] == p) { stack_live[ptr_stack[i]]--; ptr_key[i] = (void *)1; break; }
    }
    pthread_mutex_unlock(&lock);
}
void *malloc(size_t s) { void *p = __libc_malloc(s); track(p); return p; }
void *calloc(size_t c, size_t s) { void *p = __libc_calloc(c, s); track(p); return p; }
void *realloc(void *o, size_t s) { untrack(o); void *p = __libc_realloc(o, s); track(p ? p : o); return p; }
void *memalign(size_t a, size_t s) { void *p = __libc_memalign(a, s); track(p); return p; }
void *aligned_alloc(size_t a, size_t s) { void *p = __libc_memalign(a, s); track(p); return p; }
int posix_memalign(void **out, size_t a, size_t s) { void *p = __libc_memalign(a, s); if (!p && s) return ENOMEM; track(p); *out = p; return 0; }
void free(void *p) { untrack(p); __libc_free(p); }
static void putn(int fd, unsigned long v, int base) { char d[24]; int n = 0; do { int x = v % base; d[n++] = x < 10 ? '0' + x : 'a' + x - 10; v /= base; } while (v); while (n) write(fd, &d[--n], 1); }
static void dump(int sig) {
    (void)sig; const char *path = getenv("LIVE_OUT"); if (!path) return;
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644); if (fd < 0) return;
    for (int s = 0; s < STACKS; s++) { if (stack_live[s] <= 0) continue; putn(fd, stack_live[s], 10);
        for (int k = 0; k < DEPTH; k++) { write(fd, " 0x", 3); putn(fd, (unsigned long)stacks[s][k], 16); } write(fd, "\n", 1); }
    close(fd);
}
__attribute__((constructor)) static void setup(void) { void *f[4]; backtrace(f, 4); signal(SIGUSR2, dump); ready = 1; }
