package harness

import "github.com/hilproject/hil/harness/link/veth"

func removeStaleLinks() ([]string, error) { return veth.RemoveStale() }
