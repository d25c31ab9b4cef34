/*
 * get_attributes (ABI 1.6) as a C plugin uses it. on_request_headers reads ten entries in one call -- string,
 * integer, absent, unknown, an integer at index 1, a completion attribute before completion -- and checks
 * each against what get_attribute / get_attribute_int answer alone. It sends the backend
 * `x-batch: method=<m> path=<p> host=<h> query=<status> unknown=<status> port1=<status> early=<status>
 * same=<1 if every entry equals its single read> null=<status> empty=<status> stale=<status> untouched=<1|0>`.
 * on_complete reads the completion attributes in one call and logs
 * `batch complete: status=<n> backend=<host:port> sent=<n> same=<1|0>`.
 */
#include "fixture_common.h"

static int same_as_single(gw_handle handle, const gw_attribute_value *v) {
    gw_str text = {NULL, 0};
    int64_t integer = 0;
    gw_status single = host->get_attribute(handle, v->attribute, v->index, &text);
    if (single == GW_OK) {
        return v->status == GW_OK && v->integer == 0 && v->text.len == text.len && memcmp(v->text.ptr, text.ptr, text.len) == 0;
    }
    if (v->index == 0) single = host->get_attribute_int(handle, v->attribute, &integer);
    if (single == GW_OK) return v->status == GW_OK && v->integer == integer && v->text.ptr == NULL && v->text.len == 0;
    return v->status == single && v->text.ptr == NULL && v->integer == 0;
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
    return host->add_header(request, (gw_str){"x-batch", 7}, (gw_str){value, (size_t)n}) == GW_OK ? GW_CONTINUE : GW_FAILED;
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
    host->log(0, GW_LOG_INFO, (gw_str){line, (size_t)n});
}

FIXTURE_DESCRIPTOR("attribute_batch");
FIXTURE_ENTRY(descriptor.on_request_headers = on_request; descriptor.on_complete = on_complete)
