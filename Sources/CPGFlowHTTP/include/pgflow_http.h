// One HTTP(S) POST through libcurl, for pgflow-scheduler's webhook notifications (Swift cannot call
// libcurl's variadic curl_easy_setopt, so this C function makes the whole request).
#ifndef PGFLOW_HTTP_H
#define PGFLOW_HTTP_H

#include <stddef.h>

/// POSTs `body` (`body_length` bytes) to `url` (http:// or https:// only; redirects are not followed)
/// with `header_count` extra header lines ("Name: value"). `connect_timeout` and `total_timeout` are in
/// seconds. `ca_file`, when not NULL, is a PEM bundle of certificate authorities trusted for https
/// instead of the system's. Returns 0 and sets `*status` to the HTTP status code, or returns -1 and
/// writes a one-line reason into `error` (`error_length` bytes).
int pgflow_http_post(const char *url, const char *body, size_t body_length,
                     const char *const *headers, int header_count,
                     double connect_timeout, double total_timeout, const char *ca_file,
                     long *status, char *error, size_t error_length);

#endif
