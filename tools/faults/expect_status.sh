#!/bin/sh
# expect_status.sh STATUS COMMAND [ARGS...]: runs COMMAND and succeeds only when it exits
# with STATUS. The tests that run a check of the bound under an injected fault use it:
# the check must fail by reporting a violation (its own status for that), not by crashing
# or by refusing its arguments, which a plain WILL_FAIL would also accept.
want=$1
shift
"$@"
got=$?
if [ "$got" -ne "$want" ]; then
  echo "expect_status: $1 exited with status $got, expected $want" >&2
  exit 1
fi
echo "expect_status: $1 exited with status $got, as expected"
