ARG IMAGE
ARG VERSION=latest
FROM bud-test/busybox$VERSON as Builder
MAINTAINER me
ARG API_TOKEN=x
ENV FOO bar
LABEL key value
run echo $UNDEFINED_X
ENV A=$PATHH
CMD echo hi
CMD echo ho
WORKDIR rel
EXPOSE 80/TCP 8080:80
COPY ignored.txt /
FROM --platform=linux/amd64 bud-test/busybox AS dup
FROM --platform=$TARGETPLATFORM bud-test/busybox AS dup
ENTRYPOINT echo \

  hi
FROM bud-test/busybox AS scratch
FROM $IMAGE
