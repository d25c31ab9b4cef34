/*
 * gateway_plugin.h -- the plugin ABI of mtls-gateway, version 1.0.
 *
 * This header is the one source of truth for the ABI between the gateway (the host) and its plugins: shared
 * libraries loaded with dlopen(RTLD_NOW | RTLD_LOCAL) and chained per listener. Plain C99, standard headers
 * only, so that a plugin can be written in C, C++, Swift, Rust, Zig or anything that can export a C function.
 *
 * Shape (after SQLite's sqlite3ext.h and Envoy's dynamic-module abi.h):
 *   - The plugin exports ONE symbol, `gw_plugin_entry_v1`, whose name carries the ABI major version.
 *   - The host calls it once, right after dlopen, with a table of host functions (`gw_host_api`); the plugin
 *     returns a pointer to its static descriptor (`gw_plugin_descriptor`). No host symbol is exported to
 *     plugins: everything a plugin may call is in the table.
 *   - Both tables start with their own size and only ever grow at the end. Within one major version, a newer
 *     host loads plugins built for an older or equal minor version; a plugin built for a newer minor than the
 *     host is refused (it may call functions the host does not have). A plugin that wants to run on older
 *     hosts checks `host->struct_size` before calling a function added in a later minor version.
 *
 * Threads. Unless a hook's comment says otherwise, hooks run on one of the gateway's event-loop threads and
 * MUST NOT block (no file or network I/O, no sleeping, no waiting on locks held for long). A plugin whose hooks
 * need to block sets GW_PLUGIN_FLAG_BLOCKING: its on_request_headers then runs on a bounded pool of worker
 * threads, each call limited by the chain entry's `timeout_ms` (its other hooks stay on the event loop). A
 * blocking call works on a private copy of the request; the host adopts the copy's changes only if the call
 * returns in time. After a timeout the request goes on (on_error applies) while the late call may still be
 * running on its copy, whose changes are then discarded. Hooks of one instance may run concurrently on several
 * threads (one per event loop), so instance state shared between requests must be thread-safe. Apart from a
 * timed-out blocking call, calls that concern one request or connection never overlap.
 *
 * Memory. Nothing allocated on one side is freed on the other. Strings cross as (pointer, length) views
 * (`gw_str`), not NUL-terminated unless stated. A view the host hands out is valid until the hook that
 * received it returns; copy what you keep. Views the plugin passes in are copied by the host before the call
 * returns. Bytes attributes (DER) are views too.
 *
 * Handles. Connections and requests are referred to by opaque 64-bit handles that are only valid during the
 * hook call they were passed to (and on the thread that runs it). A host function called with a stale or
 * unknown handle returns GW_ERR_STALE_HANDLE; it never crashes.
 *
 * Errors. Host functions return a gw_status: 0 (GW_OK) or a negative error code. Request hooks return a
 * gw_action: GW_CONTINUE, GW_STOP (the plugin answered the request with `respond`), or a negative value (an
 * error): the chain entry's `on_error` policy then decides: `deny` (the default) answers 500 and nothing is
 * forwarded; `continue` goes on with the next plugin.
 */
#ifndef GATEWAY_PLUGIN_H
#define GATEWAY_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/** The ABI version this header describes. The major version is also part of the entry symbol's name. */
#define GW_PLUGIN_ABI_MAJOR 1
#define GW_PLUGIN_ABI_MINOR 0

/** First field of every descriptor: the bytes "GWPL" read as a big-endian number. Catches a symbol that
 *  points at something else. */
#define GW_PLUGIN_MAGIC 0x4757504CU

/** The entry symbol's name for this major version, for dlsym and for error messages. */
#define GW_PLUGIN_ENTRY_SYMBOL "gw_plugin_entry_v1"

/** A borrowed byte string: `ptr` need not be NUL-terminated; `ptr` may be NULL only when `len` is 0. */
typedef struct gw_str {
    const char *ptr;
    size_t len;
} gw_str;

/** A connection or request, valid only during the hook call that received it. 0 is never a valid handle. */
typedef uint64_t gw_handle;

