#!/bin/sh
# Point the proxy at port $1 (a blue/green switch_command): write ./upstream by rename, so the
# proxy never reads half a file. sysg runs this again with the old port to switch back.
set -eu
printf '%s\n' "$1" > upstream.tmp
mv upstream.tmp upstream
