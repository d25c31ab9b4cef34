/*
 * gateway_plugin.h -- the plugin ABI of mtls-gateway, version 1.6.
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
 *   - Both tables carry their own size (`struct_size`; the descriptor after its `magic`) and only ever grow
 *     at the end; nothing is removed, reordered or
 *     retyped within a major version. Every member is marked with the minor version that added it.
 *   - Versions. A descriptor's `abi_minor` is the lowest minor version whose host functions the plugin
 *     REQUIRES (GW_PLUGIN_ABI_MINOR of the header it was built against, unless it sets a lower one on
 *     purpose). The host refuses only a plugin that requires a newer minor than it has. A plugin that can also
 *     run on older hosts declares the older minor and probes each newer host function before calling it:
 *     `if (GW_HOST_HAS(host, some_later_function)) ...`. The host likewise reads a descriptor member added in
 *     a later minor only when the plugin's `struct_size` covers it.
 *
 * Trust. A plugin is code in the gateway's process, with its privileges, its memory and its private keys in
 * reach: the ABI protects against mistakes (stale handles, bad arguments, oversized strings), not against a
 * hostile plugin. Load only plugins you would link into the gateway yourself.
 *
 * Threads. Every hook's comment says which thread calls it. The request and connection hooks run on one of
 * the gateway's event-loop threads and MUST NOT block (no file or network I/O, no sleeping, no waiting on locks
 * held for long), with one exception: for a plugin that sets GW_PLUGIN_FLAG_BLOCKING, on_request_headers runs
 * on a bounded pool of worker threads instead, each call limited by the chain entry's `timeout` (its other
 * hooks stay on the event loop). A
 * blocking call works on a private copy of the request; the host adopts the copy's changes only if the call
 * returns in time. After a timeout the request goes on (on_error applies) while the late call may still be
 * running on its copy, whose changes are then discarded. Hooks of one instance may run concurrently on several
 * threads (one per event loop), so instance state shared between requests must be thread-safe. Calls that
 * concern one request or connection never overlap, with one exception: while a blocking on_request_headers
 * still runs on its copy (timed out, or the client went away or sent a body over the limit meanwhile), the
 * event loop may already run that request's on_response_headers and on_complete on the original.
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
 * Errors. Host functions, `create` and on_response_headers return a gw_status: 0 (GW_OK) or a negative error
 * code. on_request_headers returns a gw_action: GW_CONTINUE, GW_STOP (the plugin answered the request with
 * `respond`), or a negative value (an error): the chain entry's `on_error` policy then decides: `deny` (the
 * default) answers 500 and nothing is forwarded; `continue` goes on with the next plugin.
 *
 * Types. Every value that crosses the boundary has a fixed width (C enums do not): the named types below are
 * typedefs of intN_t/uintN_t, their values are macros. No struct has implicit padding on the usual ABIs
 * (LP64 and ILP32): where alignment would insert some, a `reserved` field (always 0) holds the place.
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
#define GW_PLUGIN_ABI_MINOR 6

/** First field of every descriptor: the bytes "GWPL" read as a big-endian number. Catches a symbol that
 *  points at something else. */
#define GW_PLUGIN_MAGIC 0x4757504CU

/** The entry symbol's name for this major version, for dlsym and for error messages. */
#define GW_PLUGIN_ENTRY_SYMBOL "gw_plugin_entry_v1"

/* ---- ABI 1.0: everything from here to "Sizes and probes". A later minor version adds its members under a
 * marker of its own (e.g. "ABI 1.1") at the end of each struct and of each list of values. ---------------- */

/** A borrowed byte string: `ptr` need not be NUL-terminated; `ptr` may be NULL only when `len` is 0. */
typedef struct gw_str {
    const char *ptr;
    size_t len;
} gw_str;

/** A connection or request, valid only during the hook call that received it. 0 is never a valid handle. */
typedef uint64_t gw_handle;

