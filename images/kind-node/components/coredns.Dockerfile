# CoreDNS for the offline node image: kubeadm's Deployment passes only args, so the binary is the
# entry point (as in the upstream image). It runs as root: kubeadm's pod drops every capability
# but NET_BIND_SERVICE, which a non-root user could only use through file capabilities.
ARG BASE_IMAGE=scratch
FROM ${BASE_IMAGE}
COPY coredns /coredns
ENTRYPOINT ["/coredns"]
