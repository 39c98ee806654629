/*
 * framed_bound: what a verified, framed file transfer costs when its data loop is C, the bound
 * issue 17's goals are measured against (README, Benchmarks, File transfer). Not socketkit's
 * protocol: the least a framed, hashed copy must do, which is what a native SKFT data loop would
 * do for its DATA frames.
 *
 *   framed_bound recv PORT OUT [sha256|none]     listen on 127.0.0.1:PORT, take one connection
 *   framed_bound send PORT FILE [sha256|none]    connect, send FILE
 *
 * The sender reads FILE in 1 MiB chunks (read(2) into one reused buffer), hashes each chunk and
 * sends it behind a 4-byte big-endian length (writev); a length of 0 ends the file, then the
 * 32-byte digest. The receiver reads each frame whole into one reused 1 MiB buffer, hashes it,
 * write(2)s it to OUT (created, truncated), fsyncs, checks the sender's digest against its own,
 * and prints {"bytes":N,"sha256":"..."} (exit 1 on a mismatch). SHA-256 is OpenSSL's (EVP, with
 * the CPU's SHA extensions where it has them), the one Node's crypto uses.
 *
 * Build: make -C bench/c bound (needs libssl-dev; not part of `all`).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/evp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#define CHUNK (1024 * 1024)

static void die(const char* what) {
  fprintf(stderr, "framed_bound: %s: %s\n", what, strerror(errno));
  exit(2);
}

static void read_full(int fd, void* buf, size_t n) {
  size_t got = 0;
  while (got < n) {
    ssize_t r = read(fd, (char*)buf + got, n - got);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) {
      if (r == 0) errno = EPIPE;
      die("read");
    }
    got += (size_t)r;
  }
}

static void write_full(int fd, const void* buf, size_t n) {
  size_t put = 0;
  while (put < n) {
    ssize_t w = write(fd, (const char*)buf + put, n - put);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) die("write");
    put += (size_t)w;
  }
}

static void writev_full(int fd, struct iovec* iov, int cnt) {
  while (cnt > 0) {
    ssize_t w = writev(fd, iov, cnt);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) die("writev");
    while (cnt > 0 && (size_t)w >= iov->iov_len) {
      w -= (ssize_t)iov->iov_len;
      iov++;
      cnt--;
    }
    if (cnt > 0) {
      iov->iov_base = (char*)iov->iov_base + w;
      iov->iov_len -= (size_t)w;
    }
  }
}

int main(int argc, char** argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: framed_bound recv PORT OUT [sha256|none] | send PORT FILE [sha256|none]\n");
    return 2;
  }
  int port = atoi(argv[2]);
  int hash = argc < 5 || strcmp(argv[4], "none") != 0;
  unsigned char* buf = malloc(CHUNK);
  if (buf == NULL) die("malloc");
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  if (ctx == NULL || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1) die("EVP_DigestInit");
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  unsigned char digest[32] = {0}, theirs[32];
  unsigned int dlen = 32;
  long long total = 0;
  if (strcmp(argv[1], "recv") == 0) {
    int l = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    if (l < 0) die("socket");
    setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(l, (struct sockaddr*)&a, sizeof a) < 0 || listen(l, 1) < 0) die("bind");
    int out = open(argv[3], O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (out < 0) die("open");
    int s = accept(l, NULL, NULL);
    if (s < 0) die("accept");
    for (;;) {
      uint32_t be;
      read_full(s, &be, 4);
      uint32_t n = ntohl(be);
      if (n == 0) break;
      if (n > CHUNK) {
        errno = EMSGSIZE;
        die("frame");
      }
      read_full(s, buf, n);
      if (hash) EVP_DigestUpdate(ctx, buf, n);
      write_full(out, buf, n);
      total += n;
    }
    read_full(s, theirs, 32);
    if (fsync(out) < 0 && errno != EINVAL) die("fsync"); /* EINVAL: OUT is /dev/null */
    close(out);
    if (hash) EVP_DigestFinal_ex(ctx, digest, &dlen);
    printf("{\"bytes\":%lld,\"sha256\":\"", total);
    for (int i = 0; i < 32; i++) printf("%02x", digest[i]);
    printf("\"}\n");
    return memcmp(digest, theirs, 32) == 0 ? 0 : 1;
  }
  int f = open(argv[3], O_RDONLY);
  if (f < 0) die("open");
  int s = socket(AF_INET, SOCK_STREAM, 0);
  if (s < 0 || connect(s, (struct sockaddr*)&a, sizeof a) < 0) die("connect");
  for (;;) {
    ssize_t n = read(f, buf, CHUNK);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) die("read");
    if (n == 0) break;
    if (hash) EVP_DigestUpdate(ctx, buf, (size_t)n);
    uint32_t be = htonl((uint32_t)n);
    struct iovec iov[2] = {{&be, 4}, {buf, (size_t)n}};
    writev_full(s, iov, 2);
    total += n;
  }
  if (hash) EVP_DigestFinal_ex(ctx, digest, &dlen);
  uint32_t zero = 0;
  write_full(s, &zero, 4);
  write_full(s, digest, 32);
  shutdown(s, SHUT_WR);
  read(s, buf, 1); /* the receiver's close */
  return 0;
}