/** Results of host functions, `create` and on_response_headers. Negative values are errors; new codes may
 *  be added in later minor versions (treat an unknown negative code as an error). */
typedef int32_t gw_status;
#define GW_OK 0
/** An argument is NULL, out of range, or not allowed here (e.g. an attribute index past the end). */
#define GW_ERR_INVALID_ARGUMENT (-1)
/** The attribute, header or variable does not exist for this handle (e.g. no client certificate). */
#define GW_ERR_NOT_FOUND (-2)
/** The handle is not the one of the hook now running on this thread. */
#define GW_ERR_STALE_HANDLE (-3)
/** A header name is not an RFC 9110 token, or a value contains CR, LF or NUL. Nothing was changed. */
#define GW_ERR_INVALID_HEADER (-4)
/** The call is not allowed here (e.g. setting a request header in on_response_headers, or metric_define
 *  outside `create`). */
#define GW_ERR_WRONG_PHASE (-5)
/** The host failed internally; the request goes on as if the call had not been made. */
#define GW_ERR_INTERNAL (-6)

/** What on_request_headers tells the host. */
typedef int32_t gw_action;
/** Go on with the next plugin, then the backend. */
#define GW_CONTINUE 0
/** The plugin answered with `respond`: later plugins and the backend are skipped. */
#define GW_STOP 1
/** Any negative value is an error; the entry's `on_error` policy applies. */
#define GW_FAILED (-1)

/** Log levels for `gw_host_api.log`. */
typedef int32_t gw_log_level;
#define GW_LOG_TRACE 0
#define GW_LOG_DEBUG 1
#define GW_LOG_INFO 2
#define GW_LOG_WARNING 3
#define GW_LOG_ERROR 4

/**
 * Attributes a plugin can read with `get_attribute` (strings and bytes) or `get_attribute_int` (integers).
 * Connection attributes are readable with a connection handle and with a request handle. The `index` argument
 * selects one value of a multi-valued attribute (SANs, chain certificates) and is 0 otherwise; past the last
 * value the host returns GW_ERR_NOT_FOUND, so a plugin iterates until it does.
 * An unknown attribute gives GW_ERR_NOT_FOUND, so a plugin can ask a host of any minor version.
 *
 * Numbering, for every minor version to come: numbers are never reused or renumbered. Ranges:
 *   1-39      connection attributes          40-59    request attributes
 *   60-79     completion attributes          80-999   reserved for later host attributes of any kind
 *   1000-     never used by the host (free for a plugin's own tables)
 * A later minor adds an attribute with the next free number of its range (then of 80-999), marked with that
 * minor version like every other addition.
 */
