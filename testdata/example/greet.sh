#!/bin/sh
echo "$GREETING from @NAME@, $1!"
cat /usr/share/kiln/report.txt
