// The Kubernetes resource provider for the Pulumi engine, built from
// github.com/pulumi/pulumi-kubernetes/provider/v4.
//
// Upstream's cmd/pulumi-resource-kubernetes embeds schema files that its `go generate` writes and
// the module zip lacks; tools/build.sh writes schema-embed.json (the module's schema.json with
// the provider's version set) beside this file in a build directory outside the repository, so
// the schema is never committed. Everything else is the upstream entry point.
package main

import (
	_ "embed"

	"github.com/pulumi/pulumi-kubernetes/provider/v4/pkg/provider"
	"github.com/pulumi/pulumi-kubernetes/provider/v4/pkg/version"
)

//go:embed schema-embed.json
var pulumiSchema []byte

//go:embed terraform-mapping-embed.json
var terraformMapping []byte

func main() {
	provider.Serve("kubernetes", version.Version, pulumiSchema, terraformMapping)
}
