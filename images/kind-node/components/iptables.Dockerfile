# A Debian base with iptables for the node's network components (kube-proxy, nodenet). The rules
# must go to the backend the node already uses (legacy or nft): iptables-autodetect decides on the
# first call and then steps out of the way.
ARG BASE_IMAGE=scalestage/debian-base:bookworm
FROM ${BASE_IMAGE}
RUN set -eux; \
    apt-get update; \
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends iptables iproute2 conntrack; \
    rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/*.deb
COPY iptables-autodetect /usr/local/sbin/
RUN for t in iptables iptables-save iptables-restore ip6tables ip6tables-save ip6tables-restore; do \
      ln -s iptables-autodetect "/usr/local/sbin/$t"; \
    done
ARG BINARY
COPY ${BINARY} /usr/local/bin/
