# Capstan: `make run` starts a server, `make test` runs every test.
# Both install the Debian packages they need first (only those missing).

# A build cache outside the clone, so fresh clones build incrementally.
CARGO_TARGET_DIR ?= /var/tmp/capstan-target
export CARGO_TARGET_DIR

DATA_DIR ?= /var/lib/capstan

# protoc and the well-known .proto files: build scripts of the gRPC clients.
# etcd: the HA datastore backend, and the real etcd the store tests run against.
# curl: the TLS tests stream over HTTP/1.1 and HTTP/2 with it.
# containerd, runc, CNI plugins, nftables/iptables: the real node (issue 5);
# busybox-static: the test images; docker-registry, skopeo: the pull tests.
# iproute2 (ip), procps (sysctl): the proxy's routes and its network-namespace test.
PACKAGES := protobuf-compiler libprotobuf-dev etcd-server etcd-client curl \
	containerd runc containernetworking-plugins nftables iptables busybox-static docker-registry skopeo \
	iproute2 procps

CAPSTAN := $(CARGO_TARGET_DIR)/release/capstan

.PHONY: run test deps build lint bench

run: build
	@echo "==> starting capstan server (data dir $(DATA_DIR)); stop it with Ctrl-C"
	$(CAPSTAN) server --data-dir $(DATA_DIR)

test: deps
	cargo fmt --all --check
	cargo clippy --workspace --all-targets --locked -- -D warnings
	cargo test --workspace --locked

build: deps
	cargo build --release --locked -p capstan

bench: deps
	cargo run --release --locked -p capstan-bench -- store
	cargo run --release --locked -p capstan-bench -- lease-churn
	cargo build --release --locked -p capstan
	cargo run --release --locked -p capstan-bench -- pods
	cargo run --release --locked -p capstan-bench -- services
	cargo run --release --locked -p capstan-bench -- dns

deps:
	@command -v kubectl >/dev/null || { echo "kubectl (v1.32+) is required for the end-to-end tests"; exit 1; }
	@python3 -c 'import kubernetes' 2>/dev/null || { echo "==> installing the Python kubernetes client"; python3 -m pip install -q kubernetes; }
	@missing=""; \
	for p in $(PACKAGES); do \
		dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
		echo "==> installing Debian packages:$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi
