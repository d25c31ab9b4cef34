/*
 * add_headers (ABI 1.2) as a C plugin uses it. on_request_headers: a batch with one bad value (CR LF) must add
 * nothing; a NULL list with a count is an argument error; an empty batch is fine; then a good batch of three
 * (one with an empty value, one with a name in capitals) goes in, in order. The statuses go to the backend in
 * x-add-statuses. on_response_headers adds x-batch-response to the client's response; on_complete tries
 * again and logs the status it got (the phase refuses it).
 */
#include "fixture_common.h"

static gw_action on_request(void *instance, gw_handle request) {
    (void)instance;
    if (!GW_HOST_HAS(host, add_headers)) return GW_FAILED;
    gw_header bad[2] = {{{"x-bad-1", 7}, {"fine", 4}}, {{"x-bad-2", 7}, {"a\r\nx-evil: 1", 12}}};
    gw_status s1 = host->add_headers(request, bad, 2);
    gw_status s2 = host->add_headers(request, NULL, 1);
    gw_status s3 = host->add_headers(request, NULL, 0);
    gw_header good[3] = {{{"x-batch-1", 9}, {"one", 3}}, {{"X-Batch-2", 9}, {"", 0}}, {{"x-batch-3", 9}, {"three, 3", 8}}};
    gw_status s4 = host->add_headers(request, good, 3);
    char statuses[64];
    int n = snprintf(statuses, sizeof statuses, "%d,%d,%d,%d", s1, s2, s3, s4);
    return host->add_header(request, (gw_str){"x-add-statuses", 14}, (gw_str){statuses, (size_t)n}) == GW_OK ? GW_CONTINUE : GW_FAILED;
}

static gw_status on_response(void *instance, gw_handle request) {
    (void)instance;
    gw_header one[1] = {{{"x-batch-response", 16}, {"1", 1}}};
    return host->add_headers(request, one, 1);
}

static void on_complete(void *instance, gw_handle request) {
    (void)instance;
    gw_header one[1] = {{{"x-late", 6}, {"1", 1}}};
    char line[64];
    int n = snprintf(line, sizeof line, "add_headers in on_complete: %d", host->add_headers(request, one, 1));
    host->log(0, GW_LOG_INFO, (gw_str){line, (size_t)n});
}

FIXTURE_DESCRIPTOR("add_headers");
FIXTURE_ENTRY(descriptor.on_request_headers = on_request; descriptor.on_response_headers = on_response; descriptor.on_complete = on_complete)
