FROM bud-test/busybox
ONBUILD COPY --from=bud-test/busybox /bin/busybox /copied-busybox
ONBUILD RUN test -x /copied-busybox && echo ok > /onbuild-ok
