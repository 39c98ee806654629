#!/usr/bin/env python3
"""Minimal UDP echo server: recvfrom/sendto loop.

Usage: python3 udp_echo_server.py HOST PORT   (PORT 0 = pick one; prints "listening on <port>")
"""
import signal
import socket
import sys

for sig in (signal.SIGINT, signal.SIGTERM):  # SIGINT may start out ignored in background jobs
    signal.signal(sig, lambda signum, frame: sys.exit(0))
host, port = sys.argv[1], int(sys.argv[2])
sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_DGRAM)
sock.bind((host, port))
print(f"listening on {sock.getsockname()[1]}", flush=True)
try:
    while True:
        data, addr = sock.recvfrom(65535)
        sock.sendto(data, addr)
finally:
    sock.close()
