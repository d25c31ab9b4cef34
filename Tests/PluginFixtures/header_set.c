/*
 * Header sets (ABI 1.5) as a C plugin uses them. `create` makes the instance's set (each instance its own: a
 * reload creates the new instance before it destroys the old): it adds x-set-id and X-Set-2 and owns
 * x-set-id, x-set-owned, x_batch_1 and x-batch-response (so what the add_headers fixture adds earlier in the
 * chain goes too) and X_Backend (so the test backend's x-backend goes from the response). on_request_headers first tries what must fail (a value with CR LF, a NULL list with
 * a count, an owned name that is not a token, a NULL set) and sends the statuses to the backend in
 * x-set-statuses; then adds the set. on_response_headers adds it to the client's response; on_complete tries again and logs the status it got (the phase refuses it).
 */
#include "fixture_common.h"

static int32_t create(const gw_host_api *h, const gw_create_args *args, void **instance, char *error, size_t cap) {
    (void)args;
    host = h;
    if (!GW_HOST_HAS(host, header_set_create)) {
        snprintf(error, cap, "the host has no header sets");
        return GW_ERR_INVALID_ARGUMENT;
    }
    gw_header headers[2] = {{{"x-set-id", 8}, {"fixture", 7}}, {{"X-Set-2", 7}, {"two", 3}}};
    gw_str owned[5] = {{"x-set-id", 8}, {"X-Set-Owned", 11}, {"x_batch_1", 9}, {"x-batch-response", 16}, {"X_Backend", 9}};
    gw_header_set *set = NULL;
    gw_status status = host->header_set_create(headers, 2, owned, 5, &set);
    if (status != GW_OK || set == NULL) {
        snprintf(error, cap, "header_set_create: %d", status);
        return status;
    }
    *instance = set;
    return GW_OK;
}

static void destroy(void *instance) {
    host->header_set_release((gw_header_set *)instance);
}

static gw_action on_request(void *instance, gw_handle request) {
    gw_header_set *set = instance;
    gw_header_set *bad = (gw_header_set *)1;
    gw_header crlf[1] = {{{"x-bad", 5}, {"a\r\nx-evil: 1", 12}}};
    gw_status s1 = host->header_set_create(crlf, 1, NULL, 0, &bad);
    int cleared = bad == NULL;
    gw_status s2 = host->header_set_create(NULL, 1, NULL, 0, &bad);
    gw_str spaced[1] = {{"x bad", 5}};
    gw_status s3 = host->header_set_create(NULL, 0, spaced, 1, &bad);
    gw_status s4 = host->header_set_add(request, NULL);
    gw_status s5 = host->header_set_add(request, set);
    char statuses[64];
    int n = snprintf(statuses, sizeof statuses, "%d,%d,%d,%d,%d,%d", s1, cleared, s2, s3, s4, s5);
    return host->add_header(request, (gw_str){"x-set-statuses", 14}, (gw_str){statuses, (size_t)n}) == GW_OK ? GW_CONTINUE : GW_FAILED;
}

static gw_status on_response(void *instance, gw_handle request) {
    return host->header_set_add(request, (gw_header_set *)instance);
}

static void on_complete(void *instance, gw_handle request) {
    char line[64];
    int n = snprintf(line, sizeof line, "header_set_add in on_complete: %d", host->header_set_add(request, (gw_header_set *)instance));
    host->log(0, GW_LOG_INFO, (gw_str){line, (size_t)n});
}

FIXTURE_DESCRIPTOR("header_set");
FIXTURE_ENTRY(descriptor.create = create; descriptor.destroy = destroy; descriptor.on_request_headers = on_request;
              descriptor.on_response_headers = on_response; descriptor.on_complete = on_complete)
