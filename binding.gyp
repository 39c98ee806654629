{
  "targets": [
    {
      "target_name": "socketkit_native",
      "sources": ["<!@(ls -1 native/*.c)"],
      "cflags": ["-O2", "-Wall", "-Wextra", "-std=gnu11", "-pthread"],
      "ldflags": ["-pthread"],
      "defines": ["NAPI_VERSION=8"]
    }
  ]
}
