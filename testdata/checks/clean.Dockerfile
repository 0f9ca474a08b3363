# check=error=true
ARG VERSION=latest
FROM bud-test/busybox:${VERSION} AS build
ENV A=1
ENV B=$A
WORKDIR /src
COPY kept.txt .
RUN echo "$A $B $UNSET_IN_SHELL"
FROM build
EXPOSE 80/udp
CMD ["sh"]
