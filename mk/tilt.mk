# Tilt (issue: dev loop on the kind cluster). docs/tilt.md.
#
#   make tilt        build the pinned Tilt with its web UI into .tools/bin (cached by version)
#   make tilt-up     tilt up against the kind cluster (after `make up`); UI on http://localhost:10350
#   make test-tilt   tilt ci: every resource of the Tiltfile builds, deploys and becomes ready;
#                    then tilt down, so the cluster is as before (the e2e tier installs the chart)
#   make tilt-down   tilt down (deletes what Tilt deployed: the operator and the ScaleStage chirp)
.PHONY: tilt tilt-up tilt-down test-tilt

TILT_PORT ?= 10350
TILT_CI_TIMEOUT ?= 15m

tilt: ## build the pinned Tilt (with its web UI) into .tools/bin, from the Go proxy + npm registry
	hack/tilt.sh

tilt-up: tilt cluster ## tilt up on the kind cluster: live update of the app and the operator
	tilt up --context $(KUBE_CONTEXT) --host 127.0.0.1 --port $(TILT_PORT)

tilt-down: tilt ## tilt down: delete what tilt up deployed (the CRD and namespaces stay)
	tilt down --context $(KUBE_CONTEXT)

test-tilt: tilt cluster ## tilt ci on the kind cluster (builds, deploys, waits for Ready), then tilt down
	tilt ci --context $(KUBE_CONTEXT) --host 127.0.0.1 --port $(TILT_PORT) --timeout $(TILT_CI_TIMEOUT)
	tilt down --context $(KUBE_CONTEXT)
	@# the ScaleStage's children (its Service holds node port 30080) go with it, by the garbage collector
	kubectl --context $(KUBE_CONTEXT) wait -n $(NAMESPACE) --for=delete service/chirp --timeout=180s
