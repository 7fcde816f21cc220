package promote

import "github.com/hilproject/hil/harness/registry"

// Registry is how the gate reaches registries: harness/registry's Client,
// the same credentials, transport, retries and plain-HTTP rule (loopback
// only) that image sources use. Build it with registry.New; nil means
// registry.New().
type Registry = registry.Client