typedef uint32_t gw_attribute;
/* Connection (string unless noted). */
#define GW_ATTR_LISTENER_NAME            1u
#define GW_ATTR_CLIENT_ADDRESS           2u  /* IP address text, e.g. "127.0.0.1" or "::1" */
#define GW_ATTR_CLIENT_PORT              3u  /* int */
#define GW_ATTR_LOCAL_ADDRESS            4u
#define GW_ATTR_LOCAL_PORT               5u  /* int */
#define GW_ATTR_CONNECTION_ID            6u  /* int, unique in this process */
#define GW_ATTR_SNI                      7u  /* not found without SNI */
#define GW_ATTR_ALPN                     8u  /* negotiated protocol */
#define GW_ATTR_TLS_VERSION              9u  /* "TLSv1.2", "TLSv1.3" */
#define GW_ATTR_TLS_CIPHER               10u  /* OpenSSL name of the negotiated suite */
#define GW_ATTR_TLS_CIPHERS_OFFERED      11u  /* the client's offered suites, OpenSSL names joined by ':' */
#define GW_ATTR_CLIENT_CERT_PRESENT      12u  /* int: 1 if the client presented a certificate */
#define GW_ATTR_CLIENT_VERIFY            13u  /* "SUCCESS", "FAILED:<reason code>" or "NONE" (nginx's $ssl_client_verify) */
#define GW_ATTR_VERIFY_ERROR             14u  /* the precise reason text when verification failed */
#define GW_ATTR_CLIENT_SUBJECT           15u  /* RFC 2253 as OpenSSL prints it, e.g. "CN=a,O=Org,C=US" */
#define GW_ATTR_CLIENT_ISSUER            16u
#define GW_ATTR_CLIENT_SERIAL            17u  /* uppercase hex, no separators */
#define GW_ATTR_CLIENT_FINGERPRINT_SHA1  18u  /* lowercase hex of the leaf DER */
#define GW_ATTR_CLIENT_FINGERPRINT_SHA256 19u
#define GW_ATTR_CLIENT_NOT_BEFORE        20u  /* "Sep 21 22:43:21 2027 GMT" */
#define GW_ATTR_CLIENT_NOT_AFTER         21u
#define GW_ATTR_CLIENT_NOT_BEFORE_UNIX   22u  /* int, seconds since 1970 */
#define GW_ATTR_CLIENT_NOT_AFTER_UNIX    23u  /* int */
#define GW_ATTR_CLIENT_SAN_DNS           24u  /* indexed */
#define GW_ATTR_CLIENT_SAN_URI           25u  /* indexed */
#define GW_ATTR_CLIENT_SAN_IP            26u  /* indexed, text */
#define GW_ATTR_CLIENT_SAN_EMAIL         27u  /* indexed */
#define GW_ATTR_CLIENT_CERT_DER          28u  /* bytes: the leaf */
#define GW_ATTR_CLIENT_CERT_PEM          29u  /* the leaf, PEM with a final newline */
#define GW_ATTR_CLIENT_CHAIN_DER         30u  /* bytes, indexed: the presented chain, leaf first */
#define GW_ATTR_CLIENT_CHAIN_PEM         31u  /* every presented certificate, PEM, concatenated */
/* Request (string unless noted); not found with a connection handle. */
#define GW_ATTR_REQUEST_ID               40u  /* int, unique in this process */
#define GW_ATTR_METHOD                   41u
#define GW_ATTR_PATH                     42u  /* without the query */
#define GW_ATTR_QUERY                    43u  /* without '?'; not found when absent */
#define GW_ATTR_HOST                     44u  /* the Host header as received */
#define GW_ATTR_SCHEME                   45u  /* "https" or "http" */
#define GW_ATTR_URI                      46u  /* the request target as received */
#define GW_ATTR_BACKEND_NAME             47u  /* the routed backend group; not found when no route matched */
/* Completion (on_complete only, and on_response_headers for the status). */
#define GW_ATTR_RESPONSE_STATUS          60u  /* int */
#define GW_ATTR_BYTES_RECEIVED           61u  /* int: request body bytes read from the client */
#define GW_ATTR_BYTES_SENT               62u  /* int: response body bytes written to the client */
#define GW_ATTR_DURATION_US              63u  /* int: from request head to completion */
#define GW_ATTR_BACKEND_SERVER           64u  /* "host:port" of the server that answered; not found if none did */
#define GW_ATTR_ANSWERED_BY              65u  /* name of the plugin that answered with `respond`; not found otherwise */
#define GW_ATTR_CLIENT_ABORTED           66u  /* int: 1 if the client went away before the response was complete */
#define GW_ATTR_RESPONSE_INCOMPLETE      67u  /* int: 1 if the response was cut off after its head went out (the
                                                 backend failed mid-response, or the request body passed its limit) */
/* ---- ABI 1.1. A host of 1.0 answers GW_ERR_NOT_FOUND for these, so a plugin that can do without them may keep
 * requiring 1.0 (abi_minor = 0) and treat NOT_FOUND as "not known". */
#define GW_ATTR_CLIENT_JA4               32u  /* connection: the JA4 fingerprint of the ClientHello (FoxIO), e.g.
                                                 "t13d1516h2_8daaf6152771_e5627efa2ab1"; not found without TLS */
/* ---- ABI 1.3. A host of 1.2 or older answers GW_ERR_NOT_FOUND. */
#define GW_ATTR_CLIENT_JA3               33u  /* connection: the JA3 fingerprint of the ClientHello (Salesforce), the
                                                 MD5 in lowercase hex, e.g. "ada70206e40642a3e4461f35503241d5"; not
                                                 found without TLS. A client that shuffles its extensions (Chrome)
                                                 has a new one per connection: prefer GW_ATTR_CLIENT_JA4 */

/** Kinds of metric a plugin can define. */
typedef uint32_t gw_metric_kind;
#define GW_METRIC_COUNTER 0u
#define GW_METRIC_HISTOGRAM 1u
/** ABI 1.3: a value that goes up and down; `metric_record` sets it (a 1.2 host refuses the kind with
 *  GW_ERR_INVALID_ARGUMENT). */
#define GW_METRIC_GAUGE 2u

/** Which name of the client certificate `get_dn_value` reads. */
typedef uint32_t gw_dn;
#define GW_DN_SUBJECT 0u
#define GW_DN_ISSUER 1u

/** The kind of a config value (`config_get`). */
typedef uint32_t gw_config_type;
/** No value at that path (an absent key, an index past the end, or a path through a non-container). */
#define GW_CONFIG_MISSING 0u
#define GW_CONFIG_NULL 1u
#define GW_CONFIG_BOOL 2u
/** A number without a fractional part that fits int64_t. */
#define GW_CONFIG_INT 3u
/** Any other number. */
#define GW_CONFIG_NUMBER 4u
#define GW_CONFIG_STRING 5u
#define GW_CONFIG_ARRAY 6u
#define GW_CONFIG_OBJECT 7u

/** One value of the plugin's config, as `config_get` reads it. */
typedef struct gw_config_value {
    gw_config_type type;
    /** ARRAY: its elements; OBJECT: its keys; otherwise 0. */
    uint32_t count;
    /** INT: the value; BOOL: 0 or 1; otherwise 0. */
    int64_t integer;
    /** INT and NUMBER: the value; otherwise 0. */
    double number;
    /** STRING: the text (UTF-8, NUL-terminated after `len` bytes, valid until `create` returns); otherwise
     *  empty. */
    gw_str string;
} gw_config_value;

/** One header, for `respond` and `add_headers`. */
typedef struct gw_header {
    gw_str name;
    gw_str value;
} gw_header;

/** ABI 1.5: a header set the host made (`header_set_create`): opaque to the plugin. */
typedef struct gw_header_set gw_header_set;

/**
 * ABI 1.6: one entry of `get_attributes`. The plugin sets `attribute` and `index` (0 unless the attribute is
 * indexed) and `reserved` (0); the host writes `status`, `text` and `integer`, and never touches `reserved`.
 */
