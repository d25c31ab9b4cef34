/*
 * Per-connection data (ABI 1.4) as a C plugin uses it. on_request_headers reads this instance's data for the
 * connection; on the connection's first request (none kept yet) it makes a record with the next serial number
 * and keeps it. Then it counts the request in the record and tells the backend, in the header named by its
 * config's `header`: `made=<serial> requests=<n> first_get=<status> released=<count> total=<count>`, where
 * first_get is what get_connection_data answered (0 kept, -2 not found), released how many records the host had
 * released so far and total how many were made (every instance of the library counts into the same two). It
 * also checks the argument errors: a NULL out pointer and a tag of 0 are GW_ERR_INVALID_ARGUMENT. on_complete
 * checks that the record is still there. Each record knows its instance, which `destroy` marks (and keeps, so
 * that the mark can be read): a record released after its instance's destroy is logged as an error.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "gateway_plugin.h"

static const gw_host_api *host;

typedef struct instance {
    uint64_t tag;
    char header[64];
    size_t header_len;
    int destroyed;
} instance;

typedef struct record {
    int serial;
    int requests;
    instance *owner;
} record;

/* Counted across threads (event loops) with the compiler's atomics: the build is C99. */
static int made;
static int released;

static void release_record(void *data) {
    record *r = data;
    if (__atomic_load_n(&r->owner->destroyed, __ATOMIC_SEQ_CST)) {
        host->log(0, GW_LOG_ERROR, (gw_str){"connection data released after its instance's destroy", 53});
    }
    free(r);
    __atomic_fetch_add(&released, 1, __ATOMIC_SEQ_CST);
}

static int32_t cd_create(const gw_host_api *h, const gw_create_args *args, void **out, char *error, size_t cap) {
    host = h;
    gw_config_value value;
    if (h->config_get(args->instance_tag, (gw_str){"header", 6}, &value) != GW_OK || value.type != GW_CONFIG_STRING ||
        value.string.len == 0 || value.string.len >= 64) {
        snprintf(error, cap, "config: 'header' (a header name) is required");
        return GW_ERR_INVALID_ARGUMENT;
    }
    instance *self = calloc(1, sizeof *self);
    self->tag = args->instance_tag;
    memcpy(self->header, value.string.ptr, value.string.len);
    self->header_len = value.string.len;
    *out = self;
    return GW_OK;
}

/* Marked, not freed: a release that comes later must still find the mark (a test fixture may leak this). */
static void cd_destroy(void *opaque) {
    instance *self = opaque;
    __atomic_store_n(&self->destroyed, 1, __ATOMIC_SEQ_CST);
}

static gw_action cd_request(void *opaque, gw_handle request) {
    instance *self = opaque;
    if (!GW_HOST_HAS(host, get_connection_data)) return GW_FAILED;
    void *dummy = NULL;
    if (host->get_connection_data(request, self->tag, NULL) != GW_ERR_INVALID_ARGUMENT) return GW_FAILED;
    if (host->get_connection_data(request, 0, &dummy) != GW_ERR_INVALID_ARGUMENT) return GW_FAILED;
    if (host->set_connection_data(request, 0, &dummy, NULL) != GW_ERR_INVALID_ARGUMENT) return GW_FAILED;
    void *kept = (void *)1;
    gw_status first = host->get_connection_data(request, self->tag, &kept);
    record *r = kept;
    if (first == GW_ERR_NOT_FOUND) {
        if (kept != NULL) return GW_FAILED;
        r = calloc(1, sizeof *r);
        r->serial = __atomic_fetch_add(&made, 1, __ATOMIC_SEQ_CST) + 1;
        r->owner = self;
        if (host->set_connection_data(request, self->tag, r, release_record) != GW_OK) {
            free(r);
            return GW_FAILED;
        }
        /* Setting the kept pointer again changes nothing (no release). */
        if (host->set_connection_data(request, self->tag, r, release_record) != GW_OK) return GW_FAILED;
    } else if (first != GW_OK || r == NULL) {
        return GW_FAILED;
    }
    r->requests += 1;
    char value[128];
    int n = snprintf(value, sizeof value, "made=%d requests=%d first_get=%d released=%d total=%d", r->serial, r->requests,
                     (int)first, __atomic_load_n(&released, __ATOMIC_SEQ_CST), __atomic_load_n(&made, __ATOMIC_SEQ_CST));
    return host->set_header(request, (gw_str){self->header, self->header_len}, (gw_str){value, (size_t)n}) == GW_OK ? GW_CONTINUE
                                                                                                                 : GW_FAILED;
}

static void cd_complete(void *opaque, gw_handle request) {
    instance *self = opaque;
    void *kept = NULL;
    if (host->get_connection_data(request, self->tag, &kept) != GW_OK || kept == NULL) {
        host->log(self->tag, GW_LOG_ERROR, (gw_str){"connection data missing in on_complete", 38});
    }
}

static gw_plugin_descriptor descriptor = {
    .magic = GW_PLUGIN_MAGIC, .struct_size = sizeof(gw_plugin_descriptor),
    .abi_major = GW_PLUGIN_ABI_MAJOR, .abi_minor = GW_PLUGIN_ABI_MINOR,
    .name = "connection_data", .version = "1.0.0",
    .create = cd_create, .destroy = cd_destroy,
    .on_request_headers = cd_request, .on_complete = cd_complete,
};

const gw_plugin_descriptor *gw_plugin_entry_v1(const gw_host_api *h) {
    host = h;
    return &descriptor;
}