/** Results of host functions. Negative values are errors; new codes may be added in later minor versions. */
typedef enum gw_status {
    GW_OK = 0,
    /** An argument is NULL, out of range, or not allowed here (e.g. an attribute index past the end). */
    GW_ERR_INVALID_ARGUMENT = -1,
    /** The attribute, header or variable does not exist for this handle (e.g. no client certificate). */
    GW_ERR_NOT_FOUND = -2,
    /** The handle is not the one of the hook now running on this thread. */
    GW_ERR_STALE_HANDLE = -3,
    /** A header name is not an RFC 9110 token, or a value contains CR, LF or NUL. Nothing was changed. */
    GW_ERR_INVALID_HEADER = -4,
    /** The call is not allowed in this hook (e.g. setting a request header in on_response_headers). */
    GW_ERR_WRONG_PHASE = -5,
    /** The host failed internally; the request goes on as if the call had not been made. */
    GW_ERR_INTERNAL = -6,
} gw_status;

/** What a request hook tells the host. */
typedef enum gw_action {
    /** Go on with the next plugin, then the backend. */
    GW_CONTINUE = 0,
    /** The plugin answered with `respond`: later plugins and the backend are skipped. */
    GW_STOP = 1,
    /** Any negative value is an error; the entry's `on_error` policy applies. */
    GW_FAILED = -1,
} gw_action;

/** Log levels for `gw_host_api.log`. */
typedef enum gw_log_level {
    GW_LOG_TRACE = 0,
    GW_LOG_DEBUG = 1,
    GW_LOG_INFO = 2,
    GW_LOG_WARNING = 3,
    GW_LOG_ERROR = 4,
} gw_log_level;

/**
 * Attributes a plugin can read with `get_attribute` (strings and bytes) or `get_attribute_int` (integers).
 * Connection attributes are readable with a connection handle and with a request handle. The `index` argument
 * selects one value of a multi-valued attribute (SANs, chain certificates) and is 0 otherwise; past the last
 * value the host returns GW_ERR_NOT_FOUND, so a plugin iterates until it does.
 * New attributes are added at the end in later minor versions; an unknown attribute gives GW_ERR_NOT_FOUND.
 */