typedef struct gw_attribute_value {
    gw_attribute attribute;
    uint32_t index;
    /** What `get_attribute` or `get_attribute_int` would answer for this attribute and index. */
    gw_status status;
    /** 0; holds the place the alignment of `text` would leave as padding. */
    uint32_t reserved;
    /** With GW_OK, a string or bytes attribute's value (a view as `get_attribute` gives); else empty. */
    gw_str text;
    /** With GW_OK, an integer attribute's value; else 0. */
    int64_t integer;
} gw_attribute_value;

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
     * Defines a metric, from `create` only (elsewhere GW_ERR_WRONG_PHASE). `*out_id` identifies it for
     * `metric_record`. The name must
     * match [a-z_][a-z0-9_]*; the host prefixes it with "gateway_plugin_". Same name twice gives the same id.
     * Instances of the same plugin on the same listener (e.g. the old and the new instance across a reload)
     * share one series, so values carry over a reload. Exported on the admin listener's GET /metrics with
     * the labels plugin and listener: a counter as "gateway_plugin_<name>_total" (a name that already ends
     * in "_total" gets no second one), a histogram as a summary ("_sum" and "_count"; no buckets), a gauge
     * (ABI 1.3) as "gateway_plugin_<name>" with the last value recorded by any instance of the series. A name
     * of another kind already defined, or one that would be shown under a name another metric is shown under
     * ("x" and "x_total" as counters; a histogram "h" and a gauge "h_sum"), is GW_ERR_INVALID_ARGUMENT.
     */
    gw_status (*metric_define)(uint64_t instance_tag, gw_metric_kind kind, gw_str name, gw_str help, uint32_t *out_id);

    /** Adds `value` to a counter, records it in a histogram, or sets a gauge to it. Any thread. */
    gw_status (*metric_record)(uint64_t instance_tag, uint32_t metric_id, double value);

    /**
     * Enumerates headers: the `index`-th header (in order) of the request in on_request_headers, of the
     * response in on_response_headers and on_complete. Both views are valid until the hook returns.
     * GW_ERR_NOT_FOUND past the last header. Lets a plugin find every spelling of a header it owns.
     */
    gw_status (*get_header_at)(gw_handle request, uint32_t index, gw_str *name, gw_str *value);

    /**
     * Reads one attribute value of the client certificate's subject or issuer, decoded from the certificate
     * itself, so an authorizer never parses (or mis-parses) RFC 2253 text: `type` is a short name as OpenSSL
     * prints it ("CN", "OU", "O", "C", "L", "ST", "DC", "UID", "emailAddress", "serialNumber", ...; any
     * case) or a dotted OID ("2.5.4.11"); `index` selects among its values in RFC 2253 order (most specific
     * first, as GW_ATTR_CLIENT_SUBJECT prints them). The value is the text itself, UTF-8, without escaping;
     * a value of a non-string ASN.1 type is its DER as bytes. Connection or request handle, in any hook.
     * GW_ERR_NOT_FOUND without a client certificate, for an absent type, or past the last value.
     */
    gw_status (*get_dn_value)(gw_handle handle, gw_dn which, gw_str type, uint32_t index, gw_str *out);

    /*
     * The config reader: typed values of the instance's own config (the chain entry's `config`, which `create`
     * also receives as JSON text), so a C plugin needs no JSON parser. From `create` only, with the tag it
     * received (elsewhere GW_ERR_WRONG_PHASE). A `path` names a value: keys joined by '.', array elements as
     * "[i]", e.g. "rules[0].allow.subject_ou"; the empty path is the whole config (`{}` when the entry has
     * none). A path that is not of that form is GW_ERR_INVALID_ARGUMENT. Views stay valid until
     * `create` returns. gateway_plugin_helpers.h wraps these into typed getters with error messages.
     */

    /** Reads the value at `path`. An absent value is GW_OK with type GW_CONFIG_MISSING. */
    gw_status (*config_get)(uint64_t instance_tag, gw_str path, gw_config_value *out);

    /** The `index`-th key (in sorted order) of the object at `path`. GW_ERR_NOT_FOUND past the last key or
     *  when `path` is not an object. */
    gw_status (*config_key_at)(uint64_t instance_tag, gw_str path, uint32_t index, gw_str *out);

    /**
     * Checks that the object at `path` has no key outside `known` (`known_count` NUL-terminated names): GW_OK,
     * or GW_ERR_INVALID_ARGUMENT with "<path>: unknown key '<key>'; known: <names>" (the gateway's own
     * wording, "config" for the empty path) written to `error` (NUL-terminated, cut to `error_capacity`).
     * A path that is missing or not an object is GW_OK: the typed getters report wrong types.
     */
    gw_status (*config_check_keys)(uint64_t instance_tag, gw_str path, const char *const *known, uint32_t known_count,
                                   char *error, size_t error_capacity);

    /* ---- ABI 1.2. A plugin that requires an older minor probes it: GW_HOST_HAS(host, add_headers). */

    /**
     * Adds `count` headers in one call, in order: what `add_header` does for each of headers[0..count), but all
     * or nothing: if any name or value breaks the header rules, GW_ERR_INVALID_HEADER and none is added (a
     * NULL `headers` with a nonzero count, or a NULL view with a nonzero length, is GW_ERR_INVALID_ARGUMENT).
     * The request's headers in on_request_headers, the response's in on_response_headers; elsewhere
     * GW_ERR_WRONG_PHASE. Names and values are copied before it returns. Meant for a set of headers a plugin
     * prepares once (per client certificate, say) and adds on every request: one host call and, on the request
     * path, one copy of the bytes, which go to the backend as they are.
     */
    gw_status (*add_headers)(gw_handle request, const gw_header *headers, size_t count);

    /* ---- ABI 1.3. A plugin that requires an older minor probes it: GW_HOST_HAS(host, set_ready). */

    /**
     * Tells the host whether this instance can do its work: `ready` 0 with a `reason` (e.g. "audit log
     * '/var/log/gw/audit.log' cannot be written: No space left on device"), 1 when it can again. While any
     * instance of the running configuration is not ready, the admin listener's GET /readyz answers 503 and
     * lists it with its reason, so a load balancer takes the gateway out; /healthz is not affected. Any
     * thread, any time after `create` (GW_ERR_INVALID_ARGUMENT for a tag the host does not know). The reason is
     * copied (at most 200 bytes; control bytes become spaces). An instance is ready until it says otherwise,
     * and its state goes with it when it is destroyed.
     */
    gw_status (*set_ready)(uint64_t instance_tag, uint32_t ready, gw_str reason);

    /* ---- ABI 1.4. A plugin that requires an older minor probes it: GW_HOST_HAS(host, set_connection_data). */

    /**
     * Per-connection data: one pointer per instance and connection, kept by the host with the connection, for
     * what a plugin derives once per connection and reuses for each of its requests (a prepared header list, a
     * log line's connection fields). `handle` is the connection's or one of its requests' (in on_connection,
     * on_request_headers, on_response_headers, on_complete); `instance_tag` the tag `create` received, which
     * keeps instances apart (0 is GW_ERR_INVALID_ARGUMENT; pass your own: the host does not check whose it is). Event-loop hooks only: from a blocking
     * on_request_headers (GW_PLUGIN_FLAG_BLOCKING, on a worker thread) both answer GW_ERR_WRONG_PHASE.
     *
     * `set_connection_data` keeps `data` and `release` (which may be NULL). The host calls `release(data)`
     * exactly once for each value it kept: when the value is replaced (by another `data`, or cleared with
     * NULL), and otherwise when the connection ends: after the last on_complete of its requests, before the
     * connection stops counting for its configuration (so before the instance's `destroy`), on the
     * connection's event-loop thread. A connection that a reload moves on to the new configuration releases
     * the data of the old configuration's instances when it moves; one that the new configuration refuses
     * releases the new instances' data right after their on_connection. `release` must not call host functions
     * other than `header_set_release` (ABI 1.5) and must not block. Setting the value already kept changes only
     * `release`.
     *
     * `get_connection_data` writes the kept pointer to `*out`, or NULL with GW_ERR_NOT_FOUND when there is
     * none (the first request of the connection, or after a release). A plugin treats the data as a cache:
     * it can always derive the value again.
     */
    gw_status (*set_connection_data)(gw_handle handle, uint64_t instance_tag, void *data, void (*release)(void *data));
    gw_status (*get_connection_data)(gw_handle handle, uint64_t instance_tag, void **out);

    /* ---- ABI 1.5. A plugin that requires an older minor probes it: GW_HOST_HAS(host, header_set_create). */

    /**
     * Header sets: headers a plugin puts on many requests (one client certificate's identity, say), checked and
     * laid out once, and the header names the plugin owns. Adding a set to a request first removes every header
     * the request has under an owned name, whether the client sent it or an earlier plugin added it: names are
     * compared case-insensitively, with '_' and '-' taken as the same byte, so `X_Client_Subject` goes with
     * `x-client-subject` (a backend or framework that maps '_' to '-' must never see a client's forged
     * value). It then adds the set's headers, in order. On the request path this is a look at the length of
     * each header name and, when no plugin added headers before, one reference to bytes the set already holds:
     * no check or layout of the values per request (a copy of the set's lines when headers were added before;
     * the head's lines re-laid once when it had an owned name).
     *
     * `header_set_create` checks every header (names RFC 9110 tokens, values free of CR, LF and NUL) and every
     * owned name (a token): GW_ERR_INVALID_HEADER and no set if one breaks the rules; a NULL list with a
     * nonzero count, a NULL view with a nonzero length or a NULL `out` is GW_ERR_INVALID_ARGUMENT. On failure
     * `*out` is NULL. Names and
     * values are copied before it returns. A set may own names it does not add (every name of a dialect, the
     * renamed and disabled ones too) and may add none (only strip). Any thread, any time after the entry point;
     * no handle. The set is immutable: share it between threads and requests as you like.
     *
     * `header_set_add` applies the set to the request in on_request_headers (what the backend receives) or to
     * the response in on_response_headers (what the client receives); elsewhere GW_ERR_WRONG_PHASE. NULL is
     * GW_ERR_INVALID_ARGUMENT.
     *
     * `header_set_release` frees the set: call it once, when no hook of the plugin will add it again (requests
     * it was added to keep their own reference to its bytes). NULL does nothing. It is the one host function
     * a `set_connection_data` release function may call: a set kept per connection is freed with it.
     * Passing a set after its release is a use after free, as with free(3): the host cannot tell.
     */
    gw_status (*header_set_create)(const gw_header *headers, size_t count, const gw_str *owned, size_t owned_count,
                                   gw_header_set **out);
    gw_status (*header_set_add)(gw_handle handle, const gw_header_set *set);
    void (*header_set_release)(gw_header_set *set);

    /* ---- ABI 1.6. A plugin that requires an older minor probes it: GW_HOST_HAS(host, get_attributes). */

    /**
     * Reads `count` attributes in one call, for a hook that reads many (an audit line reads a dozen per
     * request): each entry gets what `get_attribute` (a string or bytes attribute) or `get_attribute_int` (an
     * attribute the list above marks int) would answer, in `text` or `integer`, and that call's status. An
     * integer attribute has only index 0; an unknown attribute or an index past the last value is
     * GW_ERR_NOT_FOUND, as with the single reads. Views live as `get_attribute`'s: until the hook returns.
     * Answers GW_OK when it read every entry; GW_ERR_STALE_HANDLE (the handle is not the running hook's) or
     * GW_ERR_INVALID_ARGUMENT (NULL `values` with a nonzero count, or a count above PTRDIFF_MAX) when it read
     * none, and then the entries are as they were.
     */
    gw_status (*get_attributes)(gw_handle handle, gw_attribute_value *values, size_t count);
} gw_host_api;

