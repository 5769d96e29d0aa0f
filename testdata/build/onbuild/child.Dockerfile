FROM onbuild-base
RUN test -f /trigger.txt && test -f /onbuild-ran.txt
