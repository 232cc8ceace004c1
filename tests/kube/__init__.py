"""A real Kubernetes control plane (etcd + kube-apiserver) for the test suite.

The binaries are built from Go modules by ``tools/kubebins/build.sh``; nothing here fakes the
API, so tests see real CRD validation, RBAC, server-side apply and 409/422 semantics.
"""
