#!/bin/sh
# The act of [[Log inbox follow-up]]: append the first line piped in (the draft that a person
# approved) to Follow-ups.md, as one list item. It changes nothing else.
#
# The note is named here, not in the task's command: trust covers every vault file the command
# names, so naming a note that each run changes would make the task untrusted after every run.
set -u
note=${VAULTSCHED_VAULT:-.}/Follow-ups.md
line=
while IFS= read -r line || [ -n "$line" ]; do
    [ -n "$line" ] && break
done
if [ -z "$line" ]; then
    echo "nothing to append: this task runs after [[Draft inbox follow-up]], which drafts the line" >&2
    exit 1
fi
[ -f "$note" ] || printf 'Lines the [[Log inbox follow-up]] task added, each approved first.\n\n' > "$note"
printf -- '- %s\n' "$line" >> "$note"
echo "appended to Follow-ups.md: $line"
