#!/bin/sh
# A demo command deployment that fails about half the time: its retries show in the history.
if [ $(( $(od -An -N1 -tu1 /dev/urandom) % 2 )) -eq 0 ]; then
  echo "the upstream service timed out" >&2
  exit 1
fi
echo "fetched 42 rows"
