package debian

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// mirrors are the archive and security URIs the host's apt already uses.
type mirrors struct{ archive, security string }

// hostMirrors reads the host's apt sources (deb822 *.sources files and the
// one-line sources.list format). Mirror addresses are never hard-coded:
// the host's configuration is what is known to be reachable.
func hostMirrors(etc string) (mirrors, error) {
	var m mirrors
	var entries []sourceEntry
	files, _ := filepath.Glob(filepath.Join(etc, "sources.list.d", "*.sources"))
	sort.Strings(files)
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		entries = append(entries, parseDeb822Sources(string(b))...)
	}
	lists, _ := filepath.Glob(filepath.Join(etc, "sources.list.d", "*.list"))
	sort.Strings(lists)
	lists = append([]string{filepath.Join(etc, "sources.list")}, lists...)
	for _, f := range lists {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		entries = append(entries, parseOneLineSources(string(b))...)
	}
	for _, e := range entries {
		if !e.deb || !e.debian() {
			continue
		}
		for _, s := range e.suites {
			switch {
			case strings.HasSuffix(s, "-security") || strings.HasSuffix(s, "/updates"):
				if m.security == "" {
					m.security = e.uri
				}
			case !strings.Contains(s, "-"):
				if m.archive == "" {
					m.archive = e.uri
				}
			}
		}
	}
	if m.archive == "" {
		return m, fmt.Errorf("no Debian archive mirror in the host's apt sources (%s/sources.list, %s/sources.list.d/): on a non-Debian host set HIL_DEBIAN_MIRROR (and optionally HIL_DEBIAN_SECURITY_MIRROR) to a Debian mirror URI", etc, etc)
	}
	return m, nil
}

type sourceEntry struct {
	deb      bool
	uri      string
	suites   []string
	signedBy string
}

// debian tells Debian archive entries from third-party repositories
// (which share the host's sources but not Debian's keyring).
func (e sourceEntry) debian() bool {
	return strings.Contains(e.signedBy, "debian-archive-keyring") || strings.Contains(e.uri, "debian")
}

func parseDeb822Sources(s string) []sourceEntry {
	var out []sourceEntry
	for _, para := range parseParagraphs([]byte(stripComments(s))) {
		if strings.EqualFold(strings.TrimSpace(para["Enabled"]), "no") {
			continue
		}
		types := strings.Fields(para["Types"])
		deb := false
		for _, t := range types {
			if t == "deb" {
				deb = true
			}
		}
		for _, u := range strings.Fields(para["URIs"]) {
			out = append(out, sourceEntry{deb: deb, uri: strings.TrimRight(u, "/"),
				suites: strings.Fields(para["Suites"]), signedBy: strings.TrimSpace(para["Signed-By"])})
		}
	}
	return out
}

func stripComments(s string) string {
	var b strings.Builder
	for _, l := range strings.Split(s, "\n") {
		if strings.HasPrefix(strings.TrimSpace(l), "#") {
			continue
		}
		b.WriteString(l + "\n")
	}
	return b.String()
}

func parseOneLineSources(s string) []sourceEntry {
	var out []sourceEntry
	for _, l := range strings.Split(s, "\n") {
		if i := strings.IndexByte(l, '#'); i >= 0 {
			l = l[:i]
		}
		f := strings.Fields(l)
		if len(f) < 3 || (f[0] != "deb" && f[0] != "deb-src") {
			continue
		}
		e := sourceEntry{deb: f[0] == "deb"}
		rest := f[1:]
		if strings.HasPrefix(rest[0], "[") {
			for len(rest) > 0 {
				tok := rest[0]
				rest = rest[1:]
				if v, ok := strings.CutPrefix(strings.TrimPrefix(tok, "["), "signed-by="); ok {
					e.signedBy = strings.TrimSuffix(v, "]")
				}
				if strings.HasSuffix(tok, "]") {
					break
				}
			}
		}
		if len(rest) < 2 {
			continue
		}
		e.uri = strings.TrimRight(rest[0], "/")
		e.suites = []string{rest[1]}
		out = append(out, e)
	}
	return out
}

// sourcesList is the private one-line sources file for this source: the
// release, its -updates and its -security suites.
func (s Source) sourcesList() (string, error) {
	m := mirrors{archive: s.Mirror, security: s.SecurityMirror}
	if m.archive == "" {
		m.archive = os.Getenv("HIL_DEBIAN_MIRROR")
	}
	if m.security == "" {
		m.security = os.Getenv("HIL_DEBIAN_SECURITY_MIRROR")
	}
	if m.archive == "" {
		host, err := hostMirrors("/etc/apt")
		if err != nil {
			return "", err
		}
		m.archive = host.archive
		if m.security == "" {
			m.security = host.security
		}
	}
	comps := s.Components
	if len(comps) == 0 {
		comps = []string{"main"}
	}
	c := strings.Join(comps, " ")
	opt := "[signed-by=" + keyring + "]"
	var b strings.Builder
	fmt.Fprintf(&b, "deb %s %s %s %s\n", opt, m.archive, s.Suite, c)
	fmt.Fprintf(&b, "deb %s %s %s-updates %s\n", opt, m.archive, s.Suite, c)
	if m.security != "" {
		fmt.Fprintf(&b, "deb %s %s %s-security %s\n", opt, m.security, s.Suite, c)
	}
	return b.String(), nil
}
