package device

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"gopkg.in/yaml.v3"
)

// Machine is one physical device hil can reach over SSH, as listed in a
// devices.yaml inventory.
type Machine struct {
	Name string `yaml:"name"`
	Host string `yaml:"host"`
	Port int    `yaml:"port"`
	User string `yaml:"user"`
	// Key is a private key file; when empty the SSH agent (SSH_AUTH_SOCK)
	// is asked.
	Key string `yaml:"key"`
	// KnownHosts is the known_hosts file that must vouch for the board's
	// host key (default ~/.ssh/known_hosts). It is never skipped unless
	// InsecureIgnoreHostKey is set.
	KnownHosts            string   `yaml:"known_hosts"`
	InsecureIgnoreHostKey bool     `yaml:"insecure_ignore_host_key"`
	Arch                  string   `yaml:"arch"`
	Tags                  []string `yaml:"tags"`
	// Profile is the board profile this machine is ("pi3b+"; the YAML key
	// is board): hil runs no other board's cases on it. Optional: hil
	// reads the board's model anyway.
	Profile string `yaml:"board"`
	// VerifyBoard false runs board cases on a machine whose model hil
	// cannot read (no /proc/device-tree/model: an x86 stand-in, a kernel
	// without device tree) and skips the memory check. Leave it out on
	// real boards: by default a board case on a machine hil cannot
	// identify is refused.
	VerifyBoard *bool `yaml:"verify_board"`
}

// Addr is host:port.
func (b Machine) Addr() string {
	port := b.Port
	if port == 0 {
		port = 22
	}
	return fmt.Sprintf("%s:%d", b.Host, port)
}

// Inventory is a parsed devices.yaml.
type Inventory struct {
	Boards []Machine `yaml:"boards"`
	path   string
}

// LoadInventory reads a devices.yaml:
//
//	boards:
//	  - name: pi-lab-1
//	    host: 192.0.2.10
//	    user: pirate
//	    key: ~/.ssh/hil_ed25519
//	    known_hosts: ~/.ssh/known_hosts
//	    arch: linux/arm/v7
//	    tags: [lab, pi3]
//	    board: pi3b+                 # optional: the board profile it is
//	    verify_board: false          # only for machines without /proc/device-tree
//
// Unknown keys, wrong types, missing names or hosts and duplicate names are
// errors that give file:line.
func LoadInventory(path string) (*Inventory, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading the board inventory: %w", err)
	}
	return ParseInventory(path, data)
}

// ParseInventory parses inventory bytes; path is only used in errors and to
// resolve relative key files.
func ParseInventory(path string, data []byte) (*Inventory, error) {
	var root yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&root); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%s: empty inventory: expected a `boards:` list", path)
		}
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	inv := &Inventory{path: path}
	strict := yaml.NewDecoder(bytes.NewReader(data))
	strict.KnownFields(true)
	if err := strict.Decode(inv); err != nil {
		// yaml.v3 already says "line N: field x not found in type ...".
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	boards := boardNodes(&root)
	seen := map[string]int{}
	for i := range inv.Boards {
		b := &inv.Boards[i]
		line := 0
		if i < len(boards) {
			line = boards[i].Line
		}
		switch {
		case b.Name == "":
			return nil, fmt.Errorf("%s:%d: board %d has no name", path, line, i+1)
		case b.Host == "":
			return nil, fmt.Errorf("%s:%d: board %q has no host", path, line, b.Name)
		}
		if prev, dup := seen[b.Name]; dup {
			return nil, fmt.Errorf("%s:%d: board name %q is already used at line %d", path, line, b.Name, prev)
		}
		seen[b.Name] = line
		b.Key = expandPath(path, b.Key)
		b.KnownHosts = expandPath(path, b.KnownHosts)
	}
	return inv, nil
}

func boardNodes(root *yaml.Node) []*yaml.Node {
	if root.Kind != yaml.DocumentNode || len(root.Content) == 0 {
		return nil
	}
	m := root.Content[0]
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == "boards" && m.Content[i+1].Kind == yaml.SequenceNode {
			return m.Content[i+1].Content
		}
	}
	return nil
}

// expandPath resolves ~ and paths relative to the inventory file.
func expandPath(inventory, p string) string {
	switch {
	case p == "":
		return ""
	case strings.HasPrefix(p, "~/"):
		if home, err := os.UserHomeDir(); err == nil {
			return filepath.Join(home, p[2:])
		}
	case !filepath.IsAbs(p):
		return filepath.Join(filepath.Dir(inventory), p)
	}
	return p
}

// Machine returns the board called name, or an error listing the names.
func (inv *Inventory) Machine(name string) (Machine, error) {
	var names []string
	for _, b := range inv.Boards {
		if b.Name == name {
			return b, nil
		}
		names = append(names, b.Name)
	}
	return Machine{}, fmt.Errorf("no board %q in %s; it lists: %s", name, inv.path, strings.Join(names, ", "))
}

// Select returns the boards that carry every tag in tags (all boards when
// tags is empty).
func (inv *Inventory) Select(tags ...string) []Machine {
	var out []Machine
next:
	for _, b := range inv.Boards {
		for _, want := range tags {
			found := false
			for _, have := range b.Tags {
				if have == want {
					found = true
					break
				}
			}
			if !found {
				continue next
			}
		}
		out = append(out, b)
	}
	return out
}

// Resolve picks boards by a selection: a board's name, several names
// separated by commas, or "tag:LABEL" for every board that carries LABEL.
func (inv *Inventory) Resolve(selection string) ([]Machine, error) {
	if label, ok := strings.CutPrefix(selection, "tag:"); ok {
		boards := inv.Select(label)
		if len(boards) == 0 {
			return nil, fmt.Errorf("no board in %s carries the tag %q", inv.path, label)
		}
		return boards, nil
	}
	var out []Machine
	for _, name := range strings.Split(selection, ",") {
		b, err := inv.Machine(strings.TrimSpace(name))
		if err != nil {
			return nil, err
		}
		out = append(out, b)
	}
	return out, nil
}