/** What `create` receives about the chain entry it instantiates. */
typedef struct gw_create_args {
    /** sizeof(gw_create_args) as the host was built. */
    uint32_t struct_size;
    /** 0; holds the place the alignment of `instance_tag` would leave as padding. */
    uint32_t reserved;
    /** Tag for `log`, `metric_define` and `metric_record`. */
    uint64_t instance_tag;
    /** The listener this instance serves. */
    gw_str listener_name;
    /** The entry's `config`, as JSON text ("{}" when absent). */
    gw_str config_json;
} gw_create_args;

/** Flags in gw_plugin_descriptor.flags. */
#define GW_PLUGIN_FLAG_BLOCKING 0x1u /* on_request_headers may block: the host runs it on the worker pool, within
                                        the entry's `timeout`; every other hook stays on the event loop */

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
     * Returns GW_OK and sets `*instance` (opaque to the host) on success. On failure returns a negative
     * gw_status (any non-zero value is taken as a failure) and writes a
     * NUL-terminated reason into `error` (at most `error_capacity` bytes, truncated if longer); the host copies
     * it into its error message, which names the library, the listener and the chain entry.
     */
    gw_status (*create)(const gw_host_api *host, const gw_create_args *args, void **instance, char *error, size_t error_capacity);

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

    /**
     * Optional. The request head arrived: read attributes and headers, change request headers, or respond.
     * Event-loop thread; for a plugin with GW_PLUGIN_FLAG_BLOCKING, a worker-pool thread, on a copy of the
     * request, within the entry's `timeout`.
     */
    gw_action (*on_request_headers)(void *instance, gw_handle request);

    /**
     * Optional. The backend's (or a plugin's, or the gateway's) response head is about to be sent: change
     * response headers. Event-loop thread, also for blocking plugins. Runs for the entries the request reached.
     * Returns GW_OK; a negative gw_status is logged and counted, and the response goes out as it stands.
     */
    gw_status (*on_response_headers)(void *instance, gw_handle request);

    /**
     * Optional. The exchange is over: after the response was sent, or the client went away. Read-only. The
     * log phase: it runs on EVERY entry of the chain for every request that entered the chain, also on the
     * entries the request did not reach because an earlier plugin answered or failed (GW_ATTR_ANSWERED_BY
     * names who answered), so an observer such as an audit log sees every decision wherever it stands in the
     * chain. Event-loop thread, even for blocking plugins: hand slow work to your own thread.
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

/* ---- Sizes and probes ---------------------------------------------------------------------------------- */