typedef enum gw_attribute {
    /* Connection (string unless noted). */
    GW_ATTR_LISTENER_NAME = 1,
    GW_ATTR_CLIENT_ADDRESS = 2,      /* IP address text, e.g. "127.0.0.1" or "::1" */
    GW_ATTR_CLIENT_PORT = 3,         /* int */
    GW_ATTR_LOCAL_ADDRESS = 4,
    GW_ATTR_LOCAL_PORT = 5,          /* int */
    GW_ATTR_CONNECTION_ID = 6,       /* int, unique in this process */
    GW_ATTR_SNI = 7,                 /* not found without SNI */
    GW_ATTR_ALPN = 8,                /* negotiated protocol */
    GW_ATTR_TLS_VERSION = 9,         /* "TLSv1.2", "TLSv1.3" */
    GW_ATTR_TLS_CIPHER = 10,         /* OpenSSL name of the negotiated suite */
    GW_ATTR_TLS_CIPHERS_OFFERED = 11,/* the client's offered suites, OpenSSL names joined by ':' */
    GW_ATTR_CLIENT_CERT_PRESENT = 12,/* int: 1 if the client presented a certificate */
    GW_ATTR_CLIENT_VERIFY = 13,      /* "SUCCESS", "FAILED:<reason code>" or "NONE" (nginx's $ssl_client_verify) */
    GW_ATTR_VERIFY_ERROR = 14,       /* the precise reason text when verification failed */
    GW_ATTR_CLIENT_SUBJECT = 15,     /* RFC 2253 as OpenSSL prints it, e.g. "CN=a,O=Org,C=US" */
    GW_ATTR_CLIENT_ISSUER = 16,
    GW_ATTR_CLIENT_SERIAL = 17,      /* uppercase hex, no separators */
    GW_ATTR_CLIENT_FINGERPRINT_SHA1 = 18,   /* lowercase hex of the leaf DER */
    GW_ATTR_CLIENT_FINGERPRINT_SHA256 = 19,
    GW_ATTR_CLIENT_NOT_BEFORE = 20,  /* "Sep 21 22:43:21 2027 GMT" */
    GW_ATTR_CLIENT_NOT_AFTER = 21,
    GW_ATTR_CLIENT_NOT_BEFORE_UNIX = 22, /* int, seconds since 1970 */
    GW_ATTR_CLIENT_NOT_AFTER_UNIX = 23,  /* int */
    GW_ATTR_CLIENT_SAN_DNS = 24,     /* indexed */
    GW_ATTR_CLIENT_SAN_URI = 25,     /* indexed */
    GW_ATTR_CLIENT_SAN_IP = 26,      /* indexed, text */
    GW_ATTR_CLIENT_SAN_EMAIL = 27,   /* indexed */
    GW_ATTR_CLIENT_CERT_DER = 28,    /* bytes: the leaf */
    GW_ATTR_CLIENT_CERT_PEM = 29,    /* the leaf, PEM with a final newline */
    GW_ATTR_CLIENT_CHAIN_DER = 30,   /* bytes, indexed: the presented chain, leaf first */
    GW_ATTR_CLIENT_CHAIN_PEM = 31,   /* every presented certificate, PEM, concatenated */
    /* Request (string unless noted); not found with a connection handle. */
    GW_ATTR_REQUEST_ID = 40,         /* int, unique in this process */
    GW_ATTR_METHOD = 41,
    GW_ATTR_PATH = 42,               /* without the query */
    GW_ATTR_QUERY = 43,              /* without '?'; not found when absent */
    GW_ATTR_HOST = 44,               /* the Host header as received */
    GW_ATTR_SCHEME = 45,             /* "https" or "http" */
    GW_ATTR_URI = 46,                /* the request target as received */
    GW_ATTR_BACKEND_NAME = 47,       /* the routed backend group; not found when no route matched */
    /* Completion (on_complete only, and on_response_headers for the status). */
    GW_ATTR_RESPONSE_STATUS = 60,    /* int */
    GW_ATTR_BYTES_RECEIVED = 61,     /* int: request body bytes read from the client */
    GW_ATTR_BYTES_SENT = 62,         /* int: response body bytes written to the client */
    GW_ATTR_DURATION_US = 63,        /* int: from request head to completion */
    GW_ATTR_BACKEND_SERVER = 64,     /* "host:port" of the server that answered; not found if none did */
    GW_ATTR_ANSWERED_BY = 65,        /* name of the plugin that answered with `respond`; not found otherwise */
    GW_ATTR_CLIENT_ABORTED = 66,     /* int: 1 if the client went away before the response was complete */
} gw_attribute;

/** Kinds of metric a plugin can define. */
typedef enum gw_metric_kind {
    GW_METRIC_COUNTER = 0,
    GW_METRIC_HISTOGRAM = 1,
} gw_metric_kind;

/** One header, for `respond`. */
typedef struct gw_header {
    gw_str name;
    gw_str value;
} gw_header;

/**
 * Functions the host provides. Passed to the entry point and to `create`; valid for the life of the process.
 * All functions are thread-safe. Functions taking a handle may only be called from within a hook that
 * received that handle, on the thread running it.
 */
