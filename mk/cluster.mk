# The kind cluster (issue 3): node image, cluster lifecycle, project images into the cluster.
.PHONY: node-image cluster cluster-down load-images

node-image: tools images ## the offline kind node image (every image the cluster needs inside; nothing pulled)
	hack/node-image.sh

cluster: docker tools images venv ## create or reuse the kind cluster "scalestage" (context kind-scalestage)
	hack/cluster.sh up

cluster-down: ## delete the kind cluster and everything it left behind
	hack/cluster.sh down

load-images: ## put the project's scalestage/* images into every node (one docker save, imported side by side)
	hack/cluster.sh load
