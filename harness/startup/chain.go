package startup

import "strings"

// chainOf is the load chain that ends in the library name that n needs:
// the program, each library that pulled in the next one (by the path ld.so
// found it at), then name. A library missing deep in the tree is only
// fixable once one knows which copied file asked for it.
func chainOf(n *node, name string) []string {
	var up []string
	for l := n; l != nil; l = l.loader {
		p := l.obj.Path
		if p == "" {
			p = l.obj.Name
		}
		up = append(up, p)
	}
	chain := make([]string, 0, len(up)+1)
	for i := len(up) - 1; i >= 0; i-- {
		chain = append(chain, up[i])
	}
	return append(chain, name)
}

// chainText renders a chain for a message; a library the program needs
// directly says nothing more than the message already does.
func chainText(chain []string) string {
	if len(chain) <= 2 {
		return ""
	}
	return "; chain: " + strings.Join(chain, " → ")
}
