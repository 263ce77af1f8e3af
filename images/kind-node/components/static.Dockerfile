# One static Go binary on an empty base: kube-apiserver, kube-controller-manager, kube-scheduler,
# etcd and local-path-provisioner in the offline node image (their manifests name the command).
ARG BASE_IMAGE=scratch
FROM ${BASE_IMAGE}
ARG BINARY
COPY ${BINARY} /usr/local/bin/
ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
