{
  "targets": [
    {
      "target_name": "socketkit_native",
      "sources": ["native/socketkit_native.c"],
      "cflags": ["-O2", "-Wall", "-Wextra", "-std=c11"],
      "defines": ["NAPI_VERSION=8"]
    }
  ]
}