typedef struct gw_host_api {
    /** sizeof(gw_host_api) as the host was built: check it before calling a function added later. */
    uint32_t struct_size;
    uint16_t abi_major;
    uint16_t abi_minor;

    /**
     * Logs a line through the gateway's logger, tagged with the plugin's name and the instance's listener.
     * `instance_tag` is the tag the host passed to `create` (see gw_create_args), or 0 for process-wide lines.
     * Any thread; never blocks on I/O.
     */
    void (*log)(uint64_t instance_tag, gw_log_level level, gw_str message);

    /** Reads a string or bytes attribute into `*out` (a view valid until the hook returns). */
    gw_status (*get_attribute)(gw_handle handle, gw_attribute attribute, uint32_t index, gw_str *out);

    /** Reads an integer attribute. */
    gw_status (*get_attribute_int)(gw_handle handle, gw_attribute attribute, int64_t *out);

    /**
     * Reads the `index`-th value of request header `name` (case-insensitive) in on_request_headers and later,
     * or of the response header in on_response_headers and on_complete (phase decides). GW_ERR_NOT_FOUND past
     * the last value.
     */
    gw_status (*get_header)(gw_handle request, gw_str name, uint32_t index, gw_str *out);

    /**
     * Sets (replacing every value), adds, or removes a header: the request's in on_request_headers (what the
     * backend will receive), the response's in on_response_headers (what the client will receive). Names must
     * be RFC 9110 tokens and values free of CR, LF and NUL, else GW_ERR_INVALID_HEADER and nothing changes.
     * Removing an absent header is GW_OK. Removal is case-insensitive.
     */
    gw_status (*set_header)(gw_handle request, gw_str name, gw_str value);
    gw_status (*add_header)(gw_handle request, gw_str name, gw_str value);
    gw_status (*remove_header)(gw_handle request, gw_str name);

    /**
     * Answers the request from on_request_headers: status 200..599, extra headers, and a body (copied).
     * The answer takes effect only if the hook then returns GW_STOP; with any other result it is discarded.
     * Content-Length is set by the host.
     */
    gw_status (*respond)(gw_handle request, uint32_t status, const gw_header *headers, size_t header_count, gw_str body);

    /**
     * Per-request variables shared along the chain (e.g. an authorization plugin's decision and rule, read by
     * the audit plugin). Names and values are copied. `get_var` returns a view valid until the hook returns.
     */
    gw_status (*set_var)(gw_handle request, gw_str name, gw_str value);
    gw_status (*get_var)(gw_handle request, gw_str name, gw_str *out);

    /**
     * Defines a metric; call it from `create`. `*out_id` identifies it for `metric_record`. The name must
     * match [a-z_][a-z0-9_]*; the host prefixes it with "gateway_plugin_". Same name twice gives the same id.
     * Instances of the same plugin on the same listener (e.g. the old and the new instance across a reload)
     * share one series, so values carry over a reload. Exported on the admin listener's GET /metrics with
     * the labels plugin and listener: a counter as "gateway_plugin_<name>_total" (a name that already ends
     * in "_total" gets no second one), a histogram as a summary ("_sum" and "_count"; no buckets).
     */
    gw_status (*metric_define)(uint64_t instance_tag, gw_metric_kind kind, gw_str name, gw_str help, uint32_t *out_id);

    /** Adds `value` to a counter or records it in a histogram. Any thread. */
    gw_status (*metric_record)(uint64_t instance_tag, uint32_t metric_id, double value);

    /**
     * Enumerates headers: the `index`-th header (in order) of the request in on_request_headers, of the
     * response in on_response_headers and on_complete. Both views are valid until the hook returns.
     * GW_ERR_NOT_FOUND past the last header. Lets a plugin find every spelling of a header it owns.
     */
    gw_status (*get_header_at)(gw_handle request, uint32_t index, gw_str *name, gw_str *value);
} gw_host_api;

/** What `create` receives about the chain entry it instantiates. */
typedef struct gw_create_args {
    /** sizeof(gw_create_args) as the host was built. */
    uint32_t struct_size;
    /** Tag for `log`, `metric_define` and `metric_record`. */
    uint64_t instance_tag;
    /** The listener this instance serves. */
    gw_str listener_name;
    /** The entry's `config`, as JSON text ("{}" when absent). */
    gw_str config_json;
} gw_create_args;

/** Flags in gw_plugin_descriptor.flags. */
#define GW_PLUGIN_FLAG_BLOCKING 0x1u /* request hooks may block: run them on the worker pool, with timeout_ms */

/**
 * The plugin's descriptor, returned by the entry point. Must stay valid (static) until the process exits:
 * the host never dlcloses a library whose code ran.
 */
