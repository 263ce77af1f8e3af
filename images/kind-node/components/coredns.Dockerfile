# CoreDNS for the offline node image: kubeadm's Deployment passes only args, so the binary is the
# entry point (as in the upstream image).
ARG BASE_IMAGE=scratch
FROM ${BASE_IMAGE}
COPY coredns /coredns
USER 65532:65532
ENTRYPOINT ["/coredns"]
