FROM bud-test/busybox
ONBUILD RUN echo "triggered in the child" > /triggered
ONBUILD COPY payload.txt /payload.txt
ONBUILD ENV ONBUILD_ENV=set
ENV BASE_ENV=base
