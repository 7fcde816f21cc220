package target

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
)

// Params are what a run's configuration says about where to run, for the
// targets that need more than their name: the board target reads its
// inventory and board selection from them. A target that needs nothing
// ignores them.
type Params struct {
	// Inventory is the board inventory file (devices.yaml).
	Inventory string
	// Boards selects boards in the inventory: a name, names separated by
	// commas, or "tag:LABEL".
	Boards string
}

// Constructor makes the targets a registered name stands for: usually one;
// one per board, each named NAME@BOARD, when Params select several boards
// (the scenario runner runs those side by side).
type Constructor func(Params) ([]Target, error)

var (
	registryMu sync.RWMutex
	registered = map[string]Constructor{}
)

// Register makes a target available by name (the name scenarios and
// hil's --target use), the way image decoders and database/sql drivers
// register: each target package calls it from its init function, so a
// program has the targets it imports. The system and user targets come
// with github.com/hilproject/hil/harness; the container and device
// targets, which bring a Docker client and SSH, only with their own
// packages. Register panics when the name is taken or c is nil.
func Register(name string, c Constructor) {
	registryMu.Lock()
	defer registryMu.Unlock()
	if c == nil {
		panic("target: Register of " + name + " with a nil constructor")
	}
	if _, dup := registered[name]; dup {
		panic("target: Register called twice for " + name)
	}
	registered[name] = c
}

// Names lists the registered targets, sorted.
func Names() []string {
	registryMu.RLock()
	defer registryMu.RUnlock()
	var ns []string
	for n := range registered {
		ns = append(ns, n)
	}
	sort.Strings(ns)
	return ns
}

// packages are where hil's own targets live, for the error that names the
// import a program is missing.
var packages = map[string]string{
	"system":    "github.com/hilproject/hil/harness/target/system",
	"user":      "github.com/hilproject/hil/harness/target/user",
	"container": "github.com/hilproject/hil/harness/target/container",
	"device":    "github.com/hilproject/hil/harness/target/device",
}

// New makes the targets called name with p. A name nobody registered is an
// error that says which import registers it (for hil's own targets) or
// which targets there are.
func New(name string, p Params) ([]Target, error) {
	registryMu.RLock()
	c, ok := registered[name]
	registryMu.RUnlock()
	if !ok {
		if pkg, known := packages[name]; known {
			return nil, fmt.Errorf("target %q is not linked into this program: import _ %q to register it", name, pkg)
		}
		return nil, fmt.Errorf("unknown target %q; expected one of %s", name, strings.Join(Names(), ", "))
	}
	ts, err := c(p)
	if err != nil {
		return nil, err
	}
	if len(ts) == 0 {
		return nil, errors.New("target " + name + ": the constructor made no target")
	}
	return ts, nil
}

// Instance is one of several targets of a kind (the boards of a
// selection), named KIND@NAME: the scenario runner runs the instances of a
// kind side by side, one case at a time each.
func Instance(t Target, name string) Target { return instance{Target: t, name: t.Name() + "@" + name} }

type instance struct {
	Target
	name string
}

func (i instance) Name() string { return i.name }
