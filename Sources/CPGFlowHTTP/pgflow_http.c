#include "pgflow_http.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static CURLcode global_result = CURLE_OK;

static void global_init(void) { global_result = curl_global_init(CURL_GLOBAL_DEFAULT); }

/* The answer's body is not read by anyone: drop it. */
static size_t discard(char *data, size_t size, size_t count, void *context) {
    (void)data; (void)context;
    return size * count;
}

int pgflow_http_post(const char *url, const char *body, size_t body_length,
                     const char *const *headers, int header_count,
                     double connect_timeout, double total_timeout, const char *ca_file,
                     long *status, char *error, size_t error_length) {
    char curl_error[CURL_ERROR_SIZE];
    struct curl_slist *list = NULL, *grown;
    CURL *curl;
    CURLcode rc;
    int i;

    *status = 0;
    if (error_length > 0) error[0] = '\0';
    pthread_once(&global_once, global_init);
    if (global_result != CURLE_OK) {
        snprintf(error, error_length, "libcurl did not initialise: %s", curl_easy_strerror(global_result));
        return -1;
    }
    curl = curl_easy_init();
    if (curl == NULL) {
        snprintf(error, error_length, "libcurl could not create a request");
        return -1;
    }
    static const char *const fixed[] = {"Content-Type: application/json", "Expect:", "Connection: close"};
    for (i = 0; i < 3 + header_count; i++) {
        grown = curl_slist_append(list, i < 3 ? fixed[i] : headers[i - 3]);
        if (grown == NULL) {
            curl_slist_free_all(list);
            curl_easy_cleanup(curl);
            snprintf(error, error_length, "out of memory for the request's headers");
            return -1;
        }
        list = grown;
    }
    curl_error[0] = '\0';
    curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, curl_error);
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_USERAGENT, "pgflow-scheduler");
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, list);
    curl_easy_setopt(curl, CURLOPT_POST, 1L);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_length);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, discard);
    curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, (long)(connect_timeout * 1000));
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, (long)(total_timeout * 1000));
    if (ca_file != NULL) curl_easy_setopt(curl, CURLOPT_CAINFO, ca_file);
    rc = curl_easy_perform(curl);
    if (rc == CURLE_OK) {
        curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, status);
    } else {
        snprintf(error, error_length, "%s", curl_error[0] != '\0' ? curl_error : curl_easy_strerror(rc));
    }
    curl_slist_free_all(list);
    curl_easy_cleanup(curl);
    return rc == CURLE_OK ? 0 : -1;
}
