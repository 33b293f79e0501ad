// Command etcd is upstream etcd's server, built from the Go module proxy so the
// local cluster needs no release download.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
