//go:build tools

// Package helm pins the Helm CLI that the local test cluster builds.
package helm

import (
	_ "helm.sh/helm/v3/cmd/helm"
)
