# The pod sandbox image: our own pause (tools/pause), tagged as kubeadm expects the pause image.
ARG BASE_IMAGE=scratch
FROM ${BASE_IMAGE}
COPY pause /pause
USER 65535:65535
ENTRYPOINT ["/pause"]
