/*
 * client_cert_shim.c: LD_PRELOAD shim that makes wrk and h2load present a client certificate.
 *
 * Neither load generator can send a client certificate by itself. Both create their client SSL_CTX with
 * SSL_CTX_new (OpenSSL 3, Debian's libssl3), so this shim wraps SSL_CTX_new (found with dlsym(RTLD_NEXT)) and
 * loads the certificate chain and key named by the environment into every new SSL_CTX.
 *
 * Environment:
 *   BENCH_CLIENT_CERT    PEM certificate chain (leaf first). Required: without it the shim does nothing.
 *   BENCH_CLIENT_KEY     PEM private key. Required with BENCH_CLIENT_CERT.
 *   BENCH_TLS13_CIPHERS  optional TLS 1.3 suites for the client (e.g. TLS_AES_128_GCM_SHA256), so every proxy
 *                        negotiates the same suite whatever its own preference order.
 *   BENCH_GROUPS         optional key-exchange groups (e.g. X25519).
 *   BENCH_NO_RESUME=1    forget any session before a new handshake, so every connection does a full
 *                        handshake (wrk keeps the previous connection's session across SSL_clear and would
 *                        otherwise resume).
 *   BENCH_SHIM_STATS     optional file; at exit one line is appended:
 *                        `pid=<pid> contexts=<n> handshakes=<n> resumed=<n> version=<v> cipher=<c>`.
 *
 * Handshakes are counted in SSL_connect and SSL_do_handshake (wrk calls the first, h2load the second, and
 * libssl's SSL_connect calls SSL_do_handshake itself, hence the per-thread nesting guard): a call that
 * completes a handshake that was not complete before it counts once.
 *
 * Any failure to load the certificate is fatal: a benchmark that silently runs without mTLS would measure
 * refused handshakes.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef SSL_CTX *(*ctx_new_fn)(const SSL_METHOD *);
typedef int (*handshake_fn)(SSL *);

static atomic_long contexts, handshakes, resumed;
static char first_version[32], first_cipher[64];
static atomic_int first_recorded;
static __thread int depth;

static void fatal(const char *what, const char *arg) {
    fprintf(stderr, "client_cert_shim: %s%s%s\n", what, arg ? ": " : "", arg ? arg : "");
    ERR_print_errors_fp(stderr);
    _exit(97);
}

static void *next_symbol(const char *name) {
    void *p = dlsym(RTLD_NEXT, name);
    if (!p) fatal("dlsym(RTLD_NEXT) found no", name);
    return p;
}

static void configure(SSL_CTX *ctx) {
    const char *cert = getenv("BENCH_CLIENT_CERT");
    const char *key = getenv("BENCH_CLIENT_KEY");
    if (!cert || !*cert) return;
    if (!key || !*key) fatal("BENCH_CLIENT_CERT is set but BENCH_CLIENT_KEY is not", NULL);
    if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) fatal("cannot load client certificate", cert);
    if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) fatal("cannot load client key", key);
    if (SSL_CTX_check_private_key(ctx) != 1) fatal("client key does not match certificate", key);
    const char *suites = getenv("BENCH_TLS13_CIPHERS");
    if (suites && *suites && SSL_CTX_set_ciphersuites(ctx, suites) != 1) fatal("bad BENCH_TLS13_CIPHERS", suites);
    const char *groups = getenv("BENCH_GROUPS");
    if (groups && *groups && SSL_CTX_set1_groups_list(ctx, groups) != 1) fatal("bad BENCH_GROUPS", groups);
    atomic_fetch_add(&contexts, 1);
}

SSL_CTX *SSL_CTX_new(const SSL_METHOD *method) {
    static ctx_new_fn real;
    if (!real) real = (ctx_new_fn)next_symbol("SSL_CTX_new");
    SSL_CTX *ctx = real(method);
    if (ctx) configure(ctx);
    return ctx;
}

static int counted(handshake_fn real, SSL *ssl) {
    if (depth > 0) return real(ssl);
    const char *no_resume = getenv("BENCH_NO_RESUME");
    if (no_resume && no_resume[0] == '1' && SSL_in_before(ssl) && SSL_get0_session(ssl) != NULL)
        SSL_set_session(ssl, NULL);
    int was_done = SSL_is_init_finished(ssl);
    depth++;
    int r = real(ssl);
    depth--;
    if (r == 1 && !was_done) {
        atomic_fetch_add(&handshakes, 1);
        if (SSL_session_reused(ssl)) atomic_fetch_add(&resumed, 1);
        int expected = 0;
        if (atomic_compare_exchange_strong(&first_recorded, &expected, 1)) {
            snprintf(first_version, sizeof first_version, "%s", SSL_get_version(ssl));
            snprintf(first_cipher, sizeof first_cipher, "%s", SSL_get_cipher_name(ssl));
        }
    }
    return r;
}

int SSL_connect(SSL *ssl) {
    static handshake_fn real;
    if (!real) real = (handshake_fn)next_symbol("SSL_connect");
    return counted(real, ssl);
}

int SSL_do_handshake(SSL *ssl) {
    static handshake_fn real;
    if (!real) real = (handshake_fn)next_symbol("SSL_do_handshake");
    if (SSL_is_server(ssl)) return real(ssl);
    return counted(real, ssl);
}

__attribute__((destructor)) static void report(void) {
    const char *path = getenv("BENCH_SHIM_STATS");
    if (!path || !*path) return;
    FILE *f = fopen(path, "a");
    if (!f) return;
    fprintf(f, "pid=%ld contexts=%ld handshakes=%ld resumed=%ld version=%s cipher=%s\n", (long)getpid(),
            atomic_load(&contexts), atomic_load(&handshakes), atomic_load(&resumed),
            first_version[0] ? first_version : "-", first_cipher[0] ? first_cipher : "-");
    fclose(f);
}
