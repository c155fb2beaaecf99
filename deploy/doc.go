// Package deploy holds the production deployment and operations configuration of the
// platform: the docker-compose stack, Kubernetes manifests (kustomize base and overlays,
// OpenFaaS Functions, ServiceMonitors, NetworkPolicies), Helm values for Temporal and
// OpenFaaS, the Envoy edge, Prometheus rules, Grafana dashboards, the Elastic pipeline and
// the CI/release workflows. It has no code: its tests load every file with the real parser
// or schema of the tool that consumes it.
package deploy
