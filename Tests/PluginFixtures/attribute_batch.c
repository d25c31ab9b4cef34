/*
 * get_attributes (ABI 1.6) as a C plugin uses it. on_request_headers reads ten entries in one call -- string,
 * integer, absent, unknown, an integer at index 1, a completion attribute before completion -- and checks
 * each against what get_attribute / get_attribute_int answer alone. It sends the backend
 * `x-batch: method=<m> path=<p> host=<h> query=<status> unknown=<status> port1=<status> early=<status>
 * same=<1 if every entry equals its single read> null=<status> empty=<status> stale=<status> untouched=<1|0>`.
 * With a client certificate it also reads the certificate's attributes, the indexed ones at 0, 1 and 2, and
 * adds `x-batch-cert: subject=<subject> dns0=<SAN DNS #0> same=<1|0>`.
 * on_complete reads the completion attributes in one call and logs
 * `batch complete: status=<n> backend=<host:port> sent=<n> same=<1|0>`; on_connection reads with the
 * connection handle and logs `batch connection: listener=<name> port=<1 if found> request_id=<status> same=<1|0>`.
 */
#include "fixture_common.h"

/* What snprintf wrote into a buffer of `cap` bytes (it answers what it would have written). */
static size_t written(int n, size_t cap) { return n < 0 ? 0 : (size_t)n >= cap ? cap - 1 : (size_t)n; }

static int same_as_single(gw_handle handle, const gw_attribute_value *v) {
    gw_str text = {NULL, 0};
    int64_t integer = 0;
    gw_status single = host->get_attribute(handle, v->attribute, v->index, &text);
    if (single == GW_OK) {
        return v->status == GW_OK && v->integer == 0 && v->text.len == text.len && memcmp(v->text.ptr, text.ptr, text.len) == 0;
    }
    if (v->index == 0) single = host->get_attribute_int(handle, v->attribute, &integer);
    if (single == GW_OK) return v->status == GW_OK && v->integer == integer && v->text.ptr == NULL && v->text.len == 0;
    return v->status == single && v->text.ptr == NULL && v->text.len == 0 && v->integer == 0;
}