typedef struct gw_plugin_descriptor {
    /** GW_PLUGIN_MAGIC. */
    uint32_t magic;
    /** sizeof(gw_plugin_descriptor) as the plugin was built. */
    uint32_t struct_size;
    /** GW_PLUGIN_ABI_MAJOR and GW_PLUGIN_ABI_MINOR as the plugin was built. */
    uint16_t abi_major;
    uint16_t abi_minor;
    /** GW_PLUGIN_FLAG_* bits. */
    uint32_t flags;
    /** NUL-terminated, static. `name` must be unique among loaded plugins: [A-Za-z0-9_.-]{1,64}. */
    const char *name;
    const char *version;

    /**
     * Required. Creates an instance for one chain entry of one listener: at start-up, in `gateway validate`,
     * and on every reload (SIGHUP, or POST /reload on the admin listener), which creates an instance for
     * every chain entry of the new configuration, unchanged ones included. Called on a thread that is not an
     * event loop (not necessarily the main thread), one call at a time: never concurrently with another
     * `create`, of any listener. On a reload it runs while the previous instances (of this entry and of the
     * same plugin elsewhere) still serve requests on the event loops, and possibly while instances of an
     * older configuration are being destroyed; the previous instances are destroyed only after the new ones
     * were created. If the reload fails (another entry's `create`, any other config error, a listener that
     * cannot bind), the instances it created are destroyed and the previous ones stay.
     * Returns 0 and sets `*instance` (opaque to the host) on success. On failure returns non-zero and writes a
     * NUL-terminated reason into `error` (at most `error_capacity` bytes, truncated if longer); the host copies
     * it into its error message, which names the library, the listener and the chain entry.
     */
    int32_t (*create)(const gw_host_api *host, const gw_create_args *args, void **instance, char *error, size_t error_capacity);

    /**
     * Required. Destroys an instance, exactly once, after its last request completed: when the configuration
     * it belongs to was replaced by a reload and its last connection has closed (at once if none was open);
     * at shutdown, once every connection has closed or shutdown_timeout has passed; when the configuration
     * (or a reload) turned out to be invalid; at the end of `gateway validate`. Blocking calls still running
     * on the configuration's worker pool are waited for first. Never called on an event loop: on the reload's
     * or the shutdown's thread, or on a background thread when a replaced configuration's last connection
     * closes; shutdown waits for it, so a flush here completes before the process exits.
     */
    void (*destroy)(void *instance);

    /**
     * Optional. Called once per connection after the TLS handshake, also when it failed (then
     * GW_ATTR_CLIENT_VERIFY is "FAILED:<reason>", GW_ATTR_VERIFY_ERROR says why, and the client certificate
     * attributes describe what the client presented, if anything). Read-only: event-loop thread, never blocks.
     */
    void (*on_connection)(void *instance, gw_handle connection);

    /** Optional. The request head arrived: read attributes and headers, change request headers, or respond. */
    gw_action (*on_request_headers)(void *instance, gw_handle request);

    /** Optional. The backend's (or a plugin's, or the gateway's) response head is about to be sent: change
     *  response headers. Event-loop thread, also for blocking plugins. Runs for the entries the request reached. */
    gw_action (*on_response_headers)(void *instance, gw_handle request);

    /**
     * Optional. The exchange is over: after the response was sent, or the client went away. Read-only; runs
     * for every request that reached this entry of the chain (entries after one that answered are not reached
     * and get no hook). Event-loop thread, even for blocking plugins: hand slow work to your own thread.
     */
    void (*on_complete)(void *instance, gw_handle request);

    /**
     * Optional. The operator asked for files to be reopened (SIGHUP, e.g. after logrotate renamed a log).
     * Called on every reload (SIGHUP or POST /reload), whether it succeeds or not, for the instances that
     * stay in use: after a failed reload the current ones and those of older configurations still finishing
     * their connections; after a successful one those older ones (new instances open their files in `create`).
     * Called on a thread that is not an event loop; may block briefly (close and reopen a file).
     */
    void (*on_reopen)(void *instance);
} gw_plugin_descriptor;

/**
 * The entry point a plugin exports. Called once per process and library path, right after dlopen, at
 * start-up or at the first reload that names the file, on a thread that is not an event loop. The library
 * is never unloaded: a new file at the same path is not loaded before the process restarts.
 * `host` stays valid for the life of the process. Returns the static descriptor, or NULL to refuse to
 * load (the host reports it).
 */
typedef const gw_plugin_descriptor *(*gw_plugin_entry_fn)(const gw_host_api *host);

#ifdef __cplusplus
}
#endif

#endif /* GATEWAY_PLUGIN_H */
