#!/bin/sh
# A demo command deployment: greets whoever the parameters name (they arrive as JSON on stdin and in
# $PGFLOW_PARAMETERS) and says which run it is.
name=$(printf '%s' "$PGFLOW_PARAMETERS" | sed -n 's/.*"name" *: *"\([^"]*\)".*/\1/p')
echo "hello, ${name:-world}, from run $PGFLOW_FLOW_RUN_NAME (attempt $PGFLOW_RUN_COUNT)"
