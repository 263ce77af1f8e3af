# The kind cluster (issue 3): node image, cluster lifecycle, project images into the cluster.
.PHONY: node-image node-prepare cluster cluster-down load-images

node-image: tools images ## the offline kind node image (every image the cluster needs inside; nothing pulled)
	hack/node-image.sh

# make up runs this next to the tools phase: the node image's Debian layers and small Go programs,
# so that after the tools only their binaries are added (nothing when kind's node image is used)
node-prepare: images ## the offline node image's parts that need no tool (Debian layers, nodenet, pause)
	hack/node-image.sh prepare

cluster: docker tools images venv ## create or reuse the kind cluster "scalestage" (context kind-scalestage)
	hack/cluster.sh up

cluster-down: ## delete the kind cluster and everything it left behind
	hack/cluster.sh down

load-images: ## put the project's scalestage/* images into every node (one docker save, imported side by side)
	hack/cluster.sh load
