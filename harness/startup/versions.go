package startup

import (
	"bytes"
	"os"
	"path"
	"strconv"
	"strings"
)

// checkVersions does ld.so's _dl_check_map_versions for one object: each
// version it needs (DT_VERNEED) must be defined (DT_VERDEF) by the library
// it names. A library without any DT_VERDEF is accepted, as ld.so does.
// Per library only the highest missing version is reported, with one
// symbol that needs it: that is the one a person has to fix.
func (c *checker) checkVersions(n *node, byName map[string]*node) {
	for _, vn := range n.info.VerNeed {
		provider, ok := byName[vn.File]
		if !ok || len(provider.info.VerDef) == 0 {
			continue
		}
		var worst *verNeedAux
		for i := range vn.Versions {
			v := &vn.Versions[i]
			if v.Weak || provider.info.defines(v.Name) {
				continue
			}
			if worst == nil || compareVersions(v.Name, worst.Name) > 0 {
				worst = v
			}
		}
		if worst == nil {
			continue
		}
		who := path.Base(n.obj.RealPath)
		sym := ""
		if s, err := n.info.symbolForVersion(worst.Index); err == nil {
			sym = " (symbol " + s + "@" + worst.Name + ")"
		}
		have := highestDefined(provider.info, worst.Name)
		provides := "defines no version of that family"
		if have != "" {
			provides = "provides up to " + have
		}
		lib := vn.File
		if rel := glibcRelease(c.root.host(provider.obj.RealPath), worst.Name); rel != "" {
			// glibc releases without new symbols define no version of their
			// own (2.31 tops out at GLIBC_2.30), so name the release too.
			lib += " (glibc " + rel + ")"
		}
		c.problem(KindMissingVersion, n.obj.RealPath, worst.Name,
			"%s needs %s%s but the image's %s %s",
			who, worst.Name, sym, lib, provides)
	}
}

// highestDefined returns the highest version the library defines with the
// same prefix as like (GLIBC_ for GLIBC_2.34), else "".
func highestDefined(in *elfInfo, like string) string {
	prefix, _ := splitVersion(like)
	best := ""
	for _, d := range in.VerDef {
		if d.Base {
			continue
		}
		if p, _ := splitVersion(d.Name); p != prefix {
			continue
		}
		if best == "" || compareVersions(d.Name, best) > 0 {
			best = d.Name
		}
	}
	return best
}

// splitVersion splits "GLIBC_2.34" into "GLIBC_" and [2 34]; a name
// without a numeric tail has no numbers.
func splitVersion(v string) (string, []int) {
	i := len(v)
	for i > 0 && (v[i-1] == '.' || v[i-1] >= '0' && v[i-1] <= '9') {
		i--
	}
	prefix, tail := v[:i], strings.Trim(v[i:], ".")
	if tail == "" {
		return v, nil
	}
	var nums []int
	for _, f := range strings.Split(tail, ".") {
		n, err := strconv.Atoi(f)
		if err != nil {
			return v, nil
		}
		nums = append(nums, n)
	}
	return prefix, nums
}

// compareVersions orders versions of one family numerically (GLIBC_2.4 <
// GLIBC_2.34); different families are ordered by name.
func compareVersions(a, b string) int {
	pa, na := splitVersion(a)
	pb, nb := splitVersion(b)
	if pa != pb {
		return strings.Compare(a, b)
	}
	for i := 0; i < len(na) || i < len(nb); i++ {
		x, y := 0, 0
		if i < len(na) {
			x = na[i]
		}
		if i < len(nb) {
			y = nb[i]
		}
		if x != y {
			if x < y {
				return -1
			}
			return 1
		}
	}
	return 0
}

// glibcRelease finds the release string glibc embeds ("... stable release
// version 2.31.") in the library providing a GLIBC_ version, or "". It
// reads the whole file, but only when a version is missing.
func glibcRelease(hostPath, version string) string {
	if !strings.HasPrefix(version, "GLIBC_") {
		return ""
	}
	b, err := os.ReadFile(hostPath)
	if err != nil {
		return ""
	}
	const marker = "release version "
	i := bytes.Index(b, []byte(marker))
	if i < 0 {
		return ""
	}
	rest := b[i+len(marker):]
	j := 0
	for j < len(rest) && j < 16 && (rest[j] == '.' || rest[j] >= '0' && rest[j] <= '9') {
		j++
	}
	return strings.TrimRight(string(rest[:j]), ".")
}
