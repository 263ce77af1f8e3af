# The operator on the kind cluster (issue 5): install it with helm, apply example ScaleStages.
#
#   make operator-install                 load the images into kind, helm upgrade --install
#   make stage STAGE=3 [NAMESPACE=demo]   kubectl apply -f examples/stage-3.yaml (also: example-stage-3)
#   make stage-wait                       wait until scalestage/chirp reports phase Ready
#   make up-cluster-app                   cluster, images, operator, a ScaleStage at stage 1 Ready
.PHONY: operator-install operator-uninstall stage stage-wait up-cluster-app up-instance

KUBE_CONTEXT ?= kind-scalestage
OPERATOR_RELEASE ?= scalestage-operator
OPERATOR_NAMESPACE ?= scalestage-system
STAGE ?= 1
NAMESPACE ?= default
READY_TIMEOUT ?= 600s
OPERATOR_CHART := charts/scalestage-operator

operator-install: ## load the scalestage/* images into kind, then helm upgrade --install the operator
	hack/cluster.sh load
	@# helm installs crds/ only on first install: apply the CRD so upgrades carry its changes too
	kubectl --context $(KUBE_CONTEXT) apply --server-side --force-conflicts -f $(OPERATOR_CHART)/crds/
	@# the tag stays :dev across rebuilds: the image id in an annotation rolls the pod when it changes
	helm --kube-context $(KUBE_CONTEXT) upgrade --install $(OPERATOR_RELEASE) $(OPERATOR_CHART) \
	  -n $(OPERATOR_NAMESPACE) --create-namespace --wait --timeout 5m \
	  --set-string "podAnnotations.scalestage\.dev/image-id=$$(docker image inspect -f '{{.Id}}' scalestage/operator:dev | cut -c8-19)"

operator-uninstall: ## helm uninstall the operator (the CRD and existing ScaleStages stay)
	helm --kube-context $(KUBE_CONTEXT) uninstall $(OPERATOR_RELEASE) -n $(OPERATOR_NAMESPACE) --ignore-not-found

stage: ## apply examples/stage-$(STAGE).yaml into $(NAMESPACE) (STAGE=1..5)
	@test -f examples/stage-$(STAGE).yaml || { echo "STAGE must be 1..5, got '$(STAGE)'" >&2; exit 2; }
	kubectl --context $(KUBE_CONTEXT) get namespace $(NAMESPACE) >/dev/null 2>&1 \
	  || kubectl --context $(KUBE_CONTEXT) create namespace $(NAMESPACE)
	kubectl --context $(KUBE_CONTEXT) apply -n $(NAMESPACE) -f examples/stage-$(STAGE).yaml

example-stage-%: ## same as `make stage STAGE=%`
	@$(MAKE) --no-print-directory stage STAGE=$*

stage-wait: ## wait until scalestage/chirp in $(NAMESPACE) is Ready (READY_TIMEOUT, default 600s)
	@# after a change, the phase is stale until the operator has seen this generation
	@# (a freshly started operator may take a minute or more before it records it)
	kubectl --context $(KUBE_CONTEXT) wait -n $(NAMESPACE) scalestage/chirp --timeout=$(READY_TIMEOUT) \
	  --for=jsonpath='{.status.observedGeneration}'="$$(kubectl --context $(KUBE_CONTEXT) get -n $(NAMESPACE) \
	    scalestage/chirp -o jsonpath='{.metadata.generation}')"
	kubectl --context $(KUBE_CONTEXT) wait -n $(NAMESPACE) scalestage/chirp \
	  --for=jsonpath='{.status.phase}'=Ready --timeout=$(READY_TIMEOUT)
	kubectl --context $(KUBE_CONTEXT) get -n $(NAMESPACE) scalestages

up-cluster-app: cluster operator-install up-instance ## cluster, images loaded, operator installed, ScaleStage chirp Ready

up-instance: ## ScaleStage chirp in $(NAMESPACE): stage 1 if new (an existing one keeps its stage), until Ready
	@# a second `make up` leaves an existing instance at whatever stage it has been moved to
	@if kubectl --context $(KUBE_CONTEXT) get -n $(NAMESPACE) scalestage/chirp >/dev/null 2>&1; then \
	  echo "scalestage/chirp exists in $(NAMESPACE): left at its stage"; \
	else $(MAKE) --no-print-directory stage STAGE=1; fi
	@$(MAKE) --no-print-directory stage-wait
	@echo "Chirp: http://localhost:8080 (the examples' frontDoor.nodePort; kind maps it to the host)"
