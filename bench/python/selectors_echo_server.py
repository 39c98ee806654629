#!/usr/bin/env python3
"""Multi-connection echo server in the style of Real Python's
"Socket Programming in Python (Guide)" multiconn-server.py.

This is deliberately the tutorial's design, inefficiencies included, because it
is the baseline socketkit is compared against:
  * every connection is registered for EVENT_READ | EVENT_WRITE for its whole
    life, so select() returns immediately whenever any client is connected
    (the loop spins at 100% CPU and walks every writable socket each pass);
  * recv(1024) per read event;
  * received bytes are appended to data.outb (bytes concatenation) and sent
    with one send() per write event, then sliced off.

Deviations from the tutorial, kept to the minimum needed for a benchmark:
  * no per-connection / per-message print() (it would dominate the cost and
    flood stdout); the only output is "listening on <port>";
  * the write branch is skipped once the read branch closed the socket, and
    ConnectionResetError/BrokenPipeError close the connection instead of
    crashing the whole server (the tutorial would die with a traceback);
  * supports port 0, prints the bound port, and exits cleanly on SIGTERM too.

Like the tutorial, accepted sockets keep Nagle's algorithm on. With recv(1024)
chunks echoed by separate send() calls, any message larger than 1024 bytes hits
Nagle + the peer's delayed ACK (~40 ms per round trip on Linux loopback). That
is the faithful behaviour; pass --nodelay as a third argument to set
TCP_NODELAY on accepted sockets and measure the design without that stall.

Usage: python3 selectors_echo_server.py HOST PORT [--nodelay]
"""
import selectors
import signal
import socket
import sys
import types

sel = selectors.DefaultSelector()
NODELAY = False


def accept_wrapper(sock):
    conn, addr = sock.accept()  # Should be ready to read
    conn.setblocking(False)
    if NODELAY:  # not in the tutorial; opt-in only
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    data = types.SimpleNamespace(addr=addr, inb=b"", outb=b"")
    events = selectors.EVENT_READ | selectors.EVENT_WRITE
    sel.register(conn, events, data=data)


def close_connection(sock):
    sel.unregister(sock)
    sock.close()


def service_connection(key, mask):
    sock = key.fileobj
    data = key.data
    if mask & selectors.EVENT_READ:
        try:
            recv_data = sock.recv(1024)  # Should be ready to read
        except ConnectionError:
            recv_data = b""
        if recv_data:
            data.outb += recv_data
        else:
            close_connection(sock)
            return
    if mask & selectors.EVENT_WRITE:
        if data.outb:
            try:
                sent = sock.send(data.outb)  # Should be ready to write
            except ConnectionError:
                close_connection(sock)
                return
            data.outb = data.outb[sent:]


def _terminate(signum, frame):
    raise KeyboardInterrupt


def main():
    global NODELAY
    if len(sys.argv) not in (3, 4) or sys.argv[3:] not in ([], ["--nodelay"]):
        print(f"Usage: {sys.argv[0]} <host> <port> [--nodelay]", file=sys.stderr)
        sys.exit(1)
    NODELAY = sys.argv[3:] == ["--nodelay"]

    # Explicit for SIGINT too: a non-interactive shell starts background jobs
    # with SIGINT ignored, and Python would then never raise KeyboardInterrupt.
    signal.signal(signal.SIGINT, _terminate)
    signal.signal(signal.SIGTERM, _terminate)
    host, port = sys.argv[1], int(sys.argv[2])
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    lsock = socket.socket(family, socket.SOCK_STREAM)
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsock.bind((host, port))
    lsock.listen()
    print(f"listening on {lsock.getsockname()[1]}", flush=True)
    lsock.setblocking(False)
    sel.register(lsock, selectors.EVENT_READ, data=None)

    try:
        while True:
            events = sel.select(timeout=None)
            for key, mask in events:
                if key.data is None:
                    accept_wrapper(key.fileobj)
                else:
                    service_connection(key, mask)
    except KeyboardInterrupt:
        pass
    finally:
        sel.close()
        lsock.close()


if __name__ == "__main__":
    main()
