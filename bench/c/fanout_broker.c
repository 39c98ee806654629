// Minimal fan-out broker for measurement: epoll for readability, read up to BUF bytes from a
// client, blocking write(2) of it to every other client. Prints {"address":"127.0.0.1:PORT"}.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>
#define MAXC 1024
static int clients[MAXC];
static int nclients;
int main(int argc, char** argv) {
  size_t bufsz = argc > 1 ? strtoul(argv[1], 0, 0) : 262144;
  int sndbuf = argc > 2 ? atoi(argv[2]) : 0, nodelay = argc > 3 ? atoi(argv[3]) : 0;
  const char* cc = argc > 4 ? argv[4] : 0;
  char* buf = malloc(bufsz);
  int ls = socket(AF_INET, SOCK_STREAM, 0), one = 1;
  setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  if (bind(ls, (void*)&a, sizeof a) || listen(ls, 1024)) return perror("listen"), 1;
  socklen_t l = sizeof a;
  getsockname(ls, (void*)&a, &l);
  printf("{\"address\":\"127.0.0.1:%d\"}\n", ntohs(a.sin_port));
  fflush(stdout);
  int ep = epoll_create1(0);
  struct epoll_event ev = {.events = EPOLLIN, .data.fd = ls};
  epoll_ctl(ep, EPOLL_CTL_ADD, ls, &ev);
  struct epoll_event evs[64];
  for (;;) {
    int n = epoll_wait(ep, evs, 64, -1);
    for (int i = 0; i < n; i++) {
      int fd = evs[i].data.fd;
      if (fd == ls) {
        int c = accept(ls, 0, 0);
        if (c < 0 || nclients >= MAXC) { if (c >= 0) close(c); continue; }
        clients[nclients++] = c;
        if (sndbuf) setsockopt(c, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
        if (nodelay) setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        if (cc) setsockopt(c, IPPROTO_TCP, TCP_CONGESTION, cc, strlen(cc));
        struct epoll_event e = {.events = EPOLLIN, .data.fd = c};
        epoll_ctl(ep, EPOLL_CTL_ADD, c, &e);
        continue;
      }
      ssize_t r = read(fd, buf, bufsz);
      if (r <= 0) {
        epoll_ctl(ep, EPOLL_CTL_DEL, fd, 0);
        close(fd);
        for (int k = 0; k < nclients; k++) if (clients[k] == fd) { clients[k] = clients[--nclients]; break; }
        continue;
      }
      for (int k = 0; k < nclients; k++) {
        int c = clients[k];
        if (c == fd) continue;
        ssize_t off = 0;
        while (off < r) {
          ssize_t w = write(c, buf + off, r - off);
          if (w < 0) { if (errno == EINTR) continue; break; }
          off += w;
        }
      }
    }
  }
}
