/*
 * The registration functions of socketkit's native modules. Each C file in native/ other than
 * socketkit_native.c defines one `napi_value skn_register_NAME(napi_env env, napi_value exports)`
 * that adds its JS functions to `exports` (returning NULL after throwing on failure), and adds one
 * declaration and one table entry here.
 */
#ifndef SOCKETKIT_MODULES_H
#define SOCKETKIT_MODULES_H
#include <node_api.h>

typedef napi_value (*skn_register_fn)(napi_env env, napi_value exports);

/* Declarations, one per module: */
napi_value skn_register_echo_engine(napi_env env, napi_value exports);
napi_value skn_register_load_engine(napi_env env, napi_value exports);
napi_value skn_register_perf_io(napi_env env, napi_value exports);
napi_value skn_register_perf_stream(napi_env env, napi_value exports);
napi_value skn_register_proxy_engine(napi_env env, napi_value exports);
napi_value skn_register_splice(napi_env env, napi_value exports);
napi_value skn_register_tcp_info(napi_env env, napi_value exports);

static const skn_register_fn skn_modules[] = {
    skn_register_echo_engine,
    skn_register_load_engine,
    skn_register_perf_io,
    skn_register_perf_stream,
    skn_register_proxy_engine,
    skn_register_splice,
    skn_register_tcp_info,
    NULL, /* entries go above this line */
};

#endif
