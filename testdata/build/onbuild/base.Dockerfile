FROM busybox
ONBUILD COPY trigger.txt /trigger.txt
ONBUILD RUN echo triggered > /onbuild-ran.txt