/** The size of each struct as ABI 1.0 defines it: up to and including its last 1.0 member (on LP64: host
 *  table 144, create args 48, descriptor 88 bytes). A table whose struct_size is smaller is refused. */
#define GW_HOST_API_SIZE_1_0 (offsetof(gw_host_api, config_check_keys) + sizeof(void (*)(void)))
#define GW_CREATE_ARGS_SIZE_1_0 (offsetof(gw_create_args, config_json) + sizeof(gw_str))
#define GW_PLUGIN_DESCRIPTOR_SIZE_1_0 (offsetof(gw_plugin_descriptor, on_reopen) + sizeof(void (*)(void)))

/** True when the host's table has `member`: call a host function added after the minor version you require
 *  only when this says so. */
#define GW_HOST_HAS(host, member) \
    ((host)->struct_size >= offsetof(gw_host_api, member) + sizeof(((const gw_host_api *)0)->member))

/* ---- The entry point ----------------------------------------------------------------------------------- */

/** Exports a symbol from a shared library built with -fvisibility=hidden. (C++ name mangling is prevented
 *  by the prototype below, which the header's extern "C" block covers.) */
#if defined(_WIN32)
#define GW_PLUGIN_EXPORT __declspec(dllexport)
#elif defined(__GNUC__) || defined(__clang__)
#define GW_PLUGIN_EXPORT __attribute__((visibility("default")))
#else
#define GW_PLUGIN_EXPORT
#endif

#if !defined(__swift__)
/** The one symbol a C or C++ plugin defines: `GW_PLUGIN_EXPORT const gw_plugin_descriptor
 *  *gw_plugin_entry_v1(const gw_host_api *host) { ... }`. (Swift plugins export it with @_cdecl; the
 *  prototype is hidden from Swift so that it does not clash with theirs.) */
GW_PLUGIN_EXPORT const gw_plugin_descriptor *gw_plugin_entry_v1(const gw_host_api *host);
#endif

#ifdef __cplusplus
}
#endif

#endif /* GATEWAY_PLUGIN_H */
