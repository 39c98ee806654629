/*
 * Connection-end records, batched from an engine thread to JS (the echo engine and the relay
 * engine): a thread appends fixed-size records of doubles during a loop pass, then hands them
 * over in one threadsafe-function call per pass; on the JS thread they arrive as
 * callback(records: Float64Array, final: boolean). Nothing crosses into JS per message.
 */
#ifndef SOCKETKIT_END_RECORDS_H
#define SOCKETKIT_END_RECORDS_H
#include <node_api.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
  double *rec;
  size_t n, cap; /* doubles held, allocated */
} skn_end_records;

typedef struct {
  size_t n;
  bool final;
  double rec[];
} skn_end_batch;

/* Room for one record of `fields` doubles at the end; NULL when out of memory (that end goes unreported). */
static inline double *skn_end_record(skn_end_records *r, size_t fields) {
  if (r->n + fields > r->cap) {
    size_t cap = r->cap ? r->cap * 2 : 64 * fields;
    double *p = realloc(r->rec, cap * sizeof *p);
    if (p == NULL) return NULL;
    r->rec = p;
    r->cap = cap;
  }
  double *out = r->rec + r->n;
  r->n += fields;
  return out;
}

/* Hands the records of this pass to JS (and, with `final`, says it is the thread's last call). */
static inline void skn_end_flush(skn_end_records *r, napi_threadsafe_function tsfn, bool final) {
  if (r->n == 0 && !final) return;
  skn_end_batch *b = malloc(sizeof *b + r->n * sizeof(double));
  if (b != NULL) {
    b->n = r->n;
    b->final = final;
    if (r->n) memcpy(b->rec, r->rec, r->n * sizeof(double));
    if (napi_call_threadsafe_function(tsfn, b, napi_tsfn_nonblocking) != napi_ok) free(b);
  }
  r->n = 0;
}

static inline void skn_end_free(skn_end_records *r) {
  free(r->rec);
  r->rec = NULL;
  r->n = r->cap = 0;
}

/* The threadsafe function's call_js: a batch becomes callback(Float64Array, final). */
static inline void skn_end_call_js(napi_env env, napi_value cb, void *context, void *data) {
  (void)context;
  skn_end_batch *b = data;
  if (env != NULL && cb != NULL) {
    napi_value ab, arr, argv[2], global;
    void *p;
    if (napi_create_arraybuffer(env, b->n * sizeof(double), &p, &ab) == napi_ok) {
      if (b->n) memcpy(p, b->rec, b->n * sizeof(double));
      if (napi_create_typedarray(env, napi_float64_array, b->n, ab, 0, &arr) == napi_ok && napi_get_boolean(env, b->final, &argv[1]) == napi_ok &&
          napi_get_global(env, &global) == napi_ok) {
        argv[0] = arr;
        napi_call_function(env, global, cb, 2, argv, NULL);
      }
    }
  }
  free(b);
}

#endif
