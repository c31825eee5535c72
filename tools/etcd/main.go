// The etcd server, built from go.etcd.io/etcd/server/v3 (its own etcdmain): the store behind
// the tests' local control plane. Nothing but the upstream entry point.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
