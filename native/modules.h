/*
 * The registration functions of socketkit's native modules. Each native/*.c other than
 * socketkit_native.c defines one `napi_value skn_register_NAME(napi_env env, napi_value exports)`
 * that adds its JS functions to `exports` (returning NULL after throwing on failure), and adds one
 * declaration and one table entry here.
 */
#ifndef SOCKETKIT_MODULES_H
#define SOCKETKIT_MODULES_H
#include <node_api.h>

typedef napi_value (*skn_register_fn)(napi_env env, napi_value exports);

/* Declarations, one per module: */
napi_value skn_register_load_engine(napi_env env, napi_value exports);

static const skn_register_fn skn_modules[] = {
    skn_register_load_engine,
    NULL, /* entries go above this line */
};

#endif
