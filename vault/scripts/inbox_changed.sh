#!/bin/sh
# The check of [[Inbox briefing]]: has Inbox.md changed since the last briefing?
#
#   sh scripts/inbox_changed.sh check     exit 0: it changed (or no briefing yet), the briefing runs;
#                                         exit 10: it did not, the run is skipped with the line printed
#   sh scripts/inbox_changed.sh remember  after a briefing succeeded: remember the inbox as the check saw it
#
# The checksums live in $VAULTSCHED_STATE_DIR, the task's own folder that vaultsched keeps between
# runs and out of git. Only a briefing that succeeded is remembered, so a failed one runs again.
# Any other exit (the inbox is missing, say) blocks the run: vaultsched fails closed.
set -u
state=${VAULTSCHED_STATE_DIR:?vaultsched sets VAULTSCHED_STATE_DIR for every run}
inbox=${VAULTSCHED_VAULT:-.}/Inbox.md

case ${1:-} in
check)
    sum=$(cksum < "$inbox") || exit 1
    if [ "$sum" = "$(cat "$state/briefed" 2>/dev/null)" ]; then
        echo "Inbox.md has not changed since the last briefing"
        exit 10
    fi
    printf '%s\n' "$sum" > "$state/seen"
    echo "Inbox.md changed: the briefing runs"
    ;;
remember)
    mv "$state/seen" "$state/briefed"
    ;;
*)
    echo "usage: sh scripts/inbox_changed.sh check|remember" >&2
    exit 2
    ;;
esac
