#!/bin/sh
# The switch_verify of the example: the proxy on port $2 answers, from the generation on port $1
# (the server's body starts with its pid; the process listening on $1 must be that pid).
set -eu
body=$(python3 -c 'import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1], timeout=2).read().decode())' "http://127.0.0.1:$2/")
direct=$(python3 -c 'import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1], timeout=2).read().decode())' "http://127.0.0.1:$1/")
[ "${body%% *}" = "${direct%% *}" ]