static gw_action on_request(void *instance, gw_handle request) {
    (void)instance;
    gw_attribute_value v[10] = {
        {.attribute = GW_ATTR_METHOD}, {.attribute = GW_ATTR_PATH}, {.attribute = GW_ATTR_HOST},
        {.attribute = GW_ATTR_REQUEST_ID}, {.attribute = GW_ATTR_CLIENT_PORT}, {.attribute = GW_ATTR_LISTENER_NAME},
        {.attribute = GW_ATTR_QUERY}, {.attribute = 999}, {.attribute = GW_ATTR_CLIENT_PORT, .index = 1},
        {.attribute = GW_ATTR_RESPONSE_STATUS},
    };
    for (int i = 0; i < 10; i++) { v[i].status = 77; v[i].integer = 77; v[i].text = (gw_str){"x", 1}; }
    gw_status all = host->get_attributes(request, v, 10);
    int same = all == GW_OK;
    for (int i = 0; i < 10; i++) same = same && same_as_single(request, &v[i]);

    gw_status null_values = host->get_attributes(request, NULL, 1);
    gw_status empty = host->get_attributes(request, NULL, 0);
    gw_attribute_value stale_entry = {.attribute = GW_ATTR_METHOD, .status = 77};
    gw_status stale = host->get_attributes(request + 12345, &stale_entry, 1);
    int untouched = stale_entry.status == 77 && stale_entry.text.ptr == NULL;

    char value[512];
    int n = snprintf(value, sizeof value,
                     "method=%.*s path=%.*s host=%.*s query=%d unknown=%d port1=%d early=%d same=%d null=%d empty=%d stale=%d untouched=%d",
                     (int)v[0].text.len, v[0].text.ptr, (int)v[1].text.len, v[1].text.ptr, (int)v[2].text.len, v[2].text.ptr,
                     v[6].status, v[7].status, v[8].status, v[9].status, same, null_values, empty, stale, untouched);
    if (host->add_header(request, (gw_str){"x-batch", 7}, (gw_str){value, written(n, sizeof value)}) != GW_OK) return GW_FAILED;

    int64_t present = 0;
    if (host->get_attribute_int(request, GW_ATTR_CLIENT_CERT_PRESENT, &present) != GW_OK || !present) return GW_CONTINUE;
    const gw_attribute indexed[5] = {GW_ATTR_CLIENT_SAN_DNS, GW_ATTR_CLIENT_SAN_URI, GW_ATTR_CLIENT_SAN_IP, GW_ATTR_CLIENT_SAN_EMAIL,
                                     GW_ATTR_CLIENT_CHAIN_DER};
    gw_attribute_value c[20] = {
        {.attribute = GW_ATTR_CLIENT_SUBJECT}, {.attribute = GW_ATTR_CLIENT_CERT_PEM}, {.attribute = GW_ATTR_CLIENT_NOT_AFTER_UNIX},
        {.attribute = GW_ATTR_CLIENT_VERIFY}, {.attribute = GW_ATTR_CLIENT_SERIAL},
    };
    for (int i = 0; i < 15; i++) { c[5 + i].attribute = indexed[i / 3]; c[5 + i].index = (uint32_t)(i % 3); }
    int cert_same = host->get_attributes(request, c, 20) == GW_OK;
    for (int i = 0; i < 20; i++) cert_same = cert_same && same_as_single(request, &c[i]);
    n = snprintf(value, sizeof value, "subject=%.*s dns0=%.*s same=%d", (int)c[0].text.len, c[0].text.ptr, (int)c[5].text.len,
                 c[5].text.ptr, cert_same);
    return host->add_header(request, (gw_str){"x-batch-cert", 12}, (gw_str){value, written(n, sizeof value)}) == GW_OK ? GW_CONTINUE : GW_FAILED;
}

static void on_connection(void *instance, gw_handle connection) {
    (void)instance;
    gw_attribute_value v[5] = {
        {.attribute = GW_ATTR_LISTENER_NAME}, {.attribute = GW_ATTR_CLIENT_PORT}, {.attribute = GW_ATTR_REQUEST_ID},
        {.attribute = GW_ATTR_TLS_VERSION}, {.attribute = GW_ATTR_CLIENT_SAN_DNS, .index = 1},
    };
    int same = host->get_attributes(connection, v, 5) == GW_OK;
    for (int i = 0; i < 5; i++) same = same && same_as_single(connection, &v[i]);
    char line[256];
    int n = snprintf(line, sizeof line, "batch connection: listener=%.*s port=%d request_id=%d same=%d", (int)v[0].text.len, v[0].text.ptr,
                     v[1].status == GW_OK && v[1].integer > 0, v[2].status, same);
    host->log(0, GW_LOG_INFO, (gw_str){line, written(n, sizeof line)});
}

static void on_complete(void *instance, gw_handle request) {
    (void)instance;
    gw_attribute_value v[4] = {
        {.attribute = GW_ATTR_RESPONSE_STATUS}, {.attribute = GW_ATTR_BACKEND_SERVER}, {.attribute = GW_ATTR_BYTES_SENT},
        {.attribute = GW_ATTR_DURATION_US},
    };
    int same = host->get_attributes(request, v, 4) == GW_OK;
    for (int i = 0; i < 4; i++) same = same && same_as_single(request, &v[i]);
    char line[256];
    int n = snprintf(line, sizeof line, "batch complete: status=%lld backend=%.*s sent=%lld same=%d", (long long)v[0].integer,
                     (int)v[1].text.len, v[1].text.ptr, (long long)v[2].integer, same);
    host->log(0, GW_LOG_INFO, (gw_str){line, written(n, sizeof line)});
}

FIXTURE_DESCRIPTOR("attribute_batch");
FIXTURE_ENTRY(descriptor.on_connection = on_connection; descriptor.on_request_headers = on_request; descriptor.on_complete = on_complete)
