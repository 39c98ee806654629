#!/bin/sh
# N socketkit load agents over ssh (README: "Load from many machines"): one agent per host, all
# starting their measured run at the same wall-clock time, their logs copied back and merged.
#
#   TARGET=10.0.0.5:9800 examples/ssh/run-agents.sh load1 load2 load3
#
# Each host needs socketkit on its PATH and a clock kept by NTP (chrony, systemd-timesyncd).
# DURATION (seconds, default 60), CONNECTIONS (per agent, default 100) and LEAD (seconds the
# agents get to start and connect before the run, default 10) can be set too. Writes
# agent-N.hlog for each host and run.html here.
set -eu
: "${TARGET:?set TARGET to the echo server's HOST:PORT}"
DURATION=${DURATION:-60}
CONNECTIONS=${CONNECTIONS:-100}
LEAD=${LEAD:-10}
START_AT=$(date -u -d "+$LEAD seconds" +%Y-%m-%dT%H:%M:%SZ)
i=0
for host in "$@"; do
  i=$((i + 1))
  ssh "$host" "socketkit load $TARGET -c $CONNECTIONS -d $DURATION --start-at $START_AT --tag agent-$i --hdr-log agent-$i.hlog -q" &
done
wait
i=0
for host in "$@"; do
  i=$((i + 1))
  ssh "$host" "cat agent-$i.hlog" > "agent-$i.hlog"
done
socketkit report agent-*.hlog --html run.html
