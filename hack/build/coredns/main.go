// Command coredns is upstream CoreDNS with only the plugins the local cluster's Corefile
// uses: the cluster's DNS answers from the API server and forwards nothing (there is no
// network outside). Upstream's main imports every plugin (cloud SDKs, most of the build);
// this one imports the same core and a subset, in upstream's directive order.
package main

import (
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/coremain"

	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/loadbalance"
	_ "github.com/coredns/coredns/plugin/log"
	_ "github.com/coredns/coredns/plugin/ready"
	_ "github.com/coredns/coredns/plugin/reload"
)

// The directives this build knows, in the order upstream's generated list gives them
// (the order in which a query passes the plugins, whatever the Corefile's order).
func init() {
	dnsserver.Directives = []string{
		"reload",
		"ready",
		"health",
		"errors",
		"log",
		"loadbalance",
		"cache",
		"kubernetes",
	}
}

func main() {
	coremain.Run()
}
